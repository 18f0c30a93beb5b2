#include "state/write_back_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "state/key_groups.h"
#include "state/state_value_format.h"

namespace vstream {

size_t WriteBackCache::KeyHash::operator()(std::string_view s) const { return HashKeyBytes(s); }

WriteBackCache::WriteBackCache(rocksdb::DB& db, const rocksdb::WriteOptions& write_options,
                               size_t capacity_bytes, CacheReservation* reservation)
    : db_(db),
      write_options_(write_options),
      capacity_(capacity_bytes),
      reservation_(reservation) {}

void WriteBackCache::Recharge(Entry& e) {
  bytes_ -= e.charged;
  // An inline key is part of sizeof(Entry), which kEntryOverhead counts.
  e.charged = e.key_bytes.heap_bytes() + e.value.size() + kEntryOverhead;
  bytes_ += e.charged;
}

absl::StatusOr<WriteBackCache::Entry*> WriteBackCache::Acquire(rocksdb::ColumnFamilyHandle* cf,
                                                               std::string_view cache_key,
                                                               bool timed, OnMiss on_miss) {
  ++acquires_;
  if (cold_next_ < cold_.size() && --until_settle_ == 0) {
    until_settle_ = kSettleEvery;
    if (absl::Status s = Settle(); !s.ok()) return s;
  }
  auto it = map_.find(cache_key);
  if (it != map_.end()) {
    ++stats_.hits;
    Entry& e = pool_[it->second];
    e.referenced = true;
    return &e;
  }
  ++stats_.misses;
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    i = static_cast<uint32_t>(pool_.size());
    pool_.emplace_back();
  }
  Entry& e = pool_[i];
  e.index = i;
  e.key_bytes.assign(cache_key);
  e.cf = cf;
  e.timed = timed;
  e.dirty = false;
  e.present = false;
  e.stored = true;  // unknown unless loaded
  e.live = true;
  // Not yet used again: a scan of keys each used once is evicted before
  // entries in use.
  e.referenced = false;
  e.write_ms = 0;
  e.value.clear();
  e.charged = 0;
  if (on_miss == OnMiss::kLoad) {
    const std::string_view key = e.key();
    const rocksdb::Slice rocks_key(key.data() + 2, key.size() - 2);
    rocksdb::Status s = db_.Get(read_options_, cf, rocks_key, &e.value);
    if (s.ok()) {
      e.present = true;
      if (timed) {
        if (e.value.size() < kWriteTimeBytes) {
          e.live = false;
          free_.push_back(i);
          return absl::DataLossError("state value shorter than its TTL header");
        }
        e.write_ms = DecodeWriteTime(e.value.data());
        e.value.erase(0, kWriteTimeBytes);
      }
    } else if (s.IsNotFound()) {
      e.value.clear();
      e.stored = false;
    } else {
      e.live = false;
      free_.push_back(i);
      return absl::InternalError(absl::StrCat("state cache load: ", s.ToString()));
    }
  }
  map_.emplace(e.key(), i);
  Recharge(e);
  absl::Status s = EvictIfNeeded(i);
  if (!s.ok()) return s;
  return &e;
}

absl::Status WriteBackCache::MarkDirty(Entry* entry) {
  if (!entry->present && !entry->stored) {
    // Cleared, and RocksDB never held it: nothing to write, and a later read
    // finds nothing in RocksDB either. A window that fired frees its slot
    // now instead of waiting for the eviction hand behind the open ones.
    Remove(entry->index);
    ++stats_.dropped;
    return absl::OkStatus();
  }
  entry->dirty = true;
  entry->dirty_epoch = epoch_;
  if (!entry->listed) {
    entry->listed = true;
    dirty_.push_back(entry->index);
  }
  Recharge(*entry);
  return EvictIfNeeded(entry->index);
}

void WriteBackCache::Remove(uint32_t i) {
  Entry& e = pool_[i];
  map_.erase(e.key());
  e.live = false;
  bytes_ -= e.charged;
  e.charged = 0;
  e.dirty = false;
  free_.push_back(i);
}

void WriteBackCache::AddToBatch(Entry& e) {
  const std::string_view key = e.key();
  const rocksdb::Slice rocks_key(key.data() + 2, key.size() - 2);
  const bool was_stored = e.stored;
  // A failed write fails the backend, so the entry may count as written now.
  e.stored = e.present;
  if (!e.present) {
    if (was_stored) batch_.Delete(e.cf, rocks_key);
  } else if (e.timed) {
    char header[kWriteTimeBytes];
    EncodeWriteTime(e.write_ms, header);
    const rocksdb::Slice parts[2] = {rocksdb::Slice(header, kWriteTimeBytes),
                                     rocksdb::Slice(e.value)};
    batch_.Put(e.cf, rocksdb::SliceParts(&rocks_key, 1), rocksdb::SliceParts(parts, 2));
  } else {
    batch_.Put(e.cf, rocks_key, e.value);
  }
}

absl::Status WriteBackCache::WriteBatch() {
  if (batch_.Count() == 0) {  // e.g. entries whose puts and deletes cancelled out
    for (uint32_t i : batched_) pool_[i].dirty = false;
    batched_.clear();
    return absl::OkStatus();
  }
  rocksdb::Status s = db_.Write(write_options_, &batch_);
  batch_.Clear();
  if (!s.ok()) {
    batched_.clear();  // still dirty; the backend has failed anyway
    return absl::InternalError(absl::StrCat("state cache write-back: ", s.ToString()));
  }
  ++stats_.batches;
  for (uint32_t i : batched_) pool_[i].dirty = false;
  batched_.clear();
  return absl::OkStatus();
}

absl::Status WriteBackCache::EvictIfNeeded(uint32_t keep) {
  if (reservation_ != nullptr && bytes_ > reservation_->reserved_bytes()) {
    absl::Status s = reservation_->GrowTo(std::min(bytes_, capacity_ + CacheReservation::kChunkBytes));
    if (!s.ok()) return s;
  }
  if (bytes_ <= capacity_) return absl::OkStatus();
  // Evict down to 7/8 of the capacity, so that one WriteBatch carries the
  // dirty entries of many evictions.
  // The hand clears the bit of a referenced entry and passes on; it evicts
  // the first unreferenced one. Two turns of the clock clear every bit, so
  // the loop ends within 2n steps; it stops at once when `keep` is the only
  // entry left (an entry larger than the cache on its own).
  const size_t target = capacity_ - capacity_ / 8;
  const size_t n = pool_.size();
  for (size_t steps = 0; bytes_ > target && map_.size() > 1 && steps < 2 * n + 1; ++steps) {
    if (hand_ >= n) hand_ = 0;
    const uint32_t i = static_cast<uint32_t>(hand_++);
    Entry& e = pool_[i];
    if (!e.live || i == keep) continue;
    if (e.referenced) {
      e.referenced = false;
      continue;
    }
    if (e.dirty) {
      AddToBatch(e);
      ++stats_.written_on_evict;
    }
    Remove(i);
    ++stats_.evicted;
  }
  return WriteBatch();
}

void WriteBackCache::AppendDirty(CacheDelta* delta) {
  // Entries the last call listed and Settle has not reached are looked at
  // again below: cold_ starts afresh.
  cold_.clear();
  cold_next_ = 0;
  // The listed slots (roughly in the order they became dirty); the ones no
  // longer dirty (written, or freed) leave the list. Free slots are not dirty.
  // Entries are scattered over the pool, and each one's key and value live
  // elsewhere on the heap: the entry is fetched 2 * kPrefetchAhead slots
  // early and its key and value kPrefetchAhead early, so that the misses
  // overlap instead of stalling the walk one after another.
  constexpr size_t kPrefetchAhead = 8;
  const size_t n = dirty_.size();
  size_t kept = 0;
  for (size_t k = 0; k < n; ++k) {
    if (k + 2 * kPrefetchAhead < n) __builtin_prefetch(&pool_[dirty_[k + 2 * kPrefetchAhead]]);
    if (k + kPrefetchAhead < n) {
      const Entry& ahead = pool_[dirty_[k + kPrefetchAhead]];
      if (ahead.dirty) {
        __builtin_prefetch(ahead.key().data());
        __builtin_prefetch(ahead.value.data());
      }
    }
    const uint32_t i = dirty_[k];
    Entry& e = pool_[i];
    if (!e.dirty) {
      e.listed = false;
      continue;
    }
    dirty_[kept++] = i;
    if (e.dirty_epoch != epoch_) cold_.push_back(i);
    const std::string_view rocks_key = e.key().substr(2);
    const std::string& cf = e.cf->GetName();
    if (!e.present) {
      if (e.stored) delta->AddDelete(cf, rocks_key);
    } else if (e.timed) {
      char header[kWriteTimeBytes];
      EncodeWriteTime(e.write_ms, header);
      delta->AddPut(cf, rocks_key, std::string_view(header, kWriteTimeBytes), e.value);
    } else {
      delta->AddPut(cf, rocks_key, {}, e.value);
    }
  }
  dirty_.resize(kept);
  ++epoch_;
  // Spread over about half of the Acquire calls the next interval will
  // make, judged by this one's: that many entries every kSettleEvery calls.
  // At most kMaxSettleChunk at a time, so that no Acquire stalls on one
  // large write (after a quiet interval, the rest waits for the next).
  const uint64_t rounds = std::max<uint64_t>(1, acquires_ / 2 / kSettleEvery);
  settle_chunk_ = std::clamp<size_t>((cold_.size() + rounds - 1) / rounds, 16, kMaxSettleChunk);
  acquires_ = 0;
  until_settle_ = kSettleEvery;
}

absl::Status WriteBackCache::Settle() {
  const size_t end = std::min(cold_.size(), cold_next_ + settle_chunk_);
  for (; cold_next_ < end; ++cold_next_) {
    const uint32_t i = cold_[cold_next_];
    Entry& e = pool_[i];
    // Changed since (now in the current epoch), written or left: skip. A
    // slot another key took since is clean or of the current epoch too.
    if (!e.live || !e.dirty || e.dirty_epoch == epoch_) continue;
    AddToBatch(e);
    batched_.push_back(i);
    ++stats_.written_on_settle;
    if (std::find(settled_cfs_.begin(), settled_cfs_.end(), e.cf) == settled_cfs_.end()) {
      settled_cfs_.push_back(e.cf);
    }
  }
  RETURN_IF_ERROR(WriteBatch());
  if (cold_next_ == cold_.size() && !settled_cfs_.empty()) {
    // Out of the memtables before the next snapshot, whose RocksDB
    // checkpoint would otherwise flush them while the task waits.
    rocksdb::FlushOptions flush;
    flush.wait = false;
    flush.allow_write_stall = true;
    rocksdb::Status s = db_.Flush(flush, settled_cfs_);
    settled_cfs_.clear();
    if (!s.ok()) return absl::InternalError(absl::StrCat("state cache settle: flush: ", s.ToString()));
  }
  return absl::OkStatus();
}

absl::Status WriteBackCache::Flush() {
  for (uint32_t i = 0; i < pool_.size(); ++i) {
    Entry& e = pool_[i];
    if (!e.dirty) continue;  // free slots are not dirty
    AddToBatch(e);
    batched_.push_back(i);
    ++stats_.written_on_flush;
    if (batch_.GetDataSize() >= kFlushBatchBytes) {
      absl::Status s = WriteBatch();
      if (!s.ok()) return s;
    }
  }
  return WriteBatch();
}

}  // namespace vstream
