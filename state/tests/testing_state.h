#pragma once
// Helpers shared by the state/ tests (and runtime/'s snapshot tests):
// scratch directories, RocksDB's file-deletion hold, and a few folding
// functions over 8-byte integers.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "rocksdb/db.h"
#include "state/keyed_state_backend.h"

namespace vstream {

// A directory under the temp dir, removed when the object goes.
class TestingStateDir {
 public:
  explicit TestingStateDir(const std::string& name) {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
                .string();
    std::filesystem::remove_all(path_);
  }
  ~TestingStateDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// RocksDB's rocksdb.is-file-deletions-enabled for the backend: 1 when it
// may delete files, 0 while a FileDeletionHold (a snapshot listed, not yet
// linked) holds them; 2 if the property cannot be read.
inline uint64_t FileDeletionsEnabled(KeyedStateBackend& backend) {
  uint64_t enabled = 2;
  if (!backend.db()->GetIntProperty(rocksdb::DB::Properties::kIsFileDeletionsEnabled, &enabled)) return 2;
  return enabled;
}

inline std::string EncodeI64(int64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

inline int64_t DecodeI64(std::string_view s) {
  int64_t v = 0;
  if (s.size() == 8) std::memcpy(&v, s.data(), 8);
  return v;
}

// acc += input, both 8-byte integers: associative, inputs encoded like the
// accumulator.
inline AggregateFunction SumFunction() {
  AggregateFunction f;
  f.create_accumulator = [](std::string* acc) { *acc = EncodeI64(0); };
  f.add = [](std::string* acc, std::string_view in) {
    *acc = EncodeI64(DecodeI64(*acc) + DecodeI64(in));
  };
  return f;
}

// The raw bytes of `rocks_key` in a state's column family, bypassing every
// cache of the backend; empty when RocksDB has no value.
inline std::string RawGet(KeyedStateBackend& backend, StateId state, const std::string& rocks_key) {
  std::string value;
  rocksdb::Status s =
      backend.db()->Get(rocksdb::ReadOptions(), backend.column_family(state), rocks_key, &value);
  return s.ok() ? value : std::string();
}

// The RocksDB key of (key group, key, namespace, user key).
inline std::string StateKey(int key_group, std::string_view key, std::string_view ns = "",
                            std::string_view user_key = "") {
  std::string out;
  AppendStateKeyPrefix(key_group, key, &out);
  AppendStateNamespace(ns, &out);
  out.append(user_key.data(), user_key.size());
  return out;
}

}  // namespace vstream
