#pragma once
// StreamTask: one deployed subtask of a chain of operators, run on the
// task's own thread (see taskmanager/task.h for its lifecycle).
//
//   input gate --> head operator --> chained operator ... --> tail operator --> emitters
//   (network)                    (direct calls, a batch at a time)          (network)
//
// A source task has no gate: its head is a SourceOperator that the loop
// calls until it ends. Buffers are flushed when full or when the buffer
// timeout passes, whichever comes first.
//
// Latency markers (Flink's, made better): with the job's latency_markers
// interval, a source task arms a marker on a jittered schedule before a
// Produce call (SourceOperator::ArmLatencyMarker; a paced source dates it to
// when the record it samples was due, DateLatencyMarker), and sends it right
// after the first batch (before its watermark); it travels the operator chain like a record batch
// (Output::PushLatencyMarker) and, at a network output, rides on the
// buffer being filled for one subpartition (RecordEmitter::MarkLatency), so
// it waits for the buffer timeout, credits and backpressure as records do,
// instead of jumping ahead as an event. Sinks record its age. It costs
// nothing per record.
//
// Thread-compatible, except Cancel(), which any thread may call.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/control.pb.h"
#include "runtime/network/channel_cache.h"
#include "runtime/network/input_gate.h"
#include "runtime/network/record_emitter.h"
#include "runtime/network/result_partition.h"
#include "runtime/operators/operator.h"
#include "runtime/operators/sources.h"
#include "runtime/channel_state.h"
#include "runtime/checkpoint_barriers.h"
#include "runtime/task_checkpoints.h"
#include "runtime/aligned_source_registry.h"
#include "runtime/watermark_valve.h"

namespace vstream {

// The schema of the records `edge`'s source emits on it, before any
// projection: dead letters their own, a window's late records its input's,
// a main output its vertex's output schema.
Schema EmittedSchema(const proto::JobGraph& graph, const proto::JobEdge& edge);

struct StreamTaskEnv {
  PartitionManager* partitions = nullptr;
  ChannelCache* channels = nullptr;
  NetworkThread* network = nullptr;  // drives the remote input channels
  std::string data_dir;       // TaskManager data dir
  std::string own_address;    // host:port of this TaskManager
  int receive_credits = 8;    // buffers per remote input channel
  int send_queue_buffers = 8; // buffers queued per subpartition before backpressure
  std::shared_ptr<StateResources> state_resources;  // the TaskManager's state memory
  // Checkpoints (both required when the task has checkpoint storage): how
  // acknowledgements reach the JobManager, and the thread that uploads.
  // snapshot_copies (optional): the thread that first copies what the
  // snapshots left for later (runtime/task_checkpoints.h).
  CheckpointResponder* checkpoint_responder = nullptr;
  Executor* snapshot_uploads = nullptr;
  Executor* snapshot_copies = nullptr;
  // Where a source task under watermark alignment registers; null: no
  // alignment (the source never pauses).
  AlignedSourceRegistry* aligned_sources = nullptr;
};

class StreamTask {
 public:
  static absl::StatusOr<std::unique_ptr<StreamTask>> Create(
      const proto::TaskDeploymentDescriptor& tdd, const StreamTaskEnv& env);
  ~StreamTask();

  // Runs to the end of input (OK), a failure (error) or cancellation (Cancelled).
  absl::Status Run();
  void Cancel();
  // Any thread. A source task starts checkpoint `checkpoint_id` between two
  // batches: it snapshots and sends the barrier, as `options` say.
  void TriggerCheckpoint(int64_t checkpoint_id, const BarrierOptions& options = {});
  // Any thread: the JobManager's verdict on a checkpoint.
  void NotifyCheckpoint(int64_t checkpoint_id, bool completed);

  // Where the keyed state of the task's operator `vertex_id` lives under
  // the TaskManager's data dir: state/<job>/a<attempt>/<vertex>-<subtask>.
  static std::string StateDir(const std::string& data_dir, const proto::TaskDeploymentDescriptor& tdd,
                              int vertex_id);

  // Counters per chained operator, head first; readable from any thread.
  const std::vector<std::unique_ptr<OperatorCounters>>& counters() const { return counters_; }

 private:
  class EmitterOutput;
  // While unaligned barriers are taken in the middle of a buffer: the
  // records of it not processed yet (they go into a snapshot taken then).
  struct Carry {
    int input = 0;
    std::string_view data;
    int num_records = 0;
  };

  StreamTask() = default;
  absl::Status Build(const proto::TaskDeploymentDescriptor& tdd, const StreamTaskEnv& env);
  absl::Status CheckOperators() const;
  bool FlushAll();
  void Throttle(size_t records);
  void PushWatermark(std::optional<int64_t> watermark);
  // `barrier`: the barrier buffer that gave the result (null: a channel end
  // or a timeout), from gate channel `channel`.
  void OnCheckpointBarriers(const CheckpointBarriers::Result& result, int channel = -1,
                            const NetworkBuffer* barrier = nullptr);
  // Snapshot (if the task has checkpoint storage), then barrier downstream.
  void PerformCheckpoint(int64_t checkpoint_id, int64_t alignment_ms, const BarrierOptions& forward);
  // Hands the channel state over once its inputs and outputs are complete.
  void MaybeFinishChannelState();
  // Decodes a network buffer's rows into batch and pushes them to the head.
  absl::Status PushRecords(int input, std::string_view data, int num_records, RowBatch& batch);
  // Takes the unaligned barriers queued at the inputs' fronts now, between
  // two batches of a buffer whose unprocessed rest is `carry`.
  void TakePriorityBarriers(const Carry& carry);
  void OnBarrierBuffer(int channel, const NetworkBuffer& barrier);
  // Whether every output has room for a buffer, waiting up to max_wait each.
  bool OutputsHaveRoom(std::chrono::milliseconds max_wait);
  // Before the task reads its inputs or its source: waits until every
  // consumer subtask has attached to its outputs (kConsumersWait at most).
  // Checkpoint triggers wait too: a restored task's in-flight records are
  // replayed after this, and a snapshot must not come before them. A task
  // attaches to its inputs
  // only after this, so a source starts once every task downstream of it
  // runs: its first records and latency markers no longer wait in queues
  // while the tasks downstream are still deployed (a paced source would
  // also fall behind its schedule, and date its markers back).
  void AwaitConsumers();
  static constexpr std::chrono::seconds kConsumersWait{60};
  // With unaligned checkpoints: waits until the outputs have room, taking
  // checkpoint triggers (a source: carry null) or unaligned barriers (in a
  // buffer whose unprocessed rest is *carry) meanwhile.
  void AwaitOutputRoom(const Carry* carry);
  // On a restore from an unaligned checkpoint: its output records are
  // queued again, its input records processed, before anything else.
  absl::Status ReplayChannelState(RowBatch* batches);
  // Triggers and notifications from other threads, run on the task thread.
  void ProcessCheckpointRequests();
  // After the end of input: if an operator needs it (a two-phase-commit
  // sink), waits until a checkpoint taken after the end completes.
  absl::Status AwaitFinalCheckpoint();
  // A slice of the work operators left pending (StreamOperator::
  // DoPendingWork) and of a snapshot's copy (TaskCheckpoints::CopySlice);
  // true if some is still pending.
  bool DoPendingWork();
  bool HasPendingWork() const;
  int64_t next_scan_release_ms_ = 0;
  // The keyed backends' memtables are flushed in the background an eighth
  // of the checkpoint interval before the next checkpoint is due
  // (KeyedStateBackend::FlushMemtablesInBackground), so that the snapshot's
  // own flush, on this thread, has only the last eighth's writes.
  // preflush_at_ms_: when (MonotonicMillis), 0: not scheduled.
  static constexpr uint64_t kPreflushMinEntries = 4096;
  int64_t checkpoint_interval_ms_ = 0;
  int64_t preflush_at_ms_ = 0;
  void Preflush();
  // At every buffer timeout: processing-time timers, and once a second the
  // map states' kept scan iterators let go (MapState::ReleaseScan), so that
  // one scanned once (a broadcast join's Open) or no longer (a join whose
  // entries all left RocksDB) pins no memtable or file for longer, with
  // checkpoints or without.
  void OnTick();
  // Watermark alignment: publishes the source's watermark; true (after a
  // short wait) while it is above the group's bound, so the task reads
  // nothing this round.
  bool AlignmentPauses(const SourceOperator& source);

  proto::TaskDeploymentDescriptor tdd_;
  std::vector<std::unique_ptr<OperatorCounters>> counters_;
  std::vector<std::unique_ptr<StreamOperator>> operators_;  // chain order
  std::vector<std::unique_ptr<EmitterOutput>> emitters_;
  std::vector<std::unique_ptr<Output>> fanouts_;
  std::vector<Output*> side_outputs_;  // finished explicitly at the end
  std::vector<std::shared_ptr<ResultPartition>> partitions_;
  std::unique_ptr<InputGate> gate_;
  Schema input_schemas_[2];              // left/main and right/broadcast
  std::vector<int> channel_input_;       // per gate channel: 0 or 1
  std::unique_ptr<WatermarkValve> valve_;  // event time over the gate's channels
  std::unique_ptr<CheckpointBarriers> barriers_;  // checkpoint alignment over them
  bool wants_processing_time_ = false;
  std::atomic<bool> cancelled_{false};
  std::shared_ptr<CheckpointStorage> storage_;     // null: no checkpoint storage
  std::unique_ptr<CheckpointStorage> restore_storage_;  // a savepoint restored from; null: storage_
  std::unique_ptr<TaskCheckpoints> checkpoints_;  // null: no checkpoint storage
  std::atomic<int64_t> trigger_requested_{0};
  int64_t last_triggered_ = 0;  // the last checkpoint this task took part in
  std::atomic<bool> has_requests_{false};
  std::atomic<bool> input_ended_{false};
  bool finished_on_restore_ = true;      // every operator's restored snapshot says finished
  bool head_finished_on_restore_ = false;  // the head's restored snapshot says finished
  bool needs_final_checkpoint_ = false;  // an operator needs one
  int64_t final_checkpoint_ = 0;         // taken after the end of input; 0: none yet
  bool final_committed_ = false;         // ... and completed
  std::mutex requests_mu_;
  std::condition_variable requests_cv_;  // with requests_mu_: wakes the final wait
  std::vector<std::pair<int64_t, bool>> notifications_;  // guarded by requests_mu_
  std::chrono::steady_clock::time_point alignment_start_;
  BarrierOptions trigger_options_;  // guarded by requests_mu_: of trigger_requested_
  // The channel state being collected for a checkpoint (runtime/channel_state.h).
  struct PendingChannelState {
    int64_t checkpoint_id = 0;  // 0: none
    bool unaligned = false;
    bool inputs_done = true;       // every input barrier has arrived
    bool outputs_settled = true;   // every aligned output barrier with a deadline settled
    ChannelState state;
  } channel_state_;
  ChannelState restored_channels_;  // replayed when Run starts
  const Carry* carry_ = nullptr;
  // Unaligned checkpoints are on: wait for output room between batches
  // (Flink's output availability) instead of blocking inside an emit.
  bool responsive_ = false;
  bool replaying_ = false;  // ReplayChannelState runs
  int64_t buffer_timeout_ms_ = 5;
  // Latency markers (the job's latency_markers; 0: off): a source task
  // makes one about this often (SourceOperator::ArmLatencyMarker); a task
  // with inputs passes on those that ride on its input buffers.
  int64_t latency_marker_interval_us_ = 0;
  PartitionManager* partition_manager_ = nullptr;
  std::unique_ptr<RateLimiter> sink_limiter_;
  // Watermark alignment of a source task; null: not aligned.
  std::shared_ptr<AlignedSource> aligned_;
  int64_t alignment_paused_ns_ = 0;        // paused so far
  int64_t alignment_paused_since_ns_ = 0;  // 0: not paused
  // The source's first watermark (after its first batch, or as restored):
  // it may read up to max_drift past it before the group's bound says so.
  int64_t start_watermark_ = kMinWatermark;
};

}  // namespace vstream
