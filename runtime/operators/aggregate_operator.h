#pragma once
// The keyed running aggregate: for each input row, updates the row's key's
// accumulators in RocksDB keyed state and emits the updated result row: the
// key fields, then one field per aggregate. The aggregates are the window
// aggregates (runtime/operators/accumulators.h); first and last follow
// arrival order.
//
// State: one accumulator string per key, in column family "acc", under
// [key group][key].

#include <memory>
#include <vector>

#include "proto/jobgraph.pb.h"
#include "runtime/operators/accumulators.h"
#include "runtime/operators/operator.h"
#include "state/keyed_state_backend.h"

namespace vstream {

class AggregateOperator : public StreamOperator {
 public:
  AggregateOperator(OperatorCounters& counters, Schema input, std::vector<int> key_fields,
                    std::vector<proto::AggregateCall> calls);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void Finish() override { output_->Finish(); }
  KeyedStateBackend* keyed_state() override { return backend_.get(); }

 private:
  Schema input_;
  std::vector<int> key_fields_;
  std::vector<proto::AggregateCall> calls_;
  std::unique_ptr<AccumulatorSet> accs_;
  int max_parallelism_ = 128;
  std::unique_ptr<KeyedStateBackend> backend_;
  StateId acc_state_ = 0;
  int64_t arrival_ = 0;  // orders first/last
  RowBatch out_;
  std::string key_;
  std::string value_;
};

}  // namespace vstream
