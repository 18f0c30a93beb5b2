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

}  // namespace
}  // namespace vstream
