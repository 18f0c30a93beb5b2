#pragma once
// The JobManager's durable record of one job's retained completed
// checkpoints (Flink's CompletedCheckpointStore): a CompletedCheckpointList
// in one file beside the job store, <data-dir>/jobs/<job id>/checkpoints.pb.
// The checkpoints themselves (metadata, state files) are in the job's
// checkpoint storage; this file says which of them are complete and which is
// the latest, so a restarted JobManager can find them.
//
// Store() replaces the file atomically and durably: a temporary file beside
// it is written, synced and renamed, and the directory synced. A crash
// leaves the old record or the new one, never a mix.
//
// Thread-compatible: the CheckpointCoordinator of the job uses it on the
// JobManager's main thread.

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"
#include "proto/client.pb.h"

namespace vstream {

class CompletedCheckpointStore {
 public:
  // `path`: the record's file; its directory is created by Store().
  explicit CompletedCheckpointStore(std::string path);

  const std::string& path() const { return path_; }

  // What the file holds: an empty list if there is no file, an error if it
  // cannot be read or parsed.
  absl::StatusOr<proto::CompletedCheckpointList> Load() const;

  // Replaces the record with `checkpoints` (oldest first).
  absl::Status Store(const proto::CompletedCheckpointList& checkpoints);

 private:
  const std::string path_;
};

// Vertex id -> how many subtasks it had when `metadata` was taken.
std::map<int, int> SubtasksPerVertex(const proto::CheckpointMetadata& metadata);

}  // namespace vstream
