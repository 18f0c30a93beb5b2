#pragma once
// Timers held in the state backend: an ordered queue of (time, payload)
// entries. Up to `memory_limit` of them live in an in-memory ordered set;
// beyond that the latest ones are spilled to their own RocksDB column family,
// keyed by [time: 8 bytes big-endian, sign-flipped][payload], so RocksDB's
// order is time order. Spilled kSpillBatch at a time, the latest first: the
// earliest, due soonest, stay in memory, and no Add writes much (spilling
// all 250,000 at once held Nexmark q3's join 150-190 ms). So a job with few
// open windows never touches RocksDB for timers, and one with millions keeps
// them on disk. A pop merges both in (time, payload) order, each timer once. A lower bound of the earliest
// on-disk time lets a watermark that fires nothing skip RocksDB entirely.
//
// Every payload starts with the key group of the key the timer belongs to,
// 2 bytes big-endian (AppendKeyGroupBytes, state_key.h); the rest is the
// operator's:
//
//   [time: 8][key group: 2][operator's bytes]    (the RocksDB key)
//
// Unlike keyed state, the column family is ordered by time, not by key
// group, so a restore at another parallelism (state_snapshot.h) scans it and
// keeps the timers whose payload's key group the new subtask owns. It finds
// the column family by its name: kTimerStatePrefix + the queue's name
// (keyed_state_backend.h).
//
// Thread-compatible: used by one task thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/compare.h"
#include "common/inline_bytes.h"
#include "common/wide_btree.h"
#include "state/keyed_state_backend.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
}  // namespace rocksdb

namespace vstream {

class TimerQueue {
 public:
  // Whether snapshots keep the timers held in memory (kSnapshotted), or
  // leave them out because the owner adds them again after a restore from
  // its own state (kRebuiltOnRestore: an interval join's cleanup timers
  // follow from its buffered records; q7's were 1.1 MB and 4-9 ms of a
  // checkpoint's synchronous part). Spilled timers are in the column
  // family, hence in snapshots, either way.
  enum Snapshots { kSnapshotted, kRebuiltOnRestore };

  // Declares the queue's column family, kTimerStatePrefix + `name`, in the
  // backend. memory_limit: timers kept in memory before spilling to RocksDB.
  static absl::StatusOr<std::unique_ptr<TimerQueue>> Create(KeyedStateBackend& backend, const std::string& name,
                                                            size_t memory_limit = kDefaultMemoryLimit,
                                                            Snapshots snapshots = kSnapshotted);
  // 250,000: a window over 100,000 keys holds two windows per key for a
  // while after each window's end (the watermark trails event time), and
  // at 100,000 the queue spilled to RocksDB at every window change (docs/
  // benchmarks.md, "Checkpointing"). About 16 MiB.
  static constexpr size_t kDefaultMemoryLimit = 250'000;

  // Bytes of the time before the payload in a RocksDB key, and of the key
  // group the payload starts with.
  static constexpr size_t kTimeBytes = 8;
  static constexpr size_t kKeyGroupBytes = 2;

  // Adds a timer; adding the same (time, payload) twice keeps one. The
  // payload must start with its key group (InvalidArgument if shorter).
  absl::Status Add(int64_t time, std::string_view payload);
  // Removes a timer if it is queued (Flink's deleteEventTimeTimer); removing
  // one that is not is a no-op. Touches RocksDB only when the timer may have
  // been spilled (time >= the earliest on-disk time): a blind delete there.
  absl::Status Remove(int64_t time, std::string_view payload);
  // Writes the timers held in memory to the column family (and drops them
  // from memory). Snapshots need not: the queue appends its in-memory timers
  // to the backend's snapshot delta (KeyedStateBackend::DirtyCacheEntries),
  // which restores put into the column family (unless kRebuiltOnRestore).
  absl::Status Persist() { return SpillLatest(memory_.size()); }
  // Removes the first `max` timers with time <= up_to (all of them by
  // default), then calls fn for each, in (time, payload) order. fn may Add
  // timers; those due too are popped by the next call. Returns how many were
  // popped: fewer than `max` when no more are due.
  absl::StatusOr<size_t> PopUpTo(int64_t up_to, const std::function<void(int64_t, std::string_view)>& fn,
                                 size_t max = SIZE_MAX);
  // Timers held in memory (the rest are in the column family).
  size_t memory_timers() const { return memory_.size(); }
  // Calls fn(time, payload) for each timer in the column family (spilled
  // there, or put there by a restore), in (time, payload) order; not the
  // ones held in memory. For an owner rebuilding its timers on restore.
  absl::Status ForEachOnDisk(const std::function<void(int64_t, std::string_view)>& fn) const;

 private:
  TimerQueue(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, size_t memory_limit)
      : db_(db), cf_(cf), memory_limit_(memory_limit) {}
  // The RocksDB key of a timer: [time: 8][payload].
  static void DiskKey(int64_t time, std::string_view payload, std::string* out);
  // The in-memory timers as puts into the column family.
  void AppendInMemory(CacheDelta* delta) const;
  // Calls fn(time, RocksDB key) for each in-memory timer, in time order.
  template <typename Fn>
  void ForEachInMemory(Fn&& fn) const;
  // Writes the latest n timers held in memory to the column family and
  // drops them from memory.
  absl::Status SpillLatest(size_t n);
  // Timers spilled at once over the limit (all 250,000 at once took
  // 150-190 ms).
  static constexpr size_t kSpillBatch = 256;
  // Sets min_time_ from the earliest timer on disk.
  absl::Status LoadMinTime();
  // Calls fn on due_ (sorted, unique).
  size_t Deliver(const std::function<void(int64_t, std::string_view)>& fn);

  // Registered with the backend; expires with the queue.
  std::shared_ptr<const KeyedStateBackend::SnapshotDeltaFn> snapshot_delta_;
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  // A timer in memory. Payloads up to kInlinePayloadBytes (most: a key
  // group, a short key, a window) live inside the B-tree's nodes, so that
  // finding a timer's place compares bytes in the node instead of following
  // a pointer per comparison (a cache miss each, with many open windows).
  static constexpr size_t kInlinePayloadBytes = 40;
  struct MemoryTimer {
    MemoryTimer() = default;
    MemoryTimer(int64_t t, std::string_view p) : time(t), payload(p) {}
    int64_t time = 0;
    InlineBytes<kInlinePayloadBytes> payload;
    friend bool operator==(const MemoryTimer&, const MemoryTimer&) = default;
    friend auto operator<=>(const MemoryTimer&, const MemoryTimer&) = default;
  };

  // MemoryTimer's own order (operator<=>) as absl's three-way comparison:
  // absl's B-tree then searches a node with one comparison a step and stops
  // at an equal one, where std::less took two.
  struct MemoryTimerOrder {
    absl::weak_ordering operator()(const MemoryTimer& a, const MemoryTimer& b) const {
      const std::strong_ordering c = a <=> b;
      if (c == 0) return absl::weak_ordering::equivalent;
      return c < 0 ? absl::weak_ordering::less : absl::weak_ordering::greater;
    }
  };

  size_t memory_limit_;
  bool limit_logged_ = false;
  WideBtreeSet<MemoryTimer, MemoryTimerOrder> memory_;
  // No on-disk timer is earlier than this; INT64_MAX: none on disk. Create
  // sets it from the column family (timers may be on disk from before, a
  // restore).
  int64_t min_time_ = INT64_MIN;
  std::vector<MemoryTimer> due_;
  std::vector<MemoryTimer> disk_due_;  // PopUpTo's due timers read from disk
  // The RocksDB key no on-disk timer comes before (all before it were
  // popped); empty: min_time_ is the bound.
  std::string disk_from_;
  // Pops keep their vectors' capacity up to this many timers (4 MiB).
  static constexpr size_t kKeptCapacity = 65'536;
  MemoryTimer remove_key_;  // reused by Remove
  std::string disk_key_;                        // reused by Remove
};

}  // namespace vstream
