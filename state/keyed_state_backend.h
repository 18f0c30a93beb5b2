#pragma once
// The keyed state backend on RocksDB: one RocksDB instance per stateful
// operator subtask, one column family per declared state. Keys are laid out
// as [key group: 2 bytes big-endian][serialized key][namespace], so that a
// key-group range is one contiguous range of the key space (the checkpoint
// and rescaling work depends on this).
//
// Thread-compatible: owned and used by one task thread.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace vstream {

struct KeyedStateBackendOptions {
  // Directory of the RocksDB instance; created if missing. Required.
  std::string path;
  // Block cache size in bytes. Default 32 MiB.
  size_t block_cache_bytes = 32 << 20;
  // Write buffer size per column family. Default 16 MiB.
  size_t write_buffer_bytes = 16 << 20;
  // Delete existing contents on open (a fresh start with no restore). Default true.
  bool wipe_on_open = true;
};

using StateId = int;

class KeyedStateBackend {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedStateBackend>> Open(const KeyedStateBackendOptions& options);
  ~KeyedStateBackend();

  // Declares a state (a column family) by name; returns its id.
  absl::StatusOr<StateId> RegisterState(const std::string& name);

  // Value state access. `key` is the serialized key, namespace empty.
  // Get returns NotFound when there is no value.
  absl::Status Get(StateId state, int key_group, std::string_view key, std::string* value);
  absl::Status Put(StateId state, int key_group, std::string_view key, std::string_view value);
  absl::Status Delete(StateId state, int key_group, std::string_view key);

  const std::string& path() const { return options_.path; }

 private:
  KeyedStateBackend(KeyedStateBackendOptions options, rocksdb::DB* db);
  void ComposeKey(int key_group, std::string_view key);

  KeyedStateBackendOptions options_;
  rocksdb::DB* db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::vector<std::string> names_;
  std::string key_buf_;  // reused per access: no allocation on the record path
};

}  // namespace vstream
