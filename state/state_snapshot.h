#pragma once
// Snapshots of a KeyedStateBackend into checkpoint storage, and restores, as
// Flink's incremental RocksDB snapshots:
//
//   synchronous (task thread, between batches):
//     LocalSnapshot local = TakeLocalSnapshot(backend, id, dir, range);
//       flushes the write-back cache, then a RocksDB checkpoint in `dir`:
//       memtables flushed, live SST files hard-linked (no copy).
//   asynchronous (a snapshot thread; processing goes on):
//     KeyedStateHandle h = snapshotter.Upload(local, "chk-7/window-0");
//       SST files are immutable: one a completed checkpoint already holds is
//       referenced, not uploaded again; new ones go to shared/; MANIFEST,
//       CURRENT and OPTIONS go to the checkpoint's private directory.
//   when the checkpoint completes:
//     snapshotter.OnCheckpointComplete(7);  // its SSTs may be referenced now
//
// Only SSTs of completed checkpoints are referenced, so an aborted checkpoint
// (whose files the coordinator deletes) is never referenced by a later one.
//
// Restore: RestoreKeyedState downloads a handle's files into an empty
// directory, which KeyedStateBackend then opens with wipe_on_open = false.
//
// Thread-safe: Upload may run on a snapshot thread while the task thread
// calls OnCheckpointComplete.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"

namespace vstream {

struct LocalSnapshot {
  int64_t checkpoint_id = 0;
  std::string dir;  // a RocksDB checkpoint: hard links and small copied files
  KeyGroupRange range{0, 0};
};

// The synchronous part. `dir` must not exist; its parent must.
absl::StatusOr<LocalSnapshot> TakeLocalSnapshot(KeyedStateBackend& backend, int64_t checkpoint_id,
                                                const std::string& dir, KeyGroupRange range);

class IncrementalSnapshotter {
 public:
  // `instance_id` prefixes this backend instance's shared files: unique per
  // job, operator subtask and attempt (SST names repeat across instances).
  IncrementalSnapshotter(std::shared_ptr<CheckpointStorage> storage, std::string instance_id);

  // The asynchronous part: uploads `local` and returns its handle. Removes
  // the local directory, whether or not the upload succeeds.
  // bytes_uploaded (optional): bytes actually copied, the rest referenced.
  absl::StatusOr<proto::KeyedStateHandle> Upload(const LocalSnapshot& local, const std::string& private_dir,
                                                 uint64_t* bytes_uploaded = nullptr);

  // Checkpoint `checkpoint_id` completed: the SSTs it uploaded may be
  // referenced by later checkpoints. Earlier pending uploads are dropped.
  void OnCheckpointComplete(int64_t checkpoint_id);

  // The backend was restored from `handle`: its SSTs are in storage.
  void AddRestored(const proto::KeyedStateHandle& handle);

  // SST files referenced without upload by the last Upload (for tests and
  // checkpoint statistics).
  size_t last_reused() const;
  size_t last_uploaded() const;

 private:
  using FileMap = std::map<std::string, proto::StateFile>;  // by local name

  const std::shared_ptr<CheckpointStorage> storage_;
  const std::string instance_id_;
  mutable std::mutex mu_;
  FileMap confirmed_;                   // SSTs of completed checkpoints
  std::map<int64_t, FileMap> pending_;  // SSTs of checkpoints not yet complete
  size_t last_reused_ = 0;
  size_t last_uploaded_ = 0;
};

// Fills the empty directory `db_dir` with the snapshot in `handle`, for a
// backend that owns `target`. The handle must cover exactly `target`
// (restoring at another parallelism redistributes key groups: not yet).
absl::Status RestoreKeyedState(CheckpointStorage& storage, const proto::KeyedStateHandle& handle,
                               KeyGroupRange target, const std::string& db_dir);

}  // namespace vstream
