#pragma once
// The dead letters of one operator subtask (schema and meaning in
// runtime/dead_letter.h): rows collected in a batch and pushed to the
// job's dead-letter stream, or, when the job declares none, appended to
// <TaskManager data dir>/dead-letter/<job id>/<vertex>-<subtask>.jsonl.
// Each is counted in the vertex's dead_letters metric. The file's path is
// logged once; the records never are, as they may identify patients.
//
// Used by the sources (records that do not parse) and process functions
// (records they reject). Task thread only.

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/formats/record_format.h"
#include "runtime/operators/operator.h"
#include "runtime/types.h"

namespace vstream {

class DeadLetters {
 public:
  // `role` names the operator in the log line ("source", "process").
  DeadLetters(OperatorCounters& counters, std::string role);
  ~DeadLetters();
  DeadLetters(const DeadLetters&) = delete;
  DeadLetters& operator=(const DeadLetters&) = delete;

  void Open(const OperatorContext& ctx) { ctx_ = ctx; }
  // The job's dead-letter stream; null (default): the file.
  void set_output(Output* output) { output_ = output; }

  // Adds one dead letter; flushes when the batch is full.
  void Add(std::string_view location, std::string_view reason, std::string_view raw);
  // Pushes or writes the dead letters added since the last flush.
  void Flush();

 private:
  OperatorCounters& counters_;
  const std::string role_;
  OperatorContext ctx_;
  Output* output_ = nullptr;
  RowBatch batch_;
  std::FILE* file_ = nullptr;
  std::unique_ptr<RecordWriter> writer_;
  std::string scratch_;
};

}  // namespace vstream
