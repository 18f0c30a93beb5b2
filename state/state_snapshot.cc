#include "state/state_snapshot.h"

#include <fstream>
#include <iterator>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "state/keyed_state.h"
#include "state/state_key.h"
#include "state/timer_queue.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

// Removes a directory tree when it goes out of scope.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string dir) : dir_(std::move(dir)) {}
  ~RemoveOnExit() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

 private:
  std::string dir_;
};

// Writes `bytes` as the whole file `path`.
absl::Status WriteWholeFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("state snapshot: cannot write ", path));
  return absl::OkStatus();
}

// The sync part of a RocksDB checkpoint as rocksdb::Checkpoint makes one,
// without its flush (the caller flushed the memtables the snapshot does not
// hold otherwise: KeyedStateBackend::FlushUnloggedStates) and without the
// WAL (every write skips it): the live files' names and the MANIFEST's
// size, under the DB mutex, with file deletions held off until the files
// are linked (LocalSnapshot::LinkFiles). GetLiveFilesStorageInfo, which
// lists the WAL directory too (and may wait for a purge), took 65-275 µs
// per operator on the task thread, and the links and reads after it as
// long again (docs/benchmarks.md).
absl::StatusOr<LocalSnapshot::Listing> ListLiveFiles(KeyedStateBackend& backend) {
  LocalSnapshot::Listing listing;
  ASSIGN_OR_RETURN(listing.hold, backend.HoldFileDeletions());
  RETURN_IF_ERROR(FromRocksStatus(backend.db()->GetLiveFiles(listing.files, &listing.manifest_size,
                                                             /*flush_memtable=*/false),
                                  "state snapshot: list live files"));
  listing.db_dir = backend.db()->GetName();
  return listing;
}

}  // namespace

absl::StatusOr<LocalSnapshot> TakeLocalSnapshot(KeyedStateBackend& backend, int64_t checkpoint_id,
                                                const std::string& dir, KeyGroupRange range, bool link_later) {
  // The write-back cache is not pushed through RocksDB: its dirty entries
  // go to CACHE-DELTA beside the checkpoint (state/cache_delta.h).
  // Nor are the logged states' memtables flushed: the snapshot holds the
  // segments of their log (state/state_log.h).
  LocalSnapshot local;
  RETURN_IF_ERROR(backend.WriteHeldPuts());  // into RocksDB, so that the files listed and the log agree
  local.cache_delta = backend.DirtyCacheEntries(&local.cache_delta_later);
  local.delta_buffers = backend.delta_buffers();
  local.state_log = backend.SealStateLog();
  // With the WAL off, a flush is what persists a memtable. (The task thread
  // is the only writer: nothing lands between the flush and the listing.)
  RETURN_IF_ERROR(backend.FlushUnloggedStates());
  ASSIGN_OR_RETURN(local.unlinked, ListLiveFiles(backend));
  local.dir = dir;
  if (!link_later) RETURN_IF_ERROR(local.LinkFiles());
  // After the listing: the snapshot does not wait for the log's flush. A
  // flush refused keeps the log whole (the next tick tries again), and this
  // snapshot is complete either way.
  if (absl::Status s = backend.MaintainStateLog(); !s.ok()) {
    spdlog::warn("state backend {}: {}", backend.path(), s.ToString());
  }
  local.checkpoint_id = checkpoint_id;
  local.range = range;
  return local;
}

absl::Status LocalSnapshot::LinkFiles() {
  if (!unlinked) return link_status;
  Listing listing = std::move(*unlinked);
  unlinked.reset();
  link_status = LinkListed(listing);
  listing.hold.Release();
  return link_status;
}

absl::Status LocalSnapshot::LinkListed(const Listing& listing) {
  std::error_code ec;
  std::string manifest;
  for (std::string name : listing.files) {
    if (!name.empty() && name.front() == '/') name.erase(0, 1);
    const fs::path from = fs::path(listing.db_dir) / name;
    if (name.ends_with(".sst")) {
      if (!made_dir) {
        fs::create_directory(dir, ec);
        if (ec) return absl::InternalError(absl::StrCat("state snapshot: cannot create ", dir, ": ", ec.message()));
        made_dir = true;
      }
      const fs::path to = fs::path(dir) / name;
      fs::create_hard_link(from, to, ec);
      if (!ec) continue;
      // Another file system: copy instead.
      fs::copy_file(from, to, ec);
      if (ec) {
        return absl::InternalError(absl::StrCat("state snapshot: cannot copy ", from.string(), ": ", ec.message()));
      }
      continue;
    }
    // The other files (KBs; a MANIFEST up to about 1 MiB,
    // max_manifest_file_size in keyed_state_backend.cc) are read into
    // memory: the upload sends them inline or writes them from there. (A
    // local copy cost an inode, ext4 looking past recently deleted ones, and
    // later an unlink; rocksdb::Checkpoint also syncs each, which on a disk
    // busy with other tasks' uploads held the task thread 0.2-0.6 s.)
    // CURRENT is written below from the MANIFEST listed (RocksDB may have
    // replaced it since).
    if (name == "CURRENT") continue;
    // Only the first bytes of a MANIFEST belong to this checkpoint (it
    // grows while the database runs); the rest (OPTIONS) are whole.
    uint64_t size = listing.manifest_size;
    if (name.starts_with("MANIFEST-")) {
      manifest = name;
    } else {
      size = fs::file_size(from, ec);
      if (ec) {
        return absl::InternalError(absl::StrCat("state snapshot: cannot read ", from.string(), ": ", ec.message()));
      }
    }
    std::ifstream in(from, std::ios::binary);
    std::string bytes(size, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<uint64_t>(in.gcount()) != size) {
      return absl::InternalError(absl::StrCat("state snapshot: cannot read ", from.string(), " (", size, " bytes)"));
    }
    files_in_memory.emplace_back(std::move(name), std::move(bytes));
  }
  if (manifest.empty()) return absl::InternalError("state snapshot: RocksDB listed no MANIFEST");
  files_in_memory.emplace_back("CURRENT", manifest + "\n");
  return absl::OkStatus();
}

void LocalSnapshot::CopyLater() {
  size_t unlimited = SIZE_MAX;
  CopySome(&unlimited);
}

bool LocalSnapshot::CopySome(size_t* budget) {
  if (unlinked) {
    LinkFiles().IgnoreError();  // recorded in link_status, which Upload returns
    *budget -= std::min(*budget, kLinkBudget);
    if (*budget == 0) return cache_delta_later.empty();
  }
  for (LaterDelta& later : cache_delta_later) {
    if (!later.Copy(&cache_delta, budget)) return false;
    if (*budget == 0) break;
  }
  std::erase_if(cache_delta_later, [](const LaterDelta& later) { return later.done(); });
  return cache_delta_later.empty();
}

std::string LocalSnapshot::FinishCacheDelta() {
  CopyLater();
  if (!cache_delta.empty()) return std::move(cache_delta).Finish();
  if (delta_buffers != nullptr) delta_buffers->Give(std::move(cache_delta).Finish());
  return std::string();
}

IncrementalSnapshotter::IncrementalSnapshotter(std::shared_ptr<CheckpointStorage> storage, std::string instance_id)
    : storage_(std::move(storage)), instance_id_(std::move(instance_id)) {}

absl::StatusOr<proto::KeyedStateHandle> IncrementalSnapshotter::Upload(LocalSnapshot& local,
                                                                       const std::string& private_dir,
                                                                       uint64_t* bytes_uploaded) {
  uint64_t copied = 0;
  RemoveOnExit cleanup(local.dir);
  std::string cache_delta = local.FinishCacheDelta();
  RETURN_IF_ERROR(local.link_status);
  std::shared_ptr<const FileMap> confirmed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    confirmed = confirmed_;
  }
  proto::KeyedStateHandle handle;
  handle.set_key_group_start(local.range.start);
  handle.set_key_group_end(local.range.end);
  FileMap held;  // every SST of this snapshot, uploaded or referenced
  size_t reused = 0;
  std::error_code ec;
  std::vector<fs::path> files;
  if (local.made_dir) {  // not for a snapshot without SSTs
    for (const auto& entry : fs::directory_iterator(local.dir, ec)) files.push_back(entry.path());
    if (ec) return absl::InternalError(absl::StrCat("cannot list ", local.dir, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  // A shared file of this snapshot (an SST or a log segment): the one a
  // completed checkpoint holds under its name and size is referenced (null
  // returned); otherwise a new one in shared/, to upload.
  auto add_shared = [&](const std::string& name, uint64_t size) -> const proto::StateFile* {
    proto::StateFile* f = handle.add_files();
    f->set_name(name);
    f->set_size(size);
    f->set_shared(true);
    auto it = confirmed->find(name);
    const bool reuse = it != confirmed->end() && it->second.size() == size;
    f->set_path(reuse ? it->second.path() : absl::StrCat("shared/", instance_id_, "-", name));
    held[name] = *f;
    if (!reuse) copied += size;
    return reuse ? nullptr : f;
  };
  for (const fs::path& file : files) {
    const proto::StateFile* f = add_shared(file.filename().string(), fs::file_size(file, ec));
    if (f == nullptr) {
      ++reused;
      continue;
    }
    RETURN_IF_ERROR(storage_->Upload(file.string(), f->path()));
  }
  // The state log's segments: shared, referenced as SSTs are once a
  // completed checkpoint holds them.
  for (const StateLog::Segment& segment : local.state_log) {
    const proto::StateFile* f = add_shared(segment.name, segment.bytes->size());
    if (f != nullptr) RETURN_IF_ERROR(storage_->Write(f->path(), *segment.bytes));
  }
  // The small files, and CACHE-DELTA, straight from memory: inline up to
  // kInlineStateFileBytes, else a file in the private directory (a local
  // copy would only be written, read back and deleted).
  auto add_in_memory = [&](const std::string& name, std::string& bytes) -> absl::Status {
    proto::StateFile* f = handle.add_files();
    f->set_name(name);
    f->set_size(bytes.size());
    copied += f->size();
    if (bytes.size() <= kInlineStateFileBytes) {
      f->set_data(std::move(bytes));
      return absl::OkStatus();
    }
    f->set_path(absl::StrCat(private_dir, "/", name));
    return storage_->Write(f->path(), bytes);
  };
  for (auto& [name, bytes] : local.files_in_memory) RETURN_IF_ERROR(add_in_memory(name, bytes));
  if (!cache_delta.empty()) {
    RETURN_IF_ERROR(add_in_memory(CacheDelta::kFileName, cache_delta));
    // Written (or moved into the handle, inline): the buffer serves the
    // next snapshot (DeltaBuffers).
    if (local.delta_buffers != nullptr) local.delta_buffers->Give(std::move(cache_delta));
  }
  if (bytes_uploaded != nullptr) *bytes_uploaded = copied;
  std::lock_guard<std::mutex> lock(mu_);
  pending_[local.checkpoint_id] = std::move(held);
  last_reused_ = reused;
  last_uploaded_ = handle.files_size() - reused;
  return handle;
}

void IncrementalSnapshotter::OnCheckpointComplete(int64_t checkpoint_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(checkpoint_id);
  if (it == pending_.end()) return;
  confirmed_ = std::make_shared<const FileMap>(std::move(it->second));
  pending_.erase(pending_.begin(), std::next(it));
}

void IncrementalSnapshotter::AddRestored(const proto::KeyedStateHandle& handle) {
  std::lock_guard<std::mutex> lock(mu_);
  auto files = std::make_shared<FileMap>(*confirmed_);
  for (const proto::StateFile& f : handle.files()) {
    // Not the state log's segments: the restore flushed what they hold,
    // and this instance's own segments start again at the same names.
    if (f.shared() && !StateLog::IsSegmentFile(f.name())) (*files)[f.name()] = f;
  }
  confirmed_ = std::move(files);
}

size_t IncrementalSnapshotter::confirmed_files() const {
  std::lock_guard<std::mutex> lock(mu_);
  return confirmed_->size();
}

size_t IncrementalSnapshotter::last_reused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_reused_;
}

size_t IncrementalSnapshotter::last_uploaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_uploaded_;
}

namespace {

// Downloads the files of `handle` into the directory `dir` (created if
// missing), checking names and sizes.
absl::Status DownloadFiles(CheckpointStorage& storage, const proto::KeyedStateHandle& handle, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (const proto::StateFile& f : handle.files()) {
    if (f.name().empty() || f.name() == "." || f.name() == ".." || f.name().find('/') != std::string::npos) {
      return absl::DataLossError(absl::StrCat("state handle names a bad file '", f.name(), "'"));
    }
    const std::string local = (fs::path(dir) / f.name()).string();
    if (IsInlineStateFile(f)) {
      if (f.data().size() != f.size()) {
        return absl::DataLossError(absl::StrCat("inline state file ", f.name(), " has ", f.data().size(),
                                                " bytes, the snapshot recorded ", f.size()));
      }
      RETURN_IF_ERROR(WriteWholeFile(local, f.data()));
      continue;
    }
    if (absl::Status s = storage.Download(f.path(), local); !s.ok()) return s;
    const uintmax_t size = fs::file_size(local, ec);
    if (ec || size != f.size()) {
      return absl::DataLossError(
          absl::StrCat("state file ", f.path(), " has ", ec ? 0 : size, " bytes, the snapshot recorded ", f.size()));
    }
  }
  return absl::OkStatus();
}

bool ValidRange(int start, int end) { return start >= 0 && start <= end && end < kMaxKeyGroups; }

// The merge operator of the snapshots read during a redistribution. RocksDB
// calls it when an iterator lands on a key with merge operands; it cannot
// fold them (the fold is the operator's), so it keeps the base value and the
// operands for the copier to write as they are. Used by one thread (a
// read-only instance runs no background merges).
class OperandCapture final : public rocksdb::MergeOperator {
 public:
  struct Captured {
    std::string key;
    bool has_base = false;
    std::string base;
    std::vector<std::string> operands;  // oldest first
  };

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    captured_.key.assign(in.key.data(), in.key.size());
    captured_.has_base = in.existing_value != nullptr;
    if (captured_.has_base) captured_.base.assign(in.existing_value->data(), in.existing_value->size());
    captured_.operands.clear();
    for (const rocksdb::Slice& op : in.operand_list) captured_.operands.emplace_back(op.data(), op.size());
    captured_.valid = true;
    out->new_value.clear();
    return true;
  }
  const char* Name() const override { return "vstream.RestoreOperandCapture"; }

  // The operands of `key` if the iterator merged them to land on it.
  const Captured* Take(const rocksdb::Slice& key) const {
    if (!captured_.valid || rocksdb::Slice(captured_.key) != key) return nullptr;
    captured_.valid = false;
    return &captured_;
  }

 private:
  struct State : Captured {
    bool valid = false;
  };
  mutable State captured_;
};

// The merge operator of the new instance while it is built: it never merges,
// so operands written on top of an already flushed base stay operands until
// the backend opens the instance with the operator's own merge operator.
// (Automatic compactions are off, and a flush merges only within its
// memtable, which never holds a base and an operand of one key.)
class KeepOperands final : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput&, MergeOperationOutput*) const override { return false; }
  const char* Name() const override { return "vstream.RestoreKeepOperands"; }
};

constexpr size_t kWriteBatchBytes = size_t{4} << 20;

bool IsTimerColumnFamily(const std::string& name) {
  return name.compare(0, kTimerStatePrefix.size(), kTimerStatePrefix.data(), kTimerStatePrefix.size()) == 0;
}

// A snapshot opened read-only; closes it when it goes.
class SnapshotReader {
 public:
  ~SnapshotReader() {
    if (db_ == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* cf : cfs_) db_->DestroyColumnFamilyHandle(cf);
    db_->Close().PermitUncheckedError();
    delete db_;
  }

  absl::Status Open(const std::string& dir) {
    rocksdb::DBOptions options;
    options.create_if_missing = false;
    options.paranoid_checks = true;
    RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::ListColumnFamilies(options, dir, &names_),
                                    absl::StrCat("list column families of the snapshot in ", dir)));
    capture_ = std::make_shared<OperandCapture>();
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names_) {
      rocksdb::ColumnFamilyOptions cf;
      cf.merge_operator = capture_;
      cf.prefix_extractor = StatePrefixExtractor(name);  // as the files were written
      descriptors.emplace_back(name, cf);
    }
    return FromRocksStatus(rocksdb::DB::OpenForReadOnly(options, dir, descriptors, &cfs_, &db_),
                           absl::StrCat("open the snapshot in ", dir));
  }

  rocksdb::DB* db() { return db_; }
  const std::vector<std::string>& names() const { return names_; }
  rocksdb::ColumnFamilyHandle* cf(size_t i) { return cfs_[i]; }
  const OperandCapture& capture() const { return *capture_; }

 private:
  std::vector<std::string> names_;
  std::shared_ptr<OperandCapture> capture_;  // RocksDB takes merge operators shared
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::DB* db_ = nullptr;
};

// The new instance a redistribution writes: created empty in `dir`, one
// column family per name met in the snapshots.
class RestoreWriter {
 public:
  ~RestoreWriter() {
    if (db_ == nullptr) return;
    for (auto& [name, cf] : cfs_) db_->DestroyColumnFamilyHandle(cf);
    db_->Close().PermitUncheckedError();
    delete db_;
  }

  absl::Status Open(const std::string& dir) {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.error_if_exists = true;
    write_options_.disableWAL = true;  // flushed before Close
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{
        {rocksdb::kDefaultColumnFamilyName, CfOptions(rocksdb::kDefaultColumnFamilyName)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::Open(options, dir, descriptors, &handles, &db_),
                                    absl::StrCat("create the restored state in ", dir)));
    cfs_[rocksdb::kDefaultColumnFamilyName] = handles[0];
    return absl::OkStatus();
  }

  absl::StatusOr<rocksdb::ColumnFamilyHandle*> ColumnFamily(const std::string& name) {
    if (auto it = cfs_.find(name); it != cfs_.end()) return it->second;
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    RETURN_IF_ERROR(FromRocksStatus(db_->CreateColumnFamily(CfOptions(name), name, &cf),
                                    absl::StrCat("create column family '", name, "'")));
    cfs_[name] = cf;
    return cf;
  }

  absl::Status Put(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key, const rocksdb::Slice& value) {
    RETURN_IF_ERROR(FromRocksStatus(batch_.Put(cf, key, value), "restore: batch"));
    ++entries_;
    return MaybeWrite();
  }
  absl::Status Delete(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key) {
    RETURN_IF_ERROR(FromRocksStatus(batch_.Delete(cf, key), "restore: batch"));
    return MaybeWrite();
  }
  absl::Status Merge(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key, const rocksdb::Slice& operand) {
    RETURN_IF_ERROR(FromRocksStatus(batch_.Merge(cf, key, operand), "restore: batch"));
    ++operands_;
    return MaybeWrite();
  }

  // Writes the pending batch and flushes every column family to SST files.
  absl::Status Flush() {
    if (batch_.Count() > 0) {
      RETURN_IF_ERROR(FromRocksStatus(db_->Write(write_options_, &batch_), "restore: write"));
      batch_.Clear();
    }
    for (auto& [name, cf] : cfs_) {
      RETURN_IF_ERROR(FromRocksStatus(db_->Flush(rocksdb::FlushOptions(), cf),
                                      absl::StrCat("restore: flush column family '", name, "'")));
    }
    return absl::OkStatus();
  }

  uint64_t entries() const { return entries_; }
  uint64_t operands() const { return operands_; }

 private:
  // The backend's SST format and prefix extractor (keyed_state_backend.h),
  // so the files a redistribution writes filter as the backend's own: they
  // are the oldest run after the restore, rewritten only by a full
  // compaction.
  rocksdb::ColumnFamilyOptions CfOptions(const std::string& name) const {
    rocksdb::ColumnFamilyOptions cf;
    cf.table_factory = table_factory_;
    cf.prefix_extractor = StatePrefixExtractor(name);
    cf.merge_operator = std::make_shared<KeepOperands>();
    // A compaction would merge operands down to their base: never here.
    cf.disable_auto_compactions = true;
    return cf;
  }

  absl::Status MaybeWrite() {
    if (batch_.GetDataSize() < kWriteBatchBytes) return absl::OkStatus();
    RETURN_IF_ERROR(FromRocksStatus(db_->Write(write_options_, &batch_), "restore: write"));
    batch_.Clear();
    return absl::OkStatus();
  }

  rocksdb::DB* db_ = nullptr;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::WriteOptions write_options_;
  const std::shared_ptr<rocksdb::TableFactory> table_factory_ = MakeStateTableFactory(nullptr);
  rocksdb::WriteBatch batch_;
  uint64_t entries_ = 0;
  uint64_t operands_ = 0;
};

enum class CopyPass {
  kValues,    // plain values, and the base values under merge operands
  kOperands,  // the merge operands, after the values are flushed
};

// Copies the entries of key groups `range` of column family `i` of `from`.
// *merged: whether any entry had merge operands (kValues only).
absl::Status CopyColumnFamily(SnapshotReader& from, size_t i, KeyGroupRange range, CopyPass pass, RestoreWriter& to,
                              bool* merged) {
  const std::string& name = from.names()[i];
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * out, to.ColumnFamily(name));
  const bool timers = IsTimerColumnFamily(name);
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.verify_checksums = true;
  ro.total_order_seek = true;  // across keys: the prefix filters are per key
  // Keyed state (and the default column family, which the backend leaves
  // empty): the key group is the first 2 bytes, the range one scan.
  std::string lower, upper;
  AppendKeyGroupBytes(range.start, &lower);
  if (range.end + 1 < kMaxKeyGroups) AppendKeyGroupBytes(range.end + 1, &upper);
  const rocksdb::Slice upper_slice(upper);
  if (!timers && !upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(from.db()->NewIterator(ro, from.cf(i)));
  if (timers) {
    it->SeekToFirst();
  } else {
    it->Seek(lower);
  }
  for (; it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (timers) {
      if (key.size() < TimerQueue::kTimeBytes + TimerQueue::kKeyGroupBytes) {
        return absl::DataLossError(absl::StrCat("timer column family '", name, "' holds a malformed timer"));
      }
      const char* kg = key.data() + TimerQueue::kTimeBytes;
      const int key_group = (static_cast<uint8_t>(kg[0]) << 8) | static_cast<uint8_t>(kg[1]);
      if (key_group < range.start || key_group > range.end) continue;
    }
    const rocksdb::Slice value = it->value();  // lands the iterator: merges now
    const OperandCapture::Captured* captured = from.capture().Take(key);
    if (pass == CopyPass::kValues) {
      if (captured == nullptr) {
        RETURN_IF_ERROR(to.Put(out, key, value));
        continue;
      }
      *merged = true;
      if (captured->has_base) RETURN_IF_ERROR(to.Put(out, key, captured->base));
    } else if (captured != nullptr) {
      for (const std::string& op : captured->operands) RETURN_IF_ERROR(to.Merge(out, key, op));
    }
  }
  return FromRocksStatus(it->status(), absl::StrCat("read column family '", name, "' of a snapshot"));
}

// Copies the key groups `range` (within the handle's) of one downloaded
// snapshot into `to`.
absl::Status CopySnapshotDb(const std::string& dir, KeyGroupRange range, RestoreWriter& to);

// Applies the entries of key groups `range` of one of the snapshot's
// deltas (its state log segments and write-back cache entries, newer than
// its RocksDB content: SnapshotDeltaFiles) to `to`.
absl::Status ApplyDelta(const std::string& path, KeyGroupRange range, RestoreWriter& to) {
  return CacheDelta::ParseFile(path, [&](std::string_view cf_name, std::string_view key,
                                         const std::string_view* value) -> absl::Status {
    int key_group = 0;
    if (IsTimerColumnFamily(std::string(cf_name))) {
      if (key.size() < TimerQueue::kTimeBytes + TimerQueue::kKeyGroupBytes) {
        return absl::DataLossError("a malformed timer");
      }
      const char* kg = key.data() + TimerQueue::kTimeBytes;
      key_group = (static_cast<uint8_t>(kg[0]) << 8) | static_cast<uint8_t>(kg[1]);
    } else {
      StateKeyView view;
      if (!DecodeStateKey(key, &view)) return absl::DataLossError("a malformed state key");
      key_group = view.key_group;
    }
    if (key_group < range.start || key_group > range.end) return absl::OkStatus();
    ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * cf, to.ColumnFamily(std::string(cf_name)));
    const rocksdb::Slice k(key.data(), key.size());
    return value != nullptr ? to.Put(cf, k, rocksdb::Slice(value->data(), value->size())) : to.Delete(cf, k);
  });
}

absl::Status CopySnapshot(const std::string& dir, KeyGroupRange range, RestoreWriter& to) {
  absl::Status copied = CopySnapshotDb(dir, range, to);
  if (!copied.ok()) return copied;
  ASSIGN_OR_RETURN(std::vector<std::string> deltas, SnapshotDeltaFiles(dir));
  for (const std::string& path : deltas) {
    absl::Status s = ApplyDelta(path, range, to);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(fs::path(path).filename().string(), ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status CopySnapshotDb(const std::string& dir, KeyGroupRange range, RestoreWriter& to) {
  SnapshotReader from;
  RETURN_IF_ERROR(from.Open(dir));
  std::vector<size_t> merged_cfs;
  for (size_t i = 0; i < from.names().size(); ++i) {
    bool merged = false;
    RETURN_IF_ERROR(CopyColumnFamily(from, i, range, CopyPass::kValues, to, &merged));
    if (merged) merged_cfs.push_back(i);
  }
  if (merged_cfs.empty()) return absl::OkStatus();
  // The base values go to SST files first: a flush that met a base and an
  // operand of one key in its memtable would have to merge them.
  RETURN_IF_ERROR(to.Flush());
  for (size_t i : merged_cfs) {
    bool unused = false;
    RETURN_IF_ERROR(CopyColumnFamily(from, i, range, CopyPass::kOperands, to, &unused));
  }
  return absl::OkStatus();
}

absl::Status Redistribute(CheckpointStorage& storage, const std::vector<const proto::KeyedStateHandle*>& handles,
                          KeyGroupRange target, const std::string& db_dir) {
  RestoreWriter to;
  RETURN_IF_ERROR(to.Open(db_dir));
  for (size_t h = 0; h < handles.size(); ++h) {
    const proto::KeyedStateHandle& handle = *handles[h];
    // Beside db_dir, so on the same disk; one snapshot at a time.
    const std::string tmp = absl::StrCat(db_dir, ".rescale-", h);
    std::error_code ec;
    fs::remove_all(tmp, ec);
    RemoveOnExit cleanup(tmp);
    RETURN_IF_ERROR(DownloadFiles(storage, handle, tmp));
    const KeyGroupRange range{std::max(target.start, handle.key_group_start()),
                              std::min(target.end, handle.key_group_end())};
    absl::Status s = CopySnapshot(tmp, range, to);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("snapshot of key groups ", handle.key_group_start(), "-",
                                                 handle.key_group_end(), ": ", s.message()));
    }
  }
  RETURN_IF_ERROR(to.Flush());
  spdlog::info("restored key groups {}-{} into {} from {} snapshots: {} entries, {} merge operands", target.start,
               target.end, db_dir, handles.size(), to.entries(), to.operands());
  return absl::OkStatus();
}

}  // namespace

absl::Status RestoreKeyedState(CheckpointStorage& storage, const std::vector<proto::KeyedStateHandle>& handles,
                               KeyGroupRange target, const std::string& db_dir) {
  if (!ValidRange(target.start, target.end)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot restore key groups ", target.start, "-", target.end));
  }
  std::vector<const proto::KeyedStateHandle*> overlapping;
  for (const proto::KeyedStateHandle& h : handles) {
    if (!ValidRange(h.key_group_start(), h.key_group_end())) {
      return absl::DataLossError(
          absl::StrCat("state handle of key groups ", h.key_group_start(), "-", h.key_group_end()));
    }
    if (h.key_group_start() <= target.end && h.key_group_end() >= target.start) overlapping.push_back(&h);
  }
  std::sort(overlapping.begin(), overlapping.end(),
            [](const auto* a, const auto* b) { return a->key_group_start() < b->key_group_start(); });
  for (size_t i = 1; i < overlapping.size(); ++i) {
    if (overlapping[i]->key_group_start() <= overlapping[i - 1]->key_group_end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("state handles of key groups ", overlapping[i - 1]->key_group_start(), "-",
                       overlapping[i - 1]->key_group_end(), " and ", overlapping[i]->key_group_start(), "-",
                       overlapping[i]->key_group_end(), " overlap: not snapshots of one operator at one checkpoint"));
    }
  }
  std::error_code ec;
  if (fs::exists(db_dir, ec) && !(fs::is_directory(db_dir, ec) && fs::is_empty(db_dir, ec))) {
    return absl::FailedPreconditionError(absl::StrCat("cannot restore state into ", db_dir, ": not empty"));
  }
  if (const fs::path parent = fs::path(db_dir).parent_path(); !parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
  }
  absl::Status s;
  if (overlapping.size() == 1 && overlapping[0]->key_group_start() == target.start &&
      overlapping[0]->key_group_end() == target.end) {
    s = DownloadFiles(storage, *overlapping[0], db_dir);
  } else {
    s = Redistribute(storage, overlapping, target, db_dir);
  }
  if (!s.ok()) fs::remove_all(db_dir, ec);  // never a half-restored instance
  return s;
}

absl::Status RestoreKeyedState(CheckpointStorage& storage, const proto::KeyedStateHandle& handle, KeyGroupRange target,
                               const std::string& db_dir) {
  return RestoreKeyedState(storage, std::vector<proto::KeyedStateHandle>{handle}, target, db_dir);
}

}  // namespace vstream
