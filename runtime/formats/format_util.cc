#include "runtime/formats/format_util.h"

#include <charconv>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"

namespace vstream::format_internal {

namespace {

// Civil bounds of the ISO form: 0000-01-01T00:00:00.000Z and
// 9999-12-31T23:59:59.999Z.
constexpr int64_t kMinIsoMillis = -62167219200000;
constexpr int64_t kMaxIsoMillis = 253402300799999;

bool IsUtf8Continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

std::string Abbreviate(std::string_view value) {
  if (value.size() <= kMaxValueInMessage) return std::string(value);
  size_t cut = kMaxValueInMessage;
  // Back off over continuation bytes so a multi-byte character is not split.
  for (int i = 0; i < 3 && cut > 0 && IsUtf8Continuation(static_cast<unsigned char>(value[cut]));
       ++i) {
    --cut;
  }
  return absl::StrCat(AV(value.substr(0, cut)), "...");
}

absl::Status FieldError(const Field& field, std::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field.name, "': ", AV(detail)));
}

absl::Status BadValueError(const Field& field, std::string_view value, std::string_view suffix) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field.name, "': expected ",
                                                 FieldTypeName(field.type), ", got '",
                                                 Abbreviate(value), "'", AV(suffix)));
}

size_t Utf8SequenceLength(std::string_view s, size_t pos) {
  const size_t n = s.size();
  if (pos >= n) return 0;
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[pos + i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;  // continuation byte or overlong 2-byte lead
  if (c < 0xE0) {
    return pos + 1 < n && IsUtf8Continuation(b(1)) ? 2 : 0;
  }
  if (c < 0xF0) {
    if (pos + 2 >= n) return 0;
    const unsigned char c1 = b(1);
    if (!IsUtf8Continuation(c1) || !IsUtf8Continuation(b(2))) return 0;
    if (c == 0xE0 && c1 < 0xA0) return 0;   // overlong
    if (c == 0xED && c1 >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c < 0xF5) {
    if (pos + 3 >= n) return 0;
    const unsigned char c1 = b(1);
    if (!IsUtf8Continuation(c1) || !IsUtf8Continuation(b(2)) || !IsUtf8Continuation(b(3))) return 0;
    if (c == 0xF0 && c1 < 0x90) return 0;   // overlong
    if (c == 0xF4 && c1 >= 0x90) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string_view TrimBlanks(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

NumberParse ParseInt64(std::string_view text, int64_t* out) {
  // from_chars takes '-' but not '+'; a '+' must be followed by a digit.
  if (!text.empty() && text[0] == '+') {
    text.remove_prefix(1);
    if (text.empty() || text[0] < '0' || text[0] > '9') return NumberParse::kInvalid;
  }
  if (text.empty()) return NumberParse::kInvalid;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  if (ec == std::errc::result_out_of_range && ptr == end) return NumberParse::kOutOfRange;
  if (ec != std::errc() || ptr != end) return NumberParse::kInvalid;
  return NumberParse::kOk;
}

NumberParse ParseDouble(std::string_view text, double* out) {
  if (!text.empty() && text[0] == '+') {
    text.remove_prefix(1);
    if (!text.empty() && text[0] == '-') return NumberParse::kInvalid;
  }
  if (text.empty()) return NumberParse::kInvalid;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out, std::chars_format::general);
  if (ec == std::errc::result_out_of_range && ptr == end) return NumberParse::kOutOfRange;
  if (ec != std::errc() || ptr != end) return NumberParse::kInvalid;
  return NumberParse::kOk;
}

bool ParseBool(std::string_view text, bool* out) {
  if (text == "1" || absl::EqualsIgnoreCase(AV(text), "true")) {
    *out = true;
    return true;
  }
  if (text == "0" || absl::EqualsIgnoreCase(AV(text), "false")) {
    *out = false;
    return true;
  }
  return false;
}

void AppendInt64(int64_t v, std::string* out) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, ptr - buf);
}

void AppendDouble(double v, std::string* out) {
  // Shortest round-trip form; 32 bytes hold any double ("-2.2250738585072014e-308").
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, ptr - buf);
}

bool TimestampHasIsoForm(int64_t ms) { return ms >= kMinIsoMillis && ms <= kMaxIsoMillis; }

}  // namespace vstream::format_internal
