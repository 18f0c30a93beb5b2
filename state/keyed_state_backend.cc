#include "state/keyed_state_backend.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/cpu_set.h"
#include "common/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_buffer_manager.h"
#include "spdlog/spdlog.h"
#include "state/cache_reservation.h"
#include "state/recent_keys_filter.h"
#include "state/state_merge_operator.h"
#include "state/state_value_format.h"
#include "state/write_back_cache.h"

namespace vstream {

// One column family and the hooks RocksDB calls for it.
struct KeyedStateBackend::StateSlot {
  std::string name;
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  std::shared_ptr<StateMergeOperator> merge_operator;           // owned with RocksDB
  std::shared_ptr<TtlCompactionFilterFactory> filter_factory;  // owned with RocksDB
  std::unique_ptr<KeyedState> handle;  // null while pending (reopened, unregistered)
};

namespace {

// The working copy of a task's state needs no fsync: checkpoints make state
// durable (uploaded copies, synced by CheckpointStorage), and a restore
// fills an empty directory from them, so a crash never reopens these files.
// RocksDB syncs every flushed SST file, its MANIFEST and the directory; on
// this VM each sync took 4-14 ms under load, and a checkpoint's flush runs
// while the task waits.
class UnsyncedFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  using FSWritableFileOwnerWrapper::FSWritableFileOwnerWrapper;
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return Flush(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return Flush(options, dbg);
  }
  rocksdb::IOStatus RangeSync(uint64_t, uint64_t, const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::OK();
  }
};

class UnsyncedDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  using FSDirectoryWrapper::FSDirectoryWrapper;
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions&, rocksdb::IODebugContext*,
                                        const rocksdb::DirFsyncOptions&) override {
    return rocksdb::IOStatus::OK();
  }
};

class UnsyncedFileSystem : public rocksdb::FileSystemWrapper {
 public:
  UnsyncedFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "VstreamUnsyncedFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    return Wrap(target()->NewWritableFile(name, options, file, dbg), file);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* file,
                                       rocksdb::IODebugContext* dbg) override {
    return Wrap(target()->ReopenWritableFile(name, options, file, dbg), file);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& name, const std::string& old_name,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* file,
                                      rocksdb::IODebugContext* dbg) override {
    return Wrap(target()->ReuseWritableFile(name, old_name, options, file, dbg), file);
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* dir, rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewDirectory(name, options, dir, dbg);
    if (s.ok()) *dir = std::make_unique<UnsyncedDirectory>(std::move(*dir));
    return s;
  }

 private:
  static rocksdb::IOStatus Wrap(rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* file) {
    if (s.ok()) *file = std::make_unique<UnsyncedFile>(std::move(*file));
    return s;
  }
};

rocksdb::Env* UnsyncedEnv() {
  static rocksdb::Env* const env = rocksdb::NewCompositeEnv(std::make_shared<UnsyncedFileSystem>()).release();
  return env;
}

constexpr int kMaxStates = 1 << 16;  // the state id takes 2 bytes in cache keys

}  // namespace

// RocksDB schedules a flush in its compactions' pool (LOW) instead of the
// flushes' (HIGH) when the latter has no threads, as this Env says while
// `in_compaction_pool` is set: only while MaintainStateLog asks for the
// flush of the state log (state/state_log.h), which no snapshot waits for.
// That flush, a burst of CPU (the clinical dedup's 8 MiB took a few hundred
// ms), then runs at the compactions' priority (nice 19 with
// LowerCompactionPriority) instead of taking the task's CPU. A flush RocksDB
// schedules later (while a compaction of the instance holds its one
// background slot) goes to the flush threads. (A thread's priority cannot be
// raised back without privileges, so the pool is chosen per flush rather
// than the thread lowered.)
class FlushPoolEnv final : public rocksdb::EnvWrapper {
 public:
  explicit FlushPoolEnv(rocksdb::Env* target) : EnvWrapper(target) {
    // The target's, not a clock and file system of this Env's own (Env's
    // constructor makes them): RocksDB keeps the clock in objects shared by
    // every instance (the block cache's statistics collector), which would
    // outlive this one.
    system_clock_ = target->GetSystemClock();
    file_system_ = target->GetFileSystem();
  }
  static const char* kClassName() { return "VstreamFlushPoolEnv"; }
  const char* Name() const override { return kClassName(); }
  int GetBackgroundThreads(Priority pri) override {
    if (pri == Priority::HIGH && in_compaction_pool.load(std::memory_order_relaxed)) return 0;
    return target()->GetBackgroundThreads(pri);
  }

  std::atomic<bool> in_compaction_pool{false};
};

absl::Status LowerCompactionPriority() {
  static_assert(kBackgroundNice == 19, "RocksDB's CpuPriority::kLow is nice 19");
  rocksdb::Env* env = UnsyncedEnv();
  return FromRocksStatus(env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow),
                         "lower the compaction threads' priority");
}

std::shared_ptr<rocksdb::TableFactory> MakeStateTableFactory(std::shared_ptr<rocksdb::Cache> block_cache) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = std::move(block_cache);
  // Index and filter blocks live in the block cache (high-priority pool), so
  // their memory counts against the budget; partitioned, so only the top
  // level is pinned and the partitions are cached like data blocks.
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_top_level_index_and_filter = true;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  return std::shared_ptr<rocksdb::TableFactory>(rocksdb::NewBlockBasedTableFactory(table));
}

namespace {

// [key group][varint n][key] of a keyed state's RocksDB key (state_key.h):
// the SST files' and memtables' bloom filters also hold each key's prefix,
// so a scan of one key's entries (MapState::ForEachInRange, the interval
// join's probe) skips the files that have none. Most of q3's probes find
// nothing, and each one sought into every level-0 file (docs/benchmarks.md).
class StateKeyPrefixTransform final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "vstream.StateKeyPrefix.1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), StateKeyPrefixSize(std::string_view(key.data(), key.size())));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return StateKeyPrefixSize(std::string_view(key.data(), key.size())) > 0;
  }
};

}  // namespace

bool IsKeyedStateColumnFamily(std::string_view name) {
  return !name.empty() && name != rocksdb::kDefaultColumnFamilyName && !name.starts_with(kTimerStatePrefix);
}

std::shared_ptr<const rocksdb::SliceTransform> StatePrefixExtractor(std::string_view name) {
  if (!IsKeyedStateColumnFamily(name)) return nullptr;
  static const auto* const kPrefix =
      new std::shared_ptr<const rocksdb::SliceTransform>(std::make_shared<StateKeyPrefixTransform>());
  return *kPrefix;
}

rocksdb::ColumnFamilyOptions KeyedStateBackend::CfOptions(const StateSlot& slot) const {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options_.write_buffer_bytes;
  cf.max_write_buffer_number = options_.max_write_buffer_number;
  cf.table_factory = table_factory_;
  // A whole-key bloom filter in each memtable (2% of its size, inside the
  // write-buffer budget): the Get of a read-modify-write on a key that is not
  // in the memtable skips the skiplist search.
  cf.memtable_prefix_bloom_size_ratio = 0.02;
  cf.memtable_whole_key_filtering = true;
  // Keyed states' column families (not timer queues', keyed by time and
  // deleted from in order, nor the empty default one) filter on each key's
  // prefix too (iterators that cross keys set total_order_seek), and
  // compact universally.
  cf.prefix_extractor = StatePrefixExtractor(slot.name);
  if (options_.universal_compaction && IsKeyedStateColumnFamily(slot.name)) {
    cf.compaction_style = rocksdb::kCompactionStyleUniversal;
  }
  cf.merge_operator = slot.merge_operator;
  cf.compaction_filter_factory = slot.filter_factory;
  return cf;
}

absl::StatusOr<std::unique_ptr<KeyedStateBackend>> KeyedStateBackend::Open(
    const KeyedStateBackendOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("state backend path is empty");
  if (options.max_write_buffer_number < 1 || options.write_buffer_bytes == 0) {
    return absl::InvalidArgumentError("state backend needs at least one non-empty memtable");
  }
  std::shared_ptr<StateResources> resources = options.resources;
  if (resources == nullptr) {
    ASSIGN_OR_RETURN(resources, StateResources::Create(StateMemoryBudget()));
  }
  std::error_code ec;
  if (options.wipe_on_open) std::filesystem::remove_all(options.path, ec);
  std::filesystem::create_directories(options.path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", options.path, ": ", ec.message()));

  std::unique_ptr<KeyedStateBackend> backend(
      new KeyedStateBackend(options, resources, MakeStateTableFactory(resources->block_cache())));

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_open_files = options.max_open_files;
  db_options.max_background_jobs = options.max_background_jobs;
  // Every snapshot copies the MANIFEST up to its live size, which grows by
  // each flush and compaction until RocksDB starts a new one: at its
  // default, 1 GiB, the copy would grow with the job's uptime. A new
  // MANIFEST begins with the live state.
  db_options.max_manifest_file_size = uint64_t{1} << 20;
  db_options.info_log_level = options.info_log_level;
  db_options.max_log_file_size = size_t{4} << 20;  // rotated, 2 kept: bounded at any level
  db_options.keep_log_file_num = 2;
  db_options.write_buffer_manager = resources->write_buffer_manager();
  backend->env_ = std::make_unique<FlushPoolEnv>(UnsyncedEnv());
  db_options.env = backend->env_.get();

  // Column families already on disk must all be opened; they stay unbound
  // (automatic compactions off) until a state registers their name.
  std::vector<std::string> names;
  if (!options.wipe_on_open) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, options.path, &names);
    if (!s.ok()) names.clear();  // no database yet
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  StateSlot default_slot;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, backend->CfOptions(default_slot));
  for (const std::string& name : names) {
    if (name == rocksdb::kDefaultColumnFamilyName) continue;
    auto slot = std::make_unique<StateSlot>();
    slot->name = name;
    slot->merge_operator = std::make_shared<StateMergeOperator>(*backend->ctx_.clock);
    slot->filter_factory = std::make_shared<TtlCompactionFilterFactory>(*backend->ctx_.clock);
    rocksdb::ColumnFamilyOptions cf = backend->CfOptions(*slot);
    cf.disable_auto_compactions = true;
    descriptors.emplace_back(name, cf);
    backend->pending_.push_back(std::move(slot));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles,
                                        &backend->db_);
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("open RocksDB at ", options.path));
  backend->default_cf_ = handles[0];
  for (size_t i = 1; i < handles.size(); ++i) backend->pending_[i - 1]->cf = handles[i];

  // A restored snapshot's state log segments, then its write-back cache
  // entries: newer than the rest, in this order (SnapshotDeltaFiles).
  std::vector<std::string> delta_paths;
  if (!options.wipe_on_open) {
    ASSIGN_OR_RETURN(delta_paths, SnapshotDeltaFiles(options.path));
  }
  if (!delta_paths.empty()) {
    std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> by_name;
    by_name[rocksdb::kDefaultColumnFamilyName] = backend->default_cf_;
    for (const auto& slot : backend->pending_) by_name[slot->name] = slot->cf;
    rocksdb::WriteBatch batch;
    for (const std::string& path : delta_paths) {
      absl::Status parsed = CacheDelta::ParseFile(
          path, [&](std::string_view cf_name, std::string_view key, const std::string_view* value) -> absl::Status {
            auto it = by_name.find(cf_name);
            if (it == by_name.end()) {
              return absl::DataLossError(
                  absl::StrCat("it names an unknown column family '", std::string(cf_name), "'"));
            }
            const rocksdb::Slice k(key.data(), key.size());
            rocksdb::Status s = value != nullptr
                                    ? batch.Put(it->second, k, rocksdb::Slice(value->data(), value->size()))
                                    : batch.Delete(it->second, k);
            return FromRocksStatus(s, "snapshot delta");
          });
      if (!parsed.ok()) return absl::Status(parsed.code(), absl::StrCat(path, ": ", parsed.message()));
    }
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    RETURN_IF_ERROR(FromRocksStatus(backend->db_->Write(wo, &batch), "apply the snapshot's deltas"));
    // A logged state's writes must be in SST files before its log starts
    // again (its snapshots do not flush it); the cache delta's reach them
    // with the next snapshot.
    const bool logged = delta_paths.size() > 1 || !delta_paths.back().ends_with(CacheDelta::kFileName);
    if (logged) {
      std::vector<rocksdb::ColumnFamilyHandle*> all;
      for (const auto& [name, cf] : by_name) all.push_back(cf);
      RETURN_IF_ERROR(FromRocksStatus(backend->db_->Flush(rocksdb::FlushOptions(), all), "flush the state log"));
    }
    for (const std::string& path : delta_paths) std::filesystem::remove(path, ec);
  }

  backend->ctx_.db = backend->db_;
  if (options.write_back_cache_bytes > 0) {
    backend->cache_reservation_ = std::make_unique<CacheReservation>(resources->block_cache());
    backend->cache_ = std::make_unique<WriteBackCache>(*backend->db_, backend->ctx_.write_options,
                                                       options.write_back_cache_bytes,
                                                       backend->cache_reservation_.get());
    backend->ctx_.cache = backend->cache_.get();
  }
  return backend;
}

KeyedStateBackend::KeyedStateBackend(KeyedStateBackendOptions options,
                                     std::shared_ptr<StateResources> resources,
                                     std::shared_ptr<rocksdb::TableFactory> table_factory)
    : options_(std::move(options)),
      resources_(std::move(resources)),
      table_factory_(std::move(table_factory)) {
  ctx_.clock = options_.clock != nullptr ? options_.clock : &StateClock::System();
  // The WAL is redundant with checkpoints: a restore rebuilds from a snapshot.
  ctx_.write_options.disableWAL = true;
}

KeyedStateBackend::~KeyedStateBackend() {
  if (cache_ != nullptr) {
    const WriteBackCache::Stats& st = cache_->stats();
    spdlog::info("state backend {}: write-back cache of {} MiB held {} entries ({} MiB); {} hits, {} misses, "
                 "{} evicted ({} written back), {} cleared and dropped, {} written by flushes, {} settled; "
                 "{} misses on keys never written read nothing",
                 options_.path, cache_->capacity_bytes() >> 20, cache_->entries(), cache_->bytes() >> 20, st.hits,
                 st.misses, st.evicted, st.written_on_evict, st.dropped, st.written_on_flush, st.written_on_settle,
                 st.loads_skipped);
    absl::Status s = cache_->Flush();
    if (!s.ok()) spdlog::warn("state backend {}: write-back on close failed: {}", options_.path, s.ToString());
  }
  ctx_.cache = nullptr;
  cache_.reset();
  if (db_ == nullptr) return;
  if (absl::Status s = WriteHeldPuts(); !s.ok()) {
    spdlog::warn("state backend {}: writing held puts on close failed: {}", options_.path, s.ToString());
  }
  ReleaseScans();  // no iterator may outlive the DB
  for (auto* slots : {&states_, &pending_}) {
    for (auto& slot : *slots) {
      if (slot->cf != nullptr) db_->DestroyColumnFamilyHandle(slot->cf);
      slot->cf = nullptr;
    }
  }
  if (default_cf_ != nullptr) db_->DestroyColumnFamilyHandle(default_cf_);
  if (deletion_gate_ != nullptr) {
    std::lock_guard<std::mutex> lock(deletion_gate_->mu);
    deletion_gate_->db = nullptr;
  }
  rocksdb::Status s = db_->Close();
  if (!s.ok()) spdlog::warn("state backend {}: close failed: {}", options_.path, s.ToString());
  delete db_;
}

void FileDeletionHold::Release() {
  if (gate_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(gate_->mu);
    if (gate_->db != nullptr) {
      rocksdb::Status s = gate_->db->EnableFileDeletions(/*force=*/false);
      if (!s.ok()) spdlog::warn("state backend: enabling file deletions again failed: {}", s.ToString());
    }
  }
  gate_.reset();
}

absl::StatusOr<FileDeletionHold> KeyedStateBackend::HoldFileDeletions() {
  if (deletion_gate_ == nullptr) {
    deletion_gate_ = std::make_shared<FileDeletionHold::Gate>();
    deletion_gate_->db = db_;
  }
  RETURN_IF_ERROR(FromRocksStatus(db_->DisableFileDeletions(), "state snapshot: disable file deletions"));
  return FileDeletionHold(deletion_gate_);
}

void KeyedStateBackend::SetCurrentKey(int key_group, std::string_view serialized_key) {
  ctx_.current_key.clear();
  AppendStateKeyPrefix(key_group, serialized_key, &ctx_.current_key);
}

bool KeyedStateBackend::HasState(std::string_view name) const {
  for (const auto* slots : {&states_, &pending_}) {
    for (const auto& slot : *slots) {
      if (slot->name == name) return true;
    }
  }
  return false;
}

template <typename Handle>
absl::StatusOr<Handle*> KeyedStateBackend::Register(const std::string& name,
                                                    std::shared_ptr<const StateBehavior> behavior,
                                                    bool write_back_cache, bool timer_state) {
  if (name.empty() || name == rocksdb::kDefaultColumnFamilyName) {
    return absl::InvalidArgumentError(absl::StrCat("invalid state name '", name, "'"));
  }
  if (!timer_state && std::string_view(name).substr(0, kTimerStatePrefix.size()) == kTimerStatePrefix) {
    return absl::InvalidArgumentError(absl::StrCat("state name '", name, "': the prefix '",
                                                   AV(kTimerStatePrefix), "' is reserved for timer queues"));
  }
  for (auto& slot : states_) {
    if (slot->name != name) continue;
    const KeyedState& h = *slot->handle;
    if (h.kind() != behavior->kind || h.ttl_ms() != behavior->ttl_ms) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state '", name, "' is registered as ", StateKindName(h.kind()), " with ttl ",
          h.ttl_ms(), " ms, not as ", StateKindName(behavior->kind), " with ttl ",
          behavior->ttl_ms, " ms"));
    }
    return static_cast<Handle*>(slot->handle.get());
  }
  if (states_.size() >= kMaxStates) {
    return absl::ResourceExhaustedError(absl::StrCat("too many states: ", states_.size()));
  }
  std::unique_ptr<StateSlot> slot;
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if ((*it)->name == name) {
      slot = std::move(*it);
      pending_.erase(it);
      break;
    }
  }
  const bool reopened = slot != nullptr;
  if (!reopened) {
    slot = std::make_unique<StateSlot>();
    slot->name = name;
    slot->merge_operator = std::make_shared<StateMergeOperator>(*ctx_.clock);
    slot->filter_factory = std::make_shared<TtlCompactionFilterFactory>(*ctx_.clock);
  }
  slot->merge_operator->Bind(behavior);
  slot->filter_factory->Bind(behavior);
  if (reopened) {
    rocksdb::Status s = db_->SetOptions(slot->cf, {{"disable_auto_compactions", "false"}});
    if (!s.ok()) return FromRocksStatus(s, absl::StrCat("enable compactions of state '", name, "'"));
  } else {
    rocksdb::Status s = db_->CreateColumnFamily(CfOptions(*slot), name, &slot->cf);
    if (!s.ok()) return FromRocksStatus(s, absl::StrCat("create state '", name, "'"));
  }
  const auto id = static_cast<StateId>(states_.size());
  if (write_back_cache && cache_ != nullptr) FilterCachedKeys(id, name, slot->cf, reopened);
  auto* handle = new Handle(ctx_, id, name, slot->cf, std::move(behavior),
                            write_back_cache && cache_ != nullptr);
  slot->handle.reset(handle);
  states_.push_back(std::move(slot));
  return handle;
}

void KeyedStateBackend::FilterCachedKeys(StateId id, const std::string& name, rocksdb::ColumnFamilyHandle* cf,
                                         bool reopened) {
  // A first part of at most capacity / 64 keys, as BufferedMapState's, so
  // that small caches (tests) have one too.
  auto filter = std::make_unique<RecentKeysFilter>(
      name, RecentKeysFilter::kNoExpiry, cache_->written_keys_filter_max_bytes(),
      std::min(RecentKeysFilter::kMinKeys, cache_->capacity_bytes() / 64));
  if (reopened) {
    // Restored: every key on disk first, as the cache keys them ([state
    // id][RocksDB key]). Past the filter's limit it turns itself off, and
    // the scan stops: every miss then reads RocksDB. A state RocksDB
    // estimates at more keys than half of what the limit holds gets no
    // filter and no scan (its parts double: the last may not fit); nor does
    // one whose scan fails.
    uint64_t estimate = 0;
    const uint64_t most = cache_->written_keys_filter_max_bytes() * 8 / RecentKeysFilter::kBitsPerKey / 2;
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kEstimateNumKeys, &estimate) && estimate > most) {
      spdlog::info("state '{}': restored with about {} keys, more than its filter of written keys holds; "
                   "every cache miss reads RocksDB", name, estimate);
      return cache_->FilterWrittenKeys(id, nullptr);
    }
    std::string cache_key;
    rocksdb::ReadOptions ro;
    ro.total_order_seek = true;  // every key
    ro.fill_cache = false;       // one pass: the hot blocks stay cached
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->SeekToFirst(); it->Valid() && filter->on(); it->Next()) {
      cache_key.assign({static_cast<char>((id >> 8) & 0xff), static_cast<char>(id & 0xff)});
      cache_key.append(it->key().data(), it->key().size());
      filter->AddKey(cache_key);
    }
    if (!it->status().ok()) {
      spdlog::warn("state '{}': scanning its restored keys failed ({}); every cache miss reads RocksDB", name,
                   it->status().ToString());
      return cache_->FilterWrittenKeys(id, nullptr);
    }
  }
  cache_->FilterWrittenKeys(id, std::move(filter));
}

absl::Status KeyedStateBackend::FlushUnloggedStates() {
  return FromRocksStatus(db_->Flush(rocksdb::FlushOptions(), UnloggedColumnFamilies()), "state snapshot: flush");
}

absl::StatusOr<ValueState*> KeyedStateBackend::GetValueState(const ValueStateDescriptor& d) {
  auto b = std::make_shared<StateBehavior>();
  b->kind = StateKind::kValue;
  b->ttl_ms = d.ttl_ms;
  return Register<ValueState>(d.name, std::move(b), d.write_back_cache);
}

absl::StatusOr<ListState*> KeyedStateBackend::GetListState(const ListStateDescriptor& d) {
  auto b = std::make_shared<StateBehavior>();
  b->kind = StateKind::kList;
  b->ttl_ms = d.ttl_ms;
  return Register<ListState>(d.name, std::move(b), /*write_back_cache=*/false);
}

absl::StatusOr<MapState*> KeyedStateBackend::GetMapState(const MapStateDescriptor& d) {
  auto b = std::make_shared<StateBehavior>();
  b->kind = StateKind::kMap;
  b->ttl_ms = d.ttl_ms;
  if (d.filter_recent_keys && d.ttl_ms <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("map state '", d.name, "': a filter of recent keys needs a ttl"));
  }
  // Reopened from disk (restored), or registered before without the filter:
  // its entries were not all written through a filter, so it starts from a
  // scan of them.
  const bool restored = HasState(d.name);
  absl::StatusOr<MapState*> state = Register<MapState>(d.name, std::move(b), /*write_back_cache=*/false);
  if (state.ok() && d.filter_recent_keys) {
    MapState* map = *state;
    RETURN_IF_ERROR(map->FilterRecentKeys(restored, d.recent_keys_filter_max_bytes));
    if (!map->logged()) {
      // Its log starts empty: what RocksDB holds of it in memtables (a
      // restore's) goes to SST files first.
      rocksdb::ColumnFamilyHandle* cf = column_family(map->id());
      uint64_t entries = 0, immutable = 0;
      if (!db_->GetIntProperty(cf, rocksdb::DB::Properties::kNumEntriesActiveMemTable, &entries) ||
          !db_->GetIntProperty(cf, rocksdb::DB::Properties::kNumImmutableMemTable, &immutable) ||
          entries + immutable > 0) {
        RETURN_IF_ERROR(FromRocksStatus(db_->Flush(rocksdb::FlushOptions(), cf),
                                        absl::StrCat("flush map state '", d.name, "'")));
      }
      map->LogWrites(&state_log_);
      logged_cfs_.push_back(cf);
    }
  }
  return state;
}

absl::StatusOr<ReducingState*> KeyedStateBackend::GetReducingState(
    const ReducingStateDescriptor& d) {
  if (!d.reduce) {
    return absl::InvalidArgumentError(absl::StrCat("reducing state '", d.name, "' has no reduce function"));
  }
  auto b = std::make_shared<StateBehavior>();
  b->kind = StateKind::kReducing;
  b->ttl_ms = d.ttl_ms;
  b->reduce = d.reduce;
  b->associative = d.associative;
  return Register<ReducingState>(d.name, std::move(b), d.write_back_cache);
}

absl::StatusOr<AggregatingState*> KeyedStateBackend::GetAggregatingState(
    const AggregatingStateDescriptor& d) {
  if (!d.function.create_accumulator || !d.function.add) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregating state '", d.name, "' needs create_accumulator and add"));
  }
  auto b = std::make_shared<StateBehavior>();
  b->kind = StateKind::kAggregating;
  b->ttl_ms = d.ttl_ms;
  b->aggregate = d.function;
  b->associative = d.associative;
  return Register<AggregatingState>(d.name, std::move(b), d.write_back_cache);
}

absl::StatusOr<ValueState*> KeyedStateBackend::GetTimerState(const std::string& queue_name) {
  auto b = std::make_shared<StateBehavior>();
  b->kind = StateKind::kValue;
  return Register<ValueState>(absl::StrCat(AV(kTimerStatePrefix), queue_name), std::move(b),
                              /*write_back_cache=*/false, /*timer_state=*/true);
}

CacheDelta KeyedStateBackend::DirtyCacheEntries(std::vector<LaterDelta>* later) {
  // Before the checkpoint's flush, so that the flushed memtable is freed
  // (and no scan pins more than an interval's).
  ReleaseScans();
  CacheDelta delta(delta_buffers_->Take(), last_delta_bytes_ + last_delta_bytes_ / 8);
  if (cache_ != nullptr) cache_->AppendDirty(&delta, later);
  for (const auto& weak : snapshot_deltas_) {
    if (std::shared_ptr<const SnapshotDeltaFn> fn = weak.lock()) (*fn)(&delta, later);
  }
  last_delta_bytes_ = delta.bytes();
  return delta;
}

void KeyedStateBackend::ReleaseScans() {
  for (const auto& slot : states_) {
    if (slot->handle != nullptr && slot->handle->kind() == StateKind::kMap) {
      static_cast<MapState*>(slot->handle.get())->ReleaseScan();
    }
  }
}

const std::vector<StateLog::Segment>& KeyedStateBackend::SealStateLog() {
  DropFlushedSegments();
  state_log_.Seal();
  return state_log_.segments();
}

std::vector<rocksdb::ColumnFamilyHandle*> KeyedStateBackend::UnloggedColumnFamilies() const {
  std::vector<rocksdb::ColumnFamilyHandle*> cfs{default_cf_};
  for (const auto* slots : {&states_, &pending_}) {
    for (const auto& slot : *slots) {
      if (!IsLogged(slot->cf)) cfs.push_back(slot->cf);
    }
  }
  return cfs;
}

bool KeyedStateBackend::LoggedMemtablesFlushed() const {
  for (rocksdb::ColumnFamilyHandle* cf : logged_cfs_) {
    uint64_t immutable = 0;
    if (!db_->GetIntProperty(cf, rocksdb::DB::Properties::kNumImmutableMemTable, &immutable) || immutable > 0) {
      return false;
    }
  }
  return true;
}

void KeyedStateBackend::DropFlushedSegments() {
  // The flush switched the memtables when it started: once no immutable
  // one is left, the writes before it are in SST files (a later switch,
  // RocksDB's own, only delays this).
  if (flushing_segments_ == 0 || !LoggedMemtablesFlushed()) return;
  state_log_.DropFirst(flushing_segments_);
  flushing_segments_ = 0;
}

absl::Status KeyedStateBackend::MaintainStateLog() {
  if (logged_cfs_.empty()) return absl::OkStatus();
  DropFlushedSegments();
  if (flushing_segments_ > 0 || state_log_.bytes() < state_log_flush_bytes() || !LoggedMemtablesFlushed()) {
    return absl::OkStatus();
  }
  // Every logged write must be in the memtables the flush takes.
  RETURN_IF_ERROR(WriteHeldPuts());
  state_log_.Seal();
  env_->in_compaction_pool.store(true, std::memory_order_relaxed);
  const rocksdb::Status s = FlushInBackground(*db_, logged_cfs_);
  env_->in_compaction_pool.store(false, std::memory_order_relaxed);
  // Only a flush that started (switched the memtables) takes the segments
  // with it; one refused (TryAgain while writes are stopped) leaves them.
  if (s.ok()) flushing_segments_ = state_log_.segments().size();
  return FromRocksStatus(s, "flush the logged states");
}

absl::Status KeyedStateBackend::WriteHeldPuts() {
  for (const auto& slot : states_) {
    if (slot->handle != nullptr && slot->handle->kind() == StateKind::kMap) {
      RETURN_IF_ERROR(static_cast<MapState*>(slot->handle.get())->WriteHeldPuts());
    }
  }
  return absl::OkStatus();
}

void KeyedStateBackend::AddSnapshotDelta(const std::shared_ptr<const SnapshotDeltaFn>& fn) {
  std::erase_if(snapshot_deltas_, [](const auto& weak) { return weak.expired(); });
  snapshot_deltas_.push_back(fn);
}

absl::Status KeyedStateBackend::Flush() {
  RETURN_IF_ERROR(WriteHeldPuts());
  return cache_ != nullptr ? cache_->Flush() : absl::OkStatus();
}

rocksdb::ColumnFamilyHandle* KeyedStateBackend::column_family(StateId state) {
  if (state < 0 || state >= num_states()) return nullptr;
  return states_[state]->cf;
}

absl::Status KeyedStateBackend::ForEachKey(StateId state, KeyGroupRange range,
                                           const std::function<void(const StateKeyView&)>& fn) {
  if (state < 0 || state >= num_states()) {
    return absl::InvalidArgumentError(absl::StrCat("no state with id ", state));
  }
  if (range.start < 0 || range.end < range.start || range.end >= kMaxKeyGroups) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid key-group range [", range.start, ", ", range.end, "]"));
  }
  RETURN_IF_ERROR(Flush());
  const StateSlot& slot = *states_[state];
  const KeyedState& handle = *slot.handle;
  std::string lower;
  AppendKeyGroupBytes(range.start, &lower);
  std::string upper;
  if (range.end + 1 < kMaxKeyGroups) AppendKeyGroupBytes(range.end + 1, &upper);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  // A scan of many keys should not push hot blocks out of the cache.
  ro.fill_cache = false;
  ro.total_order_seek = true;  // across keys (the prefix filter is per key)
  const int64_t now = ctx_.clock->NowMillis();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, slot.cf));
  StateKeyView view;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (!DecodeStateKey(std::string_view(key.data(), key.size()), &view)) {
      return absl::DataLossError(absl::StrCat("state '", slot.name, "' holds a malformed key"));
    }
    if (handle.ttl_ms() > 0 &&
        !IsLiveValue(handle.kind(), handle.ttl_ms(),
                     std::string_view(it->value().data(), it->value().size()), now)) {
      continue;
    }
    fn(view);
  }
  return FromRocksStatus(it->status(), absl::StrCat("scan state '", slot.name, "'"));
}

absl::StatusOr<bool> KeyedStateBackend::FlushMemtablesInBackground(uint64_t min_entries) {
  // Only the large ones: a small memtable flushes quickly in the snapshot,
  // and each flush is one more L0 file to compact and upload. (By entries:
  // the active memtable's size property counts the arena blocks allocated,
  // 1.3 MiB once a few KB are written.) Not one whose previous memtable is
  // still being flushed (a settling round's): a second would stop writes
  // until the first is done.
  RETURN_IF_ERROR(WriteHeldPuts());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  for (const auto& state : states_) {
    if (IsLogged(state->cf)) continue;  // its snapshots do not flush it
    uint64_t entries = 0, immutable = 0;
    if (!db_->GetIntProperty(state->cf, rocksdb::DB::Properties::kNumEntriesActiveMemTable, &entries) ||
        !db_->GetIntProperty(state->cf, rocksdb::DB::Properties::kNumImmutableMemTable, &immutable)) {
      continue;
    }
    if (entries >= min_entries && immutable == 0) cfs.push_back(state->cf);
  }
  if (cfs.empty()) return false;
  RETURN_IF_ERROR(FromRocksStatus(FlushInBackground(*db_, cfs), "flush memtables in the background"));
  return true;
}

rocksdb::Status FlushInBackground(rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
  rocksdb::FlushOptions flush;
  flush.wait = false;
  flush.allow_write_stall = true;
  return db.Flush(flush, cfs);
}

absl::Status KeyedStateBackend::CompactState(StateId state) {
  if (state < 0 || state >= num_states()) {
    return absl::InvalidArgumentError(absl::StrCat("no state with id ", state));
  }
  RETURN_IF_ERROR(Flush());
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return FromRocksStatus(db_->CompactRange(options, states_[state]->cf, nullptr, nullptr),
                         absl::StrCat("compact state '", states_[state]->name, "'"));
}

StateCacheStats KeyedStateBackend::cache_stats() const {
  StateCacheStats out;
  if (cache_ == nullptr) return out;
  const WriteBackCache::Stats& s = cache_->stats();
  out.capacity_bytes = cache_->capacity_bytes();
  out.bytes = cache_->bytes();
  out.entries = cache_->entries();
  out.table_capacity = cache_->table_capacity();
  out.hits = s.hits;
  out.misses = s.misses;
  out.evicted = s.evicted;
  out.written_on_evict = s.written_on_evict;
  out.written_on_flush = s.written_on_flush;
  out.written_on_settle = s.written_on_settle;
  out.dropped = s.dropped;
  out.loads_skipped = s.loads_skipped;
  out.batches = s.batches;
  return out;
}

absl::StatusOr<StateId> KeyedStateBackend::RegisterState(const std::string& name, bool write_back_cache) {
  ValueStateDescriptor descriptor;
  descriptor.name = name;
  descriptor.write_back_cache = write_back_cache;
  ASSIGN_OR_RETURN(ValueState * state, GetValueState(descriptor));
  return state->id();
}

absl::StatusOr<ValueState*> KeyedStateBackend::LegacyValueState(StateId state) {
  if (state < 0 || state >= num_states() || states_[state]->handle->kind() != StateKind::kValue) {
    return absl::InvalidArgumentError(absl::StrCat("no value state with id ", state));
  }
  return static_cast<ValueState*>(states_[state]->handle.get());
}

absl::Status KeyedStateBackend::Get(StateId state, int key_group, std::string_view key,
                                    std::string* value) {
  ASSIGN_OR_RETURN(ValueState * vs, LegacyValueState(state));
  legacy_key_.clear();
  AppendStateKeyPrefix(key_group, key, &legacy_key_);
  ASSIGN_OR_RETURN(StateLookup r, vs->GetAt(legacy_key_, "", value));
  // A code without a message: no allocation on the record path.
  if (r == StateLookup::kAbsent) return absl::Status(absl::StatusCode::kNotFound, "");
  return absl::OkStatus();
}

absl::Status KeyedStateBackend::Put(StateId state, int key_group, std::string_view key,
                                    std::string_view value) {
  ASSIGN_OR_RETURN(ValueState * vs, LegacyValueState(state));
  legacy_key_.clear();
  AppendStateKeyPrefix(key_group, key, &legacy_key_);
  return vs->PutAt(legacy_key_, "", value);
}

absl::Status KeyedStateBackend::Update(StateId state, int key_group, std::string_view key,
                                      absl::FunctionRef<void(bool present, std::string* value)> fn) {
  return Modify(state, key_group, key, [&](bool present, std::string* value) {
    fn(present, value);
    return StateChange::kChanged;
  });
}

absl::Status KeyedStateBackend::Modify(StateId state, int key_group, std::string_view key,
                                      absl::FunctionRef<StateChange(bool present, std::string* value)> fn) {
  ASSIGN_OR_RETURN(ValueState * vs, LegacyValueState(state));
  legacy_key_.clear();
  AppendStateKeyPrefix(key_group, key, &legacy_key_);
  return vs->ModifyAt(legacy_key_, "", fn);
}

absl::Status KeyedStateBackend::Delete(StateId state, int key_group, std::string_view key) {
  ASSIGN_OR_RETURN(ValueState * vs, LegacyValueState(state));
  legacy_key_.clear();
  AppendStateKeyPrefix(key_group, key, &legacy_key_);
  return vs->ClearAt(legacy_key_, "");
}

}  // namespace vstream
