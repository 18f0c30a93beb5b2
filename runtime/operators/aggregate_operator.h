#pragma once
// The keyed running aggregate: for each input row, updates the row's key's
// accumulators (count, sum, min, max, avg) in RocksDB keyed state and emits
// the updated result row: the key fields, then one field per aggregate.
//
// Accumulators are stored as one row in the compact row format, in a column
// family "acc", under [key group][key].

#include <memory>
#include <vector>

#include "runtime/expr/expression.h"
#include "runtime/operators/operator.h"
#include "state/keyed_state_backend.h"

namespace vstream {

enum class AggFunc { kCount, kCountStar, kSum, kMin, kMax, kAvg };

struct AggregateDef {
  AggFunc func;
  std::unique_ptr<Expression> arg;  // null for count(*)
  FieldType result_type;
};

class AggregateOperator : public StreamOperator {
 public:
  AggregateOperator(OperatorCounters& counters, Schema input, std::vector<int> key_fields,
                    std::vector<AggregateDef> aggs);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void Finish() override { output_->Finish(); }

 private:
  void Update(const Row& in, Row* acc, bool fresh);
  void Result(const Row& in, const Row& acc, Row* out);

  Schema input_;
  std::vector<int> key_fields_;
  std::vector<AggregateDef> aggs_;
  Schema acc_schema_;
  std::vector<int> acc_index_;  // first accumulator field of each aggregate
  int max_parallelism_ = 128;
  std::unique_ptr<KeyedStateBackend> backend_;
  StateId acc_state_ = 0;
  RowBatch out_;
  Row acc_;
  Datum arg_value_;
  std::string key_;
  std::string value_;
};

}  // namespace vstream
