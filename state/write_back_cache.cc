#include "state/write_back_cache.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"
#include "state/state_value_format.h"

namespace vstream {

size_t WriteBackCache::KeyHash::operator()(std::string_view s) const { return HashKeyBytes(s); }

WriteBackCache::WriteBackCache(rocksdb::DB& db, const rocksdb::WriteOptions& write_options,
                               size_t capacity_bytes, CacheReservation* reservation)
    : db_(db),
      write_options_(write_options),
      capacity_(capacity_bytes),
      reservation_(reservation) {
  // The table holds at most capacity / kEntryOverhead entries: sized for
  // them now, it never rehashes. Growing as keys came, it rehashed every
  // key at each doubling, on the task thread: Nexmark q4's aggregate over
  // auctions, whose keys grow for minutes, stalled 50-100 ms a time. Its
  // pages are faulted in now (PrefaultingAllocator), while the task is
  // being deployed: the first keys, all over the table, touched a page each
  // for the first time, some 10 us apiece on the benchmark VM (the
  // clinical workload's first 300 ms of latency markers were late for it).
  map_.reserve(capacity_bytes / kEntryOverhead);
}

WriteBackCache::~WriteBackCache() {
  for (const std::shared_ptr<Capture>& c : overtaken_) {
    std::lock_guard<std::mutex> lock(c->mu);  // every entry is in copied_first already
    c->detached = true;
  }
  if (capture_ == nullptr) return;
  // The copy may run after the cache is gone: it then appends only
  // copied_first, which gets every entry it has not copied yet.
  std::lock_guard<std::mutex> lock(capture_->mu);
  if (!capture_->done.load(std::memory_order_acquire)) {
    for (Entry* e : capture_->entries) CaptureEntry(*capture_, *e, &capture_->copied_first);
  }
  capture_->detached = true;
}

void WriteBackCache::CaptureEntry(Capture& c, Entry& e, CacheDelta* into) {
  const uint32_t epoch = c.epoch;
  uint32_t seen = e.captured.load(std::memory_order_acquire);
  for (int spins = 0;; ++spins) {
    if ((seen & ~kClaimed) >= epoch) {
      // Captured (by this snapshot, or a later one that finished it first),
      // unless the other thread is copying it right now.
      if (seen != (epoch | kClaimed)) return;
      // The other thread copies it now. After a few spins, sleep until it
      // is done (not yield: a snapshot thread at a lower priority, preempted
      // while it holds the entry, would not get the CPU back from a task
      // that yields to it, and the task would spin for its time slice).
      if (spins > 64) e.captured.wait(seen, std::memory_order_acquire);
      seen = e.captured.load(std::memory_order_acquire);
      continue;
    }
    if (e.captured.compare_exchange_weak(seen, epoch | kClaimed, std::memory_order_acquire,
                                         std::memory_order_acquire)) {
      break;
    }
  }
  // Dirty when the snapshot was taken, and not changed since (a change
  // claims the entry first).
  if (e.dirty && e.dirty_epoch < epoch) AppendEntry(e, into);
  e.captured.store(epoch, std::memory_order_release);
  e.captured.notify_all();  // a load when no thread waits
}

void WriteBackCache::AppendEntry(const Entry& e, CacheDelta* delta) {
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

void WriteBackCache::CaptureBeforeWrite(Entry& e) {
  if (capture_->done.load(std::memory_order_acquire)) {
    // The copy ran (it has every entry it listed), or never will.
    capture_.reset();
    return;
  }
  CaptureEntry(*capture_, e, &capture_->copied_first);
}

void WriteBackCache::FinishCapture() {
  if (capture_ == nullptr) return;
  std::shared_ptr<Capture> c = std::move(capture_);
  if (c->done.load(std::memory_order_acquire)) return;
  // Snapshots overlap: the previous copy has not run (or not to the end).
  for (Entry* e : c->entries) CaptureEntry(*c, *e, &c->copied_first);
  // Its copy may still run, and look at the entries (finding each
  // captured): until it has, the destructor must detach it.
  std::erase_if(overtaken_, [](const std::shared_ptr<Capture>& o) { return o->done.load(std::memory_order_acquire); });
  overtaken_.push_back(std::move(c));
}

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
    until_settle_ = settle_every_;
    if (absl::Status s = Settle(); !s.ok()) return s;
  }
  auto it = map_.find(cache_key);
  if (it != map_.end()) {
    ++stats_.hits;
    Entry& e = pool_[it->second];
    e.referenced = true;
    BeforeWrite(e);  // the caller may change it
    return &e;
  }
  ++stats_.misses;
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
    BeforeWrite(pool_[i]);  // a snapshot's copy may still look at the slot
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
    RecentKeysFilter* written = WrittenKeys(key);
    rocksdb::Status s;
    if (written != nullptr && !written->MayContainKey(key)) {
      ++stats_.loads_skipped;
      s = rocksdb::Status::NotFound();
    } else {
      s = db_.Get(read_options_, cf, rocks_key, &e.value);
    }
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
  BeforeWrite(*entry);
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
    return;
  }
  NoteWritten(key);
  if (e.timed) {
    char header[kWriteTimeBytes];
    EncodeWriteTime(e.write_ms, header);
    const rocksdb::Slice parts[2] = {rocksdb::Slice(header, kWriteTimeBytes),
                                     rocksdb::Slice(e.value)};
    batch_.Put(e.cf, rocksdb::SliceParts(&rocks_key, 1), rocksdb::SliceParts(parts, 2));
  } else {
    batch_.Put(e.cf, rocks_key, e.value);
  }
}

void WriteBackCache::FilterWrittenKeys(int state_id, std::unique_ptr<RecentKeysFilter> filter) {
  const auto id = static_cast<size_t>(state_id);
  if (id >= written_keys_.size()) written_keys_.resize(id + 1);
  std::unique_ptr<RecentKeysFilter>& slot = written_keys_[id];
  if (slot != nullptr) {
    bytes_ -= slot->bytes();
    filter_bytes_ -= slot->bytes();
  }
  slot = filter != nullptr && filter->on() ? std::move(filter) : nullptr;
  if (slot != nullptr) {
    bytes_ += slot->bytes();
    filter_bytes_ += slot->bytes();
  }
}

void WriteBackCache::NoteWritten(std::string_view cache_key) {
  RecentKeysFilter* filter = WrittenKeys(cache_key);
  if (filter == nullptr) return;
  const size_t before = filter->bytes();
  filter->AddKey(cache_key);
  bytes_ = bytes_ - before + filter->bytes();
  filter_bytes_ = filter_bytes_ - before + filter->bytes();
  if (filter->on() && filter_bytes_ <= written_keys_filter_max_bytes()) return;
  if (filter->on()) {
    spdlog::warn("state cache: the filters of written keys would take {} bytes, over a quarter of the cache ({}): "
                 "the one that grew is dropped, and its state's cache misses read RocksDB",
                 filter_bytes_, written_keys_filter_max_bytes());
  }
  FilterWrittenKeys(static_cast<int>(StateOf(cache_key)), nullptr);
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
  // Evict a 256th of the capacity: a few hundred entries of a
  // 32 MiB cache, their dirty ones in one WriteBatch, so that no Acquire
  // holds the task long. (An eighth, 27,000 entries at once, held Nexmark
  // q4's aggregate over auctions 70-150 ms at the first eviction: its p99
  // at 356,000 events/s without checkpoints 17-19 ms, with a 256th 10.5-11;
  // the clinical workload's 2M messages were no slower, docs/benchmarks.md.)
  // The hand clears the bit of a referenced entry and passes on; it evicts
  // the first unreferenced one. Two turns of the clock clear every bit, so
  // the loop ends within 2n steps; it stops at once when `keep` is the only
  // entry left (an entry larger than the cache on its own).
  // At most a step of entries a call: a filter of written keys that grows
  // by a part at once (here too, as an evicted entry is written) is made
  // room for over the calls that follow.
  const size_t step = std::min(capacity_ / 8, std::max(capacity_ / kEvictFraction, kMinEvictBytes));
  const size_t n = pool_.size();
  size_t freed = 0;
  for (size_t steps = 0; freed < step && map_.size() > 1 && steps < 2 * n + 1; ++steps) {
    if (hand_ >= n) hand_ = 0;
    const uint32_t i = static_cast<uint32_t>(hand_++);
    Entry& e = pool_[i];
    if (!e.live || i == keep) continue;
    if (e.referenced) {
      e.referenced = false;
      continue;
    }
    BeforeWrite(e);
    if (e.dirty) {
      AddToBatch(e);
      ++stats_.written_on_evict;
    }
    freed += e.charged;
    Remove(i);
    ++stats_.evicted;
  }
  return WriteBatch();
}

void WriteBackCache::AppendDirty(CacheDelta* delta, std::vector<LaterDelta>* later) {
  FinishCapture();
  // Every listed slot (each dirty entry, and some no longer dirty): the
  // ones Settle has not looked at, and the ones marked or kept since.
  dirty_.insert(dirty_.end(), cold_.begin() + static_cast<std::ptrdiff_t>(cold_next_), cold_.end());
  cold_.swap(dirty_);
  dirty_.clear();
  cold_next_ = 0;
  ++epoch_;  // entries marked dirty from now on are not in this snapshot
  auto capture = std::make_shared<Capture>();
  capture->epoch = epoch_;
  capture->entries.reserve(cold_.size());
  for (uint32_t i : cold_) capture->entries.push_back(&pool_[i]);
  // Spread over about half of the Acquire calls the next interval will
  // make, judged by this one's: kMinSettleChunk to kMaxSettleChunk slots
  // (one WriteBatch) every settle_every_ calls, at least kSettleEvery apart.
  // Few slots among many calls are settled rarely, not at once: 9,000
  // slots at 16 per 16 calls took q4's aggregate over auctions the first
  // 150 ms after each 1 s checkpoint (its latency markers then were over
  // 8 ms). Many slots among few calls: at most kMaxSettleChunk at a time,
  // so that no Acquire stalls on one large write (after a quiet interval,
  // the rest waits for the next).
  const uint64_t span = std::max<uint64_t>(kSettleEvery, acquires_ / 2);
  const uint64_t rounds = span / kSettleEvery;
  settle_chunk_ = std::clamp<size_t>((cold_.size() + rounds - 1) / rounds, kMinSettleChunk, kMaxSettleChunk);
  const uint64_t calls = std::max<uint64_t>(1, (cold_.size() + settle_chunk_ - 1) / settle_chunk_);
  settle_every_ =
      static_cast<uint32_t>(std::clamp<uint64_t>(span / calls, kSettleEvery, std::numeric_limits<uint32_t>::max()));
  acquires_ = 0;
  until_settle_ = settle_every_;
  if (later == nullptr) {
    for (Entry* e : capture->entries) CaptureEntry(*capture, *e, delta);
    return;
  }
  if (capture->entries.empty()) return;
  capture_ = capture;
  // Done when the function is destroyed, run or not.
  std::shared_ptr<void> done(nullptr, [capture](void*) { capture->done.store(true, std::memory_order_release); });
  later->emplace_back([capture, done = std::move(done)](CacheDelta* d, size_t* budget) {
    std::lock_guard<std::mutex> lock(capture->mu);
    if (!capture->detached) {
      // Entries are scattered over the pool: each is fetched a few ahead,
      // so that the misses overlap.
      constexpr size_t kPrefetchAhead = 8;
      const std::vector<Entry*>& entries = capture->entries;
      const size_t begin = capture->next;
      const size_t end = begin + std::min(std::max<size_t>(*budget, 1), entries.size() - begin);
      for (size_t k = begin; k < end; ++k) {
        if (k + kPrefetchAhead < entries.size()) __builtin_prefetch(entries[k + kPrefetchAhead]);
        CaptureEntry(*capture, *entries[k], d);
      }
      capture->next = end;
      *budget -= std::min(*budget, end - begin);
      if (end < entries.size()) return false;
    }
    // Every entry is captured now, so the task thread adds no more.
    d->Append(capture->copied_first);
    return true;
  });
}

absl::Status WriteBackCache::Settle() {
  const size_t end = std::min(cold_.size(), cold_next_ + settle_chunk_);
  for (; cold_next_ < end; ++cold_next_) {
    const uint32_t i = cold_[cold_next_];
    Entry& e = pool_[i];
    // Written or left: off the list. (A slot another key took since is
    // clean, or was marked in the current epoch.)
    if (!e.live || !e.dirty) {
      e.listed = false;
      continue;
    }
    // Changed in the last kColdIntervals or since: stays listed.
    if (e.dirty_epoch + kColdIntervals >= epoch_) {
      dirty_.push_back(i);
      continue;
    }
    BeforeWrite(e);
    AddToBatch(e);
    batched_.push_back(i);
    e.listed = false;  // clean once the batch is written
    ++stats_.written_on_settle;
    if (std::find(settled_cfs_.begin(), settled_cfs_.end(), e.cf) == settled_cfs_.end()) {
      settled_cfs_.push_back(e.cf);
    }
  }
  RETURN_IF_ERROR(WriteBatch());
  if (cold_next_ == cold_.size() && !settled_cfs_.empty()) {
    // Out of the memtables before the next snapshot, whose RocksDB
    // checkpoint would otherwise flush them while the task waits.
    rocksdb::Status s = FlushInBackground(db_, settled_cfs_);
    settled_cfs_.clear();
    if (!s.ok()) return absl::InternalError(absl::StrCat("state cache settle: flush: ", s.ToString()));
  }
  return absl::OkStatus();
}

absl::Status WriteBackCache::Flush() {
  for (uint32_t i = 0; i < pool_.size(); ++i) {
    Entry& e = pool_[i];
    if (!e.dirty) continue;  // free slots are not dirty
    BeforeWrite(e);
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
