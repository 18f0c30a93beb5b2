#pragma once
// The TaskManager side of a checkpoint, for one task (Flink's
// SubtaskCheckpointCoordinator):
//
//   sync, on the task thread, when the task has seen exactly the records
//   before barrier n (a source when triggered, others when aligned):
//     each operator's small state (a source's position) is copied, and each
//     keyed backend lists the files of a RocksDB checkpoint, holding off
//     their deletion (state/state_snapshot.h); then the task sends barrier
//     n on.
//   async, while the task goes on: first, the listed files are hard-linked
//     (a task with input does it in its first slice, below; otherwise the
//     sync part, or Post, on the task thread), and what the snapshots left for
//     later is copied (write-back cache entries; the task copies an entry
//     itself before it changes one not copied yet): by a task with input on
//     its own thread, in slices between its batches once it has caught up
//     with its input (set_copy_in_slices), otherwise on the TaskManager's
//     copy thread (at the tasks' priority: a task that changes an entry the
//     copy holds waits for it); then, on its upload thread (which may run at a lower
//     priority, `--background-priority`, so that it takes idle CPU, not the
//     tasks'), the local checkpoints are uploaded incrementally to checkpoint
//     storage, and the JobManager gets an AcknowledgeCheckpoint with the
//     handles (or a DeclineCheckpoint with the reason).
//   when the JobManager says n completed:
//     the uploaded SSTs may be referenced by later checkpoints, and the
//     operators are told (sinks commit).
//
// Thread-compatible, except that the async part runs on the upload executor
// and touches only what it was handed (shared, thread-safe snapshotters).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "common/executor.h"
#include "proto/control.pb.h"
#include "runtime/channel_state.h"
#include "runtime/operators/operator.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/state_snapshot.h"

namespace vstream {

// How a task reports checkpoints to the JobManager (the TaskManager's RPCs).
// Thread-safe: called from the upload thread.
class CheckpointResponder {
 public:
  virtual ~CheckpointResponder() = default;
  virtual void Acknowledge(const proto::AcknowledgeCheckpointRequest& ack) = 0;
  virtual void Decline(const proto::DeclineCheckpointRequest& decline) = 0;
};

class TaskCheckpoints {
 public:
  // storage: where snapshots go; responder, uploads and copies must outlive
  // the async parts this object posts. copies: null, or uploads: the copies
  // run on the upload thread.
  TaskCheckpoints(std::string job_id, std::string task_id, int subtask_index, KeyGroupRange key_groups,
                  std::shared_ptr<CheckpointStorage> storage, CheckpointResponder* responder,
                  Executor* uploads, Executor* copies = nullptr);

  // Registers an operator of the chain (head first) with its state dir.
  void AddOperator(int vertex_id, StreamOperator* op, const std::string& state_dir);

  // The operator's keyed state was restored from `handle`: later checkpoints
  // refer to its files instead of uploading them again.
  void AddRestored(int vertex_id, const proto::KeyedStateHandle& handle);

  // Every operator of the task had finished in the checkpoint it was
  // restored from: its snapshots are `finished` ones, without state.
  void MarkFinished() { finished_ = true; }

  // The sync part of checkpoint `checkpoint_id`, then posts the async part:
  // at once, or, with channel_state_pending (an unaligned checkpoint, whose
  // in-flight records are still being collected), when SetChannelState
  // hands them over. A failure declines the checkpoint; the task goes on
  // either way.
  void Snapshot(int64_t checkpoint_id, int64_t alignment_ms, bool channel_state_pending = false);
  // The channel state of the checkpoint waiting for it: stored with the
  // head operator's snapshot (OperatorSnapshot::channel_state). unaligned:
  // the task took it unaligned (an aligned one with a deadline may have
  // channel state too: output its barriers overtook once they turned).
  void SetChannelState(int64_t checkpoint_id, ChannelState state, bool unaligned);
  // The checkpoint waiting for its channel state was given up: declines it.
  void AbandonChannelState(int64_t checkpoint_id, const std::string& reason);
  // The JobManager's verdict on a checkpoint.
  void OnNotification(int64_t checkpoint_id, bool completed);
  // Blocks until every async part posted so far has sent its acknowledgement
  // or decline (a task reports FINISHED only after that: the JobManager
  // must not count it as finished with no state while its snapshot is on
  // the way), or until `cancelled`.
  void WaitForUploads(const std::atomic<bool>& cancelled);

  // Copies on the task thread. While on, what a snapshot left for later
  // (LocalSnapshot::CopyLater) is copied by CopySlice calls, which the task
  // makes as it does its operators' pending work: between batches of its
  // input, once it has caught up with it (runtime/pending_work_pacer.h).
  // The upload is posted after the last slice. Off (the default): the copy
  // thread copies at once. Turning it off, a new snapshot, and
  // WaitForUploads finish a copy under way first. On the copy thread,
  // clinical's 80,000 window accumulators per subtask were copied in the
  // 10-20 ms after the sync part, on the CPU the task needed to catch up
  // with the input the sync part held (docs/benchmarks.md).
  void set_copy_in_slices(bool on);
  bool copy_pending() const { return copying_ != nullptr; }
  // Copies up to `entries` more records of the pending copy; after the
  // last, posts the upload.
  void CopySlice(size_t entries);
  // About 0.2 ms of copying scattered write-back cache entries.
  static constexpr size_t kCopySliceEntries = 2048;

 private:
  struct Op {
    int vertex_id;
    StreamOperator* op;
    std::string snapshot_root;  // local checkpoints: beside the operator's RocksDB
    std::shared_ptr<IncrementalSnapshotter> snapshotter;  // null: no keyed state
  };
  void Decline(int64_t checkpoint_id, const std::string& reason);

  struct Upload;
  void Post(std::shared_ptr<Upload> upload);
  void DropWaiting();

  struct InFlight {
    std::mutex mu;
    std::condition_variable cv;
    int count = 0;  // guarded by mu
  };

  const std::string job_id_;
  const std::string task_id_;
  const int subtask_index_;
  const KeyGroupRange key_groups_;
  std::shared_ptr<CheckpointStorage> storage_;
  CheckpointResponder* const responder_;
  Executor* const uploads_;
  Executor* const copies_;  // runs the copies, then posts the rest to uploads_; null: none
  std::vector<Op> ops_;
  bool finished_ = false;  // MarkFinished
  std::shared_ptr<InFlight> in_flight_ = std::make_shared<InFlight>();
  std::shared_ptr<Upload> waiting_;  // the snapshot waiting for its channel state
  bool copy_in_slices_ = false;
  // The snapshot being copied in slices, the operator it is at, and its
  // async part (posted to uploads_ once the copy is done).
  std::shared_ptr<Upload> copying_;
  size_t copying_op_ = 0;
  std::function<void()> after_copy_;
};

}  // namespace vstream
