#include "runtime/operators/basic_operators.h"

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

}  // namespace vstream
