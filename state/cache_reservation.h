#pragma once
// Private to state/: charges memory held outside RocksDB (the write-back
// cache) to the shared block cache, as RocksDB's WriteBufferManager does for
// memtables: pinned dummy entries whose charge the LRU cache counts, so the
// budget of StateResources covers them and the cache evicts blocks instead.
//
// Thread-compatible: owned by one backend; the cache itself is thread-safe.

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "rocksdb/cache.h"

namespace vstream {

class CacheReservation {
 public:
  // Reservations grow in chunks of this many bytes.
  static constexpr size_t kChunkBytes = size_t{1} << 20;

  explicit CacheReservation(std::shared_ptr<rocksdb::Cache> cache) : cache_(std::move(cache)) {}
  ~CacheReservation();
  CacheReservation(const CacheReservation&) = delete;
  CacheReservation& operator=(const CacheReservation&) = delete;

  // Reserves at least `bytes` (whole chunks). Never shrinks.
  absl::Status GrowTo(size_t bytes);
  size_t reserved_bytes() const { return handles_.size() * kChunkBytes; }

 private:
  std::shared_ptr<rocksdb::Cache> cache_;  // shared with RocksDB (its API)
  std::vector<rocksdb::Cache::Handle*> handles_;
};

}  // namespace vstream
