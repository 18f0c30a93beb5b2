#pragma once
// Stateless operators: filter, map (computed fields) and union.

#include <memory>
#include <vector>

#include "runtime/expr/expression.h"
#include "runtime/operators/operator.h"
#include "runtime/watermark_valve.h"

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

// A union: forwards its input unchanged. Heading its task, it reads its
// inputs through the task's gate, which merges them (their watermarks too).
// Chained behind operators of its task (its inputs are branches of one
// chain, jobmanager ChainedTo), each input is an Output of its own
// (AddChainedInput), and it merges them as the gate would: the smallest
// watermark of the inputs not idle (a branch may hold its watermark back,
// as a window firing in slices does), idle once every input is, and one
// Finish after the last input's.
class UnionOperator : public StreamOperator {
 public:
  using StreamOperator::StreamOperator;
  void Push(RowBatch& batch) override {
    CountIn(batch.size());
    Emit(batch);
  }
  void Finish() override { output_->Finish(); }
  // One more chained input, owned by the operator; call before the first
  // record. Its Push, PushWatermark, PushIdle and Finish are the input's.
  Output* AddChainedInput();

 private:
  class ChainedInput final : public Output {
   public:
    ChainedInput(UnionOperator* op, int index) : op_(op), index_(index) {}
    void Push(RowBatch& batch) override {
      op_->OnRecords(index_);
      op_->Push(batch);
    }
    void Finish() override { op_->OnFinish(index_); }
    void PushWatermark(int64_t watermark) override { op_->OnWatermark(index_, watermark); }
    void PushIdle() override { op_->OnIdle(index_); }
    void PushLatencyMarker(int64_t created_us) override { op_->PushLatencyMarker(created_us); }

   private:
    UnionOperator* op_;
    int index_;
  };
  void OnRecords(int input);
  void OnWatermark(int input, int64_t watermark);
  void OnIdle(int input);
  void OnFinish(int input);

  std::vector<std::unique_ptr<ChainedInput>> inputs_;
  std::unique_ptr<WatermarkValve> valve_;  // over inputs_; chained only
  int finished_ = 0;
};

}  // namespace vstream
