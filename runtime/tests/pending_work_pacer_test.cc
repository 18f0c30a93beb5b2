#include "runtime/pending_work_pacer.h"

#include "gtest/gtest.h"

namespace vstream {
namespace {

TEST(PendingWorkPacerTest, InputComesFirstAndPendingWorkMovesOnUnderLoad) {
  PendingWorkPacer pacer;
  pacer.OnPending(true, 1000);
  EXPECT_TRUE(pacer.SliceNow()) << "nothing seen yet: the input is idle";
  pacer.OnSlice();
  // Input keeps coming: a slice every kBuffersPerSlice buffers.
  int slices = 0;
  for (int b = 0; b < 10 * PendingWorkPacer::kBuffersPerSlice; ++b) {
    if (pacer.SliceNow()) {
      ++slices;
      pacer.OnSlice();
    }
    pacer.OnBuffer();
  }
  EXPECT_EQ(slices, 10) << "one first (the input looked idle), then after the 4th, 8th, ... 36th buffer";
  EXPECT_TRUE(pacer.SliceNow());
  pacer.OnSlice();
  pacer.OnBuffer();
  EXPECT_FALSE(pacer.SliceNow()) << "a buffer came: input before the next slice";
  pacer.OnNoInput();
  EXPECT_TRUE(pacer.SliceNow()) << "no input waits: a slice at once";
  pacer.OnSlice();
  EXPECT_TRUE(pacer.SliceNow()) << "still none: slices back to back";
}

TEST(PendingWorkPacerTest, WorkPendingTooLongGetsASliceAtEveryLook) {
  PendingWorkPacer pacer;
  int64_t now = 5000;
  pacer.OnPending(true, now);
  pacer.OnSlice();
  pacer.OnBuffer();
  EXPECT_FALSE(pacer.SliceNow());
  now += PendingWorkPacer::kMaxLagMs - 1;
  pacer.OnPending(true, now);
  EXPECT_FALSE(pacer.SliceNow()) << "pending for less than kMaxLagMs: input first";
  now += 1;
  pacer.OnPending(true, now);
  for (int b = 0; b < 3; ++b) {
    EXPECT_TRUE(pacer.SliceNow()) << "buffer " << b;
    pacer.OnSlice();
    pacer.OnBuffer();
  }
  // Done, then a new fire: input first again.
  pacer.OnPending(false, now);
  now += 10;
  pacer.OnPending(true, now);
  EXPECT_FALSE(pacer.SliceNow());
}

}  // namespace
}  // namespace vstream
