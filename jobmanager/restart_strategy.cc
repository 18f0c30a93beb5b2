#include "jobmanager/restart_strategy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace vstream {

namespace {
constexpr int kDefaultFixedAttempts = 3;
constexpr int64_t kDefaultDelayMs = 1000;
constexpr int64_t kDefaultInitialBackoffMs = 100;
constexpr int64_t kDefaultMaxBackoffMs = 30000;
constexpr double kDefaultMultiplier = 2.0;
constexpr int64_t kDefaultResetAfterMs = 10000;
constexpr int kDefaultMaxFailures = 3;
constexpr int64_t kDefaultFailureIntervalMs = 60000;
}  // namespace

absl::StatusOr<RestartBackoff> RestartBackoff::Create(const proto::RestartSpec& in, bool checkpointing) {
  proto::RestartSpec spec = in;
  if (spec.attempts() < 0 || spec.delay_ms() < 0 || spec.initial_backoff_ms() < 0 || spec.max_backoff_ms() < 0 ||
      spec.multiplier() < 0 || spec.reset_after_ms() < 0 || spec.max_failures() < 0 ||
      spec.failure_interval_ms() < 0 || spec.max_attempts() < 0) {
    return absl::InvalidArgumentError("restart settings must not be negative");
  }
  if (spec.strategy() == proto::RESTART_DEFAULT) {
    spec.set_strategy(checkpointing ? proto::RESTART_EXPONENTIAL_BACKOFF : proto::RESTART_NONE);
  }
  switch (spec.strategy()) {
    case proto::RESTART_FIXED_DELAY:
      if (spec.attempts() == 0) spec.set_attempts(kDefaultFixedAttempts);
      if (spec.delay_ms() == 0) spec.set_delay_ms(kDefaultDelayMs);
      break;
    case proto::RESTART_EXPONENTIAL_BACKOFF:
      if (spec.initial_backoff_ms() == 0) spec.set_initial_backoff_ms(kDefaultInitialBackoffMs);
      if (spec.max_backoff_ms() == 0) spec.set_max_backoff_ms(std::max(kDefaultMaxBackoffMs, spec.initial_backoff_ms()));
      if (spec.multiplier() == 0) spec.set_multiplier(kDefaultMultiplier);
      if (spec.reset_after_ms() == 0) spec.set_reset_after_ms(kDefaultResetAfterMs);
      if (spec.multiplier() < 1) {
        return absl::InvalidArgumentError(absl::StrCat("restart multiplier must be >= 1, got ", spec.multiplier()));
      }
      if (spec.max_backoff_ms() < spec.initial_backoff_ms()) {
        return absl::InvalidArgumentError(absl::StrCat("restart max_backoff (", spec.max_backoff_ms(),
                                                       " ms) is below initial_backoff (", spec.initial_backoff_ms(),
                                                       " ms)"));
      }
      break;
    case proto::RESTART_FAILURE_RATE:
      if (spec.delay_ms() == 0) spec.set_delay_ms(kDefaultDelayMs);
      if (spec.max_failures() == 0) spec.set_max_failures(kDefaultMaxFailures);
      if (spec.failure_interval_ms() == 0) spec.set_failure_interval_ms(kDefaultFailureIntervalMs);
      break;
    default:
      break;
  }
  RestartBackoff b(std::move(spec));
  b.next_backoff_ms_ = b.spec_.initial_backoff_ms();
  return b;
}

void RestartBackoff::OnRunning(int64_t now_ms) {
  if (running_since_ms_ < 0) running_since_ms_ = now_ms;
}

std::optional<int64_t> RestartBackoff::OnFailure(int64_t now_ms, std::string* why) {
  const int64_t ran_ms = running_since_ms_ < 0 ? 0 : now_ms - running_since_ms_;
  running_since_ms_ = -1;
  switch (spec_.strategy()) {
    case proto::RESTART_FIXED_DELAY:
      if (restarts_ >= spec_.attempts()) {
        *why = absl::StrCat("restart strategy fixed_delay: all ", spec_.attempts(), " restart attempts used");
        return std::nullopt;
      }
      ++restarts_;
      return spec_.delay_ms();
    case proto::RESTART_EXPONENTIAL_BACKOFF: {
      if (ran_ms >= spec_.reset_after_ms()) {
        restarts_ = 0;
        next_backoff_ms_ = spec_.initial_backoff_ms();
      }
      if (spec_.max_attempts() > 0 && restarts_ >= spec_.max_attempts()) {
        *why = absl::StrCat("restart strategy exponential_backoff: ", spec_.max_attempts(),
                            " restarts in a row without ", spec_.reset_after_ms(), " ms of running");
        return std::nullopt;
      }
      ++restarts_;
      const int64_t delay = next_backoff_ms_;
      next_backoff_ms_ = std::min<int64_t>(spec_.max_backoff_ms(),
                                           static_cast<int64_t>(std::llround(delay * spec_.multiplier())));
      return delay;
    }
    case proto::RESTART_FAILURE_RATE:
      failures_.push_back(now_ms);
      while (!failures_.empty() && failures_.front() <= now_ms - spec_.failure_interval_ms()) failures_.pop_front();
      if (static_cast<int>(failures_.size()) > spec_.max_failures()) {
        *why = absl::StrCat("restart strategy failure_rate: ", failures_.size(), " failures within ",
                            spec_.failure_interval_ms(), " ms (at most ", spec_.max_failures(), ")");
        return std::nullopt;
      }
      return spec_.delay_ms();
    default:
      *why = "restart strategy none";
      return std::nullopt;
  }
}

std::string RestartBackoff::Describe() const {
  switch (spec_.strategy()) {
    case proto::RESTART_FIXED_DELAY:
      return absl::StrCat("fixed_delay (", spec_.attempts(), " attempts, ", spec_.delay_ms(), " ms apart)");
    case proto::RESTART_EXPONENTIAL_BACKOFF:
      return absl::StrCat("exponential_backoff (", spec_.initial_backoff_ms(), " ms .. ", spec_.max_backoff_ms(),
                          " ms, x", spec_.multiplier(), ", reset after ", spec_.reset_after_ms(), " ms)");
    case proto::RESTART_FAILURE_RATE:
      return absl::StrCat("failure_rate (", spec_.max_failures(), " per ", spec_.failure_interval_ms(), " ms, ",
                          spec_.delay_ms(), " ms delay)");
    default:
      return "none";
  }
}

}  // namespace vstream
