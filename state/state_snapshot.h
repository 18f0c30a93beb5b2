#pragma once
// Snapshots of a KeyedStateBackend into checkpoint storage, and restores, as
// Flink's incremental RocksDB snapshots:
//
//   synchronous (task thread, between batches):
//     LocalSnapshot local = TakeLocalSnapshot(backend, id, dir, range);
//       a RocksDB checkpoint (memtables flushed but the logged states',
//       whose state log segments it holds instead, state/state_log.h; the
//       live files listed, file deletions held off), and the write-back
//       cache's dirty entries serialized (state/cache_delta.h); the cache is
//       not flushed. What a contributor leaves for later
//       (KeyedStateBackend::LaterDelta: a BufferedMapState's records) is
//       only referenced. Then, or later (link_later: LinkFiles, which a
//       TaskManager runs on the task thread, between batches, before it
//       posts the upload), the live SST files hard-linked into `dir`, no
//       copy, and MANIFEST, CURRENT and OPTIONS read into memory.
//   asynchronous (a snapshot thread; processing goes on):
//     KeyedStateHandle h = snapshotter.Upload(local, "chk-7/window-0");
//       copies what was left for later (first), uploads the files, and
//       writes those entries to CACHE-DELTA in the checkpoint's private
//       directory, straight from memory. Once per LocalSnapshot.
//       SST files and log segments are immutable: one a completed
//       checkpoint already holds is referenced, not uploaded again; new ones
//       go to shared/. MANIFEST,
//       CURRENT, OPTIONS and CACHE-DELTA go to the checkpoint's private
//       directory, or, up to kInlineStateFileBytes, into the handle itself.
//   when the checkpoint completes:
//     snapshotter.OnCheckpointComplete(7);  // its shared files may be referenced now
//
// Only shared files of completed checkpoints are referenced, so an aborted checkpoint
// (whose files the coordinator deletes) is never referenced by a later one.
//
// Restore: RestoreKeyedState fills an empty directory, which
// KeyedStateBackend then opens with wipe_on_open = false. At the parallelism
// of the snapshot, a subtask downloads its own snapshot's files as they are.
// At another one (Flink's key-group redistribution), each new subtask reads
// the snapshots whose key groups overlap its own and copies just those key
// groups into a new RocksDB instance:
//
//   old subtasks:    [ 0 ........ 63 ][ 64 ....... 127 ]   (handles)
//                        |      \           /     |
//   new subtasks:    [ 0 ... 42 ][ 43 ..... 85 ][ 86 ... 127 ]   (targets)
//
// Keyed-state column families are ordered by key group (state_key.h): a
// range of key groups is one seek and a contiguous scan. Timer column
// families (named kTimerStatePrefix + queue, keyed_state_backend.h) are
// ordered by time: they are scanned whole, and a timer is kept when the key
// group its payload starts with (timer_queue.h) is the target's.
//
// Values are copied as stored (TTL write times included). Merge operands not
// yet merged in a snapshot (ListState::Add, folding states without a cache)
// cannot be merged during the copy: the fold is the operator's function,
// which the restore does not have. They are copied as operands, on top of
// their base value, and the operator's own merge operator folds them when
// its backend reads or compacts them.
//
// Thread-safe: Upload may run on a snapshot thread while the task thread
// calls OnCheckpointComplete, and while the task thread changes the state
// whose records it copies (the contributor keeps what it references
// unchanged until the copy is done: BufferedMapState's pins). RestoreKeyedState runs on the task thread
// before its operators open.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"

namespace vstream {

// A private state file of at most this many bytes travels inline in its
// handle (proto::StateFile::data) instead of as a file in checkpoint
// storage; Flink's state.storage.fs.memory-threshold, 20 KB by default.
// RocksDB's OPTIONS file of an operator with a few states is 11-20 KB.
// IsInlineStateFile (checkpoint_storage.h) tells them apart.
inline constexpr uint64_t kInlineStateFileBytes = uint64_t{32} << 10;


struct LocalSnapshot {
  int64_t checkpoint_id = 0;
  std::string dir;       // the RocksDB checkpoint's SST files, hard-linked
  bool made_dir = false;  // dir exists: made for the first SST
  // Its other files (CURRENT, MANIFEST to its live size, at most about
  // 1 MiB, OPTIONS): name and bytes.
  std::vector<std::pair<std::string, std::string>> files_in_memory;
  // The RocksDB checkpoint's files as the sync part listed them
  // (DB::GetLiveFiles: names relative to db_dir, the MANIFEST's size then),
  // kept from deletion by `hold` until LinkFiles links and reads them.
  struct Listing {
    std::string db_dir;
    std::vector<std::string> files;
    uint64_t manifest_size = 0;
    FileDeletionHold hold;
  };
  std::optional<Listing> unlinked;  // empty once linked
  absl::Status link_status;         // LinkFiles' result; Upload returns it
  // Hard-links the listed SST files into `dir` (made for the first),
  // reads the others into files_in_memory, releases the hold and records
  // the result in link_status (returned). Once; CopySome and CopyLater do
  // it first. Nothing is synced: `dir` only lives until the upload has
  // copied it, and a restore never reads it.
  absl::Status LinkFiles();
  // What linking counts for in a CopySome budget: about as long as a
  // TaskManager's slice of copying (60-250 µs with the hold's release, for
  // the clinical workload's operators).
  static constexpr size_t kLinkBudget = 2048;
  KeyGroupRange range{0, 0};
  // CACHE-DELTA's records so far, and the work that appends the rest
  // (KeyedStateBackend::DirtyCacheEntries): Upload finishes it and sends it
  // with files_in_memory (inline or into the private directory), off the
  // task thread.
  CacheDelta cache_delta;
  std::vector<KeyedStateBackend::LaterDelta> cache_delta_later;
  // Where cache_delta's buffer goes once written (the backend's).
  std::shared_ptr<DeltaBuffers> delta_buffers;
  // The state log's segments (KeyedStateBackend::SealStateLog): what the
  // logged states' memtables hold, which the checkpoint does not flush.
  std::vector<StateLog::Segment> state_log;
  // Links the files if they are not yet (LinkFiles), then runs
  // cache_delta_later (and drops it): the copies the task thread
  // may wait for (a write-back cache entry it changes while another thread
  // copies it). A TaskManager runs them on the task thread, a step at a
  // time between its batches (runtime/task_checkpoints.h). Once; later
  // calls do nothing.
  void CopyLater();
  // A step of CopyLater: up to *budget records (counted down; the link
  // counts kLinkBudget); true once every one is copied.
  bool CopySome(size_t* budget);
  // CopyLater, then CACHE-DELTA's bytes; empty: no records.
  std::string FinishCacheDelta();

 private:
  absl::Status LinkListed(const Listing& listing);  // LinkFiles' links and reads
};

// The synchronous part. `dir` must not exist; its parent must. With
// `link_later` the RocksDB checkpoint's files are only listed (a hold keeps
// them): the caller links them later (LinkFiles, CopySome) before the
// upload, or else Upload does, on its own thread. Without it they are
// linked here.
absl::StatusOr<LocalSnapshot> TakeLocalSnapshot(KeyedStateBackend& backend, int64_t checkpoint_id,
                                                const std::string& dir, KeyGroupRange range,
                                                bool link_later = false);

class IncrementalSnapshotter {
 public:
  // `instance_id` prefixes this backend instance's shared files: unique per
  // job, operator subtask and attempt (SST names repeat across instances).
  IncrementalSnapshotter(std::shared_ptr<CheckpointStorage> storage, std::string instance_id);

  // The asynchronous part: finishes local's CACHE-DELTA (first, so that the
  // state it reads is released soon), uploads `local` and returns its
  // handle. Removes the local directory, whether or not the upload
  // succeeds. bytes_uploaded (optional): bytes actually copied, the rest
  // referenced.
  absl::StatusOr<proto::KeyedStateHandle> Upload(LocalSnapshot& local, const std::string& private_dir,
                                                 uint64_t* bytes_uploaded = nullptr);

  // Checkpoint `checkpoint_id` completed: the SSTs it holds (uploaded or
  // referenced) may be referenced by later checkpoints, and no others (an
  // SST RocksDB deleted never comes back, so the set stays the size of the
  // live one). Earlier pending uploads are dropped.
  void OnCheckpointComplete(int64_t checkpoint_id);

  // The backend was restored from `handle`: its SSTs are in storage.
  void AddRestored(const proto::KeyedStateHandle& handle);

  // SST files referenced without upload by the last Upload (for tests and
  // checkpoint statistics).
  size_t last_reused() const;
  size_t last_uploaded() const;
  // SST files later uploads may reference (for tests).
  size_t confirmed_files() const;

 private:
  using FileMap = std::map<std::string, proto::StateFile>;  // by local name

  const std::shared_ptr<CheckpointStorage> storage_;
  const std::string instance_id_;
  mutable std::mutex mu_;  // held only to read or swap these (an upload may run at a low priority)
  // The SSTs of the latest completed checkpoint (and of a restored one):
  // replaced whole, never changed, so an upload reads it without the lock.
  std::shared_ptr<const FileMap> confirmed_ = std::make_shared<const FileMap>();
  std::map<int64_t, FileMap> pending_;  // the SSTs of each checkpoint not yet complete
  size_t last_reused_ = 0;
  size_t last_uploaded_ = 0;
};

// Restores the key groups `target` of one operator subtask from `handles`:
// the snapshots of the same operator's subtasks at the checkpoint, at any
// parallelism (handles that do not overlap `target` are skipped). One handle
// with exactly `target`: its files are downloaded as they are (fast path).
// Otherwise each overlapping handle is downloaded to a temporary directory
// beside db_dir, opened read-only, and the entries of the key groups in
// `target` are copied into a new RocksDB instance in db_dir, column family by
// column family, in WriteBatches of about 4 MiB. No overlapping handle: an
// empty instance. db_dir must not exist or be empty (FailedPrecondition).
//
// The temporary directories are removed at the end, and db_dir too when the
// restore fails. Errors: InvalidArgument for a bad target range or handles
// whose key groups overlap each other; DataLoss for a handle with a bad key-
// group range or file name, a file of the wrong size, a corrupt snapshot or a
// malformed timer; storage errors as CheckpointStorage reports them.
//
// Snapshots taken before timer payloads began with their key group (and
// timer column families with kTimerStatePrefix) restore only at their own
// parallelism (the fast path).
absl::Status RestoreKeyedState(CheckpointStorage& storage, const std::vector<proto::KeyedStateHandle>& handles,
                               KeyGroupRange target, const std::string& db_dir);

// The same, from one handle.
absl::Status RestoreKeyedState(CheckpointStorage& storage, const proto::KeyedStateHandle& handle, KeyGroupRange target,
                               const std::string& db_dir);

}  // namespace vstream
