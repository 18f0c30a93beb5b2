#pragma once
// CSV (RFC 4180, one record per line) parser and writer behind
// record_format.h. Callers normally use CreateRecordParser/Writer("csv").
//
// Reading: the header line names the columns; each schema field is read from
// the column of the same name (names trimmed, a UTF-8 BOM before the header
// skipped, extra columns ignored). Every data line must have exactly as many
// columns as the header. An empty unquoted field is null; for non-string
// fields surrounding blanks are ignored and a blank or quoted-empty field is
// null too, while for strings "" is the empty string. Records cannot span
// lines: a quote left open at the end of the line is an error.
//
// Thread-compatible: one instance per task thread.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/formats/record_format.h"
#include "runtime/types.h"

namespace vstream {

class CsvParser final : public RecordParser {
 public:
  static absl::StatusOr<std::unique_ptr<CsvParser>> Create(const Schema& schema,
                                                           std::string_view header_line);

  absl::Status ParseLine(std::string_view line, Row* row) override;

  // One field of a split line: a range of the line itself (unquoted) or of
  // the unescape buffer (quoted).
  struct Span {
    size_t begin = 0;
    size_t size = 0;
    bool quoted = false;
  };

  // Splits one line into fields. Quoted field contents, unescaped, are
  // appended to *unquoted; the spans of quoted fields index into it. A
  // trailing '\r' is dropped. Reuses the capacity of both outputs.
  static absl::Status SplitLine(std::string_view line, std::vector<Span>* spans,
                                std::string* unquoted);

 private:
  CsvParser(Schema schema, std::vector<int> column_field)
      : schema_(std::move(schema)), column_field_(std::move(column_field)) {}

  absl::Status ParseValue(const Field& field, std::string_view text, bool quoted, Datum* out);

  const Schema schema_;
  // Per header column: the schema field it fills, or -1 if ignored.
  const std::vector<int> column_field_;
  // Reused per line.
  std::vector<Span> spans_;
  std::string unquoted_;
};

class CsvWriter final : public RecordWriter {
 public:
  explicit CsvWriter(Schema schema) : schema_(std::move(schema)) {}

  // Field names joined by ',', then '\n'.
  std::string Header() const override;
  // Strings are quoted when they contain , " \r or \n, or are empty (so that
  // "" and null differ); null is an empty field; timestamps are ISO-8601 UTC
  // with milliseconds (epoch milliseconds outside years 0000..9999); doubles
  // in shortest round-trip form, "nan"/"inf"/"-inf" included.
  void Write(const Row& row, std::string* out) override;

 private:
  const Schema schema_;
};

}  // namespace vstream
