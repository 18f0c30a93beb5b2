#pragma once
// Scalar conversions and text helpers shared by the CSV and JSON lines
// formats. Private to runtime/formats: other modules use record_format.h.
//
// All functions are stateless and safe to call from any thread. None of them
// allocates except the error builders, which only run on the error path.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "runtime/types.h"

namespace vstream::format_internal {

// At most this many bytes of an offending value are quoted in an error
// message (dead-letter reasons stay short, whatever the record holds).
inline constexpr size_t kMaxValueInMessage = 40;

// `value` cut to kMaxValueInMessage bytes on a UTF-8 boundary, with "..."
// appended when cut.
std::string Abbreviate(std::string_view value);

// InvalidArgument "field '<name>': <detail>".
absl::Status FieldError(const Field& field, std::string_view detail);
// InvalidArgument "field '<name>': expected <type>, got '<value>'<suffix>".
absl::Status BadValueError(const Field& field, std::string_view value,
                           std::string_view suffix = "");

// Length of the well-formed UTF-8 sequence starting at s[pos] (1 to 4), or 0
// if the bytes there are not one (overlong, surrogate, > U+10FFFF, truncated).
size_t Utf8SequenceLength(std::string_view s, size_t pos);
// Appends the UTF-8 encoding of a code point <= 0x10FFFF.
void AppendUtf8(uint32_t code_point, std::string* out);

// Strips ASCII spaces and tabs at both ends.
std::string_view TrimBlanks(std::string_view s);

enum class NumberParse : uint8_t {
  kOk,
  kInvalid,     // not a number of the expected form
  kOutOfRange,  // well-formed but does not fit
};

// Decimal int64 with an optional '+' or '-'; the whole text must be consumed.
NumberParse ParseInt64(std::string_view text, int64_t* out);
// Decimal floating point as std::from_chars (general format) reads it, plus an
// optional leading '+'; accepts "nan", "inf" and "infinity" in any case. The
// whole text must be consumed.
NumberParse ParseDouble(std::string_view text, double* out);
// true/false/1/0, case-insensitive.
bool ParseBool(std::string_view text, bool* out);

void AppendInt64(int64_t v, std::string* out);
// Shortest text that reads back as the same double ("0.1", "1e+300", "nan", "-inf").
void AppendDouble(double v, std::string* out);

// True if the timestamp lies in years 0000..9999, where ISO-8601 text exists
// and reads back with ParseTimestamp. Writers emit epoch milliseconds outside.
bool TimestampHasIsoForm(int64_t ms);

}  // namespace vstream::format_internal
