#pragma once
// Two-input operators.
//
// IntervalJoinOperator (Flink's interval join): both inputs are keyed the
// same way; a left record at time tl joins every right record of its key at
// time tr with tl + lower <= tr <= tl + upper. Each side's records are kept
// until the watermark shows no partner can still arrive (left: tl + upper,
// right: tr - lower); each pair is emitted once, when its second record
// arrives. Records behind the watermark are late: counted and dropped.
// Buffers are per-subtask, in memory (bounded by the interval times the rate).
//
// BroadcastJoinOperator (Flink's broadcast state pattern): every subtask
// sees every record of the broadcast input (a BROADCAST edge) and keeps the
// latest row per broadcast key; each main record is emitted with the fields
// of the matching broadcast row, or nulls while none has arrived.
//
// Thread-compatible: run on their task's thread.

#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/jobgraph.pb.h"
#include "runtime/operators/operator.h"

namespace vstream {

class IntervalJoinOperator : public StreamOperator {
 public:
  IntervalJoinOperator(OperatorCounters& counters, Schema left, Schema right, const proto::IntervalJoinSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override { PushInput(0, batch); }
  void PushInput(int input, RowBatch& batch) override;
  void PushWatermark(int64_t watermark) override;
  void Finish() override { output_->Finish(); }

 private:
  using Buffer = absl::flat_hash_map<std::string, std::multimap<int64_t, Row>>;
  void EmitPair(const Row& left, const Row& right);

  Schema schemas_[2];
  std::vector<int> keys_[2];
  int time_index_[2];
  int64_t lower_, upper_;
  Buffer buffers_[2];
  int64_t watermark_ = INT64_MIN;
  RowBatch out_;
  std::string key_;
};

class BroadcastJoinOperator : public StreamOperator {
 public:
  BroadcastJoinOperator(OperatorCounters& counters, Schema main, Schema broadcast,
                        const proto::BroadcastJoinSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override { PushInput(0, batch); }
  void PushInput(int input, RowBatch& batch) override;
  void Finish() override { output_->Finish(); }

 private:
  Schema main_, broadcast_;
  std::vector<int> main_keys_, broadcast_keys_, broadcast_values_;
  absl::flat_hash_map<std::string, Row> table_;  // broadcast key -> value fields
  RowBatch out_;
  std::string key_;
};

}  // namespace vstream
