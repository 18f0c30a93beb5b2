#include "runtime/watermark_valve.h"

#include <gtest/gtest.h>

#include "runtime/network/buffer.h"

namespace vstream {
namespace {

TEST(WatermarkValveTest, WatermarkIsTheMinimumOverChannelsAndNeverGoesBack) {
  WatermarkValve valve(3);
  EXPECT_EQ(valve.OnWatermark(0, 100), std::nullopt);  // channels 1, 2 still at -inf
  EXPECT_EQ(valve.OnWatermark(1, 50), std::nullopt);
  EXPECT_EQ(valve.OnWatermark(2, 70), std::optional<int64_t>(50));
  EXPECT_EQ(valve.OnWatermark(1, 80), std::optional<int64_t>(70));
  EXPECT_EQ(valve.OnWatermark(1, 60), std::nullopt);  // a channel's watermark never goes back
  EXPECT_EQ(valve.OnWatermark(2, 90), std::optional<int64_t>(80));
  EXPECT_EQ(valve.watermark(), 80);
}

TEST(WatermarkValveTest, EndedChannelCountsAsInfinity) {
  WatermarkValve valve(2);
  EXPECT_EQ(valve.OnWatermark(0, 10), std::nullopt);
  EXPECT_EQ(valve.OnEnd(1), std::optional<int64_t>(10));
  EXPECT_EQ(valve.OnEnd(0), std::optional<int64_t>(kMaxWatermark));
}

TEST(WatermarkValveTest, IdleChannelIsLeftOutAndMayReleaseTheWatermark) {
  WatermarkValve valve(2);
  EXPECT_EQ(valve.OnWatermark(0, 100), std::nullopt);
  EXPECT_EQ(valve.OnWatermark(1, 20), std::optional<int64_t>(20));
  // Channel 1 held the watermark at 20; once idle, channel 0's 100 counts.
  WatermarkValve::IdleResult r = valve.OnIdle(1);
  EXPECT_EQ(r.watermark, std::optional<int64_t>(100));
  EXPECT_FALSE(r.became_idle);
  EXPECT_FALSE(valve.idle());
  EXPECT_EQ(valve.OnWatermark(0, 150), std::optional<int64_t>(150));
  // Channel 1 comes back behind: it joins the minimum, which does not go back.
  EXPECT_EQ(valve.OnWatermark(1, 120), std::nullopt);
  EXPECT_EQ(valve.OnWatermark(1, 200), std::nullopt);  // channel 0 at 150 now holds it
  EXPECT_EQ(valve.OnWatermark(0, 300), std::optional<int64_t>(200));
}

TEST(WatermarkValveTest, TaskIsIdleOnceEveryChannelIsAndTellsOnce) {
  WatermarkValve valve(2);
  EXPECT_EQ(valve.OnWatermark(0, 5), std::nullopt);
  EXPECT_EQ(valve.OnWatermark(1, 7), std::optional<int64_t>(5));
  WatermarkValve::IdleResult r = valve.OnIdle(0);
  EXPECT_EQ(r.watermark, std::optional<int64_t>(7));
  EXPECT_FALSE(r.became_idle);
  r = valve.OnIdle(1);
  EXPECT_EQ(r.watermark, std::nullopt);  // nothing active: no progress
  EXPECT_TRUE(r.became_idle);
  EXPECT_TRUE(valve.idle());
  // A second idle event from an idle channel does not repeat it.
  EXPECT_FALSE(valve.OnIdle(1).became_idle);
  EXPECT_EQ(valve.watermark(), 7);
}

TEST(WatermarkValveTest, RecordsMakeTheTaskActiveSoTheNextIdleIsPassedOnAgain) {
  WatermarkValve valve(1);
  EXPECT_TRUE(valve.OnIdle(0).became_idle);
  valve.OnRecords(0);
  EXPECT_FALSE(valve.idle());
  EXPECT_TRUE(valve.OnIdle(0).became_idle);
  EXPECT_EQ(valve.OnWatermark(0, 42), std::optional<int64_t>(42));
  EXPECT_FALSE(valve.idle());
  EXPECT_TRUE(valve.OnIdle(0).became_idle);
}

TEST(WatermarkValveTest, AnEndedChannelKeepsTheTaskActive) {
  // As Flink: an ended input sits at +inf, so an idle sibling lets the
  // watermark reach the end, and the task is not idle.
  WatermarkValve valve(2);
  EXPECT_EQ(valve.OnEnd(0), std::nullopt);
  WatermarkValve::IdleResult r = valve.OnIdle(1);
  EXPECT_EQ(r.watermark, std::optional<int64_t>(kMaxWatermark));
  EXPECT_FALSE(r.became_idle);
}

}  // namespace
}  // namespace vstream
