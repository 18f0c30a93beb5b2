#pragma once
// Sinks: file (JSON lines or CSV, one part file per subtask), stdout, and a
// blackhole that only counts (for benchmarks).
//
// The file sink writes `.part-<subtask>.<ext>.inprogress` and renames it to
// `part-<subtask>.<ext>` when its input ends: a file whose name starts
// with '.' is in progress, all others are final.

#include <cstdio>
#include <memory>
#include <string>

#include "runtime/formats/record_format.h"
#include "runtime/operators/operator.h"

namespace vstream {

class FileSink : public StreamOperator {
 public:
  FileSink(OperatorCounters& counters, Schema schema, std::string dir, std::string format);
  ~FileSink() override;
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void Finish() override;

 private:
  void FlushBuffer();

  Schema schema_;
  std::string dir_;
  std::string format_;
  std::unique_ptr<RecordWriter> writer_;
  std::FILE* file_ = nullptr;
  std::string in_progress_path_;
  std::string final_path_;
  std::string buffer_;
};

class StdoutSink : public StreamOperator {
 public:
  StdoutSink(OperatorCounters& counters, Schema schema, std::string format);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void Finish() override;

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
};

}  // namespace vstream
