#pragma once
// A JSON document as a tree, for formats whose records are nested documents
// (FHIR resources) rather than flat lines (json_format.h reads those
// without building a tree).
//
// ParseJson is strict RFC 8259 in its grammar: one value, no comments, no
// trailing commas, no leading zeros, strings with valid escapes (\uXXXX
// surrogate pairs become UTF-8; a lone surrogate is an error) and no raw
// control characters. Bytes of 0x80 and above inside strings are passed
// through unchecked (not validated as UTF-8; the JSON writer replaces
// invalid sequences with U+FFFD on output), and a number that underflows
// (1e-400) is an error like one that overflows. A UTF-8 byte-order mark before the value is skipped.
// Nesting is limited to kMaxDepth, so no input exhausts the stack. Errors
// say where, as an editor counts: "line 3 column 14: expected ',' or '}'
// after an object member". Fuzzed by tests/fuzz/fhir_fuzz.cc.
//
// Thread-compatible.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace vstream {

struct JsonMember;

struct JsonValue {
  enum class Type : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // a string's value; a number's literal
  std::vector<JsonValue> items;                            // an array's
  std::vector<JsonMember> members;  // an object's, in order
  int line = 0;  // where the value starts
  int column = 0;

  bool is_null() const { return type == Type::kNull; }
  bool is_string() const { return type == Type::kString; }
  bool is_number() const { return type == Type::kNumber; }
  bool is_object() const { return type == Type::kObject; }
  bool is_array() const { return type == Type::kArray; }
  // An object's member (the last, if the key repeats); null if there is
  // none or this is no object.
  const JsonValue* Find(std::string_view key) const;
  // The string member `key`, "" if absent or not a string.
  std::string_view String(std::string_view key) const;
};

struct JsonMember {
  std::string key;
  JsonValue value;
};

inline constexpr int kJsonMaxDepth = 64;

// Parses `text` into *out. `first_line` numbers the text's first line (for
// a line of a JSON-lines file).
absl::Status ParseJson(std::string_view text, JsonValue* out, int first_line = 1);

}  // namespace vstream
