#pragma once
// The CheckpointCoordinator of one job (Flink's CheckpointCoordinator): it
// starts checkpoints, collects the tasks' snapshots, makes a checkpoint
// complete or aborts it, and keeps the last `retained` completed ones.
//
//   every `interval`, once every task is RUNNING (at most max_concurrent in
//   flight; not before min_pause has passed since the last completion):
//     TriggerCheckpoint(n) ----------> each running task
//        sources snapshot and send barrier n downstream; every other task
//        snapshots when barrier n has arrived on all its inputs, or, if its
//        input ended first, when triggered (the final checkpoint of a
//        two-phase-commit sink)
//     AcknowledgeCheckpoint(n, snapshots) <----- every task of the job
//        (a FINISHED task counts as acknowledged, with no state: Flink 1.14+;
//        the metadata marks its operators finished, so a restore does not
//        run them again)
//   all acknowledged:
//     chk-n/_metadata written (atomically, last)
//     -> checkpoints.pb in the job store records n (durably)
//     -> NotifyCheckpoint(n, completed) ----> every task (sinks commit)
//     -> pending checkpoints older than n are aborted (subsumed), completed
//        ones beyond the last `retained` deleted
//   timeout / DeclineCheckpoint / a task fails / the job ends:
//     chk-n/ and the shared files only n refers to deleted, the reason
//     logged -> NotifyCheckpoint(n, aborted) ----> every task
//
// Checkpoint storage (one directory per job; see state/checkpoint_storage.h):
//   chk-<n>/_metadata   the CheckpointMetadata of completed checkpoint n
//   chk-<n>/...         n's private files over 32 KiB (CACHE-DELTA, ...); smaller
//                       ones are inline in the handles (StateFile.data)
//   shared/...          SST files and state log segments, each referenced by one
//                       or more checkpoints
//
// A shared file (StateFile.shared) is counted once per retained completed
// checkpoint and per pending checkpoint whose acknowledgements refer to it,
// and deleted when the count drops to zero. The shared files of an aborted
// checkpoint (or of an acknowledgement that came too late) are deleted only
// when no checkpoint is pending: a pending checkpoint whose acknowledgements
// have not all arrived may refer to the same file, uploaded again under the
// same name. A completed checkpoint's files that no retained checkpoint
// refers to are deleted at once, since a later snapshot of the same state
// backend can only refer to files the newer retained ones refer to too.
//
// Storage I/O (metadata, deletions) runs on the main thread, so that a
// deletion can never overtake a later upload of the same file.
//
// Thread-compatible: runs on the JobManager's main executor thread, beside
// its JobMaster, which owns it. Gateway callbacks and timers must come back
// on that thread, and may refer to the coordinator for as long as the
// JobManager runs (JobMasters are never destroyed before it stops).

#include <compare>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "jobmanager/completed_checkpoint_store.h"
#include "proto/checkpoint.pb.h"
#include "proto/client.pb.h"
#include "proto/control.pb.h"
#include "state/checkpoint_storage.h"

namespace vstream {

// A checkpoint of one job: 1, 2, 3... in trigger order.
struct CheckpointId {
  int64_t value = 0;
  auto operator<=>(const CheckpointId&) const = default;
};

// How the coordinator reaches tasks. Calls must not block.
class CheckpointGateway {
 public:
  virtual ~CheckpointGateway() = default;
  // TaskExecutor.TriggerCheckpoint. `done` runs on the main thread with the
  // RPC's error, empty if the TaskManager took the request.
  virtual void TriggerCheckpoint(const std::string& address, const proto::TriggerCheckpointRequest& request,
                                 std::function<void(const std::string& error)> done) = 0;
  // TaskExecutor.NotifyCheckpoint; failures are only logged.
  virtual void NotifyCheckpoint(const std::string& address, const proto::CheckpointNotification& notification) = 0;
};

// The clock and timers of the main thread: the JobManager's main executor
// and the wall clock; tests advance time by hand.
class MainThreadTimers {
 public:
  virtual ~MainThreadTimers() = default;
  // Epoch milliseconds.
  virtual int64_t Now() = 0;
  // Runs fn on the main thread once delay_ms have passed.
  virtual void Schedule(int64_t delay_ms, std::function<void()> fn) = 0;
};

// One task (execution vertex) of the job, as the coordinator needs it.
struct CheckpointTask {
  std::string task_id;
  std::string address;  // its TaskManager
  // The head of its chain is a source: checkpoints start here.
  bool source = false;
  // Its chain's vertex ids and its subtask index (for the snapshots of a
  // task that finished).
  std::vector<int> vertices;
  int subtask = 0;
};

struct CheckpointCoordinatorOptions {
  // The job. Required.
  std::string job_id;
  // JobGraph.checkpointing. interval_ms must be > 0. A 0 timeout_ms,
  // max_concurrent or retained means the default: 10 min, 1, 3. A
  // min_pause_ms > 0 allows only one checkpoint in flight (as in Flink).
  proto::CheckpointingSpec spec;
  // Checkpoints listed in the job status, in progress or ended, newest
  // last. Default 5.
  int status_checkpoints = 5;
  // ChannelLayout of the job graph, recorded in every checkpoint's metadata.
  std::string channel_layout;
  // KeyGroupFields of the job graph, recorded likewise.
  std::map<int, int> key_group_fields;
};

// What TriggerCheckpoint() did. Only kTriggered starts a checkpoint.
enum class TriggerResult {
  kTriggered,
  kStopped,            // the job ended (Shutdown)
  kTasksNotRunning,    // a task is not RUNNING (nor FINISHED) yet
  kNoRunningSource,    // every source task finished: nothing can send a barrier
  kTooManyConcurrent,  // max_concurrent checkpoints are in flight
  kMinPause,           // min_pause has not passed since the last completion
};

class CheckpointCoordinator {
 public:
  // `storage`: the job's checkpoint storage. `store`: where completed
  // checkpoints are recorded (null: nowhere, for tests); the checkpoints it
  // already lists are taken over (their metadata read from `storage`) and
  // ids go on after the latest. `gateway` and `timers` must outlive the
  // coordinator. InvalidArgument for a bad spec.
  static absl::StatusOr<std::unique_ptr<CheckpointCoordinator>> Create(
      CheckpointCoordinatorOptions options, std::unique_ptr<CheckpointStorage> storage,
      std::unique_ptr<CompletedCheckpointStore> store, CheckpointGateway& gateway, MainThreadTimers& timers);
  ~CheckpointCoordinator();

  CheckpointCoordinator(const CheckpointCoordinator&) = delete;
  CheckpointCoordinator& operator=(const CheckpointCoordinator&) = delete;

  // The URI of the job's checkpoint storage (for the tasks' descriptors).
  const std::string& storage_uri() const;

  // The job's tasks, once their slots are known, all SCHEDULED. Periodic
  // checkpoints start `interval` after every task reports RUNNING.
  void SetTasks(std::vector<CheckpointTask> tasks);
  // The job restarts: pending checkpoints are aborted with `reason`, the
  // periodic trigger stops and the tasks are forgotten until the next
  // SetTasks. Completed checkpoints stay.
  void Reset(const std::string& reason);
  // The latest completed checkpoint, which a restart restores; null: none.
  const proto::CheckpointMetadata* latest_metadata() const;
  // A task's new state. FINISHED: it counts as having acknowledged pending
  // checkpoints with no state. FAILED or CANCELED: pending checkpoints are
  // aborted.
  void OnTaskState(const std::string& task_id, proto::TaskState state);

  // ResourceManager.AcknowledgeCheckpoint / DeclineCheckpoint. Messages for
  // checkpoints that are not pending (aborted, unknown) or from tasks that
  // already answered are ignored and logged at debug level; the state files
  // of an ignored acknowledgement that no checkpoint refers to are deleted.
  void ReceiveAcknowledge(const proto::AcknowledgeCheckpointRequest& ack);
  void ReceiveDecline(const proto::DeclineCheckpointRequest& decline);

  // Triggers a checkpoint now if the rules above allow it (the periodic
  // timer calls this).
  TriggerResult TriggerCheckpoint();

  // A savepoint (Flink's): a checkpoint triggered now, whatever the
  // interval, min_pause and max_concurrent say, which, once complete, is
  // copied with every file it refers to into a new directory under
  // `target_dir` (a storage URI): savepoint-<job id prefix>-<checkpoint id>/,
  // self-contained, never deleted by the coordinator. `done` gets the
  // savepoint's URI and checkpoint id, or why it failed. The copy runs on
  // the main thread.
  using SavepointDone = std::function<void(absl::StatusOr<std::pair<std::string, int64_t>>)>;
  void TriggerSavepoint(const std::string& target_dir, SavepointDone done);

  // The job ended or is being cancelled: pending checkpoints are aborted
  // with `reason`, and no more are triggered. Idempotent.
  void Shutdown(const std::string& reason);

  // Fills checkpoints, latest_completed_checkpoint and checkpoint_storage.
  void AddStatus(proto::JobStatus* status) const;

  // For tests and status.
  CheckpointId latest_completed() const;
  std::vector<CheckpointId> pending() const;
  std::vector<CheckpointId> retained() const;

 private:
  struct TaskEntry {
    CheckpointTask task;
    proto::TaskState state = proto::TASK_SCHEDULED;
  };
  struct Pending {
    CheckpointId id;
    int64_t triggered_at_ms = 0;
    std::set<size_t> waiting;  // indexes into tasks_ of the tasks yet to acknowledge
    std::vector<size_t> finished;  // tasks that count as acknowledged because they finished
    int tasks = 0;             // that take part
    int acknowledged = 0;      // real acknowledgements (not finished tasks)
    std::vector<proto::OperatorSnapshot> operators;
    std::set<std::string> shared;               // shared files, each counted in refs_
    std::vector<std::string> private_elsewhere;  // private files outside chk-<id>/
    int64_t bytes = 0;
    int64_t bytes_uploaded = 0;
    int64_t alignment_ms = 0;
    int64_t sync_ms = 0;
    int64_t async_ms = 0;
    bool unaligned = false;           // some task took it unaligned
    int64_t channel_state_bytes = 0;  // their in-flight records
    std::vector<std::pair<std::string, SavepointDone>> savepoints;  // target dir, callback
  };
  struct Completed {
    proto::CheckpointMetadata metadata;
    std::set<std::string> shared;  // each counted in refs_
  };

  CheckpointCoordinator(CheckpointCoordinatorOptions options, std::unique_ptr<CheckpointStorage> storage,
                        std::unique_ptr<CompletedCheckpointStore> store, CheckpointGateway& gateway,
                        MainThreadTimers& timers);
  absl::Status Recover();

  int max_concurrent() const;
  bool AllTasksStarted() const;
  void MaybeStartPeriodic();
  void ArmTrigger(int64_t delay_ms);
  void PeriodicTrigger();
  void OnTriggerFailed(CheckpointId id, size_t task, const std::string& error);
  void OnTimeout(CheckpointId id);
  // Records the task's part; completes the checkpoint when it was the last.
  void TaskDone(Pending& p, size_t task);
  void Complete(CheckpointId id);
  // Aborts one pending checkpoint (no follow-up: see OnCheckpointsEnded).
  void Abort(CheckpointId id, const std::string& reason);
  void AbortAll(const std::string& reason);
  // Creates the pending checkpoint and sends the triggers.
  CheckpointId StartCheckpoint(int64_t now, bool savepoint);
  absl::StatusOr<std::string> WriteSavepoint(const proto::CheckpointMetadata& metadata,
                                             const std::string& target_dir);
  // After checkpoints ended: deletes deferred shared files if none is
  // pending, and runs a trigger that waited for a free slot.
  void OnCheckpointsEnded();
  void DiscardLateAcknowledge(const proto::AcknowledgeCheckpointRequest& ack);
  void CollectGarbage();
  void DeleteChkDirsNotKept();
  void Notify(CheckpointId id, bool completed);
  absl::Status RecordCompleted();
  void AddHistory(proto::CheckpointStatus status);
  proto::CheckpointStatus StatusOf(const Pending& p, proto::CheckpointState state, int64_t now) const;
  void DeleteQuietly(const std::string& path, CheckpointId id);

  const CheckpointCoordinatorOptions options_;
  const std::unique_ptr<CheckpointStorage> storage_;
  const std::unique_ptr<CompletedCheckpointStore> store_;  // null: not recorded
  CheckpointGateway& gateway_;
  MainThreadTimers& timers_;

  std::vector<TaskEntry> tasks_;
  absl::flat_hash_map<std::string, size_t> task_index_;
  std::map<CheckpointId, Pending> pending_;
  std::deque<Completed> completed_;  // retained, oldest first
  // Shared file -> retained completed and pending checkpoints referring to it.
  absl::flat_hash_map<std::string, int> refs_;
  // Shared files of aborted checkpoints and late acknowledgements, deleted
  // (unless referred to again) once no checkpoint is pending.
  std::set<std::string> discard_later_;
  std::deque<proto::CheckpointStatus> history_;  // ended checkpoints, oldest first

  int64_t next_id_ = 1;
  int64_t last_completed_at_ms_ = 0;
  bool started_ = false;         // the periodic trigger runs
  bool stopped_ = false;         // Shutdown
  bool trigger_queued_ = false;  // a periodic trigger waits for a free slot
  uint64_t trigger_generation_ = 0;  // invalidates armed trigger timers
};

}  // namespace vstream
