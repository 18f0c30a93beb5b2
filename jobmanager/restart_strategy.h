#pragma once
// Restart strategies (Flink's restart-strategy.*): whether a failed job
// restarts, and after how long. The JobMaster asks on every failure.
//
//   none                 the job fails at its first failure
//   fixed_delay          at most `attempts` restarts, each `delay` after its
//                        failure
//   exponential_backoff  delays of initial_backoff, x multiplier, ... up to
//                        max_backoff; back to initial_backoff once the job
//                        ran `reset_after` without a failure; at most
//                        max_attempts restarts in a row (0: unlimited)
//   failure_rate         restarts `delay` after a failure, unless this is
//                        failure max_failures + 1 within failure_interval
//
// Defaults: with checkpointing on, exponential_backoff from 100 ms to 30 s,
// x2, reset after 10 s, unlimited (Flink 1.19 also backs off exponentially
// by default, from 1 s); without checkpointing, none, since a restart would
// start the job from scratch.
//
// Thread-compatible.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"

namespace vstream {

class RestartBackoff {
 public:
  // InvalidArgument for negative or inconsistent settings.
  static absl::StatusOr<RestartBackoff> Create(const proto::RestartSpec& spec, bool checkpointing);

  // A failure at now_ms: the delay before the restart, or nullopt if the job
  // must fail (*why says why).
  std::optional<int64_t> OnFailure(int64_t now_ms, std::string* why);
  // The job runs again (all tasks RUNNING) since now_ms.
  void OnRunning(int64_t now_ms);

  // "exponential_backoff (100 ms .. 30000 ms, x2)" etc., for logs.
  std::string Describe() const;
  const proto::RestartSpec& spec() const { return spec_; }

 private:
  explicit RestartBackoff(proto::RestartSpec spec) : spec_(std::move(spec)) {}

  proto::RestartSpec spec_;
  int restarts_ = 0;             // fixed_delay: all; exponential: since the last reset
  int64_t next_backoff_ms_ = 0;  // exponential
  int64_t running_since_ms_ = -1;
  std::deque<int64_t> failures_;  // failure_rate: within the interval
};

}  // namespace vstream
