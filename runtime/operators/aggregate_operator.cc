#include "runtime/operators/aggregate_operator.h"

#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {

AggregateOperator::AggregateOperator(OperatorCounters& counters, Schema input, std::vector<int> key_fields,
                                     std::vector<proto::AggregateCall> calls)
    : StreamOperator(counters),
      input_(std::move(input)),
      key_fields_(std::move(key_fields)),
      calls_(std::move(calls)),
      out_(key_fields_.size() + calls_.size()) {}

absl::Status AggregateOperator::Open(const OperatorContext& ctx) {
  auto accs = AccumulatorSet::Create(calls_, input_);
  if (!accs.ok()) return accs.status();
  accs_ = std::move(*accs);
  max_parallelism_ = ctx.max_parallelism;
  return OpenKeyedValueState(ctx, "acc", &backend_, &acc_state_, ctx.state_ttl_ms);
}

void AggregateOperator::Push(RowBatch& batch) {
  const size_t n = batch.size();
  CountIn(n);
  out_.Clear();
  for (size_t i = 0; i < n && status_.ok(); ++i) {
    const Row& in = batch[i];
    key_.clear();
    EncodeKey(input_, in, key_fields_, &key_);
    const int kg = KeyGroupForHash(HashKeyBytes(key_), max_parallelism_);
    Row& row = out_.Append();
    absl::Status s = backend_->Update(acc_state_, kg, key_, [&](bool, std::string* value) {
      accs_->Add(in, arrival_++, value);
      size_t f = 0;
      for (int k : key_fields_) row[f++] = in[k];
      accs_->Result(*value, &row, f);
    });
    if (!s.ok()) {
      out_.Truncate(out_.size() - 1);
      status_ = s;
      break;
    }
  }
  Emit(out_);
}

}  // namespace vstream
