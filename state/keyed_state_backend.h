#pragma once
// The keyed state backend on RocksDB, as Flink's RocksDBKeyedStateBackend:
// one RocksDB instance per stateful operator subtask, one column family per
// declared state, every key laid out as
//
//   [key group: 2 bytes big-endian][varint n][key][varint m][namespace][map key]
//
// (state_key.h), so a key-group range is one contiguous range of each column
// family (snapshots and rescaling depend on this) and one key+namespace is one
// exact prefix.
//
// An operator declares its states with descriptors (state_descriptor.h) and
// gets handles owned by the backend. Per record it sets the current key, then
// uses the handles with a namespace (a window; "" for none):
//
//   ASSIGN_OR_RETURN(AggregatingState* sum, backend->GetAggregatingState(
//       {.name = "sum", .function = kSum, .associative = true, .ttl_ms = 3600000}));
//   ...
//   backend->SetCurrentKey(KeyGroupForHash(HashKeyBytes(key), max_parallelism), key);
//   RETURN_IF_ERROR(sum->Add(window, value));
//   ...
//   RETURN_IF_ERROR(backend->Flush());  // before each snapshot
//
// Memory comes from the TaskManager's StateResources (one budget for the
// block cache, memtables and write-back caches of all its backends).
//
// Thread-compatible: owned and used by one task thread. RocksDB's background
// threads run the states' merge operators and TTL compaction filters.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/env.h"
#include "state/folding_state.h"
#include "state/cache_delta.h"
#include "state/key_groups.h"
#include "state/keyed_state.h"
#include "state/list_state.h"
#include "state/map_state.h"
#include "state/state_clock.h"
#include "state/state_descriptor.h"
#include "state/state_key.h"
#include "state/state_log.h"
#include "state/state_resources.h"
#include "state/value_state.h"

namespace rocksdb {
class Cache;
class SliceTransform;
class TableFactory;
}  // namespace rocksdb

namespace vstream {

class CacheReservation;
class FlushPoolEnv;
class WriteBackCache;

// Timer queues (state/timer_queue.h) keep their timers in a column family
// named kTimerStatePrefix + the queue's name, keyed [time][payload] rather
// than by key group. The prefix is reserved: no other state's name may start
// with it, so a restore at another parallelism (state_snapshot.h) knows each
// column family's key layout from its name alone.
inline constexpr std::string_view kTimerStatePrefix = "timers/";

// Whether the column family `name` holds keyed state (state_key.h's layout):
// neither a timer queue's nor RocksDB's default one.
bool IsKeyedStateColumnFamily(std::string_view name);
// The SST format of every state column family: partitioned index and bloom
// filters (10 bits per key) whose blocks live in `block_cache` (null: a
// private one, for writers that only build files).
std::shared_ptr<rocksdb::TableFactory> MakeStateTableFactory(std::shared_ptr<rocksdb::Cache> block_cache);

// Every backend's compactions in this process (RocksDB's LOW pool) from now
// on run at nice kBackgroundNice (common/cpu_set.h). Flushes (the HIGH pool,
// which a snapshot's RocksDB checkpoint waits for) keep their priority,
// except the state log's (state/state_log.h), which no snapshot waits for:
// they run in the LOW pool.
absl::Status LowerCompactionPriority();
// The prefix extractor of the column family `name`: each key's
// [key group][varint n][key] (StateKeyPrefixSize) for keyed state, so that
// bloom filters hold it and a scan of one key skips the files without it;
// null for others. A restore at another parallelism writes its files with
// the same format and extractor, so they filter as the backend's own.
std::shared_ptr<const rocksdb::SliceTransform> StatePrefixExtractor(std::string_view name);

struct KeyedStateBackendOptions {
  // Directory of the RocksDB instance; created if missing. Required.
  std::string path;
  // Delete existing contents on open (a fresh start with no restore). When
  // false, the column families on disk are reopened and each is bound to the
  // state that registers its name. Default true.
  bool wipe_on_open = true;
  // The TaskManager's state memory, shared by all its backends. Default null:
  // the backend makes private resources with the default budget (256 MiB of
  // StateMemoryBudget), for tests and tools; a TaskManager passes its own.
  std::shared_ptr<StateResources> resources = nullptr;
  // Memtable size of one column family: RocksDB flushes a state's memtable
  // when it reaches this size, or earlier when the write-buffer share of the
  // budget is used up. Default 16 MiB.
  size_t write_buffer_bytes = size_t{16} << 20;
  // Memtables per column family, the mutable one included. Default 2.
  int max_write_buffer_number = 2;
  // Capacity of the write-back cache of hot keys shared by this backend's
  // cached states (keys, values and about 150 bytes per entry), charged to
  // the shared block cache so that it counts against the budget. 0 turns the
  // cache off: cached states then use RocksDB directly. Default 16 MiB; in a
  // TaskManager, StateResources::write_back_cache_bytes() (a slot's share).
  size_t write_back_cache_bytes = size_t{16} << 20;
  // Time source of TTL; must outlive the backend. Default null: wall clock.
  const StateClock* clock = nullptr;
  // Concurrent flushes and compactions of this instance. Default 2.
  int max_background_jobs = 2;
  // SST files kept open (index and filter blocks are in the block cache
  // either way). Default 256.
  int max_open_files = 256;
  // RocksDB's universal compaction (size-tiered: new files merge with each
  // other, seldom with the old large ones) instead of leveled. Leveled
  // rewrites all of level 1 whenever level 0 fills, since keyed state's keys
  // spread over the whole key space, and an incremental checkpoint then
  // uploads it all again. Either opens the other's files. Default true.
  bool universal_compaction = true;
  // What RocksDB writes to the instance's LOG file, which rotates at 4 MiB
  // (2 files kept). Default: warnings and errors
  // (and the options it opened with), as Flink's RocksDB backend kept only
  // the header by default (1.10-1.13). At INFO every flush, compaction and
  // snapshot logged there, and with a checkpoint a second the clinical
  // workload's nine instances per TaskManager wrote about 45 KB/s (about
  // 4 GB a day), with no limit. Tests that read its events ask for INFO.
  rocksdb::InfoLogLevel info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
};

// Counters of the write-back cache (all zero when it is off).
struct StateCacheStats {
  size_t capacity_bytes = 0;
  size_t bytes = 0;
  size_t entries = 0;
  size_t table_capacity = 0;  // slots of the cache's hash table
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evicted = 0;
  uint64_t written_on_evict = 0;
  uint64_t written_on_flush = 0;
  uint64_t written_on_settle = 0;  // cold dirty entries written between snapshots
  uint64_t dropped = 0;  // cleared entries RocksDB never held, removed at once
  uint64_t batches = 0;
  uint64_t loads_skipped = 0;  // misses on keys never written to RocksDB, answered without a read
};

// Keeps a backend's RocksDB from deleting files (DisableFileDeletions)
// until released or destroyed (EnableFileDeletions; holds nest). A snapshot
// lists the live files in its sync part and links them later
// (state/state_snapshot.h): the hold keeps them until then. Releasing after
// the backend closed does nothing. Movable; Release is thread-safe, and
// runs on the thread that calls it: in a TaskManager the task thread once
// the files are linked (EnableFileDeletions takes the DB mutex, which a task
// must not wait for behind a background thread at nice 19), or whichever
// thread drops a snapshot never linked (a declined or abandoned one).
class FileDeletionHold {
 public:
  FileDeletionHold() = default;
  FileDeletionHold(FileDeletionHold&& other) noexcept = default;
  FileDeletionHold& operator=(FileDeletionHold&& other) noexcept {
    if (this != &other) {
      Release();
      gate_ = std::move(other.gate_);
    }
    return *this;
  }
  ~FileDeletionHold() { Release(); }
  void Release();
  bool held() const { return gate_ != nullptr; }

 private:
  friend class KeyedStateBackend;
  struct Gate {
    std::mutex mu;
    rocksdb::DB* db = nullptr;  // guarded by mu; null once the backend closes
  };
  explicit FileDeletionHold(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  std::shared_ptr<Gate> gate_;
};

class KeyedStateBackend {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedStateBackend>> Open(
      const KeyedStateBackendOptions& options);
  // Writes the write-back cache back (errors are logged) and closes RocksDB.
  ~KeyedStateBackend();
  KeyedStateBackend(const KeyedStateBackend&) = delete;
  KeyedStateBackend& operator=(const KeyedStateBackend&) = delete;

  // The key the state handles work on until the next call: its key group
  // (0 .. kMaxKeyGroups - 1) and its serialized bytes. Copies the key into a
  // reused buffer: no allocation once the buffer has grown.
  void SetCurrentKey(int key_group, std::string_view serialized_key);

  // Declare a state and return its handle, owned by the backend and valid
  // until it closes. Asking again for a name returns the same handle;
  // FailedPrecondition if the kind or TTL differ, InvalidArgument if a
  // required function is missing.
  absl::StatusOr<ValueState*> GetValueState(const ValueStateDescriptor& descriptor);
  absl::StatusOr<ListState*> GetListState(const ListStateDescriptor& descriptor);
  absl::StatusOr<MapState*> GetMapState(const MapStateDescriptor& descriptor);
  absl::StatusOr<ReducingState*> GetReducingState(const ReducingStateDescriptor& descriptor);
  absl::StatusOr<AggregatingState*> GetAggregatingState(
      const AggregatingStateDescriptor& descriptor);
  // The state (no TTL, no cache) holding timer queue `queue_name`, named
  // kTimerStatePrefix + queue_name. For TimerQueue::Create; the names above
  // may not start with kTimerStatePrefix (InvalidArgument).
  absl::StatusOr<ValueState*> GetTimerState(const std::string& queue_name);

  // Writes every dirty entry of the write-back cache, and the map states'
  // held Puts, to RocksDB, in WriteBatches.
  absl::Status Flush();
  // Starts a flush of the memtables of the column families whose active
  // memtable holds at least `min_entries` (puts, deletes and merges) and no
  // immutable one waits, on RocksDB's flush thread, without waiting;
  // returns whether there were any. A snapshot's RocksDB checkpoint flushes
  // the memtables on the task thread (with the WAL off that persists them):
  // the task calls this shortly before the next checkpoint is due, so that
  // the snapshot flushes only what was written since. (The clinical
  // workload's dedup state, a TTL'd map written for every observation, held
  // its task a median 13-16 ms per checkpoint in that flush.)
  absl::StatusOr<bool> FlushMemtablesInBackground(uint64_t min_entries);
  // Map states let go of the iterators they keep between scans
  // (MapState::ReleaseScan): at every snapshot (DirtyCacheEntries), on
  // close, and when the task's ticks ask (once a second).
  void ReleaseScans();
  // Writes the Puts map states hold back (MapState::WriteHeldPuts) to
  // RocksDB. Before a snapshot (TakeLocalSnapshot), in Flush, ForEachKey,
  // FlushMemtablesInBackground and CompactState, and on close.
  absl::Status WriteHeldPuts();
  // What a snapshot keeps beside the RocksDB checkpoint instead of writing
  // it into RocksDB first (state/cache_delta.h): the dirty entries of the
  // write-back cache (they stay dirty) and what every registered
  // contributor appends (a TimerQueue's in-memory timers, a
  // BufferedMapState's entries). Releases the map states' kept scans first.
  //
  // A contributor may leave part of its records for later: the work that
  // copies them goes to `later` (state/cache_delta.h), to run after the
  // snapshot's synchronous part, in steps between the task's batches or
  // on another thread (runtime/task_checkpoints.h), and append them to the
  // same delta. The contributor keeps what those records are now until the
  // work is done or destroyed. Without `later` everything is appended now.
  using LaterDelta = vstream::LaterDelta;
  CacheDelta DirtyCacheEntries(std::vector<LaterDelta>* later = nullptr);
  // The buffer DirtyCacheEntries() writes into, kept from one snapshot to
  // the next: whoever is done with a delta's bytes gives them back here.
  const std::shared_ptr<DeltaBuffers>& delta_buffers() const { return delta_buffers_; }
  // Calls `*fn` in every later DirtyCacheEntries() for as long as the
  // contributor keeps `fn` alive; either may outlive the other.
  using SnapshotDeltaFn = std::function<void(CacheDelta*, std::vector<LaterDelta>* later)>;
  void AddSnapshotDelta(const std::shared_ptr<const SnapshotDeltaFn>& fn);

  // The state log (state/state_log.h): every write to the logged column
  // families (map states with a filter of recent keys) since RocksDB last
  // flushed them. A snapshot holds its segments instead of flushing those
  // memtables:
  //   SealStateLog: the segments the snapshot holds (after WriteHeldPuts),
  //     sealing the writes since the last one;
  //   FlushUnloggedStates: flushes the others' memtables (the task waits);
  //   MaintainStateLog: after the snapshot, and once a second from the
  //     task's ticks: forgets the segments a finished flush holds, and once
  //     the log reaches state_log_flush_bytes() starts a flush of the logged
  //     column families in the background (the segments then go once it is
  //     done).
  const std::vector<StateLog::Segment>& SealStateLog();
  absl::Status FlushUnloggedStates();
  absl::Status MaintainStateLog();
  size_t state_log_bytes() const { return state_log_.bytes(); }
  size_t state_log_flush_bytes() const { return options_.write_buffer_bytes / 2; }

  // Calls `fn` on every live entry of `state` whose key group lies in
  // `range`, in key order (a MapState key and namespace once per map entry).
  // Flushes the write-back cache first. The views are valid during the call.
  absl::Status ForEachKey(StateId state, KeyGroupRange range,
                          const std::function<void(const StateKeyView&)>& fn);

  // Compacts a state's column family down to the last level, dropping
  // expired entries now rather than in a later background compaction.
  absl::Status CompactState(StateId state);

  // Value state by id, without the current key: `key` is the serialized key,
  // namespace empty. Get returns NotFound when there is no value. With
  // write_back_cache, reads and writes go through the write-back cache.
  absl::StatusOr<StateId> RegisterState(const std::string& name, bool write_back_cache = false);
  absl::Status Get(StateId state, int key_group, std::string_view key, std::string* value);
  absl::Status Put(StateId state, int key_group, std::string_view key, std::string_view value);
  absl::Status Delete(StateId state, int key_group, std::string_view key);
  // Read-modify-write of one value with a single cache lookup (per-record
  // state updates): fn gets whether a value is present and changes it in place.
  absl::Status Update(StateId state, int key_group, std::string_view key,
                      absl::FunctionRef<void(bool present, std::string* value)> fn);
  // The same, where fn says whether it changed the value, cleared it, or
  // neither (then nothing is written).
  absl::Status Modify(StateId state, int key_group, std::string_view key,
                      absl::FunctionRef<StateChange(bool present, std::string* value)> fn);

  const std::string& path() const { return options_.path; }
  const StateResources& resources() const { return *resources_; }
  StateCacheStats cache_stats() const;
  int num_states() const { return static_cast<int>(states_.size()); }
  // Whether a state of this name is registered, or was restored from disk
  // and not registered yet.
  bool HasState(std::string_view name) const;

  // The RocksDB instance and a state's column family, for snapshots and tests.
  rocksdb::DB* db() { return db_; }
  // Disables RocksDB's file deletions until the hold is released.
  absl::StatusOr<FileDeletionHold> HoldFileDeletions();
  rocksdb::ColumnFamilyHandle* column_family(StateId state);

 private:
  struct StateSlot;

  KeyedStateBackend(KeyedStateBackendOptions options, std::shared_ptr<StateResources> resources,
                    std::shared_ptr<rocksdb::TableFactory> table_factory);
  rocksdb::ColumnFamilyOptions CfOptions(const StateSlot& slot) const;
  template <typename Handle>
  absl::StatusOr<Handle*> Register(const std::string& name,
                                   std::shared_ptr<const StateBehavior> behavior,
                                   bool write_back_cache, bool timer_state = false);
  absl::StatusOr<ValueState*> LegacyValueState(StateId state);
  // Gives the write-back cache a filter of the keys a cached state wrote to
  // RocksDB (WriteBackCache::FilterWrittenKeys); `reopened`: restored, its
  // keys scanned into the filter first (none if they do not fit, or the
  // scan fails).
  void FilterCachedKeys(StateId id, const std::string& name, rocksdb::ColumnFamilyHandle* cf, bool reopened);

  KeyedStateBackendOptions options_;
  // Shared by every backend of the TaskManager (see StateResources).
  std::shared_ptr<StateResources> resources_;
  std::shared_ptr<rocksdb::TableFactory> table_factory_;  // RocksDB takes it shared
  rocksdb::DB* db_ = nullptr;
  std::shared_ptr<FileDeletionHold::Gate> deletion_gate_;  // closed before db_ is
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
  std::vector<std::unique_ptr<StateSlot>> states_;   // by StateId
  std::vector<std::unique_ptr<StateSlot>> pending_;  // reopened, not yet registered
  std::unique_ptr<CacheReservation> cache_reservation_;
  std::unique_ptr<WriteBackCache> cache_;
  std::vector<std::weak_ptr<const SnapshotDeltaFn>> snapshot_deltas_;
  std::shared_ptr<DeltaBuffers> delta_buffers_ = std::make_shared<DeltaBuffers>();
  size_t last_delta_bytes_ = 0;  // the size of the last DirtyCacheEntries(), to reserve for the next
  StateContext ctx_;
  std::string legacy_key_;  // reused by Get/Put/Delete by StateId
  StateLog state_log_;
  std::vector<rocksdb::ColumnFamilyHandle*> logged_cfs_;
  // The first this many segments are in SST files once the flush
  // MaintainStateLog started is done (0: none started).
  size_t flushing_segments_ = 0;
  // Forgets the segments of a finished flush (flushing_segments_).
  void DropFlushedSegments();
  // Whether RocksDB flushed every immutable memtable of the logged column
  // families (false if it cannot tell).
  bool LoggedMemtablesFlushed() const;
  // The instance's Env: RocksDB's, with the state log's flushes in the
  // compactions' pool.
  std::unique_ptr<FlushPoolEnv> env_;
  std::vector<rocksdb::ColumnFamilyHandle*> UnloggedColumnFamilies() const;
  bool IsLogged(rocksdb::ColumnFamilyHandle* cf) const {
    return std::find(logged_cfs_.begin(), logged_cfs_.end(), cf) != logged_cfs_.end();
  }
};

// Starts a flush of the column families' memtables on RocksDB's flush
// thread, without waiting for it (nor for a write stall to clear). Settling
// and the preflush (FlushMemtablesInBackground) move memtables out ahead of
// a snapshot, whose RocksDB checkpoint would flush them on the task thread.
rocksdb::Status FlushInBackground(rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs);

}  // namespace vstream
