#include "state/value_state.h"

#include "state/write_back_cache.h"

namespace vstream {

absl::StatusOr<StateLookup> ValueState::Get(std::string_view ns, std::string* value) {
  ComposeKey(ns);
  return GetComposed(value);
}

absl::Status ValueState::Put(std::string_view ns, std::string_view value) {
  ComposeKey(ns);
  return PutComposed(value);
}

absl::Status ValueState::Clear(std::string_view ns) {
  ComposeKey(ns);
  return ClearComposed();
}

absl::StatusOr<StateLookup> ValueState::GetAt(std::string_view key_prefix, std::string_view ns,
                                              std::string* value) {
  ComposeKey(key_prefix, ns);
  return GetComposed(value);
}

absl::Status ValueState::PutAt(std::string_view key_prefix, std::string_view ns,
                               std::string_view value) {
  ComposeKey(key_prefix, ns);
  return PutComposed(value);
}

absl::Status ValueState::ClearAt(std::string_view key_prefix, std::string_view ns) {
  ComposeKey(key_prefix, ns);
  return ClearComposed();
}

absl::Status ValueState::ModifyAt(std::string_view key_prefix, std::string_view ns,
                                  absl::FunctionRef<StateChange(bool present, std::string* value)> fn) {
  ComposeKey(key_prefix, ns);
  const int64_t now = NowIfTimed();
  if (cached_) {
    absl::StatusOr<WriteBackCache::Entry*> e = ctx_.cache->Acquire(
        cf_, cache_key(), behavior_->timed(), WriteBackCache::OnMiss::kLoad);
    if (!e.ok()) return e.status();
    WriteBackCache::Entry& entry = **e;
    const bool present = entry.present && !Expired(entry.write_ms, now);
    if (!present) entry.value.clear();
    switch (fn(present, &entry.value)) {
      case StateChange::kNone:
        // An expired value cleared above reads as absent still (its write
        // time is unchanged).
        return absl::OkStatus();
      case StateChange::kChanged:
        entry.present = true;
        entry.write_ms = now;
        break;
      case StateChange::kCleared:
        entry.value.clear();
        entry.present = false;
        break;
    }
    return ctx_.cache->MarkDirty(&entry);
  }
  update_buf_.clear();
  absl::StatusOr<StateLookup> r = GetComposed(&update_buf_);
  if (!r.ok()) return r.status();
  switch (fn(*r == StateLookup::kFound, &update_buf_)) {
    case StateChange::kNone:
      return absl::OkStatus();
    case StateChange::kChanged:
      return PutComposed(update_buf_);
    case StateChange::kCleared:
      return ClearComposed();
  }
  return absl::OkStatus();
}

absl::StatusOr<StateLookup> ValueState::GetComposed(std::string* value) {
  const int64_t now = NowIfTimed();
  if (cached_) {
    absl::StatusOr<WriteBackCache::Entry*> e = ctx_.cache->Acquire(
        cf_, cache_key(), behavior_->timed(), WriteBackCache::OnMiss::kLoad);
    if (!e.ok()) return e.status();
    if (!(*e)->present || Expired((*e)->write_ms, now)) return StateLookup::kAbsent;
    value->assign((*e)->value);
    return StateLookup::kFound;
  }
  std::string_view payload;
  absl::StatusOr<StateLookup> r = ReadPayload(now, &payload);
  if (r.ok() && *r == StateLookup::kFound) value->assign(payload.data(), payload.size());
  return r;
}

absl::Status ValueState::PutComposed(std::string_view value) {
  const int64_t now = NowIfTimed();
  if (cached_) {
    absl::StatusOr<WriteBackCache::Entry*> e = ctx_.cache->Acquire(
        cf_, cache_key(), behavior_->timed(), WriteBackCache::OnMiss::kAssumeAbsent);
    if (!e.ok()) return e.status();
    (*e)->value.assign(value.data(), value.size());
    (*e)->present = true;
    (*e)->write_ms = now;
    return ctx_.cache->MarkDirty(*e);
  }
  return PutStored(StoredForm(value, now));
}

absl::Status ValueState::ClearComposed() { return ClearCurrent(); }

}  // namespace vstream
