#pragma once
// The YAML job-spec compiler: turns a job spec (see docs and the example
// below) into a proto::JobGraph. It is a front end over JobBuilder, which does
// the validation and type checking; this layer parses YAML, checks its shape
// (known keys, required keys, value types) and turns every error into one
// line "FILE:LINE:COL: message" (1-based) pointing at the offending node, or
// into the expression for expression errors.
//
//   name: vitals-running-totals
//   parallelism: 2                       # default 1
//   max_parallelism: 128                 # default 128
//   buffer_timeout: 5ms                  # ms|s|m|h, or a plain integer = ms
//   checkpointing:                       # optional; none: no checkpoints
//     interval: 10s                      # required
//     mode: exactly_once                 # | at_least_once
//     timeout: 10m                       # max_concurrent: 1, min_pause: 0s, retained: 3
//     storage: file:///shared/checkpoints  # default: the JobManager's data dir
//   sources:
//     - name: vitals
//       connector: file                  # file | generator
//       path: vitals.csv                 # relative to the job file
//       format: csv                      # csv | jsonl
//       schema: {patient_id: string, ts: timestamp, hr: int}
//       event_time: {field: ts, max_out_of_orderness: 5s}   # optional
//   operators:                           # filter | map | union | aggregate |
//                                        # window | interval_join | broadcast_join |
//                                        # process
//     - {name: valid, type: filter, input: vitals, where: "hr > 0"}
//   sinks:
//     - {name: out, connector: stdout, input: valid}
//
// Thread-safe: the functions keep no state.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"

namespace vstream {

// Reads and compiles the spec at `path`; relative paths inside it resolve
// against the file's directory. NotFound if the file cannot be read,
// InvalidArgument "PATH:LINE:COL: message" for an invalid spec.
// parallelism > 0 replaces the spec's top-level `parallelism` (vertices
// with their own keep it), as `vstream submit --parallelism N`.
absl::StatusOr<proto::JobGraph> CompileJobSpecFile(const std::string& path, int parallelism = 0);

// Compiles spec text. `display_path` names the spec in error messages;
// relative paths inside it resolve against `base_dir` (empty: the current
// directory).
absl::StatusOr<proto::JobGraph> CompileJobSpec(std::string_view yaml_text,
                                               const std::string& display_path,
                                               const std::string& base_dir, int parallelism = 0);

}  // namespace vstream
