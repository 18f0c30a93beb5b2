#include "state/timer_queue.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"

namespace vstream {

namespace {

absl::Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("timers: ", what, ": ", s.ToString()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TimerQueue>> TimerQueue::Create(KeyedStateBackend& backend, const std::string& name,
                                                               size_t memory_limit, Snapshots snapshots) {
  auto state = backend.GetTimerState(name);
  if (!state.ok()) return state.status();
  std::unique_ptr<TimerQueue> queue(
      new TimerQueue(backend.db(), backend.column_family((*state)->id()), memory_limit));
  if (absl::Status s = queue->LoadMinTime(); !s.ok()) return s;
  if (snapshots == kRebuiltOnRestore) return queue;
  TimerQueue* q = queue.get();
  queue->snapshot_delta_ = std::make_shared<const KeyedStateBackend::SnapshotDeltaFn>(
      [q](CacheDelta* delta, std::vector<KeyedStateBackend::LaterDelta>*) { q->AppendInMemory(delta); });
  backend.AddSnapshotDelta(queue->snapshot_delta_);
  return queue;
}

void TimerQueue::DiskKey(int64_t time, std::string_view payload, std::string* out) {
  out->clear();
  AppendOrderedTime(time, out);
  out->append(payload);
}

template <typename Fn>
void TimerQueue::ForEachInMemory(Fn&& fn) const {
  std::string key;
  for (const MemoryTimer& timer : memory_) {
    DiskKey(timer.time, timer.payload.view(), &key);
    fn(timer.time, std::string_view(key));
  }
}

void TimerQueue::AppendInMemory(CacheDelta* delta) const {
  const std::string& cf = cf_->GetName();
  ForEachInMemory([&](int64_t, std::string_view key) { delta->AddPut(cf, key, {}, {}); });
}

absl::Status TimerQueue::ForEachOnDisk(const std::function<void(int64_t, std::string_view)>& fn) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    if (k.size() < kTimeBytes) continue;
    fn(ReadOrderedTime(k.data()), std::string_view(k.data() + kTimeBytes, k.size() - kTimeBytes));
  }
  return FromRocks(it->status(), "scan");
}

absl::Status TimerQueue::LoadMinTime() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_));
  it->SeekToFirst();
  min_time_ = INT64_MAX;
  disk_from_.clear();
  if (it->Valid() && it->key().size() >= kTimeBytes) min_time_ = ReadOrderedTime(it->key().data());
  return FromRocks(it->status(), "scan");
}

absl::Status TimerQueue::Add(int64_t time, std::string_view payload) {
  if (payload.size() < kKeyGroupBytes) {
    return absl::InvalidArgumentError("timer payload without its key group");
  }
  memory_.emplace(time, payload);
  if (memory_.size() > memory_limit_) return SpillLatest(std::max(memory_.size() - memory_limit_, kSpillBatch));
  return absl::OkStatus();
}

absl::Status TimerQueue::Remove(int64_t time, std::string_view payload) {
  // A reused key: no allocation once its string has grown.
  remove_key_.time = time;
  remove_key_.payload.assign(payload);
  memory_.erase(remove_key_);
  if (time < min_time_) return absl::OkStatus();  // never spilled
  DiskKey(time, payload, &disk_key_);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return FromRocks(db_->Delete(wo, cf_, disk_key_), "delete");
}

absl::Status TimerQueue::SpillLatest(size_t n) {
  if (memory_.empty() || n == 0) return absl::OkStatus();
  auto first = memory_.end();
  for (size_t i = 0; i < n && first != memory_.begin(); ++i) --first;
  if (!limit_logged_ && memory_limit_ > 0 && n < memory_.size()) {
    spdlog::info("timer queue {}: {} timers reached the memory limit; the latest spill to RocksDB from now on",
                 cf_->GetName(), memory_.size());
    limit_logged_ = true;
  }
  // The spilled timers may come before the bounds of the on-disk ones; the
  // first of them is the earliest.
  std::string key;
  DiskKey(first->time, first->payload.view(), &key);
  min_time_ = std::min(min_time_, first->time);
  if (!disk_from_.empty() && key < disk_from_) disk_from_ = key;
  rocksdb::WriteBatch batch;
  for (auto it = first; it != memory_.end(); ++it) {
    DiskKey(it->time, it->payload.view(), &key);
    batch.Put(cf_, key, rocksdb::Slice());
  }
  memory_.erase(first, memory_.end());
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // checkpoints, not the WAL, make state durable
  return FromRocks(db_->Write(wo, &batch), "write");
}

absl::StatusOr<size_t> TimerQueue::PopUpTo(int64_t up_to, const std::function<void(int64_t, std::string_view)>& fn,
                                           size_t max) {
  due_.clear();
  if (max == 0) return 0;
  // In memory: the due ones are the set's head. Copied out and erased as a
  // range (a leaf at a time): one extract per timer rebalanced the tree each
  // time (541 ns a timer against 66, bench/state_bench --mode=timers).
  auto mem_end = memory_.begin();
  while (mem_end != memory_.end() && mem_end->time <= up_to && due_.size() < max) due_.push_back(*mem_end++);
  if (min_time_ > up_to) {  // nothing due on disk: the set's order, sorted and unique
    memory_.erase(memory_.begin(), mem_end);
    return Deliver(fn);
  }
  const size_t from_memory = due_.size();
  // On disk: up to `max` due ones too, in order. Every timer is at or after
  // disk_from_ (or min_time_); the ones before it were popped and are
  // tombstones now. Seeking past them (not SeekToFirst) keeps a pop from
  // wading through every timer ever deleted; the whole key, not only the
  // time, keeps slices of a window's timers (all of one time) from wading
  // through the ones the earlier slices deleted.
  std::string from = disk_from_;
  if (from.empty()) AppendOrderedTime(min_time_, &from);
  int64_t next_on_disk = INT64_MAX;  // the first on-disk time not read
  std::string next_key;              // and its key
  disk_due_.clear();
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_));
    for (it->Seek(from); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key();
      if (k.size() < kTimeBytes) continue;
      const int64_t time = ReadOrderedTime(k.data());
      if (time > up_to || disk_due_.size() == max) {
        next_on_disk = time;
        next_key.assign(k.data(), k.size());
        break;
      }
      disk_due_.emplace_back(time, std::string_view(k.data() + kTimeBytes, k.size() - kTimeBytes));
    }
    if (absl::Status s = FromRocks(it->status(), "scan"); !s.ok()) return s;
  }
  // Memory and disk may both hold a timer: merged in order, once each, and
  // the first `max` popped. The popped ones are a head of each.
  due_.insert(due_.end(), disk_due_.begin(), disk_due_.end());
  std::inplace_merge(due_.begin(), due_.begin() + static_cast<std::ptrdiff_t>(from_memory), due_.end());
  due_.erase(std::unique(due_.begin(), due_.end()), due_.end());
  if (due_.size() > max) due_.resize(max);
  if (due_.empty()) {
    min_time_ = next_on_disk;
    disk_from_ = std::move(next_key);
    return 0;
  }
  const MemoryTimer& last = due_.back();
  while (mem_end != memory_.begin() && last < *std::prev(mem_end)) --mem_end;
  memory_.erase(memory_.begin(), mem_end);
  rocksdb::WriteBatch deletes;
  min_time_ = next_on_disk;
  disk_from_ = std::move(next_key);
  for (const MemoryTimer& t : disk_due_) {
    DiskKey(t.time, t.payload.view(), &from);
    if (last < t) {  // read, not popped: still the earliest on disk
      min_time_ = t.time;
      disk_from_ = from;
      break;
    }
    deletes.Delete(cf_, from);
  }
  // A pop of many spilled timers does not keep its copies.
  if (disk_due_.capacity() > kKeptCapacity) std::vector<MemoryTimer>().swap(disk_due_);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  if (absl::Status s = FromRocks(db_->Write(wo, &deletes), "delete"); !s.ok()) return s;
  return Deliver(fn);
}

size_t TimerQueue::Deliver(const std::function<void(int64_t, std::string_view)>& fn) {
  // Move out first: fn may Add, and a nested PopUpTo must not see due_.
  std::vector<MemoryTimer> due;
  due.swap(due_);
  for (const MemoryTimer& timer : due) fn(timer.time, timer.payload.view());
  const size_t n = due.size();
  // Back for the next pop, with its capacity (unless a nested pop took
  // due_'s place, or it is larger than a pop of a slice needs).
  due.clear();
  if (due_.capacity() == 0 && due.capacity() <= kKeptCapacity) due_.swap(due);
  return n;
}

}  // namespace vstream
