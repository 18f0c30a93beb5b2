#include "runtime/checkpoint_barriers.h"

namespace vstream {

CheckpointBarriers::CheckpointBarriers(int num_channels, CheckpointMode mode, ChannelBlocker* blocker)
    : mode_(mode),
      blocker_(blocker),
      arrived_(num_channels, false),
      ended_(num_channels, false),
      num_live_(num_channels) {}

void CheckpointBarriers::Reset() {
  if (mode_ == CheckpointMode::kExactlyOnce && pending_ != 0 && !unaligned_) blocker_->UnblockAll();
  arrived_.assign(arrived_.size(), false);
  num_arrived_ = 0;
  pending_ = 0;
  unaligned_ = false;
  deadline_ms_ = 0;
}

CheckpointBarriers::Result CheckpointBarriers::Complete() {
  Result r;
  if (unaligned_) {
    r.channel_state_done = pending_;
  } else {
    r.snapshot = pending_;
    r.forward.aligned_deadline_ms = deadline_ms_;
  }
  last_done_ = pending_;
  Reset();
  return r;
}

void CheckpointBarriers::GoUnaligned(Result* r) {
  // The channels that delivered the barrier were held back: what follows
  // their barrier belongs to the next checkpoint, after this snapshot.
  if (!unaligned_) blocker_->UnblockAll();
  unaligned_ = true;
  r->snapshot = pending_;
  r->forward = BarrierOptions{.unaligned = true, .aligned_deadline_ms = 0};
}

CheckpointBarriers::Result CheckpointBarriers::OnBarrier(int channel, int64_t checkpoint_id,
                                                         const BarrierOptions& options, int64_t now_ms) {
  Result r;
  // A barrier of a checkpoint already done or given up: ignore it.
  if (checkpoint_id <= last_done_ || checkpoint_id < pending_) return r;
  if (checkpoint_id > pending_) {
    if (pending_ != 0) {
      // A newer checkpoint overtook the one being aligned (or recorded):
      // that one can no longer complete here.
      r.aborted = pending_;
      last_done_ = pending_;
      Reset();
    }
    pending_ = checkpoint_id;
    deadline_ms_ = options.aligned_deadline_ms;
  }
  const bool exactly_once = mode_ == CheckpointMode::kExactlyOnce;
  const bool late = deadline_ms_ > 0 && now_ms >= deadline_ms_;
  if (exactly_once && !unaligned_ && (options.unaligned || late)) GoUnaligned(&r);
  if (!arrived_[channel]) {
    arrived_[channel] = true;
    ++num_arrived_;
    if (exactly_once && !unaligned_) blocker_->Block(channel);
  }
  if (num_arrived_ == num_live_) {
    const Result done = Complete();
    if (done.snapshot != 0) {
      r.snapshot = done.snapshot;
      r.forward = done.forward;
    }
    r.channel_state_done = done.channel_state_done;
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

CheckpointBarriers::Result CheckpointBarriers::CheckTimeout(int64_t now_ms) {
  Result r;
  if (pending_ == 0 || unaligned_ || deadline_ms_ == 0 || now_ms < deadline_ms_ ||
      mode_ != CheckpointMode::kExactlyOnce) {
    return r;
  }
  GoUnaligned(&r);
  return r;
}

}  // namespace vstream
