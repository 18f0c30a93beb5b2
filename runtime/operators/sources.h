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

#include <algorithm>
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
#include "state/state_clock.h"

namespace vstream {

enum class SourceStatus { kMoreAvailable, kEnd };

// Paces a source to a rate (records/s); 0 = unlimited. From the first
// Acquire, at most 1 + t * rate records in the first t seconds.
//
// Records made wait in the task's output buffer until it is flushed (every
// buffer timeout) or full, so making each the moment it is due buys no
// latency, only wake-ups: in steps of 64 records a source paced to 471,000
// records/s woke 3,300 times a second, and every wake-up also preempted the
// task working beside it on the CPU (docs/benchmarks.md). So a paced source
// is granted records in steps of kStepSeconds' worth (at least one, at most
// kMaxStep: a network buffer holds several hundred small records, and a
// full one is sent at once), and, once the caller's deadline -- its output's
// next flush -- has passed, whatever is due, so that it leaves with that
// flush. Until then it sleeps (at least 50 us, at most 5 ms, so that the task
// stays responsive). granted_lag_ns() and granted_last_lag_ns() say how long
// before the call the first and the last record of a grant were due: latency
// markers are dated by them (SourceOperator::DateLatencyMarker), so that the
// wait, and any backlog of a source behind its pace, counts as latency.
// Thread-compatible: one task thread.
class RateLimiter {
 public:
  static constexpr double kStepSeconds = 0.001;
  static constexpr int64_t kMaxStep = 512;
  // clock_ns: a monotonic clock in ns (tests pass a manual one).
  explicit RateLimiter(double rate, std::function<int64_t()> clock_ns = nullptr);
  // Paced by `clock` (an operator context's; a test's manual one), or by
  // the monotonic clock when it is null.
  RateLimiter(double rate, const StateClock* clock);
  // How many records may be produced now (at most max): a step once due, or,
  // once deadline_ns (on the clock above; 0: none) has passed, any due. None
  // yet: it sleeps until a step is due or the deadline, whichever is first,
  // and looks again; 0 if still none. Past the deadline with none due: 0 at
  // once, so that the caller flushes without waiting (and calls again with
  // the next deadline).
  size_t Acquire(size_t max, int64_t deadline_ns = 0);
  // For the last Acquire that granted records: how long before it was called
  // the first and the last of them were due (negative: due while it slept).
  int64_t granted_lag_ns() const { return lag_ns_; }
  int64_t granted_last_lag_ns() const { return last_lag_ns_; }
  bool paced() const { return rate_ > 0; }

 private:
  int64_t Now() const;
  // Records due at now_ns, not yet granted.
  int64_t Due(int64_t now_ns) const;
  // When record index (from 0) is due.
  int64_t DueAt(int64_t index) const;

  double rate_;
  int64_t step_;
  std::function<int64_t()> clock_ns_;
  bool started_ = false;
  int64_t start_ns_ = 0;
  int64_t granted_ = 0;
  int64_t lag_ns_ = 0;
  int64_t last_lag_ns_ = 0;
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
  // Latency markers (the job's latency_markers; 0: none): about one per
  // interval, 0.5 to 1.5 intervals apart, so that the times they sample do
  // not lock to the phase of the task's flushes. seed: the subtask's, so
  // that subtasks do not sample the same moments.
  void set_latency_marker_interval(int64_t interval_us, uint64_t seed = 0) {
    marker_interval_us_ = interval_us;
    marker_jitter_ = 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
    if (marker_jitter_ == 0) marker_jitter_ = 1;
  }
  // Called by the task before each Produce, with the wall clock. A marker
  // goes out right after the call's first non-empty batch (before its
  // watermark): an unpaced source's once its time has come, stamped now; a
  // paced source's as DateLatencyMarker says. If the call makes none (a
  // paced source that waited), the next call tries again. One a call at
  // most: a network output keeps one per buffer (RecordEmitter::MarkLatency).
  void ArmLatencyMarker(int64_t now_us) {
    armed_ = false;
    marker_now_us_ = now_us;
    if (marker_interval_us_ <= 0) return;
    if (next_marker_us_ == 0) next_marker_us_ = now_us;
    if (now_us >= next_marker_us_) Arm(now_us, now_us);
  }
  // A paced source's batch holds records due from first_lag_ns to
  // last_lag_ns before the task's now_us (RateLimiter; negative: after,
  // while the source slept). The marker stands for the record due at its
  // time and goes out with the batch that holds it, dated to when it was due
  // (if that record went out before, unmarked, to when the batch's first
  // was); not yet if it comes later. Sampling by due time, not by when the
  // source woke (each flush period), keeps the markers a fair sample of the
  // records' wait for the flush.
  void DateLatencyMarker(int64_t first_lag_ns, int64_t last_lag_ns) {
    if (marker_interval_us_ <= 0 || marker_now_us_ == 0) return;
    const int64_t oldest = marker_now_us_ - first_lag_ns / 1000;
    const int64_t newest = std::max(oldest, marker_now_us_ - last_lag_ns / 1000);
    armed_ = false;
    const int64_t at = std::max(next_marker_us_, oldest);
    if (at <= newest) Arm(at, newest);
  }
  // Sends the armed marker now (EmitBatch does after a non-empty batch).
  void SendLatencyMarker() {
    if (!armed_) return;
    output_->PushLatencyMarker(marker_us_);
    armed_ = false;
    next_marker_us_ = marker_next_after_send_us_;
  }
  // Records the limiter grants now, at most max, by the task's flush deadline
  // (with_deadline false: a test's clock, whose time is not the deadline's);
  // a paced grant dates the latency marker.
  size_t AcquirePaced(RateLimiter& limiter, size_t max, bool with_deadline = true) {
    const size_t n = limiter.Acquire(max, with_deadline ? flush_deadline_ns_ : 0);
    if (n > 0 && limiter.paced()) DateLatencyMarker(limiter.granted_lag_ns(), limiter.granted_last_lag_ns());
    return n;
  }
  // The steady clock's time (MonotonicNanos) of the task's next flush of its
  // outputs; 0: none. A paced source makes what is due by then (RateLimiter).
  void set_flush_deadline_ns(int64_t deadline_ns) { flush_deadline_ns_ = deadline_ns; }
  int64_t flush_deadline_ns() const { return flush_deadline_ns_; }
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
  // more: the call emits more batches after this one (EmitRows): the latency
  // marker and the watermark wait for its last.
  void EmitBatch(RowBatch& batch, bool more = false);
  // Makes and emits n records, fill(row) making each, in batches of the
  // batch's capacity (RowBatch::capacity: a grant of 1,024 wide records is
  // several batches that stay in the cache); n == 0 emits the empty batch.
  template <typename Fill>
  void EmitRows(RowBatch& batch, size_t n, Fill&& fill) {
    do {
      batch.Clear();
      const size_t k = std::min(n, batch.capacity());
      for (size_t i = 0; i < k; ++i) fill(batch.Append());
      n -= k;
      EmitBatch(batch, n > 0);
    } while (n > 0);
  }

  Output* dead_letter_output_ = nullptr;

 private:
  bool has_event_time_ = false;
  proto::EventTimeSpec event_time_;
  int64_t max_timestamp_ = kMinWatermark;
  int64_t emitted_watermark_ = kMinWatermark;
  int64_t pending_watermark_ = kMinWatermark;  // computed, not yet emitted
  int64_t watermark_sent_ms_ = INT64_MIN / 2;  // steady clock; the first is due at once
  // Arms a marker dated at_us; the next is due a jittered gap later, past
  // not_before_us (sample times that fall in the same batch are skipped).
  void Arm(int64_t at_us, int64_t not_before_us) {
    armed_ = true;
    marker_us_ = at_us;
    int64_t next = at_us;
    do {
      marker_jitter_ ^= marker_jitter_ << 13;
      marker_jitter_ ^= marker_jitter_ >> 7;
      marker_jitter_ ^= marker_jitter_ << 17;
      const auto jitter = static_cast<int64_t>(marker_jitter_ % static_cast<uint64_t>(marker_interval_us_));
      next += std::max<int64_t>(1, marker_interval_us_ / 2 + jitter);
    } while (next <= not_before_us);
    marker_next_after_send_us_ = next;
  }
  int64_t marker_interval_us_ = 0;
  int64_t next_marker_us_ = 0;  // the wall clock; 0: not yet set
  int64_t marker_now_us_ = 0;
  int64_t marker_next_after_send_us_ = 0;
  uint64_t marker_jitter_ = 0x9e3779b97f4a7c15ull;
  bool armed_ = false;
  int64_t marker_us_ = 0;
  int64_t flush_deadline_ns_ = 0;
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
  std::vector<bool> reads_;                    // made, else null (SourceSpec.reads)
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
