#pragma once
// Sources: the head of a source task's chain. The task calls Produce()
// repeatedly; each call emits at most one batch downstream.
//
// - GeneratorSource: deterministic, seeded rows (bounded by count or
//   unbounded, optionally paced to a rate). Record n of the whole source
//   goes to subtask n % parallelism and its values depend only on (seed, n),
//   so the output does not depend on the parallelism.
// - FileSource: CSV (with header) or JSON lines. Subtask i reads the lines
//   that start in byte range [i*size/p, (i+1)*size/p). Malformed lines become
//   dead letters (runtime/dead_letter.h) and the job goes on.

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/jobgraph.pb.h"
#include "runtime/formats/record_format.h"
#include "runtime/network/buffer.h"
#include "runtime/operators/dead_letters.h"
#include "runtime/operators/operator.h"

namespace vstream {

enum class SourceStatus { kMoreAvailable, kEnd };

// Paces a source to a rate (records/s); 0 = unlimited. From the first
// Acquire, at most 1 + t * rate records in the first t seconds. Records are
// granted in steps of kStepSeconds' worth, at least one and at most
// kMaxStep: a source paced to 57,000 records/s wakes 2,000 times a second
// for 28 records, not 20,000 times for 3 (the task's wake-ups and 3-row
// batches cost q4 a tenth of its CPU, docs/benchmarks.md); a fast one waits
// no longer than for kMaxStep records. granted_lag_ns() says how long the
// first record of the last grant waited: latency markers are dated back by
// it, so that the wait (and any backlog of a source behind its pace)
// counts as latency. Thread-compatible: one task thread.
class RateLimiter {
 public:
  static constexpr double kStepSeconds = 0.0005;
  static constexpr int64_t kMaxStep = 64;
  // clock_ns: a monotonic clock in ns (tests pass a manual one).
  explicit RateLimiter(double rate, std::function<int64_t()> clock_ns = nullptr);
  // How many records may be produced now (at most max). None (fewer than a
  // step due): it sleeps until the step is due, at least 50 us and at most
  // 5 ms, so that the task stays responsive.
  size_t Acquire(size_t max);
  // For the last Acquire that granted records: how long ago the first was due.
  int64_t granted_lag_ns() const { return lag_ns_; }

 private:
  int64_t Now() const;

  double rate_;
  int64_t step_;
  std::function<int64_t()> clock_ns_;
  bool started_ = false;
  int64_t start_ns_ = 0;
  int64_t granted_ = 0;
  int64_t lag_ns_ = 0;
};

class SourceOperator : public StreamOperator {
 public:
  using StreamOperator::StreamOperator;
  virtual SourceStatus Produce() = 0;
  void Push(RowBatch&) override {}
  void Finish() override { output_->Finish(); }
  void PushWatermark(int64_t watermark) override;
  // Side output for dead letters; null if the job declares none.
  void set_dead_letter_output(Output* out) { dead_letter_output_ = out; }
  // A latency marker stamped at `created_us` goes out right after the next
  // non-empty batch (before its watermark); 0: none. SendLatencyMarker
  // sends a pending one now.
  void set_latency_marker(int64_t created_us) { latency_marker_us_ = created_us; }
  int64_t latency_marker() const { return latency_marker_us_; }
  // A paced source's records waited lag_ns for their turn (RateLimiter):
  // the marker for them is that much older.
  void BackdateLatencyMarker(int64_t lag_ns) {
    if (latency_marker_us_ != 0) latency_marker_us_ -= lag_ns / 1000;
  }
  void SendLatencyMarker() {
    if (latency_marker_us_ == 0) return;
    output_->PushLatencyMarker(latency_marker_us_);
    latency_marker_us_ = 0;
  }
  // Makes the source assign event time from a field and emit watermarks:
  // max timestamp seen - max_out_of_orderness - 1, after a batch if
  // watermark_interval has passed since the last one, else at the next
  // EmitDueWatermark (the task calls it with every buffer-timeout flush).
  void set_event_time(const proto::EventTimeSpec& spec) {
    event_time_ = spec;
    has_event_time_ = true;
  }
  // Emits the watermark held back, due or not (before a checkpoint barrier:
  // what the records before it promised goes before it, too).
  void EmitPendingWatermark() {
    if (pending_watermark_ > emitted_watermark_) PushWatermark(pending_watermark_);
  }
  // Emits the watermark held back by watermark_interval, once it is due.
  // now_ms: the steady clock's (MonotonicMillis), which never steps back.
  void EmitDueWatermark(int64_t now_ms) {
    if (pending_watermark_ > emitted_watermark_ && now_ms - watermark_sent_ms_ >= event_time_.watermark_interval_ms()) {
      watermark_sent_ms_ = now_ms;
      EmitPendingWatermark();
    }
  }
  // The event time settings (set_event_time), and the watermark the records
  // emitted so far allow, emitted or held back; kMinWatermark before any.
  const proto::EventTimeSpec* event_time() const { return has_event_time_ ? &event_time_ : nullptr; }
  int64_t current_watermark() const { return pending_watermark_; }
  // Idle: nothing emitted for event_time's idle_timeout.
  bool idle() const { return idle_; }

 protected:
  // Emits a batch, then the watermark if it advanced and is due (or idleness).
  void EmitBatch(RowBatch& batch);

  Output* dead_letter_output_ = nullptr;

 private:
  bool has_event_time_ = false;
  proto::EventTimeSpec event_time_;
  int64_t max_timestamp_ = kMinWatermark;
  int64_t emitted_watermark_ = kMinWatermark;
  int64_t pending_watermark_ = kMinWatermark;  // computed, not yet emitted
  int64_t watermark_sent_ms_ = INT64_MIN / 2;  // steady clock; the first is due at once
  int64_t latency_marker_us_ = 0;
  int64_t last_record_ms_ = 0;
  bool idle_ = false;
};

class GeneratorSource : public SourceOperator {
 public:
  GeneratorSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  SourceStatus Produce() override;
  // The next record index: everything before it was emitted.
  std::string SnapshotOperatorState(int64_t) override { return "generator next=" + std::to_string(next_); }
  absl::Status RestoreOperatorState(std::string_view state) override;

 private:
  void Fill(int64_t n, Row* row);

  Schema schema_;
  proto::SourceSpec spec_;
  enum class Kind { kSequence, kUniform, kKey, kConstant };
  std::vector<proto::GeneratorField> fields_;  // one per schema field
  std::vector<Kind> kinds_;                    // fields_[i].kind(), parsed once
  int64_t next_ = 0;                           // next global record index
  int64_t step_ = 1;
  std::unique_ptr<RateLimiter> limiter_;
  RowBatch batch_;
};

class FileSource : public SourceOperator {
 public:
  FileSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec);
  ~FileSource() override;
  absl::Status Open(const OperatorContext& ctx) override;
  SourceStatus Produce() override;
  // The file offset of the next unread line: every line before it was emitted.
  std::string SnapshotOperatorState(int64_t) override { return "file offset=" + std::to_string(offset_); }
  absl::Status RestoreOperatorState(std::string_view state) override;

 private:
  bool NextLine(std::string_view* line);
  void DeadLetter(std::string_view line, const absl::Status& reason);
  int64_t LineNumberAt(int64_t offset);

  Schema schema_;
  proto::SourceSpec spec_;
  OperatorContext ctx_;
  std::unique_ptr<RecordParser> parser_;
  std::FILE* file_ = nullptr;
  int64_t end_ = 0;       // this subtask reads lines starting before end_
  int64_t offset_ = 0;    // file offset of buf_[pos_]
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_start_ = 0;  // offset of the line last returned
  std::unique_ptr<RateLimiter> limiter_;
  RowBatch batch_;
  DeadLetters dead_letters_;
  int64_t counted_offset_ = 0;  // LineNumberAt's progress
  int64_t counted_lines_ = 1;
};

}  // namespace vstream
