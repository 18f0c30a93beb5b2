#pragma once
// Checkpoint barriers at a task's inputs, as Flink's
// SingleCheckpointBarrierHandler (exactly-once, aligned) and
// CheckpointBarrierTracker (at-least-once).
//
// A barrier n travels in-band on every channel: records before it belong to
// checkpoint n, records after it to n + 1. A task snapshots its state when
// barrier n has arrived on all its channels, then sends barrier n on.
//
// - Exactly-once (aligned): a channel that delivered barrier n is blocked,
//   its later records held back (by credit, upstream), until barrier n has
//   arrived everywhere; then the snapshot is taken and every channel is
//   released. So the snapshot holds exactly the records before barrier n.
// - At-least-once: nothing is blocked; the snapshot is taken when the last
//   barrier n arrives. Records after barrier n on a fast channel are in the
//   snapshot already and are replayed after a restore: duplicates, no loss.
//
// - Unaligned (exactly-once, `unaligned: true`): the first barrier n starts
//   the snapshot at once and the task sends barrier n on, unaligned, ahead
//   of its queued output (runtime/network/result_partition.h). The records
//   that arrive on the other channels before their barrier n were not in
//   the snapshot: the task processes them and keeps copies, the input part
//   of the snapshot's channel state, until barrier n has arrived on all
//   channels (channel_state_done). A barrier that overtook buffers queued
//   at this task counts them in (NetworkBuffer::overtaken).
// - Aligned with a timeout (`aligned_timeout`): barriers start aligned and
//   carry a deadline (trigger time + timeout). Alignment turns unaligned,
//   as above, when a barrier arrives past its deadline, when one arrives
//   unaligned (a producer converted it), or when CheckTimeout finds the
//   deadline passed while aligning. Channels that delivered barrier n are
//   unblocked then: what follows their barrier belongs to n + 1.
//
// A barrier of a newer checkpoint while aligning an older one aborts the
// older one (it cannot complete any more) and starts aligning the newer. An
// ended channel counts as having delivered every later barrier.
//
//   CheckpointBarriers barriers(num_channels, mode, &gate);  // gate: Block/Unblock
//   on a barrier buffer: switch (barriers.OnBarrier(channel, id, options, now)) ...
//   on a channel end:    barriers.OnChannelEnd(channel) (may complete one)
//   on records:          if (barriers.recording(channel)) keep a copy
//
// Thread-compatible: used by its task's thread.

#include <cstdint>
#include <vector>

#include "runtime/network/buffer.h"

namespace vstream {

enum class CheckpointMode { kExactlyOnce, kAtLeastOnce };

// What the handler needs from the input gate.
class ChannelBlocker {
 public:
  virtual ~ChannelBlocker() = default;
  // Hold back `channel`'s buffers until UnblockAll.
  virtual void Block(int channel) = 0;
  virtual void UnblockAll() = 0;
};

class CheckpointBarriers {
 public:
  struct Result {
    // Set: take the snapshot of this checkpoint now, then send its barrier
    // on with `forward`.
    int64_t snapshot = 0;
    BarrierOptions forward;
    // Set: every barrier of this unaligned checkpoint has arrived; the
    // input part of its channel state is complete.
    int64_t channel_state_done = 0;
    // Set: this checkpoint was given up at this task (decline it).
    int64_t aborted = 0;
  };

  CheckpointBarriers(int num_channels, CheckpointMode mode, ChannelBlocker* blocker);

  // now_ms: wall clock, against the barrier's deadline.
  Result OnBarrier(int channel, int64_t checkpoint_id, const BarrierOptions& options = {}, int64_t now_ms = 0);
  Result OnChannelEnd(int channel);
  // While aligning with a deadline: turns unaligned once it has passed.
  Result CheckTimeout(int64_t now_ms);

  // The checkpoint being aligned or recorded (0: none).
  int64_t pending() const { return pending_; }
  // The last checkpoint this task snapshotted or gave up.
  int64_t last_done() const { return last_done_; }
  // Records arriving on `channel` now precede its barrier of a checkpoint
  // already snapshotted unaligned: they belong to its channel state.
  bool recording(int channel) const { return unaligned_ && !arrived_[channel]; }
  // The pending checkpoint's deadline, while aligning with one (else 0).
  int64_t deadline_ms() const { return pending_ != 0 && !unaligned_ ? deadline_ms_ : 0; }

 private:
  Result Complete();
  // Snapshot now, unaligned: the rest of the barriers are recorded.
  void GoUnaligned(Result* r);
  void Reset();

  const CheckpointMode mode_;
  ChannelBlocker* const blocker_;
  std::vector<bool> arrived_;  // barrier `pending_` seen on the channel (or it ended)
  std::vector<bool> ended_;
  int num_arrived_ = 0;        // of the live channels
  int num_live_;               // channels not ended
  int64_t pending_ = 0;
  bool unaligned_ = false;     // pending_ was snapshotted unaligned
  int64_t deadline_ms_ = 0;    // pending_'s, 0: none
  int64_t last_done_ = 0;
};

}  // namespace vstream
