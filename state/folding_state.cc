#include "state/folding_state.h"

#include "state/write_back_cache.h"

namespace vstream {

void FoldingState::Result(std::string_view acc, std::string* result) const {
  if (behavior_->kind == StateKind::kAggregating && behavior_->aggregate.get_result) {
    result->clear();
    behavior_->aggregate.get_result(acc, result);
  } else {
    result->assign(acc.data(), acc.size());
  }
}

absl::Status FoldingState::Add(std::string_view ns, std::string_view input) {
  ComposeKey(ns);
  const int64_t now = NowIfTimed();
  if (cached_) {
    absl::StatusOr<WriteBackCache::Entry*> e = ctx_.cache->Acquire(
        cf_, cache_key(), behavior_->timed(), WriteBackCache::OnMiss::kLoad);
    if (!e.ok()) return e.status();
    WriteBackCache::Entry& entry = **e;
    if (entry.present && !Expired(entry.write_ms, now)) {
      behavior_->FoldNext(&entry.value, input);
    } else {
      behavior_->FoldFirst(&entry.value, input);
    }
    entry.present = true;
    entry.write_ms = now;
    return ctx_.cache->MarkDirty(&entry);
  }
  if (merge_) return MergeStored(StoredForm(input, now));
  std::string_view payload;
  absl::StatusOr<StateLookup> r = ReadPayload(now, &payload);
  if (!r.ok()) return r.status();
  if (*r == StateLookup::kFound) {
    acc_.assign(payload.data(), payload.size());
    behavior_->FoldNext(&acc_, input);
  } else {
    behavior_->FoldFirst(&acc_, input);
  }
  return PutStored(StoredForm(acc_, now));
}

absl::StatusOr<StateLookup> FoldingState::Get(std::string_view ns, std::string* result) {
  ComposeKey(ns);
  const int64_t now = NowIfTimed();
  if (cached_) {
    absl::StatusOr<WriteBackCache::Entry*> e = ctx_.cache->Acquire(
        cf_, cache_key(), behavior_->timed(), WriteBackCache::OnMiss::kLoad);
    if (!e.ok()) return e.status();
    if (!(*e)->present || Expired((*e)->write_ms, now)) return StateLookup::kAbsent;
    Result((*e)->value, result);
    return StateLookup::kFound;
  }
  std::string_view payload;
  absl::StatusOr<StateLookup> r = ReadPayload(now, &payload);
  if (r.ok() && *r == StateLookup::kFound) Result(payload, result);
  return r;
}

absl::Status FoldingState::Clear(std::string_view ns) {
  ComposeKey(ns);
  return ClearCurrent();
}

}  // namespace vstream
