#pragma once
// Operators of the data plane. A task runs a chain of operators on its own
// thread; chained operators call each other directly, a batch at a time
// (no per-record virtual call). Each operator pushes its output batch to an
// Output: the next operator in the chain, or the network emitters of the
// edges leaving the chain.
//
// Thread-compatible: an operator instance belongs to one task thread. Its
// counters are atomics so that the TaskManager's heartbeat thread can read them.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/latency_histogram.h"
#include "common/time_util.h"
#include "runtime/types.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"
#include "state/state_clock.h"
#include "state/state_resources.h"

namespace vstream {

// Live counters of one operator in one subtask.
struct OperatorCounters {
  int vertex_id = 0;
  std::atomic<int64_t> records_in{0};
  std::atomic<int64_t> records_out{0};
  std::atomic<int64_t> dead_letters{0};
  std::atomic<int64_t> late_records{0};  // beyond a window's allowed lateness
  double sink_max_rate = 0;  // set at build time for a throttled sink
  // A sink's latency markers: each one's age on arrival.
  LatencyHistogram latency;
};

class Output {
 public:
  virtual ~Output() = default;
  // May modify the batch's rows (e.g. compact them in place): a batch is
  // pushed to exactly one Output.
  virtual void Push(RowBatch& batch) = 0;
  // End of input: flush whatever is pending.
  virtual void Finish() = 0;
  // Event time advanced: no record with a smaller timestamp is expected any
  // more (later ones are late). Called between batches, in order with them.
  virtual void PushWatermark(int64_t watermark) = 0;
  // The producing source has no data for a while: leave it out of
  // downstream watermarks until it sends records or a watermark again.
  virtual void PushIdle() {}
  // A latency marker made at `created_us` (wall clock, µs) passed the
  // records before it. Operators pass it on at once (a window does not hold
  // it); network outputs send it with their next buffer; sinks count its
  // age. Latency markers measure the path's queues, network and processing,
  // not the time records wait in a window.
  virtual void PushLatencyMarker(int64_t created_us) { (void)created_us; }
};

// Everything an operator may need from its task.
struct OperatorContext {
  std::string job_id;
  std::string vertex_name;
  int vertex_id = 0;
  int subtask_index = 0;
  int parallelism = 1;
  int max_parallelism = 128;
  std::string data_dir;   // TaskManager data dir
  std::string state_dir;  // for this operator subtask's RocksDB
  // The TaskManager's state memory (block cache, write buffers, write-back
  // caches), shared by every RocksDB instance it runs. Null: private.
  std::shared_ptr<StateResources> state_resources;
  // state_dir holds state restored from a checkpoint: open it as it is
  // instead of starting empty.
  bool restored = false;
  // The job takes checkpoints (the task has checkpoint storage): sinks stage
  // their output and publish it when a checkpoint that covers it completes.
  bool checkpointing = false;
  // The local path of the job's checkpoint storage (a shared volume that
  // outlives any one TaskManager); empty without checkpointing. Sources
  // that must keep what they received across TaskManagers (the MLLP
  // source's message log) keep it under here.
  std::string checkpoint_dir;
  // ... in at_least_once mode: sinks need not hold output back, since
  // replays after a restore may duplicate records anyway.
  bool at_least_once = false;
  // Time to live of the operator's keyed state (the job spec's state_ttl of
  // an aggregate or process operator). Default 0: kept forever.
  int64_t state_ttl_ms = 0;
  // The wall clock of state TTL and of processing time in process functions;
  // must outlive the operator. Default null: the system clock. Tests pass a
  // ManualStateClock.
  const StateClock* clock = nullptr;
  // A keyed operator's records are grouped (key group, subtask) by the hash
  // of its first this many key fields (JobVertex.key_group_fields); 0: all.
  int key_group_fields = 0;
};

// The key groups a keyed operator's subtask owns. Each record reaches the
// subtask that owns its key's group: over a HASH edge by routing, over a
// FORWARD edge because its producer's output was already partitioned by the
// same key at the same parallelism (JobBuilder, "Partitioned streams"). The
// group is of the hash of the key, or of its first ctx.key_group_fields
// fields when the input is partitioned by those alone. A keyed operator takes
// each record's group from KeyGroupOf(), checks it with Owns() and fails with
// Foreign() on a record of another subtask's: its state would sit where no
// restore or rescale of that key looks for it.
class OwnedKeyGroups {
 public:
  // `key_fields`: the operator's key fields (indexes into its input schema),
  // needed when ctx.key_group_fields is not 0.
  absl::Status Init(const OperatorContext& ctx, std::string_view kind, const std::vector<int>& key_fields = {});
  // The key group of `row` (of `schema`), whose key fields encode to `key`.
  int KeyGroupOf(const Schema& schema, const Row& row, std::string_view key) {
    if (group_fields_.empty()) return KeyGroupForHash(HashKeyBytes(key), max_parallelism_);
    return KeyGroupOfFields(schema, row);
  }
  bool Owns(int key_group) const { return range_.Contains(key_group); }
  absl::Status Foreign(int key_group) const;

 private:
  int KeyGroupOfFields(const Schema& schema, const Row& row);

  KeyGroupRange range_{0, -1};
  std::string who_;
  int max_parallelism_ = 1;
  int parallelism_ = 1;
  std::vector<int> group_fields_;  // empty: the whole key
  std::string group_key_;          // scratch: group_fields_ encoded
};

// Opens an operator subtask's RocksDB keyed state (under ctx.state_dir, in
// the TaskManager's state memory, TTL timed by ctx.clock).
absl::StatusOr<std::unique_ptr<KeyedStateBackend>> OpenKeyedStateBackend(const OperatorContext& ctx);

// Opens the keyed state backend and declares one value state that goes
// through the write-back cache, whose entries expire `ttl_ms` after their
// last write (0: never).
absl::Status OpenKeyedValueState(const OperatorContext& ctx, const std::string& name,
                                 std::unique_ptr<KeyedStateBackend>* backend, StateId* state,
                                 int64_t ttl_ms = 0);

class StreamOperator : public Output {
 public:
  explicit StreamOperator(OperatorCounters& counters) : counters_(counters) {}
  void set_output(Output* output) { output_ = output; }
  virtual absl::Status Open(const OperatorContext& /*ctx*/) { return absl::OkStatus(); }
  // A batch of the given input of a two-input operator (0: left or main,
  // 1: right or broadcast). One-input operators get everything in Push().
  virtual void PushInput(int input, RowBatch& batch) {
    (void)input;
    Push(batch);
  }
  // Stateless operators pass watermarks on; time-aware ones fire their
  // timers first.
  void PushWatermark(int64_t watermark) override { output_->PushWatermark(watermark); }
  void PushIdle() override { output_->PushIdle(); }
  void PushLatencyMarker(int64_t created_us) override {
    if (output_ != nullptr) output_->PushLatencyMarker(created_us);
  }
  // Work an operator left for later so that its task keeps taking input
  // meanwhile (a window firing many results does it in slices): while
  // has_pending_work(), the task calls DoPendingWork between buffers and
  // does not wait for input. Called on the task thread.
  virtual bool has_pending_work() const { return false; }
  virtual void DoPendingWork() {}
  // Operators that act on wall-clock time (processing-time windows) say so;
  // the task then calls OnProcessingTime at least every buffer timeout.
  virtual bool wants_processing_time() const { return false; }
  virtual void OnProcessingTime(int64_t now_ms) { (void)now_ms; }
  // Asked when the operator's input batches are shared with other chained
  // operators (ChainFanOutOutput): true if it will leave them unchanged
  // from now on (it may change how it works to do so); false (the default)
  // if it needs a batch of its own, which then is a copy.
  virtual bool ShareInput() { return false; }
  // Checkpoints. The keyed state to snapshot (null: none); the operator's
  // small non-keyed state (a source's read position); completion of a
  // checkpoint this operator took part in. Called on the task thread.
  virtual KeyedStateBackend* keyed_state() { return nullptr; }
  // Before the keyed state is snapshotted: move what lives only in memory
  // (timers) into it.
  virtual absl::Status PrepareSnapshot() { return absl::OkStatus(); }
  virtual std::string SnapshotOperatorState(int64_t checkpoint_id) {
    (void)checkpoint_id;
    return std::string();
  }
  // After Open, on a restore: what SnapshotOperatorState returned.
  virtual absl::Status RestoreOperatorState(std::string_view state) {
    if (state.empty()) return absl::OkStatus();
    return absl::DataLossError("the snapshot has operator state for an operator that keeps none");
  }
  virtual void NotifyCheckpointComplete(int64_t checkpoint_id) { (void)checkpoint_id; }
  // After Finish(), the task waits for one more checkpoint to complete
  // before it ends (Flink's final checkpoint), so that what the operator
  // staged at the end is published exactly once.
  virtual bool needs_final_checkpoint() const { return false; }
  // Non-OK once the operator failed (the task then fails).
  const absl::Status& status() const { return status_; }

 protected:
  void Emit(RowBatch& batch) {
    if (batch.empty()) return;
    counters_.records_out.fetch_add(batch.size(), std::memory_order_relaxed);
    output_->Push(batch);
  }
  void CountIn(size_t n) { counters_.records_in.fetch_add(n, std::memory_order_relaxed); }
  // Sinks: a latency marker arrived.
  void RecordLatency(int64_t created_us) { counters_.latency.Record(NowMicros() - created_us); }

  OperatorCounters& counters_;
  Output* output_ = nullptr;
  absl::Status status_;
};

// Fans a batch out to several outputs (the edges leaving a chain).
class FanOutOutput : public Output {
 public:
  void Add(Output* out) { outputs_.push_back(out); }
  void Push(RowBatch& batch) override {
    for (auto* o : outputs_) o->Push(batch);
  }
  void Finish() override {
    for (auto* o : outputs_) o->Finish();
  }
  void PushWatermark(int64_t watermark) override {
    for (auto* o : outputs_) o->PushWatermark(watermark);
  }
  void PushIdle() override {
    for (auto* o : outputs_) o->PushIdle();
  }
  void PushLatencyMarker(int64_t created_us) override {
    for (auto* o : outputs_) o->PushLatencyMarker(created_us);
  }

 private:
  std::vector<Output*> outputs_;
};

// Fans a batch out inside a chain (an operator read by several chained
// operators and network edges): first to the outputs that only read it (the
// network emitters, and operators that agree to share it: ShareInput), then
// to the chained operators that may change it: each but the last gets a
// copy, kept between batches, so that copying allocates only while its
// rows grow.
class ChainFanOutOutput : public Output {
 public:
  void AddReader(Output* out) { readers_.push_back(out); }
  // `input`: the Output op reads this through (one of a union's chained
  // inputs); null: op itself.
  void AddOperator(StreamOperator* op, Output* input = nullptr) {
    if (input == nullptr) input = op;
    if (op->ShareInput()) {
      readers_.push_back(input);
    } else {
      operators_.push_back(input);
    }
  }
  void Push(RowBatch& batch) override {
    for (auto* o : readers_) o->Push(batch);
    for (size_t i = 0; i < operators_.size(); ++i) {
      if (i + 1 == operators_.size()) {
        operators_[i]->Push(batch);
        break;
      }
      copy_.set_width(batch.width());
      copy_.Clear();
      for (size_t r = 0; r < batch.size(); ++r) copy_.Append() = batch[r];
      operators_[i]->Push(copy_);
    }
  }
  void Finish() override {
    ForEach([](Output* o) { o->Finish(); });
  }
  void PushWatermark(int64_t watermark) override {
    ForEach([&](Output* o) { o->PushWatermark(watermark); });
  }
  void PushIdle() override {
    ForEach([](Output* o) { o->PushIdle(); });
  }
  void PushLatencyMarker(int64_t created_us) override {
    ForEach([&](Output* o) { o->PushLatencyMarker(created_us); });
  }

 private:
  // Readers first, then operators, as Push hands out batches.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (auto* o : readers_) fn(o);
    for (auto* o : operators_) fn(o);
  }

  std::vector<Output*> readers_;
  std::vector<Output*> operators_;
  RowBatch copy_;
};

}  // namespace vstream
