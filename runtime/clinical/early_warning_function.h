#pragma once
// The `news2` and `qsofa` process functions: per patient (the key), the
// latest value of each vital sign, and on each observation set (the rows of
// one message) a row with the score of the patient's values as they stand.
//
//   observation rows            news2 / qsofa (keyed state: latest values)
//   (hl7v2 format, FHIR, ...)   -> one row per message and patient:
//   code, value, value_text,       sub-scores, total, red score, risk band
//   unit, status, observed_at,     (news2) or the three criteria, total,
//   message_id                     positive (qsofa)
//
// Input: the observation row of runtime/formats/hl7v2_rows.h, or any stream
// with its fields `code` (string), `value` (double), `value_text` (string),
// `observed_at` (timestamp) and `message_id` (string); `unit` and `status`
// (string) are used when present.
//
// Which observation is which vital sign (ClassifyVitalSign below): LOINC and
// IEEE 11073 MDC codes, as EHRs and monitors send them. Other codes are not
// vital signs and are ignored, as are observations with status X (cannot be
// obtained) or W (withdrawn) and values that are none. A temperature in
// Fahrenheit ([degF], MDC_DIM_FAHR) is converted. An oxygen flow above 0
// (or an inspired fraction above 21%) means on oxygen. Consciousness comes
// as an ACVPU letter or a SNOMED CT code; a Glasgow Coma Scale total serves
// qSOFA when there is no ACVPU. The SpO2 scale comes from an observation
// NEWS2SCALE whose value is 1 or 2.
//
// Latest means by observation time: a late message does not replace a value
// observed after it (a correction at the same time does). A value counts
// while it is at most `max_age` (default 1h) older than the patient's newest
// measurement (the SpO2 scale, a standing order, does not count and does not
// age); older ones count as missing. The output row carries the
// message's id and observation time, which is the output's event time.
//
// One row per message and patient. With the field `last_in_message`
// (bool; the hl7v2 rows have it), the score is emitted at the message's last
// row, or when the patient's next message begins: the same rows whatever
// batches carried them, so a replay gives the same output. Without it, at
// the end of each batch, or when the patient's next message begins: a
// message that the network splits between two batches then gives two rows,
// the second complete.
//
// An observation more than `max_future` (default 1 day) after its row's
// received_at (when the input has that field) goes to the dead letters: a
// mistyped year would otherwise hold its slot and make every other value
// stale.
//
// Parameters: max_age (duration, default 1h), max_future (duration, default
// 1d).

#include <cstdint>
#include <string_view>

#include "runtime/operators/process_function_registry.h"
#include "runtime/types.h"

namespace vstream {

enum class VitalSign : uint8_t {
  kRespirationRate,
  kSpo2,
  kOxygen,  // on oxygen: flow > 0 L/min or FiO2 > 21%
  kSystolicBp,
  kPulse,
  kConsciousness,  // value: Acvpu as a number
  kTemperature,    // value: degrees Celsius
  kSpo2Scale,      // value: 1 or 2
  kGcs,            // Glasgow Coma Scale total
  kNone,
};
inline constexpr int kVitalSigns = 9;

// The vital sign an observation names, with its value as the functions keep
// it (Celsius; on oxygen 1 or 0; ACVPU as a number); kNone when the code is
// no vital sign or the observation has no usable value.
struct VitalSignValue {
  VitalSign sign = VitalSign::kNone;
  double value = 0;
};
VitalSignValue ClassifyVitalSign(std::string_view code, const Datum& value, const Datum& value_text,
                                 std::string_view unit);

// Registers news2 and qsofa.
void RegisterEarlyWarningFunctions(ProcessFunctionRegistry& registry);

}  // namespace vstream
