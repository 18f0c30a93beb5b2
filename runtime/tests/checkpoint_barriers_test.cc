#include "runtime/checkpoint_barriers.h"

#include <gtest/gtest.h>

#include <set>

namespace vstream {
namespace {

class FakeBlocker : public ChannelBlocker {
 public:
  void Block(int channel) override { blocked.insert(channel); }
  void UnblockAll() override {
    blocked.clear();
    ++unblocks;
  }
  std::set<int> blocked;
  int unblocks = 0;
};

TEST(CheckpointBarriersTest, AlignedBlocksEachChannelUntilTheLastBarrier) {
  FakeBlocker gate;
  CheckpointBarriers barriers(3, CheckpointMode::kExactlyOnce, &gate);
  EXPECT_EQ(barriers.OnBarrier(1, 1).snapshot, 0);
  EXPECT_EQ(gate.blocked, (std::set<int>{1}));
  EXPECT_EQ(barriers.OnBarrier(0, 1).snapshot, 0);
  EXPECT_EQ(gate.blocked, (std::set<int>{0, 1}));
  EXPECT_EQ(barriers.pending(), 1);
  const auto r = barriers.OnBarrier(2, 1);
  EXPECT_EQ(r.snapshot, 1);
  EXPECT_EQ(r.aborted, 0);
  EXPECT_TRUE(gate.blocked.empty()) << "every channel is released after the snapshot";
  EXPECT_EQ(barriers.pending(), 0);
  EXPECT_EQ(barriers.last_done(), 1);
}

TEST(CheckpointBarriersTest, AtLeastOnceNeverBlocks) {
  FakeBlocker gate;
  CheckpointBarriers barriers(2, CheckpointMode::kAtLeastOnce, &gate);
  EXPECT_EQ(barriers.OnBarrier(0, 4).snapshot, 0);
  EXPECT_TRUE(gate.blocked.empty());
  EXPECT_EQ(barriers.OnBarrier(1, 4).snapshot, 4);
  EXPECT_TRUE(gate.blocked.empty());
}

TEST(CheckpointBarriersTest, SingleChannelSnapshotsAtOnce) {
  FakeBlocker gate;
  CheckpointBarriers barriers(1, CheckpointMode::kExactlyOnce, &gate);
  EXPECT_EQ(barriers.OnBarrier(0, 1).snapshot, 1);
  EXPECT_EQ(barriers.OnBarrier(0, 2).snapshot, 2);
  EXPECT_TRUE(gate.blocked.empty());
}

TEST(CheckpointBarriersTest, NewerBarrierAbortsTheAlignmentOfAnOlderOne) {
  FakeBlocker gate;
  CheckpointBarriers barriers(2, CheckpointMode::kExactlyOnce, &gate);
  EXPECT_EQ(barriers.OnBarrier(0, 1).snapshot, 0);
  // Channel 1 skipped checkpoint 1 (its producer declined it) and sends 2.
  auto r = barriers.OnBarrier(1, 2);
  EXPECT_EQ(r.aborted, 1);
  EXPECT_EQ(r.snapshot, 0);
  EXPECT_EQ(gate.blocked, (std::set<int>{1})) << "channel 0 released, channel 1 now aligned on 2";
  EXPECT_EQ(barriers.pending(), 2);
  // A late barrier 1 is ignored; barrier 2 on channel 0 completes.
  EXPECT_EQ(barriers.OnBarrier(0, 1).snapshot, 0);
  r = barriers.OnBarrier(0, 2);
  EXPECT_EQ(r.snapshot, 2);
  EXPECT_EQ(r.aborted, 0);
  // Old barriers after completion are ignored too.
  EXPECT_EQ(barriers.OnBarrier(1, 2).snapshot, 0);
  EXPECT_TRUE(gate.blocked.empty());
}

TEST(CheckpointBarriersTest, EndedChannelCountsAsArrived) {
  FakeBlocker gate;
  CheckpointBarriers barriers(3, CheckpointMode::kExactlyOnce, &gate);
  EXPECT_EQ(barriers.OnBarrier(0, 1).snapshot, 0);
  EXPECT_EQ(barriers.OnBarrier(1, 1).snapshot, 0);
  // The last channel ends instead of sending the barrier: alignment completes.
  EXPECT_EQ(barriers.OnChannelEnd(2).snapshot, 1);
  EXPECT_TRUE(gate.blocked.empty());
  // From now on two live channels suffice.
  EXPECT_EQ(barriers.OnBarrier(1, 2).snapshot, 0);
  EXPECT_EQ(barriers.OnBarrier(0, 2).snapshot, 2);
  // A channel that delivered the barrier, then ended, is not counted twice.
  EXPECT_EQ(barriers.OnBarrier(0, 3).snapshot, 0);
  EXPECT_EQ(barriers.OnChannelEnd(0).snapshot, 0);
  EXPECT_EQ(barriers.OnBarrier(1, 3).snapshot, 3);
}

TEST(CheckpointBarriersTest, UnalignedSnapshotsAtTheFirstBarrierAndRecordsTheOthers) {
  FakeBlocker gate;
  CheckpointBarriers barriers(3, CheckpointMode::kExactlyOnce, &gate);
  const BarrierOptions unaligned{.unaligned = true};
  auto r = barriers.OnBarrier(1, 7, unaligned);
  EXPECT_EQ(r.snapshot, 7) << "at once, not after alignment";
  EXPECT_TRUE(r.forward.unaligned) << "and sent on unaligned";
  EXPECT_EQ(r.channel_state_done, 0);
  EXPECT_TRUE(gate.blocked.empty()) << "nothing is held back";
  EXPECT_FALSE(barriers.recording(1)) << "its barrier came: what follows is the next checkpoint's";
  EXPECT_TRUE(barriers.recording(0));
  EXPECT_TRUE(barriers.recording(2));
  r = barriers.OnBarrier(0, 7, unaligned);
  EXPECT_EQ(r.snapshot, 0) << "one snapshot per checkpoint";
  EXPECT_FALSE(barriers.recording(0));
  EXPECT_TRUE(barriers.recording(2));
  r = barriers.OnChannelEnd(2);
  EXPECT_EQ(r.channel_state_done, 7) << "an ended channel delivers no more records before the barrier";
  EXPECT_FALSE(barriers.recording(2));
  EXPECT_EQ(barriers.pending(), 0);
  EXPECT_EQ(barriers.last_done(), 7);
  EXPECT_EQ(barriers.OnBarrier(1, 7, unaligned).snapshot, 0) << "a late duplicate is ignored";
}

TEST(CheckpointBarriersTest, OneChannelSnapshotsAndCompletesAtOnce) {
  FakeBlocker gate;
  CheckpointBarriers barriers(1, CheckpointMode::kExactlyOnce, &gate);
  const auto r = barriers.OnBarrier(0, 3, {.unaligned = true});
  EXPECT_EQ(r.snapshot, 3);
  EXPECT_EQ(r.channel_state_done, 3);
  EXPECT_TRUE(r.forward.unaligned);
}

TEST(CheckpointBarriersTest, AlignedTimeoutTurnsUnalignedWhileAligning) {
  FakeBlocker gate;
  CheckpointBarriers barriers(3, CheckpointMode::kExactlyOnce, &gate);
  const BarrierOptions timed{.aligned_deadline_ms = 1000};
  auto r = barriers.OnBarrier(0, 2, timed, 400);
  EXPECT_EQ(r.snapshot, 0) << "aligned until the deadline";
  EXPECT_EQ(gate.blocked, (std::set<int>{0}));
  EXPECT_EQ(barriers.deadline_ms(), 1000);
  EXPECT_EQ(barriers.CheckTimeout(999).snapshot, 0);
  r = barriers.CheckTimeout(1000);
  EXPECT_EQ(r.snapshot, 2);
  EXPECT_TRUE(r.forward.unaligned);
  EXPECT_TRUE(gate.blocked.empty()) << "what follows channel 0's barrier belongs to the next checkpoint";
  EXPECT_FALSE(barriers.recording(0));
  EXPECT_TRUE(barriers.recording(1));
  EXPECT_EQ(barriers.deadline_ms(), 0) << "no longer aligning";
  EXPECT_EQ(barriers.OnBarrier(1, 2, timed, 1200).channel_state_done, 0);
  EXPECT_EQ(barriers.OnBarrier(2, 2, timed, 1300).channel_state_done, 2);
}

TEST(CheckpointBarriersTest, ALateOrOvertakingBarrierTurnsTheAlignmentUnaligned) {
  FakeBlocker gate;
  CheckpointBarriers barriers(2, CheckpointMode::kExactlyOnce, &gate);
  // The first barrier arrives past its deadline: unaligned at once.
  auto r = barriers.OnBarrier(0, 1, {.aligned_deadline_ms = 1000}, 1500);
  EXPECT_EQ(r.snapshot, 1);
  EXPECT_TRUE(r.forward.unaligned);
  EXPECT_TRUE(gate.blocked.empty());
  EXPECT_EQ(barriers.OnBarrier(1, 1, {.aligned_deadline_ms = 1000}, 1600).channel_state_done, 1);
  // Aligning checkpoint 2; a producer turned its barrier on channel 1
  // unaligned (it overtook queued data): the alignment ends there.
  EXPECT_EQ(barriers.OnBarrier(0, 2, {.aligned_deadline_ms = 3000}, 2000).snapshot, 0);
  EXPECT_EQ(gate.blocked, (std::set<int>{0}));
  r = barriers.OnBarrier(1, 2, {.unaligned = true}, 2100);
  EXPECT_EQ(r.snapshot, 2);
  EXPECT_EQ(r.channel_state_done, 2) << "both barriers are in";
  EXPECT_TRUE(gate.blocked.empty());
}

TEST(CheckpointBarriersTest, AtLeastOnceIgnoresUnalignedBarriers) {
  FakeBlocker gate;
  CheckpointBarriers barriers(2, CheckpointMode::kAtLeastOnce, &gate);
  auto r = barriers.OnBarrier(0, 5, {.unaligned = true});
  EXPECT_EQ(r.snapshot, 0);
  EXPECT_FALSE(barriers.recording(1));
  r = barriers.OnBarrier(1, 5, {.unaligned = true});
  EXPECT_EQ(r.snapshot, 5);
  EXPECT_FALSE(r.forward.unaligned);
  EXPECT_EQ(r.channel_state_done, 0);
}

}  // namespace
}  // namespace vstream
