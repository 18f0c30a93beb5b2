#pragma once
// The `pattern` process function, for complex event processing: per key
// (the patient), a row each time the observations of one vital sign match a
// condition within a span of event time.
//
//   observation rows      pattern: per key, the sign's   pattern rows: key fields,
//   (hl7v2 format, ...) ->  recent observations; a     ->  pattern, matched_at,
//   code, value, unit,      row when they match            first_at, count, value,
//   observed_at, ...                                       from_value, message_id
//
//   SpO2 < 90 three times within 5 min:
//     {sign: spo2, below: 90, count: 3, within: 5m}
//   heart rate rising by more than 30 within 10 min:
//     {sign: pulse, rise: 30, within: 10m}
//
// Input: observation rows (runtime/formats/hl7v2_rows.h), or any stream with
// `code` (string) and `value` (double); `value_text`, `unit`, `status` and
// `message_id` (strings) are used when present. Which observation is which
// sign, and its value, is ClassifyVitalSign's (early_warning_function.h):
// LOINC and MDC codes, temperatures in Celsius, consciousness as ACVPU
// 0 (alert) to 4 (unresponsive), oxygen 1 (on oxygen) or 0. Rows of other
// signs, without a usable value, or with status X (cannot be obtained) or W
// (withdrawn) are ignored.
//
// Time: an observation's time is the input's event time when the input has
// one (the source's event_time), else its `observed_at` field. A row of the
// sign without a time is a dead letter. Everything is judged on these
// times and on the order in which each key's rows arrive; not on
// watermarks, batches or the wall clock. So the same rows give the same
// output, however they are batched, in a replay too.
//
// Conditions (exactly one of below, above, rise, fall):
//   - below X (above X): an observation whose value is < X (> X). `count`
//     (default 1) such observations of the key whose times span at most
//     `within` (last - first <= within) match; observations of the sign that
//     do not satisfy the threshold in between do not break the run (nor are
//     they looked at). The strict comparison makes `below: 90` "SpO2 < 90".
//   - rise X (fall X): an observation whose value exceeds (is below) that of
//     an earlier observation of the key by more than X (strictly), the
//     earlier one at most `within` before it (at an earlier time, not the
//     same). When a row completes several pairs: the pair whose later
//     observation is the earliest; of those, the largest change; then the
//     earliest first observation.
//
// Re-arming: a match consumes every observation at or before its last one
// (matched_at): a new match needs observations after matched_at, and with
// `cooldown`, at or after matched_at + cooldown. So one episode fires once,
// then again only when it goes on: SpO2 below 90 each minute from minute 1,
// with count 3, fires at minutes 3, 6, 9, ...; with cooldown 15m too, at
// minutes 3, 20, 37, ...
// A heart rate of 60, 100, 140 fires at 100 (rise 30), not again at 140
// (100 was consumed); then 175 would.
//
// Order and lateness, per key: the key's horizon is `within` before the
// newest observation of the sign it has seen (for below/above, the newest
// that satisfies the threshold). Observations older than the horizon are
// forgotten, and a row older than it is too late and is ignored: what it
// could have matched may be forgotten. Other rows are kept in time order
// (ties in arrival order), so a row that arrives out of order takes its
// place and can complete a match with the observations before and after
// it; the match's last observation, whose time and message_id the output
// carries, may then be a row that came before it. For rows in time order
// this is exactly the condition above; out of order, matches are found
// among the observations no older than the horizon when each row arrives.
// A row at or before the last match (or within its cooldown) is ignored
// too: that episode has fired. Ignored rows are not dead letters. (With
// count 1 there is no window and no horizon: each satisfying row after the
// re-arm time matches.)
//
// State per key: one value through the write-back cache,
//   [newest: 8][rearm_at: 8] then per observation, in time order,
//   [time: 8][value: 8][message id length: 4][message id]
// holding the observations not consumed and at most `within` older than the
// newest: for below/above only those that satisfy the threshold (fewer than
// `count`), for rise/fall all of them, at most 1024 (the oldest beyond go:
// at one a second, 17 minutes). The state has no time to live of its own:
// the job's `state_ttl` forgets keys not seen for that long.
//
// Output, one row per match: the key fields, `pattern` (string: `label`),
// `matched_at` (timestamp: the last observation of the match; the output's
// event time), `first_at` (timestamp: the first one), `count` (int: the
// observations of the match; 2 for rise and fall), `value` (double: the last
// observation's), `from_value` (double: the earlier value of a rise or fall,
// else null), `message_id` (string: the last observation's; null when the
// input has no message_id or it is empty).
//
// Parameters: sign (required: respiration_rate, spo2, oxygen, systolic_bp,
// pulse (or heart_rate), consciousness, temperature, spo2_scale, gcs);
// exactly one of below, above, rise, fall (a finite number; rise and fall
// >= 0); count (below/above only; 1 to 100, default 1); within (duration
// > 0; required with rise, fall, or count > 1; unused with count 1);
// cooldown (duration, default 0); label (the output's `pattern`; default a
// summary of the others, "spo2 below 90 x3 in 5m", "pulse rise 30 in 10m").
// (Not `name`: a job spec's `type: pattern` takes the params as keys of the
// operator, whose `name` is taken.)
//
// Thread-compatible: one instance per subtask, called on its task thread.

#include "runtime/operators/process_function_registry.h"

namespace vstream {

void RegisterPatternFunction(ProcessFunctionRegistry& registry);

}  // namespace vstream
