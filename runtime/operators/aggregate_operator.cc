#include "runtime/operators/aggregate_operator.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {

AggregateOperator::AggregateOperator(OperatorCounters& counters, Schema input, std::vector<int> key_fields,
                                     std::vector<proto::AggregateCall> calls, bool changelog,
                                     int retract_field)
    : StreamOperator(counters),
      input_(std::move(input)),
      key_fields_(std::move(key_fields)),
      calls_(std::move(calls)),
      changelog_(changelog),
      retract_field_(retract_field),
      out_(key_fields_.size() + calls_.size() + (changelog ? 1 : 0)) {
  if (retract_field_ >= 0) {
    proto::AggregateCall rows;  // the hidden count of rows still in
    rows.set_func("count");
    calls_.push_back(rows);
  }
}

absl::Status AggregateOperator::Open(const OperatorContext& ctx) {
  auto accs = AccumulatorSet::Create(calls_, input_);
  if (!accs.ok()) return accs.status();
  accs_ = std::move(*accs);
  if (retract_field_ >= static_cast<int>(input_.size())) {
    return absl::InvalidArgumentError("aggregate: retract field out of range");
  }
  if (retract_field_ >= 0) {
    for (const proto::AggregateCall& call : calls_) {
      if (!AccumulatorSet::Retractable(call.func())) {
        return absl::InvalidArgumentError(absl::StrCat("aggregate '", call.name(), "': ", call.func(),
                                                       " cannot take a retracted row back out"));
      }
    }
  }
  before_.resize(calls_.size());
  after_.resize(calls_.size());
  RETURN_IF_ERROR(owned_key_groups_.Init(ctx, "aggregate", key_fields_));
  return OpenKeyedValueState(ctx, "acc", &backend_, &acc_state_, ctx.state_ttl_ms);
}

void AggregateOperator::Push(RowBatch& batch) {
  if (changelog_ || retract_field_ >= 0) return PushUpdating(batch);
  const size_t n = batch.size();
  CountIn(n);
  out_.Clear();
  for (size_t i = 0; i < n && status_.ok(); ++i) {
    const Row& in = batch[i];
    key_.clear();
    EncodeKey(input_, in, key_fields_, &key_);
    const int kg = owned_key_groups_.KeyGroupOf(input_, in, key_);
    if (!owned_key_groups_.Owns(kg)) {
      status_ = owned_key_groups_.Foreign(kg);
      break;
    }
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

void AggregateOperator::AppendRow(const Row& in, const Row& result, bool retract) {
  Row& row = out_.Append();
  size_t f = 0;
  for (int k : key_fields_) row[f++] = in[k];
  const size_t aggregates = calls_.size() - (retract_field_ >= 0 ? 1 : 0);
  for (size_t c = 0; c < aggregates; ++c) row[f++] = result[c];
  if (changelog_) row[f].SetBool(retract);
}

namespace {

// Whether the first `n` aggregates of a and b are equal.
bool SameResult(const std::vector<FieldType>& types, size_t n, const Row& a, const Row& b) {
  for (size_t c = 0; c < n; ++c) {
    if (a[c].is_null != b[c].is_null) return false;
    if (a[c].is_null) continue;
    switch (types[c]) {
      case FieldType::kDouble:
        if (!(a[c].d == b[c].d)) return false;
        break;
      case FieldType::kString:
        if (a[c].s != b[c].s) return false;
        break;
      default:
        if (a[c].i != b[c].i) return false;
        break;
    }
  }
  return true;
}

}  // namespace

void AggregateOperator::PushUpdating(RowBatch& batch) {
  const size_t n = batch.size();
  CountIn(n);
  out_.Clear();
  const std::vector<FieldType>& types = accs_->result_types();
  for (size_t i = 0; i < n && status_.ok(); ++i) {
    const Row& in = batch[i];
    const bool retract = retract_field_ >= 0 && !in[retract_field_].is_null && in[retract_field_].i != 0;
    key_.clear();
    EncodeKey(input_, in, key_fields_, &key_);
    const int kg = owned_key_groups_.KeyGroupOf(input_, in, key_);
    if (!owned_key_groups_.Owns(kg)) {
      status_ = owned_key_groups_.Foreign(kg);
      break;
    }
    bool had = false;  // the key had a row before this record
    bool has = false;  // and after it
    absl::Status s = backend_->Update(acc_state_, kg, key_, [&](bool present, std::string* value) {
      had = present && !value->empty();
      if (had && changelog_) accs_->Result(*value, &before_, 0);  // to retract
      if (!retract) {
        accs_->Add(in, arrival_++, value);
      } else if (!had || !accs_->Retract(in, value)) {
        value->clear();  // a retraction of nothing (or of corrupt state): nothing left
      }
      has = !value->empty();
      if (has) {
        accs_->Result(*value, &after_, 0);
        // With retract_field the last result is the hidden count of rows in.
        if (retract_field_ >= 0 && after_.back().i <= 0) has = false;
      }
    });
    if (s.ok() && !has) s = backend_->Delete(acc_state_, kg, key_);
    if (!s.ok()) {
      status_ = s;
      break;
    }
    if (!changelog_) {
      if (has) {
        AppendRow(in, after_, false);
      } else if (had) {
        accs_->Result("", &after_, 0);  // every row taken back: the aggregates of none
        AppendRow(in, after_, false);
      }
      continue;
    }
    if (had && has && SameResult(types, types.size() - (retract_field_ >= 0 ? 1 : 0), before_, after_)) continue;
    if (had) AppendRow(in, before_, true);
    if (has) AppendRow(in, after_, false);
  }
  Emit(out_);
}

}  // namespace vstream
