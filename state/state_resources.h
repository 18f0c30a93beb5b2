#pragma once
// The memory of keyed state on one TaskManager, as Flink's managed memory for
// RocksDB: one budget shared by every RocksDB instance (every stateful
// operator subtask) of the TaskManager.
//
//   budget ─┬─ LRU block cache, capacity (3 - r) / 3 * budget
//           │    ├─ data blocks
//           │    ├─ index and filter blocks (high-priority pool)
//           │    ├─ memtables: the WriteBufferManager charges them here
//           │    └─ write-back caches of hot keys: charged here too
//           └─ headroom r / 3 * budget for memtables overshooting their
//              limit (the WriteBufferManager flushes at 7/8 of 2r/3 * budget)
//
// with r = write_buffer_ratio; the split is Flink's
// (RocksDBMemoryControllerUtils). Create one StateResources per TaskManager
// and pass it to every KeyedStateBackend it opens.
//
// Thread-safe: backends on many task threads share one instance.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace rocksdb {
class Cache;
class WriteBufferManager;
}  // namespace rocksdb

namespace vstream {

struct StateMemoryBudget {
  // Bytes for all keyed state of the TaskManager: block cache, index and
  // filter blocks, memtables and write-back caches. Default 256 MiB.
  int64_t total_bytes = int64_t{256} << 20;
  // Share of the budget for memtables, in (0, 1). Default 0.5 (Flink's).
  double write_buffer_ratio = 0.5;
  // Share of the block cache kept for index and filter blocks, in [0, 1).
  // Default 0.1 (Flink's).
  double high_priority_pool_ratio = 0.1;
  // Task slots of the TaskManager: each slot's backends get an equal share
  // of the write-back cache memory (write_back_cache_bytes()). Default 1.
  int slots = 1;
};

class StateResources {
 public:
  // Shared: every backend of the TaskManager holds it, and so do the RocksDB
  // instances (through the cache and write buffer manager) until they close.
  static absl::StatusOr<std::shared_ptr<StateResources>> Create(const StateMemoryBudget& budget);
  static absl::StatusOr<std::shared_ptr<StateResources>> Create(int64_t budget_bytes);

  const StateMemoryBudget& budget() const { return budget_; }
  // The block cache capacity: (3 - r) / 3 of the budget.
  size_t cache_capacity_bytes() const;
  // The memtable limit of the WriteBufferManager: 2r / 3 of the budget.
  size_t write_buffer_limit_bytes() const;
  // Bytes in the block cache now, memtable and write-back reservations included.
  size_t cache_usage_bytes() const;
  // Of those, bytes that cannot be evicted (reservations, blocks in use).
  size_t cache_pinned_usage_bytes() const;
  // Bytes of memtables of all backends now.
  size_t write_buffer_usage_bytes() const;
  // The write-back cache capacity of one backend (KeyedStateBackendOptions):
  // half of what the block cache keeps beside the memtables, shared by the
  // slots, and at least kMinWriteBackCacheBytes. 32 MiB for the default
  // budget (256 MiB) and 2 slots. Several stateful operators in one slot
  // each get this much: their caches then squeeze the block cache's data
  // blocks, since the caches are charged to it.
  size_t write_back_cache_bytes() const;
  static constexpr size_t kMinWriteBackCacheBytes = size_t{16} << 20;

  // For state/ internals: the shared cache and write buffer manager.
  const std::shared_ptr<rocksdb::Cache>& block_cache() const { return cache_; }
  const std::shared_ptr<rocksdb::WriteBufferManager>& write_buffer_manager() const {
    return write_buffer_manager_;
  }

 private:
  StateResources(StateMemoryBudget budget, std::shared_ptr<rocksdb::Cache> cache,
                 std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager);

  const StateMemoryBudget budget_;
  // Shared with every RocksDB instance that uses them (RocksDB's API).
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager_;
};

}  // namespace vstream
