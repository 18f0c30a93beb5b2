#pragma once
// Checkpoint storage: where snapshots and checkpoint metadata are kept, named
// by a directory URI. `file:///abs/dir` (or a plain absolute path) is a local
// or shared directory (an NFS or Kubernetes shared volume); an object store
// implements the same interface.
//
// Paths are relative to the storage root, with '/' separators:
//
//   shared/<backend instance>-000012.sst     SST files, referenced by many checkpoints
//   shared/<backend instance>-STATE-LOG-0000000003   state log segments (state/state_log.h), likewise
//   chk-7/<vertex>-<subtask>/CACHE-DELTA      a checkpoint's private files (the small ones are inline)
//   chk-7/_metadata                           written last, atomically
//
// Every write is atomic: a file appears whole under its name or not at all.
//
// Thread-safe: the snapshot threads of many tasks share one instance.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"

namespace vstream {

// A state file whose bytes travel in its handle (proto::StateFile::data,
// state/state_snapshot.h) has no path in checkpoint storage: nothing to
// copy, download or delete.
inline bool IsInlineStateFile(const proto::StateFile& f) { return f.path().empty(); }

class CheckpointStorage {
 public:
  // `file:///dir` or `/dir`. InvalidArgument for other schemes.
  static absl::StatusOr<std::unique_ptr<CheckpointStorage>> Open(std::string_view uri);
  virtual ~CheckpointStorage() = default;
  // The local directory of a `file://` or plain-path URI; empty for others.
  static std::string LocalPath(std::string_view uri);

  virtual const std::string& uri() const = 0;
  // Copies a local file to `path`, replacing any file there.
  virtual absl::Status Upload(const std::string& local_file, const std::string& path) = 0;
  // Copies `path` to a local file.
  virtual absl::Status Download(const std::string& path, const std::string& local_file) = 0;
  virtual absl::Status Write(const std::string& path, std::string_view data) = 0;
  virtual absl::StatusOr<std::string> Read(const std::string& path) = 0;
  // NotFound if there is nothing at `path`.
  virtual absl::Status Exists(const std::string& path) = 0;
  // Deletes a file, or a directory with everything in it. Missing: OK. The
  // root (an empty path): InvalidArgument.
  virtual absl::Status Delete(const std::string& path) = 0;
  // Names directly under `dir` (files and directories); empty if none.
  virtual absl::StatusOr<std::vector<std::string>> List(const std::string& dir) = 0;
};

}  // namespace vstream
