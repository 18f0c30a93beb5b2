#pragma once
// Text record formats of the file connectors: CSV (with a header row) and
// JSON lines. A parser turns one line into a Row of a given schema; a writer
// turns a Row into one line. Neither allocates per record once warm.
//
// Thread-compatible: one instance per task.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/types.h"

namespace vstream {

class RecordParser {
 public:
  virtual ~RecordParser() = default;
  // Parses one line (without its line terminator) into *row, sized to the
  // schema. Fields missing from the line are null. A malformed line returns
  // InvalidArgument whose message is the dead-letter reason, e.g.
  // "field 'hr': expected int, got 'abc'". It never crashes on any input.
  virtual absl::Status ParseLine(std::string_view line, Row* row) = 0;
};

class RecordWriter {
 public:
  virtual ~RecordWriter() = default;
  // Text written once at the start of each output file ("" for JSON lines).
  virtual std::string Header() const = 0;
  // Appends one line for the row, including its trailing '\n'.
  virtual void Write(const Row& row, std::string* out) = 0;
};

// format: "csv" or "jsonl".
// For csv, header_line is the file's first line; it names the columns
// (RFC 4180 quoting). Schema fields absent from the header are an error;
// extra columns are ignored. For jsonl, header_line is ignored.
absl::StatusOr<std::unique_ptr<RecordParser>> CreateRecordParser(std::string_view format,
                                                                 const Schema& schema,
                                                                 std::string_view header_line);

// format: "csv" (header row of field names), "jsonl" (one JSON object per
// line; timestamps as ISO-8601 UTC with milliseconds; null as null) or
// "fhir" (score rows as FHIR Observations, one per line: fhir.h).
absl::StatusOr<std::unique_ptr<RecordWriter>> CreateRecordWriter(std::string_view format,
                                                                 const Schema& schema);

}  // namespace vstream
