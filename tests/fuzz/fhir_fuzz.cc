// libFuzzer target for the JSON tree parser and FHIR Observations as rows
// (runtime/formats/json_value.h, fhir.h): every input is parsed, whole and
// line by line (as the fhir format reads .ndjson files), and every document
// that parses is turned into rows. Built and run by tests/fuzz/run.sh; seeds
// are ../shared/data/fhir-r4.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/formats/fhir.h"
#include "runtime/formats/json_value.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  static vstream::FhirRowExtractor extractor;
  vstream::RowBatch rows(extractor.schema().size());
  vstream::JsonValue doc;
  int skipped = 0;
  if (vstream::ParseJson(bytes, &doc).ok()) {
    const size_t before = rows.size();
    if (!extractor.Append(doc, 0, &rows, &skipped).ok() && rows.size() != before) __builtin_trap();
  }
  size_t start = 0;
  int line = 1;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) end = bytes.size();
    if (vstream::ParseJson(bytes.substr(start, end - start), &doc, line).ok()) {
      rows.Clear();
      (void)extractor.Append(doc, 0, &rows, &skipped);
    }
    start = end + 1;
    ++line;
  }
  int64_t ms = 0;
  (void)vstream::ParseFhirDateTime(bytes.substr(0, 40), &ms);
  return 0;
}
