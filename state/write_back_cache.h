#pragma once
// Private to state/: a bounded write-back cache of hot keys, shared by the
// cached states (ValueState, ReducingState, AggregatingState with
// `write_back_cache`) of one backend.
//
// Reads hit the cache; a miss reads RocksDB once and keeps the value (or its
// absence). Writes only change the cached entry. When the cache grows past
// its capacity, a 256th of it is evicted, chosen by CLOCK (second chance:
// a hit sets the entry's `referenced` bit, and the eviction hand passes over
// referenced entries once, clearing the bit), and the dirty ones reach
// RocksDB in one WriteBatch; Flush() writes every dirty entry. CLOCK, not an
// LRU list: a hit writes one bit of the entry it returns anyway, where moving
// an entry to the front of a list touched three other entries, each a cache
// miss on a large cache (docs/benchmarks.md). A cleared entry that RocksDB never held leaves the
// cache at once, without a tombstone. Entries live in a pool whose strings
// keep their capacity, so a steady-state update allocates nothing.
//
// The cache's bytes are charged to the TaskManager's shared block cache
// through a CacheReservation, so they count against the state budget.
//
// Snapshots copy the dirty entries after the synchronous part. AppendDirty
// only lists them (the entries' addresses; the pool keeps them in place)
// and leaves the work that copies them, a step of some entries at a time
// (LaterDelta, state/cache_delta.h), which the checkpoint's asynchronous
// part runs: on another thread, or on the task thread between batches of
// its input (runtime/task_checkpoints.h). Until it has copied an entry, the
// task thread copies the entry itself before changing it (copy on write):
// each entry's `captured` word says which snapshot has it, and whichever
// thread claims it first copies it. (Copied at once in the synchronous
// part, the clinical workload's 80,000 window accumulators held the task
// 29-166 ms per checkpoint.)
//
// Settling. A snapshot carries every dirty entry (AppendDirty), so an entry
// written once and never again (q4's highest bid of an auction that closed)
// would be copied into every snapshot for as long as it stays cached: the
// snapshots, and the time they hold the task, grow with the state. So after
// each AppendDirty, the next Acquire calls walk the dirty entries it took
// and write the ones that did not change in the kColdIntervals whole
// intervals before it (cold) to RocksDB a few at a time, spread over about
// half of the interval between snapshots
// (judged by the Acquire calls of the last one), then ask RocksDB to flush
// its memtables in the background. The next snapshot leaves them out: they
// are in RocksDB's checkpoint. An entry that changes in every interval
// (an open window) is never written this way. Two intervals, not one: a
// window quiet only while the watermark catches up with its end (the
// clinical workload's 5-minute windows: 1.4 s at a checkpoint a second) is
// deleted before it would settle; settled, it cost a RocksDB write, a
// tombstone, their flushes and compactions, and the evictions of the
// tombstones' entries (p99 at the half rate 52-80 ms against 19-27 ms,
// docs/benchmarks.md); a cold entry rides in one more snapshot.
//
// Reads of new keys. A miss reads RocksDB, and a key never written there is
// sought through the memtables and every level-0 file's filter: q4's
// aggregate over auctions, whose every auction is a new key, spent a tenth of
// its join task's CPU in those Gets at half rate with a checkpoint a second
// (each checkpoint flushes a level-0 file; docs/benchmarks.md). So a state
// may have a filter of the keys written to RocksDB (FilterWrittenKeys: a
// RecentKeysFilter without expiry, every put the cache writes added to it);
// a miss on a key it has never seen starts absent without a read. The
// filter's bytes count as the cache's own (entries are evicted to make
// room); past a quarter of the cache, all of a cache's filters together, the
// one that grew is dropped (logged), and its state's misses read again.
//
// Thread-compatible: owned and used by the backend's task thread; a
// snapshot's copy reads the entries it listed on another thread, each only
// once it has claimed it (above).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/inline_bytes.h"
#include "common/process_memory.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "state/cache_delta.h"
#include "state/cache_reservation.h"
#include "state/recent_keys_filter.h"

namespace vstream {

class WriteBackCache {
 public:
  // Cache keys up to this long live inside their entry: a lookup's key
  // comparison then reads the entry it returns anyway instead of a string
  // elsewhere on the heap (one cache miss less per record).
  static constexpr size_t kInlineKeyBytes = 40;

  // Over its capacity the cache evicts a step of capacity / kEvictFraction
  // (at least kMinEvictBytes, at most an eighth) per call: a little at a
  // time, so that no single Acquire holds the task long.
  static constexpr size_t kEvictFraction = 256;
  static constexpr size_t kMinEvictBytes = 4 << 10;

  struct Entry {
    // The state's value without the TTL write time. Callers may change
    // `value`, `write_ms` and `present`, then call MarkDirty.
    std::string value;
    int64_t write_ms = 0;  // write time (states with a TTL)
    bool present = false;  // false: no value (never written, or cleared)

    // Internal.
    bool timed = false;
    bool dirty = false;
    // RocksDB may hold a value for this key. False when a load found none
    // and nothing was written since: clearing such an entry (a window that
    // lived and fired within the cache) then writes no tombstone.
    bool stored = true;
    bool live = false;        // in use (not on the free list)
    bool referenced = false;  // used since the eviction hand last passed
    uint32_t index = 0;       // in the pool
    uint32_t dirty_epoch = 0;  // epoch_ when it was last marked dirty
    bool listed = false;       // its slot is in dirty_ or cold_ (kept by a reused slot)
    // The last snapshot (its epoch) that has this entry as it was, with
    // kClaimed while a thread copies it (copy on write, above).
    std::atomic<uint32_t> captured{0};
    InlineBytes<kInlineKeyBytes> key_bytes;  // [state id: 2 bytes][RocksDB key]
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    size_t charged = 0;

    std::string_view key() const { return key_bytes.view(); }
  };

  enum class OnMiss {
    kLoad,          // read the value from RocksDB
    kAssumeAbsent,  // start with no value: the caller overwrites it blindly
  };

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evicted = 0;            // entries evicted
    uint64_t written_on_evict = 0;   // dirty entries written on eviction
    uint64_t written_on_flush = 0;   // dirty entries written by Flush
    uint64_t written_on_settle = 0;  // cold dirty entries written (see Settling)
    uint64_t dropped = 0;            // cleared entries RocksDB never held, removed
    uint64_t batches = 0;            // WriteBatches written
    uint64_t loads_skipped = 0;      // misses a filter of written keys answered (no RocksDB read)
  };

  // `db` must outlive the cache; `reservation` may be null (no charging).
  WriteBackCache(rocksdb::DB& db, const rocksdb::WriteOptions& write_options,
                 size_t capacity_bytes, CacheReservation* reservation);
  ~WriteBackCache();
  WriteBackCache(const WriteBackCache&) = delete;
  WriteBackCache& operator=(const WriteBackCache&) = delete;

  // The entry of `cache_key` ([state id][RocksDB key] of a state in column
  // family `cf`), now marked as used. `timed`: stored values carry a
  // write time. The pointer is valid until the next call on the cache.
  absl::StatusOr<Entry*> Acquire(rocksdb::ColumnFamilyHandle* cf, std::string_view cache_key,
                                 bool timed, OnMiss on_miss);

  // Records a change of `entry` (from the last Acquire): it will be written
  // on eviction or Flush. May evict other entries. An entry cleared
  // (`present` false) that RocksDB never held is removed instead: `entry` is
  // invalid afterwards either way.
  absl::Status MarkDirty(Entry* entry);

  // Writes every dirty entry to RocksDB; entries stay cached, clean.
  absl::Status Flush();

  // From now on, misses of the state `state_id` (the first two bytes of its
  // cache keys) on keys `filter` has never seen start absent without reading
  // RocksDB (see Reads of new keys, above), and every put the cache writes
  // of that state is added to `filter`. `filter` must already hold every key
  // the state's column family holds: none for a new state, a scan's for a
  // restored one (RecentKeysFilter::AddKey of each cache key). Every write
  // of the state must go through the cache from now on.
  void FilterWrittenKeys(int state_id, std::unique_ptr<RecentKeysFilter> filter);
  // The most the filters of written keys may take, together: a quarter of
  // the cache.
  size_t written_keys_filter_max_bytes() const { return capacity_ / 4; }
  // Bytes of the filters of written keys (counted in bytes()).
  size_t written_keys_filter_bytes() const { return filter_bytes_; }

  // Appends every dirty entry, as a put or delete of its RocksDB key in its
  // column family, to `delta` (state/cache_delta.h), without writing
  // RocksDB: the entries stay dirty and cached. For snapshots, which then
  // need not push the cache through RocksDB (memtable, L0 files,
  // compaction, and a tombstone for every window that fires later).
  // With `later`, the entries are copied by the work it pushes there, in
  // steps, on any thread, as they were now (see Snapshots, above); it may
  // outlive the cache. Also starts settling the cold ones (see Settling, above).
  void AppendDirty(CacheDelta* delta, std::vector<LaterDelta>* later = nullptr);

  size_t capacity_bytes() const { return capacity_; }
  size_t bytes() const { return bytes_; }
  size_t entries() const { return map_.size(); }
  // Entries the hash table holds before it grows (and rehashes).
  size_t table_capacity() const { return map_.capacity(); }
  const Stats& stats() const { return stats_; }

  // Bytes charged per entry beyond its key and value: the entry and its
  // hash-table slot.
  static constexpr size_t kEntryOverhead = sizeof(Entry) + 32;

 private:
  struct KeyHash {
    size_t operator()(std::string_view s) const;
  };
  // Flush writes a batch each time it holds this many bytes.
  static constexpr size_t kFlushBatchBytes = size_t{4} << 20;

  // A snapshot's copy of the entries dirty when it was taken (epoch), by
  // whichever thread claims each first.
  struct Capture {
    uint32_t epoch = 0;
    std::vector<Entry*> entries;
    size_t next = 0;  // the copy's progress through `entries` (under mu)
    // Entries the task thread copied (before changing them); the copy
    // appends them once it has seen every entry captured.
    CacheDelta copied_first;
    std::atomic<bool> done{false};  // the copy ran, or never will
    std::mutex mu;                  // held by the copy, and by the cache's destructor
    bool detached = false;          // under mu: the cache is gone, copied_first has all
  };
  static constexpr uint32_t kClaimed = uint32_t{1} << 31;
  // Makes sure the snapshot being copied has `e` (copying it now if it does
  // not yet) before the task thread changes it.
  void BeforeWrite(Entry& e) {
    if (capture_ != nullptr && e.captured.load(std::memory_order_acquire) != capture_->epoch) CaptureBeforeWrite(e);
  }
  void CaptureBeforeWrite(Entry& e);
  // Copies every listed entry not yet copied, on this thread.
  void FinishCapture();
  // Returns once `c` has `e`: copied into `into` by this thread, or by the
  // other one.
  static void CaptureEntry(Capture& c, Entry& e, CacheDelta* into);
  static void AppendEntry(const Entry& e, CacheDelta* delta);

  // Uncharges entry i and returns its slot to the free list.
  void Remove(uint32_t i);
  void Recharge(Entry& e);
  void AddToBatch(Entry& e);
  // The filter of written keys of the state whose cache key this is, or null.
  RecentKeysFilter* WrittenKeys(std::string_view cache_key) const {
    const size_t id = StateOf(cache_key);
    return id < written_keys_.size() ? written_keys_[id].get() : nullptr;
  }
  // The state id a cache key begins with.
  static size_t StateOf(std::string_view cache_key) {
    return (static_cast<size_t>(static_cast<uint8_t>(cache_key[0])) << 8) | static_cast<uint8_t>(cache_key[1]);
  }
  // Adds a put's key to its state's filter, if it has one (recharging the
  // filter's growth; one that turned itself off is dropped).
  void NoteWritten(std::string_view cache_key);
  absl::Status WriteBatch();
  absl::Status EvictIfNeeded(uint32_t keep);
  // Writes the next few cold entries (see Settling).
  absl::Status Settle();

  rocksdb::DB& db_;
  const rocksdb::WriteOptions write_options_;
  const rocksdb::ReadOptions read_options_;
  const size_t capacity_;
  CacheReservation* const reservation_;

  std::deque<Entry> pool_;  // stable addresses; freed entries are reused
  std::vector<uint32_t> free_;
  // With cold_ (below), every dirty slot, each once (`listed`): the slots
  // marked dirty since the last AppendDirty, and the ones Settle found still
  // dirty. A snapshot copies these, not the whole pool (with settling, most
  // of a large cache is clean).
  std::vector<uint32_t> dirty_;
  // Views of Entry::key(). Sized for a full cache when the cache is made
  // (it never rehashes), and faulted in then: its first keys land all over
  // it, and each touched a page for the first time (a page fault each).
  absl::flat_hash_map<std::string_view, uint32_t, KeyHash, std::equal_to<std::string_view>,
                      PrefaultingAllocator<std::pair<const std::string_view, uint32_t>>>
      map_;
  size_t hand_ = 0;  // the CLOCK hand: the pool index eviction looks at next
  size_t bytes_ = 0;

  // By state id; null: no filter (every miss reads RocksDB).
  std::vector<std::unique_ptr<RecentKeysFilter>> written_keys_;
  size_t filter_bytes_ = 0;  // of all of them

  rocksdb::WriteBatch batch_;
  std::vector<uint32_t> batched_;  // entries in batch_, marked clean once it is written
  Stats stats_;

  // Settling: epoch_ counts AppendDirty calls; cold_ is the list of slots
  // the last one took (the dirty ones then, and some no longer dirty),
  // cold_next_ the next one Settle looks at: it writes the entries not
  // changed in the kColdIntervals before (dirty_epoch + kColdIntervals <
  // epoch_), moves
  // the ones still dirty back to dirty_ and drops the rest. Settle runs
  // every settle_every_ (at least kSettleEvery) Acquire calls and looks at
  // settle_chunk_ slots.
  static constexpr uint32_t kColdIntervals = 2;
  static constexpr uint32_t kSettleEvery = 16;
  static constexpr size_t kMinSettleChunk = 16;
  static constexpr size_t kMaxSettleChunk = 256;
  uint32_t epoch_ = 1;
  std::vector<uint32_t> cold_;
  size_t cold_next_ = 0;
  size_t settle_chunk_ = 0;
  uint32_t settle_every_ = kSettleEvery;
  uint32_t until_settle_ = kSettleEvery;
  uint64_t acquires_ = 0;  // Acquire calls since the last AppendDirty
  std::vector<rocksdb::ColumnFamilyHandle*> settled_cfs_;  // to flush once settled

  // The snapshot whose copy may still run (see Snapshots); null when none.
  std::shared_ptr<Capture> capture_;
  // Captures a later snapshot finished on the task thread (FinishCapture)
  // whose copies may still run: they must not touch the entries once the
  // cache is gone, so the destructor detaches them too.
  std::vector<std::shared_ptr<Capture>> overtaken_;
};

}  // namespace vstream
