#include "runtime/formats/record_format.h"

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "runtime/formats/csv_format.h"
#include "runtime/formats/fhir.h"
#include "runtime/formats/json_format.h"

namespace vstream {

absl::StatusOr<std::unique_ptr<RecordParser>> CreateRecordParser(std::string_view format,
                                                                 const Schema& schema,
                                                                 std::string_view header_line) {
  if (format == "csv") {
    auto parser = CsvParser::Create(schema, header_line);
    if (!parser.ok()) return parser.status();
    return std::unique_ptr<RecordParser>(std::move(parser).value());
  }
  if (format == "jsonl") return std::unique_ptr<RecordParser>(new JsonLinesParser(schema));
  return absl::InvalidArgumentError(
      absl::StrCat("unknown record format '", AV(format), "', expected csv or jsonl"));
}

absl::StatusOr<std::unique_ptr<RecordWriter>> CreateRecordWriter(std::string_view format,
                                                                 const Schema& schema) {
  if (format == "csv") return std::unique_ptr<RecordWriter>(new CsvWriter(schema));
  if (format == "jsonl") return std::unique_ptr<RecordWriter>(new JsonLinesWriter(schema));
  if (format == "fhir") return CreateFhirObservationWriter(schema);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown record format '", AV(format), "', expected csv, jsonl or fhir"));
}

}  // namespace vstream
