#pragma once
// The `alert` process function: turns score rows (news2, qsofa, or any with
// a level field) into alert rows, with the suppression rules that keep alarm
// fatigue down, per key (the patient):
//   - a level at or above `min_level` alerts when it is higher than the
//     key's last alerted level, or when `cooldown` of event time has passed
//     since the key's last alert;
//   - a level below `min_level` resets the key, so that the next rise
//     alerts again at once.
// Levels: a string field ranks low < low-medium < medium < high (NEWS2's
// risk bands); a bool field false < true; an int field by value.
//
// Each alert has a deterministic id: 16 hex digits of a 64-bit FNV-1a hash
// of the key, the input's message id and time, and the level. A replay
// after a failure gives the same ids, so a downstream system can drop
// repeats and the alert path need not wait for a checkpoint (at-least-once
// delivery, exactly-once effect).
//
// Input fields: the level field (`level`, default risk_band), `message_id`
// (string) and the input's event time; the output's are the key fields,
// alert_id, alert_at (the input's event time, the output's event time),
// message_id, level (as text), previous_level (as text, null for none) and
// reason ("rose from low to medium", "still high after 1h").
//
// Parameters: level (field name, default risk_band), min_level (default
// low-medium, or true, or a number), cooldown (duration, default 1h),
// detail (a field of the input whose value goes before the reason: a string
// as it is, "spo2 below 90 x3 in 5m; reached 3"; another type with its
// name, "news2_total 7; rose from low to high"; default none).

#include "runtime/operators/process_function_registry.h"

namespace vstream {

void RegisterAlertFunction(ProcessFunctionRegistry& registry);

}  // namespace vstream
