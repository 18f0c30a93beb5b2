#include "jobmanager/restart_strategy.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vstream {
namespace {

using ::testing::HasSubstr;

// A RestartSpec with only the strategy set.
proto::RestartSpec Spec(proto::RestartStrategy strategy) {
  proto::RestartSpec spec;
  spec.set_strategy(strategy);
  return spec;
}

// Create() that must succeed.
RestartBackoff Backoff(const proto::RestartSpec& spec, bool checkpointing = true) {
  absl::StatusOr<RestartBackoff> b = RestartBackoff::Create(spec, checkpointing);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return *RestartBackoff::Create(proto::RestartSpec(), false);
  return *std::move(b);
}

// The delay of a failure at now_ms; -1 if the job must fail.
int64_t Delay(RestartBackoff& b, int64_t now_ms, std::string* why = nullptr) {
  std::string ignored;
  std::optional<int64_t> delay = b.OnFailure(now_ms, why != nullptr ? why : &ignored);
  return delay ? *delay : -1;
}

// ---- defaults -----------------------------------------------------------------

TEST(RestartBackoffTest, DefaultWithCheckpointingIsExponentialBackoff) {
  RestartBackoff b = Backoff(proto::RestartSpec(), /*checkpointing=*/true);
  EXPECT_EQ(b.spec().strategy(), proto::RESTART_EXPONENTIAL_BACKOFF);
  EXPECT_EQ(b.spec().initial_backoff_ms(), 100);
  EXPECT_EQ(b.spec().max_backoff_ms(), 30'000);
  EXPECT_EQ(b.spec().multiplier(), 2.0);
  EXPECT_EQ(b.spec().reset_after_ms(), 10'000);
  EXPECT_EQ(b.spec().max_attempts(), 0) << "unlimited";
  EXPECT_EQ(b.Describe(), "exponential_backoff (100 ms .. 30000 ms, x2, reset after 10000 ms)");

  // Unlimited: far more restarts than any limit would allow, never failing.
  for (int i = 0; i < 100; ++i) {
    ASSERT_GT(Delay(b, 1000 + i), 0) << "failure " << i;
  }
  EXPECT_EQ(Delay(b, 2000), 30'000);
}

TEST(RestartBackoffTest, DefaultWithoutCheckpointingIsNone) {
  RestartBackoff b = Backoff(proto::RestartSpec(), /*checkpointing=*/false);
  EXPECT_EQ(b.spec().strategy(), proto::RESTART_NONE);
  EXPECT_EQ(b.Describe(), "none");
  std::string why;
  EXPECT_EQ(Delay(b, 0, &why), -1);
  EXPECT_EQ(why, "restart strategy none");
}

TEST(RestartBackoffTest, ExplicitNoneFailsEvenWithCheckpointing) {
  RestartBackoff b = Backoff(Spec(proto::RESTART_NONE), /*checkpointing=*/true);
  EXPECT_EQ(b.Describe(), "none");
  std::string why;
  EXPECT_EQ(Delay(b, 0, &why), -1);
  EXPECT_EQ(why, "restart strategy none");
}

TEST(RestartBackoffTest, DefaultStrategyKeepsTheSettingsGiven) {
  proto::RestartSpec spec;
  spec.set_initial_backoff_ms(200);
  RestartBackoff b = Backoff(spec, /*checkpointing=*/true);
  EXPECT_EQ(b.spec().strategy(), proto::RESTART_EXPONENTIAL_BACKOFF);
  EXPECT_EQ(b.spec().initial_backoff_ms(), 200);
  EXPECT_EQ(Delay(b, 0), 200);
  EXPECT_EQ(Delay(b, 1), 400);
}

TEST(RestartBackoffTest, StrategyDefaultsFillUnsetFields) {
  RestartBackoff fixed = Backoff(Spec(proto::RESTART_FIXED_DELAY));
  EXPECT_EQ(fixed.spec().attempts(), 3);
  EXPECT_EQ(fixed.spec().delay_ms(), 1000);
  EXPECT_EQ(fixed.Describe(), "fixed_delay (3 attempts, 1000 ms apart)");

  RestartBackoff rate = Backoff(Spec(proto::RESTART_FAILURE_RATE));
  EXPECT_EQ(rate.spec().max_failures(), 3);
  EXPECT_EQ(rate.spec().failure_interval_ms(), 60'000);
  EXPECT_EQ(rate.spec().delay_ms(), 1000);
  EXPECT_EQ(rate.Describe(), "failure_rate (3 per 60000 ms, 1000 ms delay)");

  // An initial backoff above the default cap raises the cap with it.
  proto::RestartSpec slow = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  slow.set_initial_backoff_ms(60'000);
  RestartBackoff b = Backoff(slow);
  EXPECT_EQ(b.spec().max_backoff_ms(), 60'000);
  EXPECT_EQ(Delay(b, 0), 60'000);
  EXPECT_EQ(Delay(b, 1), 60'000);
}

// ---- fixed_delay ----------------------------------------------------------------

TEST(RestartBackoffTest, FixedDelayStopsWhenItsAttemptsAreUsed) {
  proto::RestartSpec spec = Spec(proto::RESTART_FIXED_DELAY);
  spec.set_attempts(2);
  spec.set_delay_ms(500);
  RestartBackoff b = Backoff(spec, /*checkpointing=*/false);
  EXPECT_EQ(b.Describe(), "fixed_delay (2 attempts, 500 ms apart)");
  EXPECT_EQ(Delay(b, 0), 500);
  // Running for a long time does not give attempts back.
  b.OnRunning(1000);
  EXPECT_EQ(Delay(b, 1'000'000), 500);
  b.OnRunning(2'000'000);
  std::string why;
  EXPECT_EQ(Delay(b, 10'000'000, &why), -1);
  EXPECT_EQ(why, "restart strategy fixed_delay: all 2 restart attempts used");
}

// ---- exponential_backoff ----------------------------------------------------------

TEST(RestartBackoffTest, ExponentialBackoffGrowsByTheMultiplierUpToTheCap) {
  proto::RestartSpec spec = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  spec.set_initial_backoff_ms(100);
  spec.set_max_backoff_ms(1000);
  spec.set_multiplier(3);
  RestartBackoff b = Backoff(spec);
  EXPECT_EQ(b.Describe(), "exponential_backoff (100 ms .. 1000 ms, x3, reset after 10000 ms)");
  EXPECT_EQ(Delay(b, 0), 100);
  EXPECT_EQ(Delay(b, 10), 300);
  EXPECT_EQ(Delay(b, 20), 900);
  EXPECT_EQ(Delay(b, 30), 1000) << "capped at max_backoff";
  EXPECT_EQ(Delay(b, 40), 1000);
}

TEST(RestartBackoffTest, ExponentialBackoffRoundsFractionalMultipliers) {
  proto::RestartSpec spec = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  spec.set_initial_backoff_ms(100);
  spec.set_multiplier(1.5);
  RestartBackoff b = Backoff(spec);
  EXPECT_EQ(b.Describe(), "exponential_backoff (100 ms .. 30000 ms, x1.5, reset after 10000 ms)");
  EXPECT_EQ(Delay(b, 0), 100);
  EXPECT_EQ(Delay(b, 1), 150);
  EXPECT_EQ(Delay(b, 2), 225);
  EXPECT_EQ(Delay(b, 3), 338);  // 337.5 rounded
}

TEST(RestartBackoffTest, ExponentialBackoffResetsAfterRunningResetAfter) {
  proto::RestartSpec spec = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  spec.set_initial_backoff_ms(100);
  spec.set_max_backoff_ms(400);
  spec.set_reset_after_ms(10'000);
  RestartBackoff b = Backoff(spec);
  EXPECT_EQ(Delay(b, 0), 100);
  EXPECT_EQ(Delay(b, 100), 200);
  EXPECT_EQ(Delay(b, 300), 400);
  EXPECT_EQ(Delay(b, 700), 400);

  // Running, but not long enough: the backoff stays at the cap.
  b.OnRunning(1000);
  EXPECT_EQ(Delay(b, 1000 + 9'999), 400);

  // A failure without running in between counts no running time at all,
  // however long ago the last one was.
  EXPECT_EQ(Delay(b, 1'000'000), 400);

  // Running reset_after: back to initial_backoff. Only the first OnRunning
  // of a run counts.
  b.OnRunning(2'000'000);
  b.OnRunning(2'005'000);
  EXPECT_EQ(Delay(b, 2'010'000), 100);
  EXPECT_EQ(Delay(b, 2'010'100), 200);
}

TEST(RestartBackoffTest, ExponentialBackoffMaxAttemptsInARow) {
  proto::RestartSpec spec = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  spec.set_max_attempts(2);
  spec.set_reset_after_ms(1000);
  RestartBackoff b = Backoff(spec);
  EXPECT_EQ(Delay(b, 0), 100);
  b.OnRunning(100);
  EXPECT_EQ(Delay(b, 500), 200) << "ran 400 ms: not a reset";
  std::string why;
  EXPECT_EQ(Delay(b, 700, &why), -1);
  EXPECT_EQ(why, "restart strategy exponential_backoff: 2 restarts in a row without 1000 ms of running");

  // A run of reset_after gives the attempts back.
  RestartBackoff c = Backoff(spec);
  EXPECT_EQ(Delay(c, 0), 100);
  EXPECT_EQ(Delay(c, 100), 200);
  c.OnRunning(1000);
  EXPECT_EQ(Delay(c, 2000), 100);
  EXPECT_EQ(Delay(c, 2100), 200);
  EXPECT_EQ(Delay(c, 2200), -1);
}

// ---- failure_rate ------------------------------------------------------------------

TEST(RestartBackoffTest, FailureRateCountsFailuresInASlidingWindow) {
  proto::RestartSpec spec = Spec(proto::RESTART_FAILURE_RATE);
  spec.set_max_failures(2);
  spec.set_failure_interval_ms(1000);
  spec.set_delay_ms(50);
  RestartBackoff b = Backoff(spec);
  EXPECT_EQ(b.Describe(), "failure_rate (2 per 1000 ms, 50 ms delay)");
  EXPECT_EQ(Delay(b, 0), 50);
  EXPECT_EQ(Delay(b, 500), 50);
  // The failure at 0 is exactly one interval old: out of the window.
  EXPECT_EQ(Delay(b, 1000), 50);
  // 500 left the window too; 1000 and 1600 are in it.
  EXPECT_EQ(Delay(b, 1600), 50);
  // 1000, 1600, 1900: three within 1000 ms.
  std::string why;
  EXPECT_EQ(Delay(b, 1900, &why), -1);
  EXPECT_EQ(why, "restart strategy failure_rate: 3 failures within 1000 ms (at most 2)");
}

TEST(RestartBackoffTest, FailureRateIgnoresRunningTime) {
  proto::RestartSpec spec = Spec(proto::RESTART_FAILURE_RATE);
  spec.set_max_failures(1);
  spec.set_failure_interval_ms(10'000);
  RestartBackoff b = Backoff(spec);
  EXPECT_EQ(Delay(b, 0), 1000);
  b.OnRunning(1);
  EXPECT_EQ(Delay(b, 9'999), -1) << "two failures within the interval, running in between or not";
}

// ---- invalid settings ------------------------------------------------------------------

TEST(RestartBackoffTest, NegativeSettingsAreRejected) {
  struct Case {
    const char* field;
    void (*set)(proto::RestartSpec&);
  };
  const Case cases[] = {
      {"attempts", [](proto::RestartSpec& s) { s.set_attempts(-1); }},
      {"delay", [](proto::RestartSpec& s) { s.set_delay_ms(-1); }},
      {"initial_backoff", [](proto::RestartSpec& s) { s.set_initial_backoff_ms(-1); }},
      {"max_backoff", [](proto::RestartSpec& s) { s.set_max_backoff_ms(-1); }},
      {"multiplier", [](proto::RestartSpec& s) { s.set_multiplier(-2); }},
      {"reset_after", [](proto::RestartSpec& s) { s.set_reset_after_ms(-1); }},
      {"max_failures", [](proto::RestartSpec& s) { s.set_max_failures(-1); }},
      {"failure_interval", [](proto::RestartSpec& s) { s.set_failure_interval_ms(-1); }},
      {"max_attempts", [](proto::RestartSpec& s) { s.set_max_attempts(-1); }},
  };
  for (const Case& c : cases) {
    for (proto::RestartStrategy strategy : {proto::RESTART_DEFAULT, proto::RESTART_NONE, proto::RESTART_FIXED_DELAY,
                                            proto::RESTART_EXPONENTIAL_BACKOFF, proto::RESTART_FAILURE_RATE}) {
      proto::RestartSpec spec = Spec(strategy);
      c.set(spec);
      absl::StatusOr<RestartBackoff> b = RestartBackoff::Create(spec, true);
      ASSERT_FALSE(b.ok()) << c.field << " with " << proto::RestartStrategy_Name(strategy);
      EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(b.status().message(), "restart settings must not be negative");
    }
  }
}

TEST(RestartBackoffTest, MultiplierBelowOneIsRejected) {
  proto::RestartSpec spec = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  spec.set_multiplier(0.5);
  absl::StatusOr<RestartBackoff> b = RestartBackoff::Create(spec, true);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(), "restart multiplier must be >= 1, got 0.5");

  // The default strategy with checkpointing is exponential_backoff too.
  spec.set_strategy(proto::RESTART_DEFAULT);
  EXPECT_FALSE(RestartBackoff::Create(spec, true).ok());

  spec.set_multiplier(1);
  RestartBackoff constant = Backoff(spec);
  EXPECT_EQ(Delay(constant, 0), 100);
  EXPECT_EQ(Delay(constant, 1), 100) << "x1: a constant backoff";
}

TEST(RestartBackoffTest, MaxBackoffBelowInitialBackoffIsRejected) {
  proto::RestartSpec spec = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  spec.set_initial_backoff_ms(500);
  spec.set_max_backoff_ms(200);
  absl::StatusOr<RestartBackoff> b = RestartBackoff::Create(spec, true);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(), "restart max_backoff (200 ms) is below initial_backoff (500 ms)");

  // Also against the default initial_backoff of 100 ms.
  proto::RestartSpec low_cap = Spec(proto::RESTART_EXPONENTIAL_BACKOFF);
  low_cap.set_max_backoff_ms(50);
  b = RestartBackoff::Create(low_cap, true);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("max_backoff (50 ms) is below initial_backoff (100 ms)"));

  // Equal is fine: a constant backoff.
  spec.set_max_backoff_ms(500);
  RestartBackoff equal = Backoff(spec);
  EXPECT_EQ(Delay(equal, 0), 500);
  EXPECT_EQ(Delay(equal, 1), 500);
}

}  // namespace
}  // namespace vstream
