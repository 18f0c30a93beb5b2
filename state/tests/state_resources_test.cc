// The TaskManager's state memory budget: one block cache and one write
// buffer manager shared by every backend, sized from the budget.

#include <string>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "state/keyed_state_backend.h"
#include "state/state_resources.h"
#include "state/tests/testing_state.h"

namespace vstream {
namespace {

uint64_t DbProperty(KeyedStateBackend& backend, const std::string& name) {
  uint64_t value = 0;
  EXPECT_TRUE(backend.db()->GetIntProperty(name, &value)) << name;
  return value;
}

TEST(StateResourcesTest, SplitsTheBudgetAsFlink) {
  auto resources = StateResources::Create(int64_t{300} << 20);
  ASSERT_TRUE(resources.ok()) << resources.status();
  // r = 0.5: cache (3 - r) / 3 = 250 MiB, write buffers 2r / 3 = 100 MiB.
  EXPECT_EQ((*resources)->cache_capacity_bytes(), size_t{250} << 20);
  EXPECT_EQ((*resources)->write_buffer_limit_bytes(), size_t{100} << 20);
  EXPECT_EQ(StateMemoryBudget().total_bytes, int64_t{256} << 20);
}

TEST(StateResourcesTest, RejectsBadBudgets) {
  EXPECT_FALSE(StateResources::Create(1024).ok());
  EXPECT_FALSE(StateResources::Create(StateMemoryBudget{.write_buffer_ratio = 1.0}).ok());
  EXPECT_FALSE(StateResources::Create(StateMemoryBudget{.high_priority_pool_ratio = -0.1}).ok());
  EXPECT_FALSE(StateResources::Create(StateMemoryBudget{.slots = 0}).ok());
}

// Half of the block cache beside the memtables, per slot, at least 16 MiB.
TEST(StateResourcesTest, WriteBackCachesShareWhatTheBlockCacheKeepsBesideMemtablesPerSlot) {
  // 300 MiB: 250 MiB cache, 100 MiB of it for memtables; (250 - 100) / 2 = 75.
  auto one = StateResources::Create(StateMemoryBudget{.total_bytes = int64_t{300} << 20, .slots = 1});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ((*one)->write_back_cache_bytes(), size_t{75} << 20);
  auto three = StateResources::Create(StateMemoryBudget{.total_bytes = int64_t{300} << 20, .slots = 3});
  ASSERT_TRUE(three.ok());
  EXPECT_EQ((*three)->write_back_cache_bytes(), size_t{25} << 20);
  // A TaskManager with the default memory (256 MiB of state memory of --memory-mb 640) and 2 slots.
  auto defaults = StateResources::Create(StateMemoryBudget{.slots = 2});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ((*defaults)->write_back_cache_bytes() >> 20, 32u);
  auto small = StateResources::Create(StateMemoryBudget{.total_bytes = int64_t{64} << 20, .slots = 4});
  ASSERT_TRUE(small.ok());
  EXPECT_EQ((*small)->write_back_cache_bytes(), StateResources::kMinWriteBackCacheBytes);
}

TEST(StateResourcesTest, TwoBackendsShareOneCacheAndWriteBufferManager) {
  TestingStateDir dir("resources");
  auto resources = StateResources::Create(int64_t{64} << 20);
  ASSERT_TRUE(resources.ok());
  std::shared_ptr<StateResources> shared = *resources;
  auto a = KeyedStateBackend::Open({.path = dir.sub("a"), .resources = shared});
  auto b = KeyedStateBackend::Open({.path = dir.sub("b"), .resources = shared});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(&(*a)->resources(), shared.get());
  EXPECT_EQ(&(*b)->resources(), shared.get());
  // Both RocksDB instances see the one cache of the budget.
  EXPECT_EQ(DbProperty(**a, "rocksdb.block-cache-capacity"), shared->cache_capacity_bytes());
  EXPECT_EQ(DbProperty(**b, "rocksdb.block-cache-capacity"), shared->cache_capacity_bytes());

  const size_t before = shared->cache_usage_bytes();
  const std::string value(100, 'x');
  ValueState* va = *(*a)->GetValueState({.name = "v"});
  for (int i = 0; i < 20000; ++i) {
    (*a)->SetCurrentKey(i % 128, "a" + std::to_string(i));
    ASSERT_TRUE(va->Put("", value).ok());
  }
  // Memtables of A are charged to the shared cache...
  const size_t after_a = shared->cache_usage_bytes();
  EXPECT_GT(shared->write_buffer_usage_bytes(), 0u);
  EXPECT_GT(after_a, before);
  ValueState* vb = *(*b)->GetValueState({.name = "v"});
  for (int i = 0; i < 20000; ++i) {
    (*b)->SetCurrentKey(i % 128, "b" + std::to_string(i));
    ASSERT_TRUE(vb->Put("", value).ok());
  }
  // ... and so are B's, in the same cache.
  const size_t after_b = shared->cache_usage_bytes();
  EXPECT_GT(after_b, after_a);
  EXPECT_EQ(DbProperty(**a, "rocksdb.block-cache-usage"), DbProperty(**b, "rocksdb.block-cache-usage"));

  // Data blocks read back after a flush land in the same cache.
  ASSERT_TRUE((*a)->db()->Flush(rocksdb::FlushOptions(), (*a)->column_family(va->id())).ok());
  const size_t before_reads = shared->cache_usage_bytes();
  std::string got;
  for (int i = 0; i < 20000; i += 10) {
    (*a)->SetCurrentKey(i % 128, "a" + std::to_string(i));
    ASSERT_EQ(*va->Get("", &got), StateLookup::kFound);
  }
  EXPECT_GT(shared->cache_usage_bytes(), before_reads);
  EXPECT_LE(shared->cache_usage_bytes(), shared->cache_capacity_bytes());
}

TEST(StateResourcesTest, WriteBackCacheIsChargedToTheSharedCache) {
  TestingStateDir dir("resources-wbc");
  std::shared_ptr<StateResources> shared = *StateResources::Create(int64_t{64} << 20);
  {
    auto backend = KeyedStateBackend::Open(
        {.path = dir.path(), .resources = shared, .write_back_cache_bytes = 4 << 20});
    ASSERT_TRUE(backend.ok());
    ValueState* v = *(*backend)->GetValueState({.name = "v", .write_back_cache = true});
    const size_t pinned_before = shared->cache_pinned_usage_bytes();
    const std::string value(200, 'y');
    for (int i = 0; i < 10000; ++i) {  // ~2.5 MB of entries
      (*backend)->SetCurrentKey(i % 128, "k" + std::to_string(i));
      ASSERT_TRUE(v->Put("", value).ok());
    }
    const size_t cache_bytes = (*backend)->cache_stats().bytes;
    EXPECT_GT(cache_bytes, size_t{2} << 20);
    EXPECT_GE(shared->cache_pinned_usage_bytes(), pinned_before + cache_bytes);
  }
  // Closing the backend releases its reservation.
  EXPECT_LT(shared->cache_pinned_usage_bytes(), size_t{1} << 20);
}

}  // namespace
}  // namespace vstream
