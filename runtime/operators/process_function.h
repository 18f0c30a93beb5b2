#pragma once
// The keyed process function, as Flink's KeyedProcessFunction: user code that
// sees every record of a keyed stream one at a time, keeps keyed state in
// RocksDB and sets timers, and emits any number of rows. The clinical
// operators (scores, alerts) are process functions; ProcessOperator
// (process_operator.h) runs one, and ProcessFunctionRegistry
// (process_function_registry.h) names them for job specs.
//
//   job compile time          task Open              per record / timer
//   ----------------          ---------              ------------------
//   factory(params)           factory(params)        ProcessElement(row, ctx)
//   OutputSchema(input)       OutputSchema(input)    OnTimer(time, domain, ctx)
//     -> the vertex's           == the vertex's?       ctx: key, timestamp,
//        output schema        Open(setup): states      watermark, timers, Emit
//
// A function is made per operator subtask by its registered factory, which
// validates its parameters (process_params.h). OutputSchema runs both when
// the client compiles the job (to type the stream downstream) and when the
// task opens (to check that the TaskManager's function agrees). Open declares
// the keyed states. Then, for each record, the operator makes the record's
// key the current key of every state handle and calls ProcessElement; when
// the watermark passes an event-time timer, or the wall clock a
// processing-time timer, it makes the timer's key current and calls OnTimer.
//
//   class FirstReading : public KeyedProcessFunction {  // emits each key's first record
//    public:
//     absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& in) const override {
//       return ProcessOutputSchema{in.schema, in.time_index};
//     }
//     absl::Status Open(ProcessSetup& setup) override {
//       ValueStateDescriptor seen;
//       seen.name = "seen";
//       ASSIGN_OR_RETURN(seen_, setup.GetValueState(seen));
//       return absl::OkStatus();
//     }
//     absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
//       ASSIGN_OR_RETURN(StateLookup r, seen_->Get("", &scratch_));
//       if (r == StateLookup::kFound) return absl::OkStatus();
//       RETURN_IF_ERROR(seen_->Put("", "1"));
//       ctx.Emit() = in;
//       return absl::OkStatus();
//     }
//    private:
//     ValueState* seen_ = nullptr;
//     std::string scratch_;
//   };
//
// Timers, as Flink's: one per (key, time, domain), so registering the same
// one twice fires it once; deleting one that has not fired cancels it. An
// event-time timer fires when the watermark reaches its time, before the
// watermark goes downstream; a processing-time timer when the wall clock
// does (checked at least every buffer timeout). Timers live in the state
// backend (state/timer_queue.h: in memory up to 100k, spilled to RocksDB
// beyond). At the end of a bounded input the watermark jumps to the end of
// time, so every event-time timer fires; pending processing-time timers do
// not (Flink's behaviour since 1.14).
//
// Thread-compatible: a function instance belongs to one task thread. Its
// factory and OutputSchema may run on any thread (the client's, a task's).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/types.h"
#include "state/keyed_state_backend.h"

namespace vstream {

class ProcessOperator;
class RecordWriter;
class TimerQueue;

enum class TimeDomain {
  kEventTime,       // fired by the watermark
  kProcessingTime,  // fired by the subtask's wall clock
};

const char* TimeDomainName(TimeDomain domain);  // "event time", "processing time"

// What a function is applied to; known when the job is compiled.
struct ProcessInput {
  Schema schema;
  // Indexes in `schema` of the key fields (key_by), in key order.
  std::vector<int> key_fields;
  // Index in `schema` of the event-time field; -1: the input has no event
  // time (ProcessContext::has_timestamp() is then false for records).
  int time_index = -1;
};

// The stream a function produces.
struct ProcessOutputSchema {
  ProcessOutputSchema() = default;
  ProcessOutputSchema(Schema output, int output_time_index, std::vector<int> output_key_fields = {})
      : schema(std::move(output)), time_index(output_time_index), key_fields(std::move(output_key_fields)) {}

  Schema schema;
  // Index in `schema` of the output's event-time field; -1: none (the stream
  // then has no event time downstream).
  int time_index = -1;
  // Indexes in `schema` of fields that hold, in every row the function
  // emits, the current key's values of ProcessInput::key_fields, in key
  // order (with the same types); empty: none known. A consumer keyed by
  // these fields at the same parallelism then reads the output over a
  // FORWARD edge, chained, instead of a hash exchange (JobBuilder,
  // "Partitioned streams"); the consumer checks every record's key group.
  std::vector<int> key_fields;

  // Adds the input's key fields to the schema, as a function whose rows
  // start with the current key (ctx.key_row()) has them, and declares them.
  void AddKeyFields(const ProcessInput& input) {
    for (int k : input.key_fields) {
      key_fields.push_back(static_cast<int>(schema.size()));
      schema.Add(input.schema.field(k).name, input.schema.field(k).type);
    }
  }
};

// Handed to KeyedProcessFunction::Open: declares the function's keyed
// states in the operator's state backend. A descriptor without a ttl_ms gets
// the job's state_ttl (default_state_ttl_ms()). State names starting with
// "__" are the operator's own (its timers).
class ProcessSetup {
 public:
  const ProcessInput& input() const { return input_; }
  const Schema& output_schema() const { return output_; }
  // The job spec's state_ttl of this operator; 0: none.
  int64_t default_state_ttl_ms() const { return default_ttl_ms_; }
  // The subtask, for functions that log or seed per subtask.
  int subtask_index() const { return subtask_index_; }

  absl::StatusOr<ValueState*> GetValueState(ValueStateDescriptor descriptor);
  absl::StatusOr<ListState*> GetListState(ListStateDescriptor descriptor);
  absl::StatusOr<MapState*> GetMapState(MapStateDescriptor descriptor);
  absl::StatusOr<ReducingState*> GetReducingState(ReducingStateDescriptor descriptor);
  absl::StatusOr<AggregatingState*> GetAggregatingState(AggregatingStateDescriptor descriptor);

 private:
  friend class ProcessOperator;
  ProcessSetup(KeyedStateBackend& backend, const ProcessInput& input, const Schema& output, int64_t default_ttl_ms,
               int subtask_index)
      : backend_(backend),
        input_(input),
        output_(output),
        default_ttl_ms_(default_ttl_ms),
        subtask_index_(subtask_index) {}
  absl::Status CheckName(const std::string& name) const;
  int64_t Ttl(int64_t ttl_ms) const { return ttl_ms != 0 ? ttl_ms : default_ttl_ms_; }

  KeyedStateBackend& backend_;
  const ProcessInput& input_;
  const Schema& output_;
  const int64_t default_ttl_ms_;
  const int subtask_index_;
};

// Handed to ProcessElement and OnTimer: the current key and times, timers,
// and output. Owned by the operator and reused for every call; valid during
// the call only.
class ProcessContext {
 public:
  // The current key: the key fields encoded as row_codec's EncodeKey does
  // (what timers and state are keyed by), and its key group.
  std::string_view current_key() const { return key_; }
  int key_group() const { return key_group_; }
  // The key fields' values, in key_by order (decoded from the key in
  // OnTimer). Valid until the call returns.
  const Row& key_row();

  // The event time of the record being processed, or the time of the
  // event-time timer firing. False for a record with a null time, when the
  // input has no event time, and in a processing-time timer.
  bool has_timestamp() const { return has_timestamp_; }
  int64_t timestamp() const { return timestamp_; }
  // The operator's current watermark: INT64_MIN before the first one.
  int64_t current_watermark() const { return watermark_; }
  // The subtask's wall clock in epoch ms (read once per batch).
  int64_t current_processing_time() const { return processing_time_; }

  // Timers of the current key. Registering an existing timer is a no-op;
  // deleting a missing one too. An event-time timer at or before the
  // current watermark fires with the next watermark; a processing-time
  // timer in the past fires at the next check of the clock.
  absl::Status RegisterEventTimeTimer(int64_t time);
  absl::Status DeleteEventTimeTimer(int64_t time);
  absl::Status RegisterProcessingTimeTimer(int64_t time);
  absl::Status DeleteProcessingTimeTimer(int64_t time);

  // Appends a row of the output schema to the operator's output batch (a
  // reused row: every field starts null) and returns it to fill. The
  // reference is valid until the next Emit or the end of the call.
  Row& Emit();

  // Sends `record` (a row of the input schema) to the operator's dead
  // letters: the `dead_letter` stream of the job, or the TaskManager's
  // dead-letter directory. Counted in the operator's dead_letters metric.
  void EmitDeadLetter(const Row& record, std::string_view reason);

 private:
  friend class ProcessOperator;
  explicit ProcessContext(ProcessOperator& op) : op_(op) {}
  absl::Status Register(TimeDomain domain, int64_t time);
  absl::Status Delete(TimeDomain domain, int64_t time);
  // The timer payload of the current key: [key group: 2 bytes][key].
  const std::string& Payload();

  ProcessOperator& op_;
  std::string_view key_;
  int key_group_ = 0;
  const Row* element_ = nullptr;  // the record of ProcessElement, null in OnTimer
  bool key_row_valid_ = false;
  bool has_timestamp_ = false;
  int64_t timestamp_ = 0;
  int64_t watermark_ = INT64_MIN;
  int64_t processing_time_ = 0;
  Row key_row_;
  std::string payload_;
};

class KeyedProcessFunction {
 public:
  virtual ~KeyedProcessFunction() = default;

  // The output for this input, or InvalidArgument explaining why the
  // function cannot apply to it (a missing field, no event time). Use
  // ProcessParams::Error for an error about a parameter. Must not depend on
  // anything but the input and the function's parameters.
  virtual absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const = 0;

  // Declares the keyed states. Called once per subtask, before any record.
  virtual absl::Status Open(ProcessSetup& setup) = 0;

  // One record of the current key. A non-OK status fails the task (use
  // ctx.EmitDeadLetter for a record the function rejects).
  virtual absl::Status ProcessElement(const Row& in, ProcessContext& ctx) = 0;

  // A timer of the current key fired. Default: nothing.
  virtual absl::Status OnTimer(int64_t time, TimeDomain domain, ProcessContext& ctx) {
    (void)time;
    (void)domain;
    (void)ctx;
    return absl::OkStatus();
  }

  // The end of a batch of records (after its last ProcessElement), before
  // its output goes downstream and before any barrier or watermark that
  // follows it. For functions that gather a batch's records per key and
  // emit once (news2: one row per message). There is no current key here.
  // Default: nothing.
  virtual absl::Status FinishBatch(ProcessContext& ctx) {
    (void)ctx;
    return absl::OkStatus();
  }
};

}  // namespace vstream
