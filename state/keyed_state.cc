#include "state/keyed_state.h"

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "state/state_key.h"
#include "state/state_value_format.h"
#include "state/write_back_cache.h"

namespace vstream {

absl::Status FromRocksStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(AV(what), ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsMemoryLimit() || s.IsNoSpace()) return absl::ResourceExhaustedError(message);
  if (s.IsBusy() || s.IsTryAgain()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

KeyedState::KeyedState(StateContext& ctx, StateId id, std::string name,
                       rocksdb::ColumnFamilyHandle* cf,
                       std::shared_ptr<const StateBehavior> behavior, bool cached)
    : ctx_(ctx),
      id_(id),
      name_(std::move(name)),
      cf_(cf),
      behavior_(std::move(behavior)),
      cached_(cached) {}

void KeyedState::ComposeKey(std::string_view key_prefix, std::string_view ns) {
  key_.clear();
  key_.push_back(static_cast<char>((id_ >> 8) & 0xff));
  key_.push_back(static_cast<char>(id_ & 0xff));
  key_.append(key_prefix.data(), key_prefix.size());
  AppendStateNamespace(ns, &key_);
}

absl::StatusOr<StateLookup> KeyedState::ReadPayload(int64_t now_ms, std::string_view* payload) {
  read_buf_.Reset();
  rocksdb::Status s = ctx_.db->Get(ctx_.read_options, cf_, rocks_key(), &read_buf_);
  if (s.IsNotFound()) return StateLookup::kAbsent;
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("read state '", name_, "'"));
  *payload = std::string_view(read_buf_.data(), read_buf_.size());
  if (!behavior_->timed()) return StateLookup::kFound;
  int64_t write_ms = 0;
  if (!SplitTimedValue(*payload, &write_ms, payload)) {
    return absl::DataLossError(absl::StrCat("state '", name_, "': value shorter than its TTL header"));
  }
  return Expired(write_ms, now_ms) ? StateLookup::kAbsent : StateLookup::kFound;
}

rocksdb::Slice KeyedState::StoredForm(std::string_view payload, int64_t now_ms) {
  if (!behavior_->timed()) return rocksdb::Slice(payload.data(), payload.size());
  write_buf_.clear();
  AppendWriteTime(now_ms, &write_buf_);
  write_buf_.append(payload.data(), payload.size());
  return rocksdb::Slice(write_buf_);
}

absl::Status KeyedState::PutStored(const rocksdb::Slice& stored) {
  rocksdb::WriteBatch& batch = ctx_.write_batch;
  batch.Clear();
  rocksdb::Status s = batch.Put(cf_, rocks_key(), stored);
  if (s.ok()) s = ctx_.db->Write(ctx_.write_options, &batch);
  if (s.ok()) return absl::OkStatus();
  return FromRocksStatus(s, absl::StrCat("write state '", name_, "'"));
}

absl::Status KeyedState::MergeStored(const rocksdb::Slice& operand) {
  rocksdb::WriteBatch& batch = ctx_.write_batch;
  batch.Clear();
  rocksdb::Status s = batch.Merge(cf_, rocks_key(), operand);
  if (s.ok()) s = ctx_.db->Write(ctx_.write_options, &batch);
  if (s.ok()) return absl::OkStatus();
  return FromRocksStatus(s, absl::StrCat("merge into state '", name_, "'"));
}

absl::Status KeyedState::ClearCurrent() {
  if (cached_) {
    absl::StatusOr<WriteBackCache::Entry*> e = ctx_.cache->Acquire(
        cf_, cache_key(), behavior_->timed(), WriteBackCache::OnMiss::kAssumeAbsent);
    if (!e.ok()) return e.status();
    (*e)->value.clear();
    (*e)->present = false;
    return ctx_.cache->MarkDirty(*e);
  }
  return DeleteStored();
}

absl::Status KeyedState::DeleteStored() {
  rocksdb::WriteBatch& batch = ctx_.write_batch;
  batch.Clear();
  rocksdb::Status s = batch.Delete(cf_, rocks_key());
  if (s.ok()) s = ctx_.db->Write(ctx_.write_options, &batch);
  if (s.ok()) return absl::OkStatus();
  return FromRocksStatus(s, absl::StrCat("clear state '", name_, "'"));
}

}  // namespace vstream
