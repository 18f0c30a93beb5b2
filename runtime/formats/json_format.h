#pragma once
// JSON lines parser and writer behind record_format.h. Callers normally use
// CreateRecordParser/Writer("jsonl").
//
// Reading: each line is one JSON object (RFC 8259, strict: UTF-8 strings, no
// comments, no trailing commas; a UTF-8 BOM before it is skipped). Keys name
// schema fields; a missing key or null is a null field, unknown keys are
// skipped whatever their value (nesting up to kMaxDepth), and a repeated key
// keeps its last value. JSON types must match the field type: int takes an
// integral number (1e3 and 80.0 included), double any number, string a
// string, bool true/false, timestamp a number (epoch milliseconds) or a
// string in a form ParseTimestamp reads. The parser is not recursive and
// never reads outside the line.
//
// Thread-compatible: one instance per task thread.

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "runtime/formats/record_format.h"
#include "runtime/types.h"

namespace vstream {

// Appends `s` as a JSON string: quoted, escaped, invalid UTF-8 as U+FFFD.
void AppendJsonString(std::string_view s, std::string* out);

class JsonLinesParser final : public RecordParser {
 public:
  // Deepest nesting of arrays and objects accepted inside a skipped value.
  static constexpr int kMaxDepth = 64;

  explicit JsonLinesParser(Schema schema);

  absl::Status ParseLine(std::string_view line, Row* row) override;

 private:
  const Schema schema_;
  absl::flat_hash_map<std::string, int> field_index_;
  // Reused per line: unescaped key and string value.
  std::string key_;
  std::string text_;
};

class JsonLinesWriter final : public RecordWriter {
 public:
  explicit JsonLinesWriter(Schema schema);

  std::string Header() const override { return ""; }
  // {"patient_id":"p1","ts":"2024-01-02T03:04:05.000Z","hr":80,"x":null}
  // Fields in schema order. Timestamps are ISO-8601 UTC strings with
  // milliseconds (epoch-millisecond numbers outside years 0000..9999);
  // non-finite doubles are null; bytes of strings that are not valid UTF-8
  // become U+FFFD.
  void Write(const Row& row, std::string* out) override;

 private:
  const Schema schema_;
  // Per field: '{' or ',', then the quoted name and ':'.
  std::vector<std::string> prefixes_;
};

}  // namespace vstream
