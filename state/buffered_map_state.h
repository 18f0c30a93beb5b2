#pragma once
// BufferedMapState: a MapState's entries held in memory, each key's in
// lanes in user key order, in front of the MapState's column family. For short-lived state
// (an interval join's records, kept for seconds of event time): an entry put
// and removed between two checkpoints never reaches RocksDB, so it costs no
// memtable insert, no tombstone, no flush and no compaction (those were
// 70% of Nexmark q7's CPU, docs/benchmarks.md).
//
//   - Entries live in memory in runs, one per prefix of their RocksDB key
//     ([key group][key][namespace], state_key.h), found through a hash
//     table of the prefixes. An interval join's records come about in time
//     order and leave in it, so a Put appends to a lane of its run and a
//     Remove takes a lane's front: one hash lookup, where a B-tree over the whole keys
//     took a cache miss and a key comparison per level (Nexmark q7's join
//     spent 60% of its thread in the B-tree and memcmp; 10M events unpaced
//     took 16.4-16.8 s instead of 17.8-18.5, docs/benchmarks.md).
//     A run is kLanes lanes, each in user key order: a Put appends to the
//     lane with the highest last key below its own, so that records of two
//     inputs, each in time order but interleaved (a join subtask reading two
//     source subtasks, a little apart in time), are two appends, not an
//     insert into the middle of one ordered run that moves every later
//     record (in a Nexmark q4 profile the join's Emplace and LowerBound were
//     a quarter of its thread, docs/benchmarks.md). Only a key below every lane's last is inserted
//     (into the lane where that moves the fewest). Reads merge the lanes;
//     a Remove looks at each lane's front first.
//     Each entry also sits in append-only chunks, key and value, as the put
//     record of a snapshot's CACHE-DELTA (cache_delta.h); a removed or
//     replaced one is marked dead there (or listed, while a snapshot's copy
//     reads its chunk). A chunk is freed once it and every
//     chunk before it hold no live entry, which for entries that leave in
//     about the order they came (a join's) is soon. No allocation per entry
//     but for keys over kInlineKeyBytes and a lane growing past the slots it
//     kept (kKeptRunSlots; an emptied lane gives back a longer vector).
//   - The memory counted is the runs, their slots and long keys plus every chunk
//     not yet freed (dead bytes in them included; not chunks freed while a
//     snapshot's copy still holds them). Beyond `memory_limit` each Put
//     spills the oldest entries to the column family (kSpillPerPut of them,
//     as settling below does, but without waiting for snapshots), so the
//     front chunks are freed; memory stays near the limit, and no Put
//     writes much (spilling all 32 MiB at once held q3's join 100+ ms).
//     Reads then see both, merged in key order, until the spilled (or
//     restored) entries are all removed; then they skip RocksDB again.
//     Meanwhile a bloom filter of the prefixes written to the column family
//     (RecentKeysFilter without expiry; a restore's scan adds the restored
//     ones) lets a read of a prefix that never reached RocksDB skip it: q3's
//     join keeps every record, so from the first settled entry on each
//     probe, mostly of a new seller, sought through every level-0 file
//     (at a checkpoint a second that was 2.4 of its 3.7 CPU s in 19 s,
//     docs/benchmarks.md). The filter counts against the memory limit; past
//     a quarter of it, it turns itself off and every read looks on disk.
//   - Settling: an entry still in memory two snapshots after it came (in a
//     chunk older than the previous snapshot) is written to the column
//     family, five every fourth Put (kSettlePerRound, kSettleEveryPuts: a
//     steady stream settles one interval's entries in four fifths of the
//     next), and leaves memory. A
//     long-lived entry (q3's join keeps every record) is then in two
//     snapshots' deltas and afterwards in RocksDB's incremental ones, not
//     copied into every snapshot; short-lived ones (a join's for seconds)
//     are gone before they qualify.
//   - Snapshots: the in-memory entries go into the backend's snapshot delta
//     as puts into the column family (KeyedStateBackend::AddSnapshotDelta),
//     which a restore applies; restored entries are on disk. So snapshots,
//     restores and rescaling are the MapState's own. The chunks' runs of
//     live records are copied as they are, in the order they came, and not
//     on the task thread: the synchronous part only takes a reference to
//     each chunk (they are append-only) and the copy runs in the
//     asynchronous part (KeyedStateBackend::LaterDelta). Until it has run,
//     an entry removed from a chunk it reads is not marked dead there but
//     listed, and marked when the copy is done. (Copied in the synchronous
//     part, q7's 8 MiB per subtask held the task 17-30 ms per checkpoint at
//     a checkpoint a second; q4's join 1.5 MB, 6-11 ms.)
//
// Only for a MapState without TTL (its stored values are the values), and
// for user keys put once while they live (an interval join's carry a
// sequence number): an entry found in memory was never spilled, so removing
// it touches no disk; only one not in memory is deleted from RocksDB.
// The namespace is the void one (""). Thread-compatible: one task thread;
// a snapshot's copy (the function AppendToDelta leaves for later) reads the
// chunks it references on another thread, and nothing else.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/inline_bytes.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"
#include "state/map_state.h"
#include "state/recent_keys_filter.h"

namespace rocksdb {
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace vstream {

class BufferedMapState {
 public:
  static constexpr size_t kDefaultMemoryLimit = size_t{32} << 20;
  static constexpr int kLanes = 2;

  // `disk` is a MapState of `backend` without TTL. restored: the column
  // family may hold entries (a restore); otherwise it starts empty. lanes:
  // how many a run appends to (1..kLanes; 1 is one ordered run, for
  // comparisons).
  static absl::StatusOr<std::unique_ptr<BufferedMapState>> Create(KeyedStateBackend& backend, MapState* disk,
                                                                  bool restored,
                                                                  size_t memory_limit = kDefaultMemoryLimit,
                                                                  int lanes = kLanes);
  ~BufferedMapState();

  // Adds the entry user_key of (key group, key), or replaces it while it is
  // in memory (a key on disk must not be put again). new_key: the caller
  // knows there is no entry user_key (an interval join's user keys carry a
  // fresh sequence number), so none is looked for.
  absl::Status Put(int key_group, std::string_view key, std::string_view user_key, std::string_view value,
                   bool new_key = false);
  // Removes it, if there is one.
  absl::Status Remove(int key_group, std::string_view key, std::string_view user_key);
  // Removes the entries of (key group, key) with user_key < to (to "":
  // all). Those in memory are the fronts of the run's lanes, removed
  // together (an interval join's cleanup of a key's expired records: one
  // Remove each was a hash lookup and a search each).
  absl::Status RemoveBelow(int key_group, std::string_view key, std::string_view to);
  // Calls fn(user_key, value) for the entries of (key group, key) with
  // from <= user_key < to (to "": no upper end), in user key order
  // (in-memory and spilled ones merged), until fn returns false. The views
  // are valid during the call; fn must not change this state. May change
  // the backend's current key (as Remove may).
  absl::Status ForEachInRange(int key_group, std::string_view key, std::string_view from, std::string_view to,
                              absl::FunctionRef<bool(std::string_view user_key, std::string_view value)> fn);

  // Writes every in-memory entry to the column family at once (Put spills
  // a few at a time instead; tests use this).
  absl::Status Spill();
  // Writes up to max_entries of the entries that qualify for settling
  // (above; with over_limit, of any entry but those of the chunk being
  // filled) to the column family, oldest first. Put calls it.
  absl::Status Settle(size_t max_entries, bool over_limit = false);
  // Entries settled so far, and spilled over the limit (by Put) so far.
  uint64_t settled() const { return settled_; }
  uint64_t spilled() const { return spilled_; }
  // Puts so far that did not append (their key was below every lane's
  // last): inserted into a lane, moving its later entries (none when the
  // slot before the lane's front was free).
  uint64_t inserts() const { return inserts_; }
  // Whether entries settled since the last background flush of the column
  // family (one when a round of settling is done).
  bool settled_unflushed() const { return settled_unflushed_; }

  size_t memory_entries() const { return memory_entries_; }
  // The memory counted against the limit (above).
  size_t memory_bytes() const { return bytes_ + disk_prefixes_->bytes(); }
  // Whether the column family may hold entries (spilled or restored).
  bool may_be_on_disk() const { return may_be_on_disk_; }
  // Whether entries of (key group, key) may be in the column family (false:
  // reads of it skip RocksDB).
  bool MayBeOnDisk(int key_group, std::string_view key);
  // ForEachInRange calls that read the column family.
  uint64_t disk_reads() const { return disk_reads_; }
  // Bytes of the filter of prefixes on disk (counted in memory_bytes()).
  size_t disk_filter_bytes() const { return disk_prefixes_->bytes(); }
  // The MapState's id (its column family).
  StateId disk_id() const { return disk_->id(); }

 private:
  static constexpr size_t kInlineKeyBytes = 40;
  // An interval join's user keys: an 8-byte time and an 8-byte sequence.
  static constexpr size_t kInlineUserKeyBytes = 16;
  static constexpr size_t kChunkBytes = size_t{256} << 10;  // at most
  static constexpr char kDeadRecord = 'X';  // in place of a record's 'P'
  // 1.25 times the rate entries come. At 8 per Put, q3's join (every entry
  // settles) took a second's entries in the first eighth of the next, 8
  // RocksDB puts per record, and its p99 latency at a checkpoint a second
  // was 34-121 ms; at 2 per Put, 11-14 ms, and the join busy for the first
  // 450 ms after each checkpoint. At 5 every 4 Puts (in one write) the
  // work is spread over 800 ms: q3's p99 at 5M events/s was lower in 9 of
  // 10 pairs (docs/benchmarks.md, "The buffered map state's settling
  // spread over the interval").
  static constexpr size_t kSettlePerRound = 5;
  static constexpr int kSettleEveryPuts = 4;
  // Over the limit: memory is freed a chunk (up to kChunkBytes) at a time,
  // from the front, so Puts go on spilling until the front chunk is freed.
  static constexpr size_t kSpillPerPut = 8;

  // Once a round of settling is done, asks RocksDB to flush the column
  // family in the background.
  absl::Status FlushIfSettled();

  struct ValueRef {
    uint64_t chunk = 0;  // its sequence number
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  struct Chunk {
    std::shared_ptr<char[]> data;  // shared with the snapshots reading it
    size_t capacity = 0;
    size_t used = 0;
    size_t live = 0;  // entries whose record is here and not dead
  };
  // A record in the chunks: chunk sequence number, offset of its first byte.
  struct RecordPos {
    uint64_t chunk = 0;
    uint32_t offset = 0;
    auto operator<=>(const RecordPos&) const = default;
  };
  // What a snapshot's copy reads: a chunk's first `used` bytes.
  struct FrozenChunk {
    std::shared_ptr<const char[]> data;
    size_t used = 0;
    uint64_t seq = 0;
  };
  // Set when a snapshot's copy no longer reads the chunks (it ran, or was
  // dropped without running).
  struct Pin {
    std::atomic<bool> released{false};
  };
  using Key = InlineBytes<kInlineKeyBytes>;
  using UserKey = InlineBytes<kInlineUserKeyBytes>;
  struct Slot {
    UserKey user_key;
    ValueRef ref;
  };
  // Entries of one prefix in user key order: slots [front, size) are live.
  struct Lane {
    std::vector<Slot> slots;
    uint32_t front = 0;
    bool empty() const { return front == slots.size(); }
    std::string_view back() const { return slots.back().user_key.view(); }
  };
  // The entries of one prefix, in kLanes lanes (above). An emptied lane
  // keeps its vector (up to kKeptRunSlots of capacity), for its run's next
  // entries or the next prefix's.
  struct Run {
    Key prefix;
    Lane lanes[kLanes];
  };
  // Where an entry is: run, lane, slot.
  struct Where {
    uint32_t run = 0;
    int lane = 0;
    size_t slot = 0;
  };
  // An emptied lane keeps its vector up to this capacity.
  static constexpr size_t kKeptRunSlots = 2;
  // What a run costs: itself and its table slot (with the table's slack).
  static constexpr size_t kRunBytes = sizeof(Run) + 32;
  struct PrefixHash {
    size_t operator()(std::string_view s) const;
  };

  BufferedMapState(KeyedStateBackend& backend, MapState* disk, rocksdb::ColumnFamilyHandle* cf, bool restored,
                   size_t memory_limit, int lanes);
  void ComposeKey(int key_group, std::string_view key, std::string_view user_key);
  std::string_view ValueOf(const ValueRef& ref) const;
  // Appends the put record of (key, value) to the chunks.
  ValueRef Store(std::string_view key, std::string_view value);
  // Marks the record of (key, ref) dead (or lists it, while a snapshot's
  // copy reads its chunk) and counts it out of its chunk.
  void Release(std::string_view key, const ValueRef& ref);
  // Drops the pins of the snapshots whose copy is done, oldest first. Once
  // none is left: marks the listed records dead and returns true.
  bool ReleasePins();
  void AppendToDelta(CacheDelta* delta, std::vector<KeyedStateBackend::LaterDelta>* later);
  // Appends the chunks' live records, skipping those marked dead and those
  // in `dead_too` (sorted).
  static void AppendRecords(std::string_view cf, const std::vector<FrozenChunk>& chunks,
                            const std::vector<RecordPos>& dead_too, CacheDelta* delta);
  // Counts the entries in the column family and adds their prefixes to a
  // new filter; sets may_be_on_disk_.
  absl::Status CountDisk();
  // Whether the prefix (a whole key's first PrefixSize bytes) may be in the
  // column family; AddOnDisk: it is there now (added before a read can ask).
  bool PrefixMayBeOnDisk(std::string_view prefix) { return may_be_on_disk_ && disk_prefixes_->MayContainKey(prefix); }
  // (A prefix already in it is not added again, RecentKeysFilter::AddKey:
  // q3's sellers put many auctions.)
  void AddOnDisk(std::string_view prefix) { disk_prefixes_->AddKey(prefix); }
  std::unique_ptr<RecentKeysFilter> NewDiskFilter() const;
  // What an entry costs beyond its value (key: the whole key, of which the
  // first prefix_size bytes are the prefix).
  static size_t EntryBytes(std::string_view key, size_t prefix_size);
  // The length of a whole key's prefix ([key group][key][namespace]);
  // npos if the key is malformed.
  static size_t PrefixSize(std::string_view key);
  // The in-memory index. Find: the entry's ref, or null (then *where is
  // unset). Emplace: the entry's ref and whether it is new (a new one's ref
  // is to be set); new_key as Put's. EraseAt: removes the entry at `where`.
  ValueRef* Find(std::string_view prefix, std::string_view user_key, Where* where);
  std::pair<ValueRef*, bool> Emplace(std::string_view prefix, std::string_view user_key, bool new_key);
  void EraseAt(const Where& where);
  // After entries left a lane: an emptied one gives back its slots, one
  // half dead moves its live slots down.
  static void TidyLane(Lane& lane);
  // Frees a run none of whose lanes holds an entry.
  void FreeRunIfEmpty(uint32_t run);
  // User key order. Interval joins' keys (16 bytes) compare as two
  // big-endian words, not through memcmp.
  static bool Less(std::string_view a, std::string_view b);
  // The first live slot of `lane` whose user key is not below user_key.
  static size_t LowerBound(const Lane& lane, std::string_view user_key);
  // Frees every run, as Spill leaves none in memory.
  void ClearMemory();
  // Empties lane's slots, keeping up to kKeptRunSlots of capacity.
  static void ReleaseSlots(Lane& lane);

  KeyedStateBackend& backend_;
  MapState* disk_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::string cf_name_;
  size_t memory_limit_;
  int lanes_;  // Puts append to lanes [0, lanes_)
  size_t chunk_bytes_;  // of a new chunk: smaller for small limits
  bool may_be_on_disk_;
  size_t disk_count_ = 0;  // entries put in the column family and not removed since
  std::unique_ptr<RecentKeysFilter> disk_prefixes_;  // of the entries put there (above)
  std::deque<Run> runs_;               // stable: by_prefix_'s keys view their prefixes
  std::vector<uint32_t> free_runs_;    // indexes of emptied runs
  absl::flat_hash_map<std::string_view, uint32_t, PrefixHash> by_prefix_;
  size_t memory_entries_ = 0;
  std::deque<Chunk> chunks_;  // chunk sequence number first_chunk_ + i
  uint64_t first_chunk_ = 0;
  // Snapshots whose copy may still read chunks up to pinned_through_, and
  // the records that died there meanwhile.
  std::deque<std::shared_ptr<Pin>> pins_;  // oldest first
  uint64_t pinned_through_ = 0;
  std::vector<RecordPos> deferred_dead_;
  size_t bytes_ = 0;
  // Settling: chunks before settle_below_ qualify (the chunks full at the
  // snapshot before the last); the front chunk is walked from
  // settle_offset_ (while it is chunk settle_chunk_).
  uint64_t settle_below_ = 0;
  uint64_t snapshot_end_ = 0;
  uint64_t settle_chunk_ = 0;
  size_t settle_offset_ = 0;
  uint64_t settled_ = 0;
  int puts_since_settle_ = 0;  // Puts since the last round of settling
  uint64_t spilled_ = 0;
  uint64_t inserts_ = 0;
  uint64_t disk_reads_ = 0;
  bool limit_logged_ = false;
  bool settled_unflushed_ = false;
  std::vector<std::pair<std::string_view, ValueRef>> settling_;  // scratch
  std::unique_ptr<rocksdb::WriteBatch> settle_batch_;             // reused
  std::shared_ptr<const KeyedStateBackend::SnapshotDeltaFn> snapshot_delta_;
  // Scratch, reused.
  std::string key_;
  size_t prefix_size_ = 0;  // of key_ (ComposeKey)
  // The (key group, key) whose prefix key_ starts with (composed_group_ -1:
  // none): a run of one key's calls (a window's results, 3,000 with one
  // key in q5) changes only the user key. Anything else that writes key_
  // clears it.
  int composed_group_ = -1;
  std::string composed_key_;
  // The run the last Emplace found or made, while no run has been freed
  // since (runs_freed_ counts frees): the next Put of its prefix skips the
  // hash table.
  uint32_t emplaced_run_ = 0;
  uint64_t emplaced_at_frees_ = UINT64_MAX;
  uint64_t runs_freed_ = 0;
  std::vector<std::pair<std::string, std::string>> disk_entries_;  // a range's spilled entries
};

}  // namespace vstream
