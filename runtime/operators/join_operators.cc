#include "runtime/operators/join_operators.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"
#include "runtime/network/buffer.h"
#include "runtime/row_codec.h"
#include "state/key_groups.h"
#include "state/state_key.h"

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

absl::StatusOr<MapState*> DeclareMapState(KeyedStateBackend& backend, const char* name) {
  MapStateDescriptor descriptor;
  descriptor.name = name;
  return backend.GetMapState(descriptor);
}

absl::StatusOr<int64_t> CountEntries(KeyedStateBackend& backend, StateId state) {
  int64_t n = 0;
  RETURN_IF_ERROR(backend.ForEachKey(state, {0, kMaxKeyGroups - 1}, [&](const StateKeyView&) { ++n; }));
  return n;
}

// Cleanup timer payloads: [key group: 2][side + 2: 1][key] (one per key,
// side and granularity); of older savepoints [key group: 2][side: 1][map
// key: 16][key] (one per record).
constexpr size_t kMapKeySize = 16;
constexpr size_t kOldTimerHeaderSize = 3 + kMapKeySize;
constexpr char kCoarseTimer = 2;  // + side

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

absl::Status IntervalJoinOperator::Open(const OperatorContext& ctx) {
  for (int side = 0; side < 2; ++side) {
    if (keys_[side].empty()) return absl::InvalidArgumentError("interval join needs key fields on both sides");
    if (time_index_[side] < 0 || time_index_[side] >= static_cast<int>(schemas_[side].size())) {
      return absl::InvalidArgumentError("interval join needs event time on both inputs");
    }
  }
  if (lower_ > upper_) return absl::InvalidArgumentError("interval join: lower bound above upper bound");
  RETURN_IF_ERROR(owned_key_groups_.Init(ctx, "join"));
  if (ctx.restored) next_sequence_ = static_cast<uint64_t>(NowMillis()) << 20;
  ASSIGN_OR_RETURN(backend_, OpenKeyedStateBackend(ctx));
  for (int side = 0; side < 2; ++side) {
    ASSIGN_OR_RETURN(MapState * disk, DeclareMapState(*backend_, side == 0 ? "interval_join_left" : "interval_join_right"));
    ASSIGN_OR_RETURN(buffers_[side], BufferedMapState::Create(*backend_, disk, ctx.restored, buffer_memory_limit_));
  }
  ASSIGN_OR_RETURN(timers_, TimerQueue::Create(*backend_, "interval_join_timers", TimerQueue::kDefaultMemoryLimit,
                                               TimerQueue::kRebuiltOnRestore));
  if (ctx.restored) RETURN_IF_ERROR(RebuildCleanupTimers());
  return absl::OkStatus();
}

absl::Status IntervalJoinOperator::RebuildCleanupTimers() {
  // Snapshots leave out the timers held in memory: every restored record's
  // is added again (one per key, side and granule; adding one that a spill
  // kept in the snapshot keeps one). Restored records are all in RocksDB.
  int64_t records = 0;
  for (int side = 0; side < 2; ++side) {
    if (!buffers_[side]->may_be_on_disk()) continue;
    absl::Status s;
    RETURN_IF_ERROR(backend_->ForEachKey(buffers_[side]->disk_id(), {0, kMaxKeyGroups - 1}, [&](const StateKeyView& k) {
      if (!s.ok()) return;
      if (k.user_key.size() != kMapKeySize) {
        s = absl::DataLossError("interval join: corrupt buffered record key");
        return;
      }
      const int64_t t = ReadOrderedTime(k.user_key.data());
      s = AddCleanupTimer(k.key_group, side, k.key, side == 0 ? SatAdd(t, upper_) : SatAdd(t, -lower_));
      ++records;
    }));
    RETURN_IF_ERROR(s);
  }
  if (records > 0) spdlog::info("interval join: cleanup timers of {} restored records added", records);
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
  CountIn(batch.size());
  empty_probe_valid_ = false;  // the other side may have records since
  const Row* keyed = nullptr;  // the record before, whose key is in key_
  for (size_t i = 0; i < batch.size() && status_.ok(); ++i) {
    const Row& row = batch[i];
    const Datum& t = row[time_index_[side]];
    if (t.is_null || t.i <= watermark_) {
      counters_.late_records.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ProcessRecord(side, row, t.i, keyed);
    keyed = &row;
  }
  Emit(out_);
  out_.Clear();
}

void IntervalJoinOperator::ProcessRecord(int side, const Row& row, int64_t t, const Row* keyed) {
  const int other = 1 - side;
  // A record with the key of the one before it (q5's window results come
  // 3,000 with one key) has its key and key group.
  if (keyed == nullptr || !SameKey(schemas_[side], row, *keyed, keys_[side])) {
    key_.clear();
    EncodeKey(schemas_[side], row, keys_[side], &key_);
    key_group_ = owned_key_groups_.KeyGroupOf(schemas_[side], row, key_);
    if (!owned_key_groups_.Owns(key_group_)) return Fail(owned_key_groups_.Foreign(key_group_));
  }
  const int key_group = key_group_;

  // Partners on the other side: a left record at tl wants right records in
  // [tl + lower, tl + upper]; a right record at tr wants left ones in
  // [tr - upper, tr - lower]. One range scan of map keys [lo, hi + 1).
  const int64_t lo = side == 0 ? SatAdd(t, lower_) : SatAdd(t, -upper_);
  const int64_t hi = side == 0 ? SatAdd(t, upper_) : SatAdd(t, -lower_);
  absl::Status s;
  if (!empty_probe_valid_ || lo < empty_probe_lo_ || hi > empty_probe_hi_ || key_ != empty_probe_key_) {
    range_from_.clear();
    AppendOrderedTime(lo, &range_from_);
    range_to_.clear();
    if (hi != INT64_MAX) AppendOrderedTime(hi + 1, &range_to_);  // else: to the end
    bool corrupt = false, found = false;
    s = buffers_[other]->ForEachInRange(key_group, key_, range_from_, range_to_,
                                        [&](std::string_view, std::string_view value) {
                                          found = true;
                                          size_t pos = 0;
                                          if (!DecodeRow(schemas_[other], value, &pos, &partner_)) {
                                            corrupt = true;
                                            return false;
                                          }
                                          if (side == 0) {
                                            EmitPair(row, partner_);
                                          } else {
                                            EmitPair(partner_, row);
                                          }
                                          return true;
                                        });
    if (!s.ok()) return Fail(s);
    if (corrupt) return Fail(absl::DataLossError("interval join: corrupt buffered row"));
    if (!found) {
      empty_probe_valid_ = true;
      empty_probe_key_ = key_;
      empty_probe_lo_ = lo;
      empty_probe_hi_ = hi;
    }
  }

  // Keep the record until no later partner can arrive.
  const int64_t cleanup = side == 0 ? SatAdd(t, upper_) : SatAdd(t, -lower_);
  if (cleanup <= watermark_) return;
  map_key_.clear();
  AppendOrderedTime(t, &map_key_);
  AppendBigEndian64(next_sequence_++, &map_key_);
  value_.clear();
  EncodeRow(schemas_[side], row, &value_);
  s = buffers_[side]->Put(key_group, key_, map_key_, value_, /*new_key=*/true);
  if (!s.ok()) return Fail(s);
  s = AddCleanupTimer(key_group, side, key_, cleanup);  // once per key, side and granularity
  if (!s.ok()) return Fail(s);
}

absl::Status IntervalJoinOperator::AddCleanupTimer(int key_group, int side, std::string_view key, int64_t cleanup) {
  // The timer added last, again (the queue would keep one of the two). It
  // is still queued: it fires once the watermark reaches its due time, and
  // from then on no record has a cleanup time it covers (PushWatermark
  // forgets it anyway).
  const int64_t due = CleanupDue(cleanup);
  if (last_timer_valid_ && due == last_timer_due_ && side == last_timer_side_ && key == last_timer_key_) {
    return absl::OkStatus();
  }
  timer_payload_.clear();
  AppendKeyGroupBytes(key_group, &timer_payload_);
  timer_payload_.push_back(static_cast<char>(kCoarseTimer + side));
  timer_payload_.append(key);
  absl::Status s = timers_->Add(due, timer_payload_);
  last_timer_valid_ = s.ok();
  last_timer_due_ = due;
  last_timer_side_ = side;
  last_timer_key_.assign(key);
  return s;
}

int64_t IntervalJoinOperator::CleanupDue(int64_t cleanup) {
  constexpr int64_t g = kCleanupGranularityMs;
  const int64_t below = ((cleanup % g) + g) % g;  // cleanup - floor(cleanup / g) * g
  if (below == 0) return cleanup;
  if (cleanup > INT64_MAX - g) return INT64_MAX;
  return cleanup + (g - below);
}

void IntervalJoinOperator::RemoveExpired(int key_group, int side, std::string_view key, int64_t time) {
  // Left records are due at t + upper, right ones at t - lower: those with
  // t <= last are.
  const int64_t last = side == 0 ? SatAdd(time, -upper_) : SatAdd(time, lower_);
  range_to_.clear();
  // A saturated last takes them all (no last + 1). Timers at INT64_MAX never
  // fire: the end of input's watermark fires none (PushWatermark).
  if (last != INT64_MAX) AppendOrderedTime(last + 1, &range_to_);
  if (absl::Status s = buffers_[side]->RemoveBelow(key_group, key, range_to_); !s.ok()) Fail(s);
}

void IntervalJoinOperator::FireCleanupTimers(int64_t up_to) {
  absl::StatusOr<size_t> popped = timers_->PopUpTo(up_to, [&](int64_t time, std::string_view p) {
    if (!status_.ok()) return;
    if (p.size() < 3 || p[2] < 0 || p[2] > kCoarseTimer + 1 ||
        (p[2] < kCoarseTimer && p.size() < kOldTimerHeaderSize)) {
      return Fail(absl::DataLossError("interval join: corrupt cleanup timer"));
    }
    const int key_group = (static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]);
    if (p[2] >= kCoarseTimer) return RemoveExpired(key_group, p[2] - kCoarseTimer, p.substr(3), time);
    const int side = p[2];  // an older savepoint's timer: one record
    absl::Status s = buffers_[side]->Remove(key_group, p.substr(kOldTimerHeaderSize), p.substr(3, kMapKeySize));
    if (!s.ok()) Fail(s);
  });
  if (!popped.ok()) Fail(popped.status());
}

void IntervalJoinOperator::PushWatermark(int64_t watermark) {
  if (watermark <= watermark_) return;
  watermark_ = watermark;
  last_timer_valid_ = false;
  // A left record can still meet right records up to tl + upper; a right
  // record left records down to tr - lower. Their timers are due at those
  // times: drop the records no later record can meet. The end of input's
  // watermark is left alone: no record comes after it, a cleanup emits
  // nothing, and deleting every buffered record one by one only held up
  // the end of the job (q3 at 20M events: 1.6 s after its sources ended).
  if (status_.ok() && watermark != kMaxWatermark) FireCleanupTimers(watermark);
  output_->PushWatermark(watermark);
}

absl::StatusOr<int64_t> IntervalJoinOperator::BufferedRecords(int side) {
  if (!backend_) return absl::FailedPreconditionError("interval join is not open");
  BufferedMapState& buffer = *buffers_[side == 1 ? 1 : 0];
  int64_t n = static_cast<int64_t>(buffer.memory_entries());
  if (buffer.may_be_on_disk()) {
    ASSIGN_OR_RETURN(const int64_t on_disk, CountEntries(*backend_, buffer.disk_id()));
    n += on_disk;
  }
  return n;
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
      values_schema_.Add(broadcast_.field(f).name, broadcast_.field(f).type);
    }
  }
  out_.set_width(main_.size() + broadcast_values_.size());
}

absl::Status BroadcastJoinOperator::Open(const OperatorContext& ctx) {
  if (main_keys_.empty() || main_keys_.size() != broadcast_keys_.size()) {
    return absl::InvalidArgumentError("broadcast join needs the same number of key fields on both sides");
  }
  ASSIGN_OR_RETURN(backend_, OpenKeyedStateBackend(ctx));
  ASSIGN_OR_RETURN(state_, DeclareMapState(*backend_, "broadcast_state"));
  state_key_group_ = KeyGroupRangeForSubtask(ctx.max_parallelism, ctx.parallelism, ctx.subtask_index).start;
  // The mirror starts as RocksDB has it (empty unless the state was kept).
  table_.clear();
  backend_->SetCurrentKey(state_key_group_, "");
  bool corrupt = false;
  RETURN_IF_ERROR(state_->ForEach("", [&](std::string_view key, std::string_view value) {
    size_t pos = 0;
    Row& row = table_[std::string(key)];
    if (!DecodeRow(values_schema_, value, &pos, &row)) corrupt = true;
  }));
  if (corrupt) return absl::DataLossError("broadcast join: corrupt broadcast state");
  return absl::OkStatus();
}

void BroadcastJoinOperator::PutBroadcast(const Row& row) {
  key_.clear();
  EncodeKey(broadcast_, row, broadcast_keys_, &key_);
  Row& values = table_[key_];
  values.resize(broadcast_values_.size());
  for (size_t v = 0; v < broadcast_values_.size(); ++v) values[v] = row[broadcast_values_[v]];
  value_.clear();
  EncodeRow(values_schema_, values, &value_);
  absl::Status s = state_->Put("", key_, value_);
  if (!s.ok() && status_.ok()) status_ = s;
}

void BroadcastJoinOperator::PushInput(int input, RowBatch& batch) {
  CountIn(batch.size());
  if (input == 1) {
    backend_->SetCurrentKey(state_key_group_, "");
    for (size_t i = 0; i < batch.size() && status_.ok(); ++i) PutBroadcast(batch[i]);
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

absl::StatusOr<int64_t> BroadcastJoinOperator::StoredBroadcastRows() {
  if (!backend_) return absl::FailedPreconditionError("broadcast join is not open");
  return CountEntries(*backend_, state_->id());
}

}  // namespace vstream
