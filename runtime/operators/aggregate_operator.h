#pragma once
// The keyed running aggregate: for each input row, updates the row's key's
// accumulators in RocksDB keyed state and emits the updated result row: the
// key fields, then one field per aggregate. The aggregates are the window
// aggregates (runtime/operators/accumulators.h); first and last follow
// arrival order.
//
// Updating results (Flink's retract streams), both optional:
//   - changelog: the output gets a last field `retract: bool`. An update
//     emits the key's previous row again with retract = true, then its new
//     row with retract = false; a first row is only the new one. An update
//     that leaves the row unchanged emits nothing (as Flink's GroupAggFunction).
//   - retract_field: an input bool field (another aggregate's `retract`);
//     a row with it true takes an earlier row back out of its key's
//     accumulators (count, sum and avg only). A key whose rows were all taken
//     back is deleted (with changelog, its last row is retracted), and a
//     retraction of a key without state is ignored.
//
// State: one accumulator string per key, in column family "acc", under
// [key group][key]. With retract_field the accumulators carry one more,
// hidden count(*): the rows still in.

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
                    std::vector<proto::AggregateCall> calls, bool changelog = false,
                    int retract_field = -1);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void Finish() override { output_->Finish(); }
  KeyedStateBackend* keyed_state() override { return backend_.get(); }

 private:
  // Push of an updating aggregate (changelog or retract_field).
  void PushUpdating(RowBatch& batch);
  // Appends the key fields of `in`, the aggregates of `result` and, with
  // changelog, the retract flag.
  void AppendRow(const Row& in, const Row& result, bool retract);

  Schema input_;
  std::vector<int> key_fields_;
  std::vector<proto::AggregateCall> calls_;
  bool changelog_ = false;
  int retract_field_ = -1;
  Row before_;  // updating: the key's aggregates before the record, then after
  Row after_;
  std::unique_ptr<AccumulatorSet> accs_;
  OwnedKeyGroups owned_key_groups_;
  std::unique_ptr<KeyedStateBackend> backend_;
  StateId acc_state_ = 0;
  int64_t arrival_ = 0;  // orders first/last
  RowBatch out_;
  std::string key_;
  std::string value_;
};

}  // namespace vstream
