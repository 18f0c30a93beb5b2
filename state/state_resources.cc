#include "state/state_resources.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/write_buffer_manager.h"

namespace vstream {

absl::StatusOr<std::shared_ptr<StateResources>> StateResources::Create(int64_t budget_bytes) {
  StateMemoryBudget budget;
  budget.total_bytes = budget_bytes;
  return Create(budget);
}

absl::StatusOr<std::shared_ptr<StateResources>> StateResources::Create(
    const StateMemoryBudget& budget) {
  if (budget.total_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("state memory budget must be at least 1 MiB, got ", budget.total_bytes));
  }
  if (!(budget.write_buffer_ratio > 0 && budget.write_buffer_ratio < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("write_buffer_ratio must be in (0, 1), got ", budget.write_buffer_ratio));
  }
  if (budget.slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("slots must be at least 1, got ", budget.slots));
  }
  if (!(budget.high_priority_pool_ratio >= 0 && budget.high_priority_pool_ratio < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "high_priority_pool_ratio must be in [0, 1), got ", budget.high_priority_pool_ratio));
  }
  const auto total = static_cast<double>(budget.total_bytes);
  const double r = budget.write_buffer_ratio;
  rocksdb::LRUCacheOptions cache_options;
  cache_options.capacity = static_cast<size_t>((3 - r) * total / 3);
  cache_options.num_shard_bits = -1;
  cache_options.strict_capacity_limit = false;  // a full cache evicts, never fails a read
  cache_options.high_pri_pool_ratio = budget.high_priority_pool_ratio;
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(cache_options);
  auto write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
      static_cast<size_t>(2 * r * total / 3), cache, /*allow_stall=*/false);
  return std::shared_ptr<StateResources>(
      new StateResources(budget, std::move(cache), std::move(write_buffer_manager)));
}

StateResources::StateResources(StateMemoryBudget budget, std::shared_ptr<rocksdb::Cache> cache,
                               std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager)
    : budget_(budget), cache_(std::move(cache)), write_buffer_manager_(std::move(write_buffer_manager)) {}

size_t StateResources::cache_capacity_bytes() const { return cache_->GetCapacity(); }
size_t StateResources::write_buffer_limit_bytes() const {
  return write_buffer_manager_->buffer_size();
}
size_t StateResources::cache_usage_bytes() const { return cache_->GetUsage(); }
size_t StateResources::cache_pinned_usage_bytes() const { return cache_->GetPinnedUsage(); }
size_t StateResources::write_buffer_usage_bytes() const {
  return write_buffer_manager_->memory_usage();
}

size_t StateResources::write_back_cache_bytes() const {
  const size_t beside_memtables = cache_capacity_bytes() - std::min(cache_capacity_bytes(), write_buffer_limit_bytes());
  return std::max(kMinWriteBackCacheBytes, beside_memtables / 2 / static_cast<size_t>(budget_.slots));
}

}  // namespace vstream
