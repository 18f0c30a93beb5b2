#pragma once
// The process functions every vstream program knows (registered by
// ProcessFunctionRegistry::Global()):
//
//   no_data_alert   per key (a patient, a device), a row
//                   {key fields..., last_ts, alert_ts, kind} for every
//                   silence: no record for `timeout` of event time after the
//                   one at last_ts (kind "no_data", alert_ts = last_ts +
//                   timeout). Judged in event time: records wait for the
//                   watermark and are taken in time order, so the alerts
//                   depend on the data only, not on arrival order or the
//                   pace of watermarks (at the end of a bounded input each
//                   key's last record ends a silence). With
//                   `wall_clock_timeout`, also a row when no record arrived
//                   for that long on the subtask's wall clock (kind
//                   "no_data_wall_clock", last_ts = the newest time seen,
//                   alert_ts = when it fired, up to a second late), which
//                   catches a feed that stopped altogether (its watermark
//                   stops too); once until the next record. The input needs
//                   event time; a record with a null time is a dead letter.
//                   The output's event time is alert_ts.
//
//   alert           alert rows with deterministic ids from score rows, with
//                   escalation and cool-down (runtime/clinical/alert_function.h).
//   dedup           drops records whose key was seen within a ttl
//                   (runtime/clinical/dedup_function.h).
//   news2, qsofa    the early-warning scores of each patient's latest vital
//                   signs, one row per observation set
//                   (runtime/clinical/early_warning_function.h).
//
// no_data_alert is a small, complete example of state and timers.

#include "runtime/operators/process_function_registry.h"

namespace vstream {

// Registers the built-in functions in `registry`.
void RegisterBuiltinProcessFunctions(ProcessFunctionRegistry& registry);

}  // namespace vstream
