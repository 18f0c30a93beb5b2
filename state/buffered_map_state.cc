#include "state/buffered_map_state.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "common/status_macros.h"
#include "state/cache_delta.h"
#include "state/key_groups.h"
#include "state/state_key.h"

namespace vstream {

absl::StatusOr<std::unique_ptr<BufferedMapState>> BufferedMapState::Create(KeyedStateBackend& backend,
                                                                           MapState* disk, bool restored,
                                                                           size_t memory_limit, int lanes) {
  rocksdb::ColumnFamilyHandle* cf = backend.column_family(disk->id());
  if (cf == nullptr) return absl::InvalidArgumentError("buffered map state: the map state has no column family");
  if (disk->ttl_ms() != 0) {
    return absl::InvalidArgumentError("buffered map state: only for a map state without TTL");
  }
  if (lanes < 1 || lanes > kLanes) {
    return absl::InvalidArgumentError(absl::StrCat("buffered map state: lanes must be 1 to ", kLanes, ", got ", lanes));
  }
  std::unique_ptr<BufferedMapState> state(new BufferedMapState(backend, disk, cf, restored, memory_limit, lanes));
  if (restored) RETURN_IF_ERROR(state->CountDisk());
  BufferedMapState* s = state.get();
  state->snapshot_delta_ = std::make_shared<const KeyedStateBackend::SnapshotDeltaFn>(
      [s](CacheDelta* delta, std::vector<KeyedStateBackend::LaterDelta>* later) { s->AppendToDelta(delta, later); });
  backend.AddSnapshotDelta(state->snapshot_delta_);
  return state;
}

BufferedMapState::~BufferedMapState() = default;

BufferedMapState::BufferedMapState(KeyedStateBackend& backend, MapState* disk, rocksdb::ColumnFamilyHandle* cf,
                                   bool restored, size_t memory_limit, int lanes)
    : backend_(backend),
      disk_(disk),
      cf_(cf),
      cf_name_(cf->GetName()),
      memory_limit_(memory_limit),
      lanes_(lanes),
      chunk_bytes_(std::clamp(memory_limit / 16, size_t{256}, kChunkBytes)),
      may_be_on_disk_(restored),
      disk_prefixes_(NewDiskFilter()) {}

std::unique_ptr<RecentKeysFilter> BufferedMapState::NewDiskFilter() const {
  // A first filter of at most a 64th of the limit, so that small limits
  // (tests) have one too.
  const size_t first_keys = std::min(RecentKeysFilter::kMinKeys, memory_limit_ / 64);
  return std::make_unique<RecentKeysFilter>(cf_name_, RecentKeysFilter::kNoExpiry, memory_limit_ / 4, first_keys);
}

bool BufferedMapState::MayBeOnDisk(int key_group, std::string_view key) {
  ComposeKey(key_group, key, "");
  return PrefixMayBeOnDisk(key_);
}

absl::Status BufferedMapState::CountDisk() {
  // Into a new filter, kept only once the scan is whole.
  size_t count = 0;
  std::unique_ptr<RecentKeysFilter> filter = NewDiskFilter();
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;  // every key
  std::unique_ptr<rocksdb::Iterator> it(backend_.db()->NewIterator(ro, cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++count;
    const std::string_view key(it->key().data(), it->key().size());
    // A malformed key (none has a prefix a read would seek) is left out.
    if (const size_t prefix = PrefixSize(key); prefix != std::string_view::npos) {
      filter->AddKey(key.substr(0, prefix));
    }
  }
  if (!it->status().ok()) {
    return absl::InternalError(absl::StrCat("buffered map state ", cf_name_, ": scan: ", it->status().ToString()));
  }
  disk_count_ = count;
  disk_prefixes_ = std::move(filter);
  may_be_on_disk_ = disk_count_ > 0;
  return absl::OkStatus();
}

size_t BufferedMapState::EntryBytes(std::string_view key, size_t prefix_size) {
  // Its slot (with a vector's slack) and the parts of its key too long to
  // live inline (a long prefix once per run, but counted per entry); runs
  // are counted apart (kRunBytes).
  const size_t user_key_size = key.size() - prefix_size;
  return sizeof(Slot) + 16 + (prefix_size > kInlineKeyBytes ? prefix_size : 0) +
         (user_key_size > kInlineUserKeyBytes ? user_key_size : 0);
}

size_t BufferedMapState::PrefixHash::operator()(std::string_view s) const { return HashKeyBytes(s); }

size_t BufferedMapState::PrefixSize(std::string_view key) {
  StateKeyView parts;
  if (!DecodeStateKey(key, &parts)) return std::string_view::npos;
  return key.size() - parts.user_key.size();
}

namespace {

uint64_t LoadBigEndian64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  return v;
}

}  // namespace

bool BufferedMapState::Less(std::string_view a, std::string_view b) {
  constexpr size_t kTwoWords = 16;
  if (a.size() == kTwoWords && b.size() == kTwoWords) {
    const uint64_t a0 = LoadBigEndian64(a.data()), b0 = LoadBigEndian64(b.data());
    if (a0 != b0) return a0 < b0;
    return LoadBigEndian64(a.data() + 8) < LoadBigEndian64(b.data() + 8);
  }
  return a < b;
}

size_t BufferedMapState::LowerBound(const Lane& lane, std::string_view user_key) {
  auto it = std::lower_bound(lane.slots.begin() + lane.front, lane.slots.end(), user_key,
                             [](const Slot& s, std::string_view k) { return Less(s.user_key.view(), k); });
  return static_cast<size_t>(it - lane.slots.begin());
}

BufferedMapState::ValueRef* BufferedMapState::Find(std::string_view prefix, std::string_view user_key,
                                                   Where* where) {
  auto it = by_prefix_.find(prefix);
  if (it == by_prefix_.end()) return nullptr;
  Run& r = runs_[it->second];
  // Removes take the oldest entry mostly: a lane's front.
  for (int l = 0; l < kLanes; ++l) {
    Lane& lane = r.lanes[l];
    if (!lane.empty() && lane.slots[lane.front].user_key.view() == user_key) {
      *where = Where{it->second, l, lane.front};
      return &lane.slots[lane.front].ref;
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    Lane& lane = r.lanes[l];
    if (lane.empty() || Less(lane.back(), user_key)) continue;
    const size_t i = LowerBound(lane, user_key);
    if (i < lane.slots.size() && lane.slots[i].user_key.view() == user_key) {
      *where = Where{it->second, l, i};
      return &lane.slots[i].ref;
    }
  }
  return nullptr;
}

std::pair<BufferedMapState::ValueRef*, bool> BufferedMapState::Emplace(std::string_view prefix,
                                                                       std::string_view user_key, bool new_key) {
  // The run of the last Emplace, if this is its prefix and no run was freed
  // since (a run in use keeps its prefix).
  if (emplaced_at_frees_ != runs_freed_ || runs_[emplaced_run_].prefix.view() != prefix) {
    auto it = by_prefix_.find(prefix);
    if (it == by_prefix_.end()) {
      uint32_t index;
      if (free_runs_.empty()) {
        index = static_cast<uint32_t>(runs_.size());
        runs_.emplace_back();
      } else {
        index = free_runs_.back();
        free_runs_.pop_back();
      }
      Run& r = runs_[index];
      r.prefix.assign(prefix);
      it = by_prefix_.emplace(r.prefix.view(), index).first;
      bytes_ += kRunBytes;
    }
    emplaced_run_ = it->second;
    emplaced_at_frees_ = runs_freed_;
  }
  Run& r = runs_[emplaced_run_];
  // Puts come in about user key (time) order: appended to the lane whose
  // last key is the highest below this one (an empty lane's is lowest).
  int append = -1;
  for (int l = 0; l < lanes_; ++l) {
    const Lane& lane = r.lanes[l];
    if (!lane.empty() && !Less(lane.back(), user_key)) continue;
    if (append < 0 || (!lane.empty() && (r.lanes[append].empty() || Less(r.lanes[append].back(), lane.back())))) {
      append = l;
    }
  }
  if (!new_key) {
    // A replacement is in a lane whose last key is not below this one.
    Where where;
    if (ValueRef* found = Find(prefix, user_key, &where)) return {found, false};
  }
  ++memory_entries_;
  Lane* lane;
  size_t i;
  if (append >= 0) {
    lane = &r.lanes[append];
    if (lane->empty()) {
      lane->slots.clear();
      lane->front = 0;
    }
    i = lane->slots.size();
    lane->slots.emplace_back();
  } else {
    // Below every lane's last: into the lane where the fewest move (none
    // into the free slot before a lane's front).
    const auto moves = [](const Lane& ln, size_t at) {
      return at == ln.front && ln.front > 0 ? size_t{0} : ln.slots.size() - at;
    };
    lane = &r.lanes[0];
    i = LowerBound(*lane, user_key);
    for (int l = 1; l < lanes_; ++l) {
      const size_t at = LowerBound(r.lanes[l], user_key);
      if (moves(r.lanes[l], at) < moves(*lane, i)) {
        lane = &r.lanes[l];
        i = at;
      }
    }
    ++inserts_;
    if (i == lane->front && lane->front > 0) {  // before the front: into the slot the last removal left
      i = --lane->front;
    } else {
      lane->slots.emplace(lane->slots.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  lane->slots[i].user_key.assign(user_key);
  return {&lane->slots[i].ref, true};
}

void BufferedMapState::EraseAt(const Where& where) {
  Run& r = runs_[where.run];
  Lane& lane = r.lanes[where.lane];
  --memory_entries_;
  if (where.slot == lane.front) {
    ++lane.front;
  } else {
    lane.slots.erase(lane.slots.begin() + static_cast<std::ptrdiff_t>(where.slot));
  }
  TidyLane(lane);
  if (lane.empty()) FreeRunIfEmpty(where.run);
}

void BufferedMapState::TidyLane(Lane& lane) {
  if (lane.empty()) {
    ReleaseSlots(lane);
  } else if (lane.front * 2 >= lane.slots.size()) {
    // Half of it dead: the rest moves down (a move per remove at most, amortized). Waiting for more dead slots
    // grew the vectors of keys that always have an entry to the wait's size: q7's 52,000 runs to 3 KB each.
    lane.slots.erase(lane.slots.begin(), lane.slots.begin() + lane.front);
    lane.front = 0;
  }
}

void BufferedMapState::FreeRunIfEmpty(uint32_t run) {
  Run& r = runs_[run];
  if (!std::all_of(std::begin(r.lanes), std::end(r.lanes), [](const Lane& l) { return l.empty(); })) return;
  // Empty: the run is free for another prefix.
  by_prefix_.erase(r.prefix.view());
  free_runs_.push_back(run);
  ++runs_freed_;
  bytes_ -= kRunBytes;
}

void BufferedMapState::ReleaseSlots(Lane& lane) {
  if (lane.slots.capacity() > kKeptRunSlots) {
    std::vector<Slot>().swap(lane.slots);  // a long lane's memory goes back
  } else {
    lane.slots.clear();
  }
  lane.front = 0;
}

void BufferedMapState::ClearMemory() {
  by_prefix_.clear();
  free_runs_.clear();
  ++runs_freed_;
  for (uint32_t i = 0; i < runs_.size(); ++i) {
    for (Lane& l : runs_[i].lanes) ReleaseSlots(l);
    free_runs_.push_back(i);
  }
  memory_entries_ = 0;
}

void BufferedMapState::ComposeKey(int key_group, std::string_view key, std::string_view user_key) {
  if (key_group == composed_group_ && key == composed_key_) {
    key_.resize(prefix_size_);
  } else {
    key_.clear();
    AppendStateKeyPrefix(key_group, key, &key_);
    AppendStateNamespace("", &key_);
    prefix_size_ = key_.size();
    composed_group_ = key_group;
    composed_key_.assign(key.data(), key.size());
  }
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
    c.data = std::shared_ptr<char[]>(new char[c.capacity]);
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
  const uint32_t record = ref.offset - static_cast<uint32_t>(CacheDelta::EncodedPutValueOffset(key.size(), ref.size));
  if (!pins_.empty() && ref.chunk <= pinned_through_ && !ReleasePins()) {
    deferred_dead_.push_back({ref.chunk, record});
  } else {
    c.data[record] = kDeadRecord;
  }
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

bool BufferedMapState::ReleasePins() {
  // Copies run in the order their snapshots were taken (one copy thread per TaskManager):
  // while the oldest runs, so may the others.
  while (!pins_.empty() && pins_.front()->released.load(std::memory_order_acquire)) pins_.pop_front();
  if (!pins_.empty()) return false;
  // A chunk freed meanwhile needs no mark.
  for (const RecordPos& r : deferred_dead_) {
    if (r.chunk >= first_chunk_) chunks_[r.chunk - first_chunk_].data[r.offset] = kDeadRecord;
  }
  deferred_dead_.clear();
  return true;
}

absl::Status BufferedMapState::Put(int key_group, std::string_view key, std::string_view user_key,
                                   std::string_view value, bool new_key) {
  ComposeKey(key_group, key, user_key);
  auto [ref, fresh] = Emplace(std::string_view(key_).substr(0, prefix_size_), user_key, new_key);
  if (fresh) {
    *ref = Store(key_, value);
    bytes_ += EntryBytes(key_, prefix_size_);
  } else {
    const ValueRef old = *ref;
    *ref = Store(key_, value);
    Release(key_, old);
  }
  if (memory_bytes() > memory_limit_) {
    if (!limit_logged_) {
      limit_logged_ = true;
      spdlog::info("buffered map state {}: {} entries reached the memory limit of {} KiB; the oldest spill to "
                   "RocksDB from now on",
                   cf_name_, memory_entries_, memory_limit_ >> 10);
    }
    return Settle(kSpillPerPut, /*over_limit=*/true);
  }
  if (first_chunk_ < settle_below_ && ++puts_since_settle_ >= kSettleEveryPuts) {
    puts_since_settle_ = 0;
    return Settle(kSettlePerRound);
  }
  return absl::OkStatus();
}

absl::Status BufferedMapState::Settle(size_t max_entries, bool over_limit) {
  // Collect first, write, then let go: the chunks (and the views into them)
  // stay until the entries are released, and a failed write loses nothing.
  settling_.clear();
  // Where the last call stopped (records before it are settled or dead).
  uint64_t seq = std::max(first_chunk_, settle_chunk_);
  size_t offset = settle_chunk_ >= first_chunk_ ? settle_offset_ : 0;
  // A bounded walk per call (dead records count too); never the chunk
  // being filled.
  const uint64_t below = over_limit ? std::numeric_limits<uint64_t>::max() : settle_below_;
  for (size_t examined = 0; settling_.size() < max_entries && examined < 64 * max_entries && seq < below &&
                            seq + 1 < first_chunk_ + chunks_.size();) {
    const Chunk& c = chunks_[seq - first_chunk_];
    if (offset >= c.used) {
      ++seq;
      offset = 0;
      continue;
    }
    ++examined;
    std::string_view rest(c.data.get() + offset, c.used - offset);
    const bool marked_dead = rest[0] == kDeadRecord;
    rest.remove_prefix(1);
    uint32_t n = 0;
    ReadVarint32(&rest, &n);
    const std::string_view key = rest.substr(0, n);
    rest.remove_prefix(n);
    ReadVarint32(&rest, &n);
    const std::string_view value = rest.substr(0, n);
    rest.remove_prefix(n);
    const uint32_t value_offset = static_cast<uint32_t>(value.data() - c.data.get());
    offset = static_cast<size_t>(rest.data() - c.data.get());
    if (marked_dead) continue;
    // Live if the map still points here (not removed while a snapshot's
    // copy read the chunk, nor replaced).
    const size_t prefix = PrefixSize(key);
    if (prefix == std::string_view::npos) continue;
    Where where;
    const ValueRef* ref = Find(key.substr(0, prefix), key.substr(prefix), &where);
    if (ref == nullptr || ref->chunk != seq || ref->offset != value_offset) continue;
    settling_.emplace_back(key, *ref);
  }
  settle_chunk_ = seq;
  settle_offset_ = offset;
  if (settling_.empty()) return FlushIfSettled();
  if (settle_batch_ == nullptr) settle_batch_ = std::make_unique<rocksdb::WriteBatch>();
  rocksdb::WriteBatch& batch = *settle_batch_;
  batch.Clear();
  for (const auto& [key, ref] : settling_) {
    const std::string_view value = ValueOf(ref);
    batch.Put(cf_, rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // checkpoints, not the WAL, make state durable
  const rocksdb::Status s = backend_.db()->Write(wo, &batch);
  if (!s.ok()) return absl::InternalError(absl::StrCat("buffered map state ", cf_name_, ": settle: ", s.ToString()));
  disk_count_ += settling_.size();
  (over_limit ? spilled_ : settled_) += settling_.size();
  may_be_on_disk_ = true;
  for (const auto& [key, ref] : settling_) {
    const size_t prefix = PrefixSize(key);
    AddOnDisk(key.substr(0, prefix));
    Where where;
    if (Find(key.substr(0, prefix), key.substr(prefix), &where) != nullptr) EraseAt(where);
    bytes_ -= EntryBytes(key, prefix);
    Release(key, ref);  // may free chunks: key is not used after
  }
  // Spilled entries reach the disk when their memtable fills: a spill
  // finishes no round of settling (though it may pass the end of one).
  if (!over_limit) settled_unflushed_ = true;
  return FlushIfSettled();
}

absl::Status BufferedMapState::FlushIfSettled() {
  if (!settled_unflushed_ || std::max(first_chunk_, settle_chunk_) < settle_below_) return absl::OkStatus();
  // This round is done: out of the memtable now, in the background, not
  // by the next snapshot's RocksDB checkpoint while the task waits.
  settled_unflushed_ = false;
  const rocksdb::Status s = FlushInBackground(*backend_.db(), {cf_});
  if (!s.ok()) return absl::InternalError(absl::StrCat("buffered map state ", cf_name_, ": flush: ", s.ToString()));
  return absl::OkStatus();
}

absl::Status BufferedMapState::Remove(int key_group, std::string_view key, std::string_view user_key) {
  ComposeKey(key_group, key, user_key);
  Where where;
  if (const ValueRef* found = Find(std::string_view(key_).substr(0, prefix_size_), user_key, &where)) {
    // Put once (the contract): an entry in memory was never spilled.
    const ValueRef ref = *found;
    EraseAt(where);
    Release(key_, ref);
    bytes_ -= EntryBytes(key_, prefix_size_);
    return absl::OkStatus();
  }
  if (!PrefixMayBeOnDisk(std::string_view(key_).substr(0, prefix_size_))) return absl::OkStatus();
  backend_.SetCurrentKey(key_group, key);
  RETURN_IF_ERROR(disk_->Remove("", user_key));
  // Once the spilled and restored entries are all gone, reads skip RocksDB
  // again. The count is of puts that reached the disk, so a remove of an
  // entry that was never there would make it low: an empty column family
  // is confirmed before reads stop looking.
  if (disk_count_ > 0 && --disk_count_ == 0) RETURN_IF_ERROR(CountDisk());
  return absl::OkStatus();
}

absl::Status BufferedMapState::RemoveBelow(int key_group, std::string_view key, std::string_view to) {
  ComposeKey(key_group, key, "");
  if (auto found = by_prefix_.find(std::string_view(key_)); found != by_prefix_.end()) {
    const uint32_t run_index = found->second;
    Run& r = runs_[run_index];
    for (Lane& lane : r.lanes) {
      // A lane is in user key order: the entries below `to` are its front.
      const size_t end = to.empty() ? lane.slots.size() : LowerBound(lane, to);
      for (size_t i = lane.front; i < end; ++i) {
        key_.resize(prefix_size_);  // the whole key, for its size
        key_.append(lane.slots[i].user_key.view());
        Release(key_, lane.slots[i].ref);
        bytes_ -= EntryBytes(key_, prefix_size_);
      }
      memory_entries_ -= end - lane.front;
      lane.front = static_cast<uint32_t>(end);
      TidyLane(lane);
    }
    FreeRunIfEmpty(run_index);
    key_.resize(prefix_size_);
  }
  if (!PrefixMayBeOnDisk(std::string_view(key_).substr(0, prefix_size_))) return absl::OkStatus();
  // Spilled or restored ones (none is in memory now): one at a time.
  std::vector<std::string> on_disk;
  RETURN_IF_ERROR(ForEachInRange(key_group, key, "", to, [&](std::string_view user_key, std::string_view) {
    on_disk.emplace_back(user_key);
    return true;
  }));
  for (const std::string& user_key : on_disk) RETURN_IF_ERROR(Remove(key_group, key, user_key));
  return absl::OkStatus();
}

absl::Status BufferedMapState::ForEachInRange(
    int key_group, std::string_view key, std::string_view from, std::string_view to,
    absl::FunctionRef<bool(std::string_view user_key, std::string_view value)> fn) {
  ComposeKey(key_group, key, "");
  auto found = by_prefix_.find(std::string_view(key_));
  const Run* run = found == by_prefix_.end() ? nullptr : &runs_[found->second];
  // The lanes merged: pos[l] is lane l's next slot; `lane` holds the next
  // entry in memory in user key order below `to` (-1: none left).
  size_t pos[kLanes] = {};
  int lane = -1;
  const auto next = [&] {
    lane = -1;
    if (run == nullptr) return;
    for (int l = 0; l < kLanes; ++l) {
      const Lane& ln = run->lanes[l];
      if (pos[l] >= ln.slots.size()) continue;
      const std::string_view k = ln.slots[pos[l]].user_key.view();
      if (!to.empty() && !Less(k, to)) continue;
      if (lane < 0 || Less(k, run->lanes[lane].slots[pos[lane]].user_key.view())) lane = l;
    }
  };
  const auto slot = [&]() -> const Slot& { return run->lanes[lane].slots[pos[lane]]; };
  if (run != nullptr) {
    for (int l = 0; l < kLanes; ++l) pos[l] = LowerBound(run->lanes[l], from);
  }
  next();
  if (!PrefixMayBeOnDisk(key_)) {
    while (lane >= 0) {
      if (!fn(slot().user_key.view(), ValueOf(slot().ref))) break;
      ++pos[lane];
      next();
    }
    return absl::OkStatus();
  }
  // Spilled or restored entries too: merge both in user key order (a key is
  // in one place only). The disk's are copied out first; this path is for
  // state past the memory limit, or just restored.
  size_t n = 0;
  ++disk_reads_;
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
  while (d < n || lane >= 0) {
    const bool take_disk = d < n && (lane < 0 || Less(disk_entries_[d].first, slot().user_key.view()));
    if (take_disk) {
      if (!fn(disk_entries_[d].first, disk_entries_[d].second)) break;
      ++d;
    } else {
      if (!fn(slot().user_key.view(), ValueOf(slot().ref))) break;
      ++pos[lane];
      next();
    }
  }
  return absl::OkStatus();
}

absl::Status BufferedMapState::Spill() {
  if (memory_entries_ == 0) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  composed_group_ = -1;  // key_ is not ComposeKey's below
  for (const auto& [prefix, index] : by_prefix_) {
    AddOnDisk(prefix);
    for (const Lane& lane : runs_[index].lanes) {
      for (size_t i = lane.front; i < lane.slots.size(); ++i) {
        key_.assign(prefix);
        key_.append(lane.slots[i].user_key.view());
        const std::string_view v = ValueOf(lane.slots[i].ref);
        batch.Put(cf_, rocksdb::Slice(key_.data(), key_.size()), rocksdb::Slice(v.data(), v.size()));
      }
    }
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // checkpoints, not the WAL, make state durable
  const rocksdb::Status s = backend_.db()->Write(wo, &batch);
  if (!s.ok()) return absl::InternalError(absl::StrCat("buffered map state ", cf_name_, ": spill: ", s.ToString()));
  spdlog::info("buffered map state {}: {} entries ({} MiB) spilled from memory to RocksDB", cf_name_,
               memory_entries_, bytes_ >> 20);
  disk_count_ += memory_entries_;
  may_be_on_disk_ = true;
  ClearMemory();
  // Sequence numbers go on: a running snapshot's copy may still read the
  // old chunks (its references keep them), and none of them needs a mark.
  first_chunk_ += chunks_.size();
  chunks_.clear();
  deferred_dead_.clear();
  bytes_ = 0;
  return absl::OkStatus();
}

void BufferedMapState::AppendToDelta(CacheDelta* delta, std::vector<KeyedStateBackend::LaterDelta>* later) {
  // What was in the previous snapshot and is in this one qualifies for
  // settling from now on: the chunks that were full then (the one being
  // filled took entries after it).
  settle_below_ = snapshot_end_;
  snapshot_end_ = chunks_.empty() ? first_chunk_ : first_chunk_ + chunks_.size() - 1;
  if (!ReleasePins()) {
    // Copies still run (snapshots overlap): the list keeps only records of
    // chunks not yet freed, so that it stays bounded if they keep
    // overlapping.
    std::erase_if(deferred_dead_, [&](const RecordPos& r) { return r.chunk < first_chunk_; });
  }
  std::vector<FrozenChunk> frozen;
  frozen.reserve(chunks_.size());
  for (size_t i = 0; i < chunks_.size(); ++i) frozen.push_back({chunks_[i].data, chunks_[i].used, first_chunk_ + i});
  // Records that died while an earlier snapshot's copy ran (seldom: only
  // when snapshots overlap).
  std::vector<RecordPos> dead_too = deferred_dead_;
  std::sort(dead_too.begin(), dead_too.end());
  if (later == nullptr) {
    AppendRecords(cf_name_, frozen, dead_too, delta);
    return;
  }
  if (frozen.empty()) return;
  auto pin = std::make_shared<Pin>();
  pins_.push_back(pin);
  pinned_through_ = frozen.back().seq;
  // Released when the function is destroyed, run or not.
  std::shared_ptr<void> release(nullptr, [pin](void*) { pin->released.store(true, std::memory_order_release); });
  // In one step: the chunks' live runs are copied whole, at memcpy speed.
  later->emplace_back([cf = cf_name_, frozen = std::move(frozen), dead_too = std::move(dead_too),
                       release = std::move(release)](CacheDelta* d, size_t* budget) {
    size_t bytes = 0;
    for (const FrozenChunk& c : frozen) bytes += c.used;
    d->Reserve(bytes);
    AppendRecords(cf, frozen, dead_too, d);
    *budget -= std::min(*budget, std::max<size_t>(1, frozen.size()));
    return true;
  });
}

void BufferedMapState::AppendRecords(std::string_view cf, const std::vector<FrozenChunk>& chunks,
                                     const std::vector<RecordPos>& dead_too, CacheDelta* delta) {
  // Each run of live records in a chunk is copied at once; dead ones are
  // stepped over.
  auto dead = dead_too.begin();
  for (const FrozenChunk& c : chunks) {
    std::string_view rest(c.data.get(), c.used);
    const char* run = rest.data();
    size_t run_records = 0;
    while (!rest.empty()) {
      const char* record = rest.data();
      const RecordPos pos{c.seq, static_cast<uint32_t>(record - c.data.get())};
      while (dead != dead_too.end() && *dead < pos) ++dead;
      const bool live = rest[0] != kDeadRecord && (dead == dead_too.end() || *dead != pos);
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
      delta->AddEncodedPuts(cf, std::string_view(run, static_cast<size_t>(record - run)), run_records);
      run = rest.data();
      run_records = 0;
    }
    delta->AddEncodedPuts(cf, std::string_view(run, static_cast<size_t>(rest.data() - run)), run_records);
  }
}

}  // namespace vstream
