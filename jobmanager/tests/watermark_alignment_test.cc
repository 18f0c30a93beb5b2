#include "jobmanager/watermark_alignment.h"

#include <climits>
#include <string>

#include "gtest/gtest.h"

namespace vstream {
namespace {

// group_size 0: the tests below, but the first, leave the startup rule out.
proto::SourceWatermark Source(int subtask, int64_t watermark, bool active = true, int attempt = 0,
                              const std::string& group = "g") {
  proto::SourceWatermark s;
  s.set_job_id("job");
  s.set_attempt(attempt);
  s.set_group(group);
  s.set_vertex_id(0);
  s.set_subtask(subtask);
  s.set_watermark(watermark);
  s.set_active(active);
  s.set_max_drift_ms(100);
  return s;
}

TEST(WatermarkAlignmentTest, EachSourceMayRunMaxDriftAheadOfTheOthersLowest) {
  WatermarkAlignment a;
  EXPECT_EQ(a.Report(Source(0, 5000), 1), INT64_MAX);  // alone: nothing holds it back
  EXPECT_EQ(a.Report(Source(1, 1000), 2), 5100);       // the slowest: bounded by the others only
  EXPECT_EQ(a.Report(Source(0, 5000), 3), 1100);       // held back by subtask 1
  EXPECT_EQ(a.Report(Source(1, 4990), 4), 5100);
  EXPECT_EQ(a.Report(Source(2, 3000), 5), 5090);
  EXPECT_EQ(a.Report(Source(0, 5000), 6), 3100);
}

TEST(WatermarkAlignmentTest, IdleFinishedAndSilentSourcesDoNotHoldTheGroupBack) {
  WatermarkAlignment a;
  a.Report(Source(0, 5000), 1);
  a.Report(Source(1, 1000), 1);
  EXPECT_EQ(a.Report(Source(0, 5000), 2), 1100);
  a.Report(Source(1, 1000, /*active=*/false), 3);
  EXPECT_EQ(a.Report(Source(0, 5000), 4), INT64_MAX);
  a.Report(Source(1, 1000), 5);
  EXPECT_EQ(a.Report(Source(0, 6000), 6), 1100);
  // Subtask 1 stops reporting (its TaskManager died).
  EXPECT_EQ(a.Report(Source(0, 6000), 5 + WatermarkAlignment::kStaleMs), INT64_MAX);
}

TEST(WatermarkAlignmentTest, ARestartedAttemptReplacesTheOldOneAndOldReportsAreIgnored) {
  WatermarkAlignment a;
  a.Report(Source(0, 9000, true, /*attempt=*/0), 1);
  a.Report(Source(1, 9000, true, /*attempt=*/0), 1);
  // The job restarted from a checkpoint: watermarks went back.
  EXPECT_EQ(a.Report(Source(0, 2000, true, 1), 2), INT64_MAX);  // subtask 1's attempt 0 no longer counts
  a.Report(Source(1, 9500, true, 0), 3);                       // a late report of the old attempt: ignored
  EXPECT_EQ(a.Report(Source(0, 2000, true, 1), 4), INT64_MAX);
  EXPECT_EQ(a.Report(Source(1, 1500, true, 1), 5), 2100);
  EXPECT_EQ(a.Report(Source(0, 2000, true, 1), 6), 1600);
}

TEST(WatermarkAlignmentTest, GroupsAndJobsAreSeparate) {
  WatermarkAlignment a;
  a.Report(Source(0, 1000, true, 0, "slow"), 1);
  EXPECT_EQ(a.Report(Source(1, 5000, true, 0, "fast"), 1), INT64_MAX);
  proto::SourceWatermark other = Source(1, 0, true, 0, "slow");
  other.set_job_id("other");
  EXPECT_EQ(a.Report(other, 1), INT64_MAX);
  EXPECT_EQ(a.Report(Source(1, 5000, true, 0, "slow"), 1), 1100);
  EXPECT_EQ(a.groups(), 3u);
  // Only one group keeps reporting: the others' jobs ended.
  a.Report(Source(1, 5000, true, 0, "fast"), 1 + WatermarkAlignment::kStaleMs);
  EXPECT_EQ(a.groups(), 1u);
}

TEST(WatermarkAlignmentTest, SubtasksWaitForTheGroupToStartWithinTheGrace) {
  WatermarkAlignment a;
  proto::SourceWatermark first = Source(0, 5000);
  first.set_group_size(2);
  // Subtask 1 has not reported yet: subtask 0 stops after its first batch.
  EXPECT_EQ(a.Report(first, 1), INT64_MIN + 100);
  proto::SourceWatermark second = Source(1, INT64_MIN, /*active=*/false);
  second.set_group_size(2);
  second.set_starting(true);
  EXPECT_EQ(a.Report(second, 2), 5100);
  EXPECT_EQ(a.Report(first, 3), INT64_MIN + 100);  // reported, but has read nothing yet
  // It never reads a record (an empty input): the grace ends.
  EXPECT_EQ(a.Report(first, 1 + WatermarkAlignment::kStartupGraceMs), INT64_MAX);
  second.set_starting(false);
  second.set_active(true);
  second.set_watermark(1000);
  EXPECT_EQ(a.Report(second, 2 + WatermarkAlignment::kStartupGraceMs), 5100);
  EXPECT_EQ(a.Report(first, 3 + WatermarkAlignment::kStartupGraceMs), 1100);
}

TEST(WatermarkAlignmentTest, TheBoundSaturates) {
  WatermarkAlignment a;
  a.Report(Source(1, INT64_MAX - 10), 1);
  EXPECT_EQ(a.Report(Source(0, 0), 1), INT64_MAX);
}

}  // namespace
}  // namespace vstream
