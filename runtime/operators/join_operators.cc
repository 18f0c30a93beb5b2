#include "runtime/operators/join_operators.h"

#include "absl/strings/str_cat.h"
#include "runtime/network/buffer.h"
#include "runtime/row_codec.h"

namespace vstream {

namespace {

absl::Status ResolveKeys(const Schema& schema, const google::protobuf::RepeatedPtrField<std::string>& names,
                         std::vector<int>* out) {
  out->clear();
  for (const auto& n : names) {
    const int idx = schema.IndexOf(n);
    if (idx < 0) return absl::InvalidArgumentError(absl::StrCat("unknown join key field ", n));
    out->push_back(idx);
  }
  return absl::OkStatus();
}

inline int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

}  // namespace

// ---------------------------------------------------------------- interval

IntervalJoinOperator::IntervalJoinOperator(OperatorCounters& counters, Schema left, Schema right,
                                           const proto::IntervalJoinSpec& spec)
    : StreamOperator(counters), lower_(spec.lower_ms()), upper_(spec.upper_ms()) {
  schemas_[0] = std::move(left);
  schemas_[1] = std::move(right);
  time_index_[0] = spec.left_time_index();
  time_index_[1] = spec.right_time_index();
  (void)ResolveKeys(schemas_[0], spec.left_key(), &keys_[0]);
  (void)ResolveKeys(schemas_[1], spec.right_key(), &keys_[1]);
  out_.set_width(schemas_[0].size() + schemas_[1].size());
}

absl::Status IntervalJoinOperator::Open(const OperatorContext&) {
  for (int side = 0; side < 2; ++side) {
    if (keys_[side].empty()) return absl::InvalidArgumentError("interval join needs key fields on both sides");
    if (time_index_[side] < 0 || time_index_[side] >= static_cast<int>(schemas_[side].size())) {
      return absl::InvalidArgumentError("interval join needs event time on both inputs");
    }
  }
  if (lower_ > upper_) return absl::InvalidArgumentError("interval join: lower bound above upper bound");
  return absl::OkStatus();
}

void IntervalJoinOperator::EmitPair(const Row& left, const Row& right) {
  Row& r = out_.Append();
  size_t f = 0;
  for (const Datum& d : left) r[f++] = d;
  for (const Datum& d : right) r[f++] = d;
  if (out_.full()) {
    Emit(out_);
    out_.Clear();
  }
}

void IntervalJoinOperator::PushInput(int input, RowBatch& batch) {
  const int side = input == 1 ? 1 : 0;
  const int other = 1 - side;
  CountIn(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const Row& row = batch[i];
    const Datum& t = row[time_index_[side]];
    if (t.is_null || t.i <= watermark_) {
      counters_.late_records.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    key_.clear();
    EncodeKey(schemas_[side], row, keys_[side], &key_);
    // Partners on the other side: a left record at tl wants right records in
    // [tl + lower, tl + upper]; a right record at tr wants left ones in
    // [tr - upper, tr - lower].
    auto it = buffers_[other].find(key_);
    if (it != buffers_[other].end()) {
      const int64_t lo = side == 0 ? SatAdd(t.i, lower_) : SatAdd(t.i, -upper_);
      const int64_t hi = side == 0 ? SatAdd(t.i, upper_) : SatAdd(t.i, -lower_);
      for (auto p = it->second.lower_bound(lo); p != it->second.end() && p->first <= hi; ++p) {
        if (side == 0) {
          EmitPair(row, p->second);
        } else {
          EmitPair(p->second, row);
        }
      }
    }
    buffers_[side][key_].emplace(t.i, row);
  }
  Emit(out_);
  out_.Clear();
}

void IntervalJoinOperator::PushWatermark(int64_t watermark) {
  if (watermark <= watermark_) return;
  watermark_ = watermark;
  // A left record can still meet right records up to tl + upper; a right
  // record left records down to tr - lower. Drop those no later record can meet.
  for (int side = 0; side < 2; ++side) {
    const int64_t reach = side == 0 ? upper_ : -lower_;
    for (auto it = buffers_[side].begin(); it != buffers_[side].end();) {
      auto& rows = it->second;
      while (!rows.empty() && SatAdd(rows.begin()->first, reach) <= watermark) rows.erase(rows.begin());
      if (rows.empty()) {
        buffers_[side].erase(it++);
      } else {
        ++it;
      }
    }
  }
  output_->PushWatermark(watermark);
}

// ---------------------------------------------------------------- broadcast

BroadcastJoinOperator::BroadcastJoinOperator(OperatorCounters& counters, Schema main, Schema broadcast,
                                             const proto::BroadcastJoinSpec& spec)
    : StreamOperator(counters), main_(std::move(main)), broadcast_(std::move(broadcast)) {
  (void)ResolveKeys(main_, spec.main_key(), &main_keys_);
  (void)ResolveKeys(broadcast_, spec.broadcast_key(), &broadcast_keys_);
  for (size_t f = 0; f < broadcast_.size(); ++f) {
    if (std::find(broadcast_keys_.begin(), broadcast_keys_.end(), static_cast<int>(f)) == broadcast_keys_.end()) {
      broadcast_values_.push_back(static_cast<int>(f));
    }
  }
  out_.set_width(main_.size() + broadcast_values_.size());
}

absl::Status BroadcastJoinOperator::Open(const OperatorContext&) {
  if (main_keys_.empty() || main_keys_.size() != broadcast_keys_.size()) {
    return absl::InvalidArgumentError("broadcast join needs the same number of key fields on both sides");
  }
  return absl::OkStatus();
}

void BroadcastJoinOperator::PushInput(int input, RowBatch& batch) {
  CountIn(batch.size());
  if (input == 1) {
    for (size_t i = 0; i < batch.size(); ++i) {
      key_.clear();
      EncodeKey(broadcast_, batch[i], broadcast_keys_, &key_);
      Row& values = table_[key_];
      values.resize(broadcast_values_.size());
      for (size_t v = 0; v < broadcast_values_.size(); ++v) values[v] = batch[i][broadcast_values_[v]];
    }
    return;
  }
  out_.Clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    const Row& row = batch[i];
    key_.clear();
    EncodeKey(main_, row, main_keys_, &key_);
    Row& r = out_.Append();
    size_t f = 0;
    for (const Datum& d : row) r[f++] = d;
    auto it = table_.find(key_);
    for (size_t v = 0; v < broadcast_values_.size(); ++v) {
      if (it == table_.end()) {
        r[f++].SetNull();
      } else {
        r[f++] = it->second[v];
      }
    }
  }
  Emit(out_);
}

}  // namespace vstream
