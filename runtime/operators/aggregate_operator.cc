#include "runtime/operators/aggregate_operator.h"

#include <limits>

#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {

AggregateOperator::AggregateOperator(OperatorCounters& counters, Schema input,
                                     std::vector<int> key_fields, std::vector<AggregateDef> aggs)
    : StreamOperator(counters),
      input_(std::move(input)),
      key_fields_(std::move(key_fields)),
      aggs_(std::move(aggs)),
      out_(key_fields_.size() + aggs_.size()) {
  // Accumulator layout: count -> int; sum -> result type; min/max -> arg
  // type (null until the first non-null value); avg -> double sum, int count.
  for (size_t a = 0; a < aggs_.size(); ++a) {
    acc_index_.push_back(static_cast<int>(acc_schema_.size()));
    const AggregateDef& def = aggs_[a];
    switch (def.func) {
      case AggFunc::kCount:
      case AggFunc::kCountStar:
        acc_schema_.Add("c", FieldType::kInt);
        break;
      case AggFunc::kSum:
      case AggFunc::kMin:
      case AggFunc::kMax:
        acc_schema_.Add("v", def.result_type);
        break;
      case AggFunc::kAvg:
        acc_schema_.Add("s", FieldType::kDouble);
        acc_schema_.Add("n", FieldType::kInt);
        break;
    }
  }
  acc_.resize(acc_schema_.size());
}

absl::Status AggregateOperator::Open(const OperatorContext& ctx) {
  max_parallelism_ = ctx.max_parallelism;
  KeyedStateBackendOptions options;
  options.path = ctx.state_dir;
  auto backend = KeyedStateBackend::Open(options);
  if (!backend.ok()) return backend.status();
  backend_ = std::move(*backend);
  auto id = backend_->RegisterState("acc");
  if (!id.ok()) return id.status();
  acc_state_ = *id;
  return absl::OkStatus();
}

void AggregateOperator::Update(const Row& in, Row* acc, bool fresh) {
  for (size_t a = 0; a < aggs_.size(); ++a) {
    const AggregateDef& def = aggs_[a];
    Datum& v = (*acc)[acc_index_[a]];
    if (fresh) {
      v.is_null = true;
      if (def.func == AggFunc::kCount || def.func == AggFunc::kCountStar) v.SetInt(0);
      if (def.func == AggFunc::kAvg) {
        v.SetDouble(0);
        (*acc)[acc_index_[a] + 1].SetInt(0);
      }
    }
    if (def.func == AggFunc::kCountStar) {
      ++v.i;
      continue;
    }
    def.arg->Eval(in, &arg_value_);
    if (arg_value_.is_null) continue;  // SQL aggregates skip nulls
    const FieldType arg_type = def.arg->type();
    const bool arg_double = arg_type == FieldType::kDouble;
    const double as_double = arg_double ? arg_value_.d : static_cast<double>(arg_value_.i);
    switch (def.func) {
      case AggFunc::kCount:
        ++v.i;
        break;
      case AggFunc::kSum:
        if (def.result_type == FieldType::kDouble) {
          v.SetDouble((v.is_null ? 0 : v.d) + as_double);
        } else {
          v.SetInt((v.is_null ? 0 : v.i) + arg_value_.i);
        }
        break;
      case AggFunc::kMin:
      case AggFunc::kMax: {
        const bool is_min = def.func == AggFunc::kMin;
        bool replace = v.is_null;
        if (!replace) {
          if (arg_type == FieldType::kString) {
            replace = is_min ? arg_value_.s < v.s : arg_value_.s > v.s;
          } else if (arg_double) {
            replace = is_min ? arg_value_.d < v.d : arg_value_.d > v.d;
          } else {
            replace = is_min ? arg_value_.i < v.i : arg_value_.i > v.i;
          }
        }
        if (replace) {
          v.is_null = false;
          v.i = arg_value_.i;
          v.d = arg_value_.d;
          if (arg_type == FieldType::kString) v.s = arg_value_.s;
        }
        break;
      }
      case AggFunc::kAvg:
        v.d += as_double;
        ++(*acc)[acc_index_[a] + 1].i;
        break;
      case AggFunc::kCountStar:
        break;
    }
  }
}

void AggregateOperator::Result(const Row& in, const Row& acc, Row* out) {
  size_t f = 0;
  for (int k : key_fields_) (*out)[f++] = in[k];
  for (size_t a = 0; a < aggs_.size(); ++a, ++f) {
    const Datum& v = acc[acc_index_[a]];
    Datum& o = (*out)[f];
    if (aggs_[a].func == AggFunc::kAvg) {
      int64_t n = acc[acc_index_[a] + 1].i;
      if (n == 0) {
        o.SetNull();
      } else {
        o.SetDouble(v.d / static_cast<double>(n));
      }
    } else {
      o = v;
    }
  }
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
    absl::Status s = backend_->Get(acc_state_, kg, key_, &value_);
    bool fresh = true;
    if (s.ok()) {
      size_t pos = 0;
      fresh = !DecodeRow(acc_schema_, value_, &pos, &acc_);
    } else if (!absl::IsNotFound(s)) {
      status_ = s;
      break;
    }
    Update(in, &acc_, fresh);
    value_.clear();
    EncodeRow(acc_schema_, acc_, &value_);
    s = backend_->Put(acc_state_, kg, key_, value_);
    if (!s.ok()) {
      status_ = s;
      break;
    }
    Result(in, acc_, &out_.Append());
  }
  Emit(out_);
}

}  // namespace vstream
