#pragma once
// The `dedup` process function: drops a record whose dedup key was already
// seen within `ttl`, and passes every other record on unchanged. For feeds
// that resend: an HL7 sender retrying after an ACK timeout repeats MSH-10
// (key: message_id,set_id); a gateway that regenerates control ids repeats
// the content (key: patient_id,code,observed_at,device).
//
// The operator is partitioned on its key_by fields (for clinical streams the
// patient, so that each patient's records stay in order for the scores
// downstream); the dedup key is `key` (default: the key_by fields). State
// per key_by key: a map from dedup key to nothing, each entry with a time to
// live of `ttl` from its write, on the TaskManager's state clock (processing
// time), so memory is bounded by the keys of one ttl; an in-memory filter of
// the keys written within the ttl (MapStateDescriptor::filter_recent_keys,
// about 1.3 bytes a key) spares most new keys a RocksDB read. The first
// record of a dedup key wins; a repeat does not extend the window. Output:
// the input's schema and event time.
//
// Parameters: ttl (duration, required); key (field names, comma-separated;
// optional).

#include "runtime/operators/process_function_registry.h"

namespace vstream {

void RegisterDedupFunction(ProcessFunctionRegistry& registry);

}  // namespace vstream
