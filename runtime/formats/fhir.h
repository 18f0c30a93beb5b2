#pragma once
// FHIR R4 Observations as rows: the `fhir` format of the file source reads
// Observation resources and Bundles of them into the same observation rows
// as HL7 v2 ORU messages (Hl7ObservationSchema(), hl7v2_rows.h), so that
// dedup, news2, qsofa and everything downstream do not care which standard
// the hospital speaks.
//
// Per Observation:
//   - one row for its own value[x], and one per `component` (a blood
//     pressure panel 85354-9 gives its systolic 8480-6 and diastolic 8462-4
//     rows); an Observation with neither (a panel of hasMember links) gives
//     one row without a value;
//   - a value or component without value[x] but with `dataAbsentReason`
//     gives value_type "dataAbsentReason", value null, value_text the
//     reason's code ("not-performed");
//   - code, code_system, code_text: the first LOINC coding of `code`, else
//     the first coding ("LN", "SCT", "MDC" for LOINC, SNOMED CT and ISO/IEEE
//     11073 systems; other systems' URIs as they are), its display, else
//     code.text;
//   - value_type: the value[x] type (Quantity, CodeableConcept, string,
//     integer, boolean, ...); value: the number of a Quantity or integer;
//     value_text: a coded value's code, a string's text, "true"/"false";
//     unit: the Quantity's UCUM `code`, else its `unit`;
//   - status: mapped to HL7 OBX-11 letters so that the functions downstream
//     read one vocabulary: final F, preliminary P, amended and corrected C,
//     cancelled X, entered-in-error W, registered I, unknown null;
//   - observed_at: effectiveDateTime, effectiveInstant, effectivePeriod.start,
//     else issued (FHIR dateTime: YYYY, YYYY-MM, YYYY-MM-DD, or a time with
//     Z or an offset; missing parts are their lowest value);
//   - patient_id and patient_id_authority: `subject` resolved inside the
//     Bundle (a reference to an entry's fullUrl, or "Patient/<id>" of an
//     entry) to that Patient's first identifier's value and system; a
//     subject.identifier; else the id in the reference ("Patient/example"
//     gives "example", no authority);
//   - device: device.reference, else device.display; sending_facility null;
//     message_type the document's resourceType ("Observation", "Bundle").
//
// Observation sets, which news2 scores as HL7 messages: a lone Observation
// is one set; in a Bundle, consecutive Observations of the same subject and
// effective time are one set. message_id is the set's first Observation's
// id (else its entry's fullUrl, else its first identifier's value); set_id
// numbers the set's rows from 1; last_in_message marks its last row.
// sub_id is the component's number (1, 2, ...) on component rows.
//
// Other resources (Patient, Encounter, DeviceMetric) give no rows and are
// counted as skipped. A document is the unit: any malformed part (a
// dateTime that is none, a value[x] of the wrong JSON type, an Observation
// without code) rejects the whole document with a reason that names the
// entry and the element, e.g. "entry 3 (Observation): effectiveDateTime:
// '2024-13-01' is not a FHIR dateTime".
//
// Thread-compatible; rows reuse their strings.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/formats/json_value.h"
#include "runtime/formats/record_format.h"
#include "runtime/types.h"

namespace vstream {

class FhirRowExtractor {
 public:
  FhirRowExtractor();
  const Schema& schema() const { return schema_; }

  // Appends the rows of one document (an Observation or a Bundle, parsed by
  // ParseJson) to *rows with received_at `now_ms`. On error appends nothing.
  // *skipped counts the resources that give no rows.
  absl::Status Append(const JsonValue& document, int64_t now_ms, RowBatch* rows, int* skipped);

 private:
  absl::Status AppendObservation(const JsonValue& obs, const JsonValue* entry, std::string_view where,
                                 const JsonValue* bundle, int64_t now_ms, RowBatch* rows);

  const Schema schema_;
  std::string message_type_;
  // The open observation set: its key, message id and rows so far.
  std::string set_key_;
  std::string set_message_id_;
  int set_rows_ = 0;
  size_t set_last_row_ = 0;
  bool set_open_ = false;
};

// The `fhir` output format: rows of the news2 or qsofa functions as FHIR R4
// Observations, one per line (NDJSON), ready to POST to a FHIR server:
//   - id: "news2-" or "qsofa-" and the row's message_id (characters FHIR ids
//     do not allow become '-', at most 64), so a replay writes the same ids;
//   - status final, category survey, effectiveDateTime = observed_at,
//     subject.identifier.value = patient_id (when the rows have it);
//   - NEWS2: code SNOMED CT 1104051000000101 (the NEWS2 total), valueInteger
//     the total, interpretation "clinical risk: <band>" (and "red score"),
//     a component per sub-score with the SNOMED CT UK codes the
//     ../shared/data FHIR bundle uses (the SpO2 scale 2 sub-score by text
//     only), dataAbsentReason "unknown" for a vital sign that was missing;
//   - qSOFA: code text "qSOFA score", valueInteger the total, boolean
//     components for its three criteria;
//   - derivedFrom: the observation set the score was computed on: a
//     reference when message_id is one (a FHIR input's fullUrl or
//     "Observation/<id>"), else an identifier (an HL7 MSH-10).
// Create fails for rows that are neither news2 nor qsofa output.
absl::StatusOr<std::unique_ptr<RecordWriter>> CreateFhirObservationWriter(const Schema& schema);

// A FHIR date, dateTime or instant as epoch milliseconds (UTC).
// InvalidArgument if it is none.
absl::Status ParseFhirDateTime(std::string_view text, int64_t* out_ms);

}  // namespace vstream
