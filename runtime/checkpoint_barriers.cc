#include "runtime/checkpoint_barriers.h"

namespace vstream {

CheckpointBarriers::CheckpointBarriers(int num_channels, CheckpointMode mode, ChannelBlocker* blocker)
    : mode_(mode),
      blocker_(blocker),
      arrived_(num_channels, false),
      ended_(num_channels, false),
      num_live_(num_channels) {}

void CheckpointBarriers::Reset() {
  arrived_.assign(arrived_.size(), false);
  num_arrived_ = 0;
  pending_ = 0;
  if (mode_ == CheckpointMode::kExactlyOnce) blocker_->UnblockAll();
}

CheckpointBarriers::Result CheckpointBarriers::Complete() {
  Result r;
  r.snapshot = pending_;
  last_done_ = pending_;
  Reset();
  return r;
}

CheckpointBarriers::Result CheckpointBarriers::OnBarrier(int channel, int64_t checkpoint_id) {
  Result r;
  // A barrier of a checkpoint already done or given up: ignore it.
  if (checkpoint_id <= last_done_ || checkpoint_id < pending_) return r;
  if (checkpoint_id > pending_) {
    if (pending_ != 0) {
      // A newer checkpoint overtook the one being aligned: that one can no
      // longer complete here.
      r.aborted = pending_;
      last_done_ = pending_;
      Reset();
    }
    pending_ = checkpoint_id;
  }
  if (!arrived_[channel]) {
    arrived_[channel] = true;
    ++num_arrived_;
    if (mode_ == CheckpointMode::kExactlyOnce) blocker_->Block(channel);
  }
  if (num_arrived_ == num_live_) {
    const int64_t aborted = r.aborted;
    r = Complete();
    r.aborted = aborted;
  }
  return r;
}

CheckpointBarriers::Result CheckpointBarriers::OnChannelEnd(int channel) {
  if (ended_[channel]) return {};
  ended_[channel] = true;
  --num_live_;
  if (arrived_[channel]) --num_arrived_;
  arrived_[channel] = false;
  if (pending_ != 0 && num_arrived_ == num_live_) return Complete();
  return {};
}

}  // namespace vstream
