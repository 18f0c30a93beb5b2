#include "state/state_snapshot.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "rocksdb/utilities/checkpoint.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

bool IsSst(const std::string& name) { return name.size() > 4 && name.compare(name.size() - 4, 4, ".sst") == 0; }

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

}  // namespace

absl::StatusOr<LocalSnapshot> TakeLocalSnapshot(KeyedStateBackend& backend, int64_t checkpoint_id,
                                                const std::string& dir, KeyGroupRange range) {
  if (absl::Status s = backend.Flush(); !s.ok()) return s;
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(backend.db(), &raw);
  if (!s.ok()) return absl::InternalError(absl::StrCat("state snapshot: ", s.ToString()));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: always flush the memtables first. With the WAL off,
  // that is what puts the latest writes into the snapshot.
  s = checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0);
  if (!s.ok()) return absl::InternalError(absl::StrCat("state snapshot to ", dir, ": ", s.ToString()));
  LocalSnapshot local;
  local.checkpoint_id = checkpoint_id;
  local.dir = dir;
  local.range = range;
  return local;
}

IncrementalSnapshotter::IncrementalSnapshotter(std::shared_ptr<CheckpointStorage> storage, std::string instance_id)
    : storage_(std::move(storage)), instance_id_(std::move(instance_id)) {}

absl::StatusOr<proto::KeyedStateHandle> IncrementalSnapshotter::Upload(const LocalSnapshot& local,
                                                                       const std::string& private_dir,
                                                                       uint64_t* bytes_uploaded) {
  uint64_t copied = 0;
  RemoveOnExit cleanup(local.dir);
  FileMap confirmed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    confirmed = confirmed_;
  }
  proto::KeyedStateHandle handle;
  handle.set_key_group_start(local.range.start);
  handle.set_key_group_end(local.range.end);
  FileMap uploaded;
  size_t reused = 0;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(local.dir, ec)) files.push_back(entry.path());
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", local.dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    proto::StateFile* f = handle.add_files();
    f->set_name(name);
    f->set_size(fs::file_size(file, ec));
    if (IsSst(name)) {
      f->set_shared(true);
      if (auto it = confirmed.find(name); it != confirmed.end() && it->second.size() == f->size()) {
        f->set_path(it->second.path());
        ++reused;
        continue;
      }
      f->set_path(absl::StrCat("shared/", instance_id_, "-", name));
      uploaded[name] = *f;
    } else {
      f->set_path(absl::StrCat(private_dir, "/", name));
    }
    if (absl::Status s = storage_->Upload(file.string(), f->path()); !s.ok()) return s;
    copied += f->size();
  }
  if (bytes_uploaded != nullptr) *bytes_uploaded = copied;
  std::lock_guard<std::mutex> lock(mu_);
  pending_[local.checkpoint_id] = std::move(uploaded);
  last_reused_ = reused;
  last_uploaded_ = handle.files_size() - reused;
  return handle;
}

void IncrementalSnapshotter::OnCheckpointComplete(int64_t checkpoint_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(checkpoint_id);
  if (it == pending_.end()) return;
  confirmed_.merge(it->second);
  pending_.erase(pending_.begin(), std::next(it));
}

void IncrementalSnapshotter::AddRestored(const proto::KeyedStateHandle& handle) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const proto::StateFile& f : handle.files()) {
    if (f.shared()) confirmed_[f.name()] = f;
  }
}

size_t IncrementalSnapshotter::last_reused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_reused_;
}

size_t IncrementalSnapshotter::last_uploaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_uploaded_;
}

absl::Status RestoreKeyedState(CheckpointStorage& storage, const proto::KeyedStateHandle& handle,
                               KeyGroupRange target, const std::string& db_dir) {
  if (handle.key_group_start() != target.start || handle.key_group_end() != target.end) {
    return absl::UnimplementedError(absl::StrCat(
        "restoring key groups ", target.start, "-", target.end, " from a snapshot of key groups ",
        handle.key_group_start(), "-", handle.key_group_end(),
        ": restoring at another parallelism is not supported yet"));
  }
  std::error_code ec;
  fs::create_directories(db_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", db_dir, ": ", ec.message()));
  for (const proto::StateFile& f : handle.files()) {
    if (f.name().empty() || f.name().find('/') != std::string::npos) {
      return absl::DataLossError(absl::StrCat("state handle names a bad file '", f.name(), "'"));
    }
    const std::string local = (fs::path(db_dir) / f.name()).string();
    if (absl::Status s = storage.Download(f.path(), local); !s.ok()) return s;
    if (fs::file_size(local, ec) != f.size()) {
      return absl::DataLossError(absl::StrCat("state file ", f.path(), " has ", fs::file_size(local, ec),
                                              " bytes, the snapshot recorded ", f.size()));
    }
  }
  return absl::OkStatus();
}

}  // namespace vstream
