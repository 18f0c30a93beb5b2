#include "runtime/operators/basic_operators.h"

#include <optional>

namespace vstream {

void FilterOperator::Push(RowBatch& batch) {
  const size_t n = batch.size();
  CountIn(n);
  if (shared_) {
    kept_.set_width(batch.width());
    kept_.Clear();
    for (size_t i = 0; i < n; ++i) {
      if (predicate_.EvalPredicate(batch[i])) kept_.Append() = batch[i];
    }
    Emit(kept_);
    return;
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (predicate_.EvalPredicate(batch[i])) {
      if (kept != i) batch.SwapRows(kept, i);
      ++kept;
    }
  }
  batch.Truncate(kept);
  Emit(batch);
}

void MapOperator::Push(RowBatch& batch) {
  const size_t n = batch.size();
  CountIn(n);
  out_.Clear();
  for (size_t i = 0; i < n; ++i) {
    Row& row = out_.Append();
    for (size_t f = 0; f < exprs_.size(); ++f) exprs_[f].Eval(batch[i], &row[f]);
  }
  Emit(out_);
}

// ---------------------------------------------------------------- union

Output* UnionOperator::AddChainedInput() {
  inputs_.push_back(std::make_unique<ChainedInput>(this, static_cast<int>(inputs_.size())));
  valve_ = std::make_unique<WatermarkValve>(inputs_.size());
  return inputs_.back().get();
}

void UnionOperator::OnRecords(int input) { valve_->OnRecords(input); }

void UnionOperator::OnWatermark(int input, int64_t watermark) {
  if (std::optional<int64_t> w = valve_->OnWatermark(input, watermark)) output_->PushWatermark(*w);
}

void UnionOperator::OnIdle(int input) {
  const WatermarkValve::IdleResult r = valve_->OnIdle(input);
  if (r.watermark) output_->PushWatermark(*r.watermark);
  if (r.became_idle) output_->PushIdle();
}

void UnionOperator::OnFinish(int input) {
  // An ended input holds no watermark back (the task pushes the end of
  // event time before Finish, so this is rarely news).
  if (std::optional<int64_t> w = valve_->OnEnd(input)) output_->PushWatermark(*w);
  if (++finished_ == static_cast<int>(inputs_.size())) output_->Finish();
}

}  // namespace vstream
