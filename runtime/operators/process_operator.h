#pragma once
// Runs a keyed process function (process_function.h) on a keyed input, as
// Flink's KeyedProcessOperator:
//
//   batch of records --for each: key = EncodeKey(key fields), key group =
//                      hash mod max_parallelism; backend.SetCurrentKey;
//                      function.ProcessElement(record, ctx)--> output batch
//   watermark W      --pop event-time timers <= W in (time, key) order; for
//                      each: SetCurrentKey(timer's key); function.OnTimer;
//                      then pass W on (to the dead-letter output too)
//   wall clock tick  --the same for processing-time timers <= now
//
// State: one RocksDB backend per subtask (the function's states, each a
// column family) and two timer queues in it, "__event_timers" and
// "__processing_timers" (column families timers/..., state/timer_queue.h), whose payload is
// [key group: 2 bytes big-endian][key], so a timer restores its key before
// OnTimer, and a restore at another parallelism can filter timers by key
// group.
//
// The function is called once per record (a virtual call): its state
// accesses cost far more. Output rows go to a reused batch flushed when it
// fills and at the end of each input batch, watermark and tick.
//
// Thread-compatible: runs on its task's thread.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proto/jobgraph.pb.h"
#include "runtime/formats/record_format.h"
#include "runtime/operators/dead_letters.h"
#include "runtime/operators/operator.h"
#include "runtime/operators/process_function.h"
#include "state/keyed_state_backend.h"
#include "state/timer_queue.h"

namespace vstream {

class ProcessOperator : public StreamOperator {
 public:
  // `output` is the vertex's output schema; Open checks that the function
  // produces it for `input`.
  ProcessOperator(OperatorCounters& counters, Schema input, Schema output, const proto::ProcessSpec& spec,
                  std::unique_ptr<KeyedProcessFunction> function);
  ~ProcessOperator() override;

  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void PushWatermark(int64_t watermark) override;
  void Finish() override;
  KeyedStateBackend* keyed_state() override { return backend_.get(); }
  // Any record may set a processing-time timer: the clock is always checked.
  bool wants_processing_time() const override { return true; }
  void OnProcessingTime(int64_t now_ms) override;
  // Side output of the records the function rejects (DeadLetterSchema());
  // null: they go to the TaskManager's dead-letter directory.
  void set_dead_letter_output(Output* out) { dead_letter_output_ = out; }

 private:
  friend class ProcessContext;

  // The timers of one domain popped for one watermark or tick, fired in
  // order; a timer deleted before its turn is skipped.
  struct Firing {
    bool active = false;
    size_t next = 0;   // the first not yet fired
    size_t count = 0;  // due[0, count) are this round's; entries past it
                       // are kept so their strings' capacity is reused
    std::vector<std::pair<int64_t, std::string>> due;
    std::vector<bool> cancelled;
    // The index in due of a timer not fired yet, or -1.
    int64_t Pending(int64_t time, const std::string& payload) const;
  };

  TimerQueue& timers(TimeDomain d) { return d == TimeDomain::kEventTime ? *event_timers_ : *processing_timers_; }
  Firing& firing(TimeDomain d) { return firing_[d == TimeDomain::kEventTime ? 0 : 1]; }
  absl::Status RegisterTimer(TimeDomain domain, int64_t time, const std::string& payload);
  absl::Status DeleteTimer(TimeDomain domain, int64_t time, const std::string& payload);
  void FireTimers(TimeDomain domain, int64_t up_to);
  void DeadLetter(const Row& record, std::string_view reason);
  // Emits the output batch, then FlushDeadLetters.
  void FlushOut();
  void FlushDeadLetters();
  void Fail(const absl::Status& s) {
    if (status_.ok()) status_ = s;
  }

  Schema input_;
  Schema output_schema_;
  proto::ProcessSpec spec_;
  ProcessInput process_input_;
  Schema key_schema_;
  OperatorContext op_ctx_;
  OwnedKeyGroups owned_key_groups_;
  const StateClock* clock_ = nullptr;
  // Declared before the function: the function's state handles point into
  // the backend, so the function goes first on destruction.
  std::unique_ptr<KeyedStateBackend> backend_;
  std::unique_ptr<TimerQueue> event_timers_;
  std::unique_ptr<TimerQueue> processing_timers_;
  std::unique_ptr<KeyedProcessFunction> function_;
  ProcessContext ctx_;
  Firing firing_[2];
  int64_t watermark_ = INT64_MIN;
  RowBatch out_;
  std::string key_;        // the current record's key
  std::string timer_key_;  // the current timer's key

  Output* dead_letter_output_ = nullptr;
  DeadLetters dead_letters_;
  std::unique_ptr<RecordWriter> raw_writer_;  // renders a dead letter's record (jsonl)
  std::string scratch_;
};

}  // namespace vstream
