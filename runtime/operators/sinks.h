#pragma once
// Sinks: file (JSON lines or CSV, part files per subtask), stdout, and a
// blackhole that only counts (for benchmarks).
//
// File sink. A file whose name starts with '.' is not (yet) output; all
// others are final and never change again. What happens to the part files
// depends on whether the job takes checkpoints (OperatorContext::checkpointing):
//
// Without checkpointing, each subtask writes `.part-<subtask>.<ext>.inprogress`
// and renames it to `part-<subtask>.<ext>` when its input ends: the output is
// published at the end of input only, and a failed job leaves nothing final.
//
// With checkpointing, the sink is a two-phase commit (Flink's FileSink with
// OnCheckpointRollingPolicy). It rolls a new part file at every checkpoint:
//
//   first record         checkpoint barrier n            checkpoint n completes
//       |                 (SnapshotOperatorState)         (NotifyCheckpointComplete)
//       v                        v                               v
//   .part-<s>-<seq>.<ext>.inprogress --> flushed, fsync'ed, closed --> part-<s>-<seq>.<ext>
//        (written)                        "pending for n" (same name)    (renamed, dir fsync'ed)
//
// A part file is created on its first record (no empty files; CSV files each
// start with a header row) and numbered by a sequence number per subtask that
// never goes back. The snapshot stores the subtask, the next sequence number
// and every pending file not yet published; the task's final checkpoint after
// Finish() (needs_final_checkpoint) publishes the last file. On a restore the
// files pending in the restored checkpoint are published (idempotently: one
// that is already visible was published before), and this subtask's other
// hidden files, written after that checkpoint by the failed attempt, are
// deleted. A fresh start (no restore) deletes this subtask's hidden leftovers
// in a reused directory too, never a visible file, and numbers after the
// highest visible sequence number of the subtask so that nothing is
// overwritten.
//
// Guarantee with checkpointing: in exactly_once mode every record is in the
// visible output exactly once, and only after the checkpoint that covers it
// completed (output latency ~ the checkpoint interval). In at_least_once mode
// the sink does not hold output back: it publishes each part file at the
// barrier (and at the end of input), and a restore keeps every visible file
// and numbers after them; records replayed after a restore are then written
// twice, none is lost. A pending file lost from the directory is logged and
// skipped.
//
// Thread-compatible: every method is called on the task thread.

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/formats/record_format.h"
#include "runtime/operators/operator.h"

namespace vstream {

class FileSink : public StreamOperator {
 public:
  // A closed part file that waits for its checkpoint to complete.
  struct PendingPart {
    int64_t checkpoint_id = 0;
    int64_t seq = 0;
  };

  FileSink(OperatorCounters& counters, Schema schema, std::string dir, std::string format);
  ~FileSink() override;
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  // Without checkpointing: publishes the part file. With checkpointing: only
  // flushes; the final checkpoint publishes.
  void Finish() override;

  std::string SnapshotOperatorState(int64_t checkpoint_id) override;
  absl::Status RestoreOperatorState(std::string_view state) override;
  void NotifyCheckpointComplete(int64_t checkpoint_id) override;
  bool needs_final_checkpoint() const override { return checkpointing_ && !at_least_once_; }
  void PushLatencyMarker(int64_t created_us) override { RecordLatency(created_us); }

 private:
  void FlushBuffer();
  // With checkpointing: opens the next part file (and cleans up first if
  // neither a restore nor an earlier call did). False (status_ set) on error.
  bool StartPartFile();
  // Deletes the hidden part files of `subtask` (a subtask that no longer
  // exists after a rescale).
  absl::Status DeleteHidden(int subtask, const std::string& format);
  // at_least_once: closes the open part file (if any) and makes it visible.
  void PublishOpenFile();
  // Flushes, fsyncs and closes the open part file.
  void ClosePartFile();
  // Deletes this subtask's hidden files in dir_. On a restore, also visible
  // ones numbered from next_seq_ on; on a fresh start, moves next_seq_ past
  // the visible ones instead.
  absl::Status CleanUpLeftovers(bool restored);
  std::string PartPath(int subtask, int64_t seq, const std::string& ext, bool hidden) const;

  Schema schema_;
  std::string dir_;
  std::string format_;
  std::unique_ptr<RecordWriter> writer_;
  std::string header_;
  std::FILE* file_ = nullptr;
  std::string in_progress_path_;  // of file_
  std::string final_path_;        // without checkpointing: where Finish() publishes file_
  std::string buffer_;

  // With checkpointing.
  bool checkpointing_ = false;
  bool at_least_once_ = false;        // publish at the barrier, not at completion
  int subtask_ = 0;
  bool cleaned_up_ = false;           // leftovers handled, by a restore or a fresh start
  int64_t next_seq_ = 0;              // of the next part file
  int64_t open_seq_ = -1;             // of file_
  std::vector<PendingPart> pending_;  // in checkpoint order, not yet published
};

class StdoutSink : public StreamOperator {
 public:
  StdoutSink(OperatorCounters& counters, Schema schema, std::string format);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void Finish() override;
  void PushLatencyMarker(int64_t created_us) override { RecordLatency(created_us); }

 private:
  Schema schema_;
  std::string format_;
  std::unique_ptr<RecordWriter> writer_;
  std::string buffer_;
};

class BlackholeSink : public StreamOperator {
 public:
  using StreamOperator::StreamOperator;
  void Push(RowBatch& batch) override { CountIn(batch.size()); }
  void Finish() override {}
  void PushLatencyMarker(int64_t created_us) override { RecordLatency(created_us); }
};

}  // namespace vstream
