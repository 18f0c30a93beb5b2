#include "jobmanager/completed_checkpoint_store.h"

#include <algorithm>

#include "state/checkpoint_storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

}  // namespace

CompletedCheckpointStore::CompletedCheckpointStore(std::string path) : path_(std::move(path)) {}

absl::StatusOr<proto::CompletedCheckpointList> CompletedCheckpointStore::Load() const {
  proto::CompletedCheckpointList list;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path_, ec)) return list;
    return absl::InternalError(absl::StrCat("cannot read ", path_));
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!list.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("cannot parse the completed checkpoints in ", path_));
  }
  return list;
}

absl::Status CompletedCheckpointStore::Store(const proto::CompletedCheckpointList& checkpoints) {
  // A temporary file, fsync, rename, fsync of the directory: the storage's
  // atomic write.
  const fs::path target(path_);
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> dir = CheckpointStorage::Open(fs::absolute(target.parent_path()).string());
  if (!dir.ok()) return dir.status();
  return (*dir)->Write(target.filename().string(), checkpoints.SerializeAsString());
}

std::map<int, int> SubtasksPerVertex(const proto::CheckpointMetadata& metadata) {
  std::map<int, int> subtasks;
  for (const proto::OperatorSnapshot& op : metadata.operators()) {
    int& n = subtasks[op.vertex_id()];
    n = std::max(n, op.subtask_index() + 1);
  }
  return subtasks;
}

}  // namespace vstream
