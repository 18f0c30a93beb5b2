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
// A barrier of a newer checkpoint while aligning an older one aborts the
// older one (it cannot complete any more) and starts aligning the newer. An
// ended channel counts as having delivered every later barrier.
//
//   CheckpointBarriers barriers(num_channels, mode, &gate);  // gate: Block/Unblock
//   on a barrier buffer: switch (barriers.OnBarrier(channel, id)) ...
//   on a channel end:    barriers.OnChannelEnd(channel) (may complete one)
//
// Thread-compatible: used by its task's thread.

#include <cstdint>
#include <vector>

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
    // Set: take the snapshot of this checkpoint now, then send its barrier.
    int64_t snapshot = 0;
    // Set: this checkpoint was given up at this task (decline it).
    int64_t aborted = 0;
  };

  CheckpointBarriers(int num_channels, CheckpointMode mode, ChannelBlocker* blocker);

  Result OnBarrier(int channel, int64_t checkpoint_id);
  Result OnChannelEnd(int channel);

  // The checkpoint being aligned (0: none).
  int64_t pending() const { return pending_; }
  // The last checkpoint this task snapshotted or gave up.
  int64_t last_done() const { return last_done_; }

 private:
  Result Complete();
  void Reset();

  const CheckpointMode mode_;
  ChannelBlocker* const blocker_;
  std::vector<bool> arrived_;  // barrier `pending_` seen on the channel
  std::vector<bool> ended_;
  int num_arrived_ = 0;        // of the live channels
  int num_live_;
  int64_t pending_ = 0;
  int64_t last_done_ = 0;
};

}  // namespace vstream
