#pragma once
// Dead letters: a record that cannot be parsed is not dropped. It becomes a
// row of this fixed schema on the source's "dead_letter" side output (when
// the job names a dead_letter stream), or a line in
// <taskmanager data dir>/dead-letter/<job id>/<vertex>-<subtask>.jsonl.
// Either way it is counted in the vertex's dead_letters metric.

#include "runtime/types.h"

namespace vstream {

inline constexpr char kDeadLetterOutput[] = "dead_letter";
// The side output of a window's records beyond its allowed lateness.
inline constexpr char kLateOutput[] = "late";

// {source: string, location: string, reason: string, raw: string}
//   source   - name of the source vertex
//   location - "path:line" of the bad record
//   reason   - why it was rejected
//   raw      - the record's original text
inline Schema DeadLetterSchema() {
  return Schema({{"source", FieldType::kString},
                 {"location", FieldType::kString},
                 {"reason", FieldType::kString},
                 {"raw", FieldType::kString}});
}

}  // namespace vstream
