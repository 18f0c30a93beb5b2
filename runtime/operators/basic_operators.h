#pragma once
// Stateless operators: filter, map (computed fields) and pass-through (union).

#include <vector>

#include "runtime/expr/expression.h"
#include "runtime/operators/operator.h"

namespace vstream {

// Keeps the rows for which the predicate is true, compacting the batch in place.
class FilterOperator : public StreamOperator {
 public:
  FilterOperator(OperatorCounters& counters, Expression predicate)
      : StreamOperator(counters), predicate_(std::move(predicate)) {}
  void Push(RowBatch& batch) override;
  void Finish() override { output_->Finish(); }
  // Shared: copies the rows it keeps instead of compacting the batch.
  bool ShareInput() override {
    shared_ = true;
    return true;
  }

 private:
  Expression predicate_;
  bool shared_ = false;
  RowBatch kept_;  // shared: the rows kept
};

// Computes a new row per input row from a list of expressions.
class MapOperator : public StreamOperator {
 public:
  MapOperator(OperatorCounters& counters, std::vector<Expression> exprs)
      : StreamOperator(counters), exprs_(std::move(exprs)), out_(exprs_.size()) {}
  void Push(RowBatch& batch) override;
  void Finish() override { output_->Finish(); }
  bool ShareInput() override { return true; }  // it only reads its input

 private:
  std::vector<Expression> exprs_;
  RowBatch out_;
};

// Forwards its input unchanged (union: the inputs are merged by the gate).
class PassThroughOperator : public StreamOperator {
 public:
  using StreamOperator::StreamOperator;
  void Push(RowBatch& batch) override {
    CountIn(batch.size());
    Emit(batch);
  }
  void Finish() override { output_->Finish(); }
};

}  // namespace vstream
