#include "state/buffered_map_state.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "common/status_macros.h"
#include "state/cache_delta.h"
#include "state/state_key.h"

namespace vstream {

absl::StatusOr<std::unique_ptr<BufferedMapState>> BufferedMapState::Create(KeyedStateBackend& backend,
                                                                           MapState* disk, bool restored,
                                                                           size_t memory_limit) {
  rocksdb::ColumnFamilyHandle* cf = backend.column_family(disk->id());
  if (cf == nullptr) return absl::InvalidArgumentError("buffered map state: the map state has no column family");
  if (disk->ttl_ms() != 0) {
    return absl::InvalidArgumentError("buffered map state: only for a map state without TTL");
  }
  std::unique_ptr<BufferedMapState> state(new BufferedMapState(backend, disk, cf, restored, memory_limit));
  if (restored) RETURN_IF_ERROR(state->CountDisk());
  BufferedMapState* s = state.get();
  state->snapshot_delta_ = std::make_shared<const KeyedStateBackend::SnapshotDeltaFn>(
      [s](CacheDelta* delta) { s->AppendToDelta(delta); });
  backend.AddSnapshotDelta(state->snapshot_delta_);
  return state;
}

BufferedMapState::BufferedMapState(KeyedStateBackend& backend, MapState* disk, rocksdb::ColumnFamilyHandle* cf,
                                   bool restored, size_t memory_limit)
    : backend_(backend),
      disk_(disk),
      cf_(cf),
      cf_name_(cf->GetName()),
      memory_limit_(memory_limit),
      chunk_bytes_(std::clamp(memory_limit / 16, size_t{256}, kChunkBytes)),
      may_be_on_disk_(restored) {}

absl::Status BufferedMapState::CountDisk() {
  disk_count_ = 0;
  std::unique_ptr<rocksdb::Iterator> it(backend_.db()->NewIterator(rocksdb::ReadOptions(), cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++disk_count_;
  if (!it->status().ok()) {
    return absl::InternalError(absl::StrCat("buffered map state ", cf_name_, ": scan: ", it->status().ToString()));
  }
  may_be_on_disk_ = disk_count_ > 0;
  return absl::OkStatus();
}

size_t BufferedMapState::EntryBytes(std::string_view key) {
  // The B-tree slot (with node slack) and a key too long to live in it.
  return sizeof(std::pair<const Key, ValueRef>) + 16 + (key.size() > kInlineKeyBytes ? key.size() : 0);
}

void BufferedMapState::ComposeKey(int key_group, std::string_view key, std::string_view user_key) {
  key_.clear();
  AppendStateKeyPrefix(key_group, key, &key_);
  AppendStateNamespace("", &key_);
  key_.append(user_key.data(), user_key.size());
}

std::string_view BufferedMapState::ValueOf(const ValueRef& ref) const {
  const Chunk& c = chunks_[ref.chunk - first_chunk_];
  return std::string_view(c.data.get() + ref.offset, ref.size);
}

BufferedMapState::ValueRef BufferedMapState::Store(std::string_view key, std::string_view value) {
  const size_t record = CacheDelta::EncodedPutBytes(key.size(), value.size());
  if (chunks_.empty() || chunks_.back().capacity - chunks_.back().used < record) {
    Chunk c;
    c.capacity = std::max(chunk_bytes_, record);
    c.data = std::make_unique_for_overwrite<char[]>(c.capacity);
    bytes_ += c.capacity;
    chunks_.push_back(std::move(c));
  }
  Chunk& c = chunks_.back();
  CacheDelta::EncodePut(key, value, c.data.get() + c.used);
  ValueRef ref;
  ref.chunk = first_chunk_ + chunks_.size() - 1;
  ref.offset = static_cast<uint32_t>(c.used + CacheDelta::EncodedPutValueOffset(key.size(), value.size()));
  ref.size = static_cast<uint32_t>(value.size());
  c.used += record;
  ++c.live;
  return ref;
}

void BufferedMapState::Release(std::string_view key, const ValueRef& ref) {
  Chunk& c = chunks_[ref.chunk - first_chunk_];
  c.data[ref.offset - CacheDelta::EncodedPutValueOffset(key.size(), ref.size)] = kDeadRecord;
  --c.live;
  // Free the chunks at the front that nothing refers to any more, but keep
  // the one being filled. A chunk behind a live one waits for it: its bytes
  // count until then.
  while (chunks_.size() > 1 && chunks_.front().live == 0) {
    bytes_ -= chunks_.front().capacity;
    chunks_.pop_front();
    ++first_chunk_;
  }
}

absl::Status BufferedMapState::Put(int key_group, std::string_view key, std::string_view user_key,
                                   std::string_view value) {
  ComposeKey(key_group, key, user_key);
  lookup_.assign(key_);
  auto [it, fresh] = memory_.try_emplace(lookup_);
  if (fresh) {
    it->second = Store(key_, value);
    bytes_ += EntryBytes(key_);
  } else {
    const ValueRef old = it->second;
    it->second = Store(key_, value);
    Release(key_, old);
  }
  if (bytes_ > memory_limit_) return Spill();
  return absl::OkStatus();
}

absl::Status BufferedMapState::Remove(int key_group, std::string_view key, std::string_view user_key) {
  ComposeKey(key_group, key, user_key);
  lookup_.assign(key_);
  auto it = memory_.find(lookup_);
  if (it != memory_.end()) {
    // Put once (the contract): an entry in memory was never spilled.
    const ValueRef ref = it->second;
    memory_.erase(it);
    Release(key_, ref);
    bytes_ -= EntryBytes(key_);
    return absl::OkStatus();
  }
  if (!may_be_on_disk_) return absl::OkStatus();
  backend_.SetCurrentKey(key_group, key);
  RETURN_IF_ERROR(disk_->Remove("", user_key));
  // Once the spilled and restored entries are all gone, reads skip RocksDB
  // again. The count is of puts that reached the disk, so a remove of an
  // entry that was never there would make it low: an empty column family
  // is confirmed before reads stop looking.
  if (disk_count_ > 0 && --disk_count_ == 0) RETURN_IF_ERROR(CountDisk());
  return absl::OkStatus();
}

absl::Status BufferedMapState::ForEachInRange(
    int key_group, std::string_view key, std::string_view from, std::string_view to,
    absl::FunctionRef<bool(std::string_view user_key, std::string_view value)> fn) {
  ComposeKey(key_group, key, "");
  const size_t prefix_size = key_.size();
  upper_.assign(key_);
  if (!to.empty()) {
    upper_.append(to.data(), to.size());
  } else {
    ToPrefixSuccessor(&upper_);  // past every user key
  }
  key_.append(from.data(), from.size());
  lookup_.assign(key_);
  auto it = memory_.lower_bound(lookup_);
  auto in_range = [&] { return it != memory_.end() && (upper_.empty() || it->first.view() < std::string_view(upper_)); };
  if (!may_be_on_disk_) {
    for (; in_range(); ++it) {
      if (!fn(it->first.view().substr(prefix_size), ValueOf(it->second))) break;
    }
    return absl::OkStatus();
  }
  // Spilled or restored entries too: merge both in user key order (a key is
  // in one place only). The disk's are copied out first; this path is for
  // state past the memory limit, or just restored.
  size_t n = 0;
  backend_.SetCurrentKey(key_group, key);
  absl::Status s = disk_->ForEachInRange("", from, to, [&](std::string_view k, std::string_view v) {
    if (n == disk_entries_.size()) disk_entries_.emplace_back();
    disk_entries_[n].first.assign(k.data(), k.size());
    disk_entries_[n].second.assign(v.data(), v.size());
    ++n;
    return true;
  });
  if (!s.ok()) return s;
  size_t d = 0;
  while (d < n || in_range()) {
    const bool take_disk = d < n && (!in_range() || std::string_view(disk_entries_[d].first) <
                                                        it->first.view().substr(prefix_size));
    if (take_disk) {
      if (!fn(disk_entries_[d].first, disk_entries_[d].second)) break;
      ++d;
    } else {
      if (!fn(it->first.view().substr(prefix_size), ValueOf(it->second))) break;
      ++it;
    }
  }
  return absl::OkStatus();
}

absl::Status BufferedMapState::Spill() {
  if (memory_.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const auto& [key, ref] : memory_) {
    const std::string_view k = key.view();
    const std::string_view v = ValueOf(ref);
    batch.Put(cf_, rocksdb::Slice(k.data(), k.size()), rocksdb::Slice(v.data(), v.size()));
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // checkpoints, not the WAL, make state durable
  const rocksdb::Status s = backend_.db()->Write(wo, &batch);
  if (!s.ok()) return absl::InternalError(absl::StrCat("buffered map state ", cf_name_, ": spill: ", s.ToString()));
  spdlog::info("buffered map state {}: {} entries ({} MiB) spilled from memory to RocksDB", cf_name_,
               memory_.size(), bytes_ >> 20);
  disk_count_ += memory_.size();
  may_be_on_disk_ = true;
  memory_.clear();
  chunks_.clear();
  first_chunk_ = 0;
  bytes_ = 0;
  return absl::OkStatus();
}

void BufferedMapState::AppendToDelta(CacheDelta* delta) const {
  // Each run of live records in a chunk is copied at once; dead ones are
  // stepped over.
  for (const Chunk& c : chunks_) {
    std::string_view rest(c.data.get(), c.used);
    const char* run = rest.data();
    size_t run_records = 0;
    while (!rest.empty()) {
      const char* record = rest.data();
      const bool live = rest[0] != kDeadRecord;
      rest.remove_prefix(1);
      uint32_t n = 0;
      ReadVarint32(&rest, &n);
      rest.remove_prefix(n);
      ReadVarint32(&rest, &n);
      rest.remove_prefix(n);
      if (live) {
        ++run_records;
        continue;
      }
      delta->AddEncodedPuts(cf_name_, std::string_view(run, static_cast<size_t>(record - run)), run_records);
      run = rest.data();
      run_records = 0;
    }
    delta->AddEncodedPuts(cf_name_, std::string_view(run, static_cast<size_t>(rest.data() - run)), run_records);
  }
}

}  // namespace vstream
