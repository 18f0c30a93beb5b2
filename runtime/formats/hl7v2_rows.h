#pragma once
// What HL7 v2 messages become as rows: one observation row per OBX of a
// result message (ORU^R01, as bedside monitors and EHRs send vital signs),
// and one admission-event row per ADT message (A01 admit, A02 transfer, A03
// discharge, A08 update, A11 cancel admit, A13 cancel discharge, A40 merge).
// The `hl7v2` format of the HL7 file source and the MLLP listener reads
// messages with hl7v2.h and turns them into rows here.
//
// A message is the unit: if any part of it is malformed (a timestamp that is
// none, a NM value that is not a number, an OBX before any PID), no row of it
// is appended and the error says which line and field, so that the whole
// message goes to the dead letters (and an MLLP sender gets a NAK).
//
// Thread-compatible: one instance per task. Rows reuse their strings, so a
// warm extractor does not allocate.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/types.h"

namespace vstream {

struct Hl7RowsOptions {
  // The zone of timestamps that carry no offset, in minutes east of UTC.
  // Default 0: UTC.
  int default_offset_minutes = 0;
};

// The observation row, in this field order:
//   message_id            string     MSH-10
//   set_id                int        OBX-1; when empty, the OBX's place in
//                                    the message (1, 2, ...)
//   sub_id                string     OBX-4, the observation sub-id (PCD-01
//                                    monitors give each metric's place there)
//   message_type          string     MSH-9, e.g. "ORU^R01"
//   sending_facility      string     MSH-4.1
//   patient_id            string     PID-3.1 of the first repetition (of the
//                                    last PID before the OBX)
//   patient_id_authority  string     PID-3.4.1 of the same repetition
//   code                  string     OBX-3.1 (LOINC 8867-4, MDC 147842, ...)
//   code_system           string     OBX-3.3 ("LN", "MDC", ...)
//   code_text             string     OBX-3.2
//   value_type            string     OBX-2 ("NM", "SN", "CWE", "ST", ...)
//   value                 double     the number, for NM, and for SN without a
//                                    comparator or range; else null
//   value_text            string     OBX-5 decoded: the code of a coded value
//                                    (CE, CWE, CNE), "<comparator><number>" of
//                                    an SN, the text of anything else
//   unit                  string     OBX-6.1
//   status                string     OBX-11 (F final, P preliminary, C
//                                    corrected, W withdrawn, X cannot be obtained)
//   observed_at           timestamp  OBX-14, else OBR-7 of the last OBR before
//                                    the OBX, else MSH-7
//   device                string     OBX-18.1 of the first repetition
//   received_at           timestamp  when the source read the message
//   last_in_message       bool       true on the message's last OBX row: the
//                                    news2 and qsofa functions score a message
//                                    there, whatever batches carried it
// Empty HL7 fields (and explicit nulls, "") are null.
Schema Hl7ObservationSchema();

// The indexes of Hl7ObservationSchema()'s fields.
enum ObservationField : int {
  kObsMessageId,
  kObsSetId,
  kObsSubId,
  kObsMessageType,
  kObsSendingFacility,
  kObsPatientId,
  kObsPatientAuthority,
  kObsCode,
  kObsCodeSystem,
  kObsCodeText,
  kObsValueType,
  kObsValue,
  kObsValueText,
  kObsUnit,
  kObsStatus,
  kObsObservedAt,
  kObsDevice,
  kObsReceivedAt,
  kObsLastInMessage,
  kObsFields,
};

// The admission-event row:
//   message_id, message_type, sending_facility   as above
//   event                 string     "A01", ... (MSH-9.2, else EVN-1)
//   event_at              timestamp  EVN-2, else MSH-7
//   patient_id, patient_id_authority             PID-3 as above
//   prior_patient_id      string     MRG-1.1 (A40 merge), else null
//   location              string     PV1-3, each component decoded, joined by '^'
//   visit_id              string     PV1-19.1
//   patient_class         string     PV1-2
//   received_at           timestamp
Schema Hl7AdmissionSchema();

enum class Hl7Rows : uint8_t {
  kObservations,  // rows of Hl7ObservationSchema() from ORU messages
  kAdmissions,    // rows of Hl7AdmissionSchema() from ADT messages
};

class Hl7RowExtractor {
 public:
  Hl7RowExtractor(Hl7Rows kind, Hl7RowsOptions options);

  const Schema& schema() const { return schema_; }

  // Appends the rows of `msg` to *batch (of schema()'s width): one per OBX,
  // or one per ADT message. A message of another type (an ACK, a query, an
  // ADT when observations are read) appends none and is OK: *skipped is set.
  // On error *batch is as it was.
  absl::Status Append(const Hl7Message& msg, int64_t received_at_ms, RowBatch* batch, bool* skipped);

 private:
  absl::Status AppendObservations(const Hl7Message& msg, int64_t received_at_ms, RowBatch* batch);
  absl::Status AppendAdmission(const Hl7Message& msg, int64_t received_at_ms, RowBatch* batch);
  // Decodes field part `raw` (from segment `segment`, field `field`) into
  // *datum: null when empty or "".
  absl::Status SetText(const Hl7Message& msg, int segment, int field, std::string_view raw, Datum* datum);
  absl::Status SetTime(const Hl7Message& msg, int segment, int field, Datum* datum);

  const Hl7Rows kind_;
  const Hl7RowsOptions options_;
  const Schema schema_;
  std::string scratch_;
};

}  // namespace vstream
