// The write-back cache of hot keys: reads see the backend's own writes,
// eviction writes dirty entries through in batches, Flush persists all.

#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/cpu_set.h"
#include "gtest/gtest.h"
#include "state/keyed_state_backend.h"
#include "state/tests/testing_state.h"
#include "state/write_back_cache.h"

namespace vstream {
namespace {

std::unique_ptr<KeyedStateBackend> OpenWithCache(const std::string& path, size_t cache_bytes) {
  auto backend = KeyedStateBackend::Open({.path = path, .write_back_cache_bytes = cache_bytes});
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(*backend) : nullptr;
}

TEST(WriteBackCacheTest, ReadYourWritesWithoutTouchingRocksDB) {
  TestingStateDir dir("wbc-ryw");
  auto backend = OpenWithCache(dir.path(), 1 << 20);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  ASSERT_TRUE(v->cached());
  backend->SetCurrentKey(7, "k");
  ASSERT_TRUE(v->Put("w", "one").ok());
  std::string got;
  ASSERT_EQ(*v->Get("w", &got), StateLookup::kFound);
  EXPECT_EQ(got, "one");
  EXPECT_TRUE(RawGet(*backend, v->id(), StateKey(7, "k", "w")).empty());  // not yet written
  ASSERT_TRUE(v->Put("w", "two").ok());
  ASSERT_EQ(*v->Get("w", &got), StateLookup::kFound);
  EXPECT_EQ(got, "two");
  ASSERT_TRUE(v->Clear("w").ok());
  EXPECT_EQ(*v->Get("w", &got), StateLookup::kAbsent);
  EXPECT_EQ(backend->cache_stats().batches, 0u);
}

TEST(WriteBackCacheTest, MissReadsRocksDBOnceThenHits) {
  TestingStateDir dir("wbc-miss");
  {
    auto backend = OpenWithCache(dir.path(), 1 << 20);
    ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
    backend->SetCurrentKey(1, "k");
    ASSERT_TRUE(v->Put("", "from rocksdb").ok());
  }  // written back at close
  auto backend =
      KeyedStateBackend::Open({.path = dir.path(), .wipe_on_open = false, .write_back_cache_bytes = 1 << 20});
  ASSERT_TRUE(backend.ok()) << backend.status();
  ValueState* v = *(*backend)->GetValueState({.name = "v", .write_back_cache = true});
  (*backend)->SetCurrentKey(1, "k");
  std::string got;
  ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);
  EXPECT_EQ(got, "from rocksdb");
  ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);
  EXPECT_EQ((*backend)->cache_stats().misses, 1u);
  EXPECT_EQ((*backend)->cache_stats().hits, 1u);
  EXPECT_EQ((*backend)->cache_stats().loads_skipped, 0u) << "the restored key was scanned into the filter";
  // Absence is cached too; a key the state never wrote is not read at all.
  (*backend)->SetCurrentKey(1, "none");
  EXPECT_EQ(*v->Get("", &got), StateLookup::kAbsent);
  EXPECT_EQ(*v->Get("", &got), StateLookup::kAbsent);
  EXPECT_EQ((*backend)->cache_stats().misses, 2u);
  EXPECT_EQ((*backend)->cache_stats().loads_skipped, 1u);
}

// A miss on a key the state never wrote to RocksDB starts absent without a
// read (a filter of the keys written, every put of an eviction or flush
// added to it); keys that were written are read back, evicted or not.
TEST(WriteBackCacheTest, MissesOnKeysNeverWrittenSkipRocksDB) {
  TestingStateDir dir("wbc-new-keys");
  auto backend = OpenWithCache(dir.path(), 256 << 10);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  constexpr int kKeys = 20000;  // far more than fit: most are evicted, written back
  for (int i = 0; i < kKeys; ++i) {
    backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
    ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
  }
  StateCacheStats stats = backend->cache_stats();
  ASSERT_GT(stats.written_on_evict, uint64_t{kKeys / 2});
  // Every new key skipped its read but the filter's false positives (about
  // 1% of the keys written before it).
  EXPECT_GT(stats.loads_skipped, uint64_t{kKeys} * 97 / 100);
  EXPECT_LE(stats.loads_skipped, uint64_t{kKeys});
  EXPECT_LE(stats.bytes, size_t{256} << 10);
  for (int i = 0; i < kKeys; ++i) {  // each again: evicted ones come back from RocksDB
    backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
    ASSERT_TRUE(sum->Add("", EncodeI64(1)).ok());
  }
  for (int i = 0; i < kKeys; i += 997) {
    backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
    std::string got;
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kFound);
    EXPECT_EQ(DecodeI64(got), i + 1) << i;
  }
  EXPECT_EQ(backend->cache_stats().loads_skipped, stats.loads_skipped) << "every key was written by now";
}

// A filter past its limit turns itself off: every miss reads RocksDB again,
// and nothing is lost.
TEST(WriteBackCacheTest, AFilterOfWrittenKeysPastItsLimitTurnsOff) {
  TestingStateDir dir("wbc-filter-off");
  // Filters of at most 16 KiB: parts of 1,024, 2,048 and 4,096 keys (1.25
  // bytes each) fit, the next part of 8,192 does not.
  auto backend = OpenWithCache(dir.path(), 64 << 10);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  constexpr int kKeys = 40000;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kKeys; ++i) {
      backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
      ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
    }
  }
  const StateCacheStats stats = backend->cache_stats();
  // The first 7,168 keys written (and those in the cache meanwhile) skipped
  // their reads but for false positives; none after.
  EXPECT_GT(stats.loads_skipped, 7168u * 97 / 100);
  EXPECT_LE(stats.loads_skipped, 7168u + (64 << 10) / WriteBackCache::kEntryOverhead) << "the filter turned off";
  EXPECT_LE(stats.bytes, size_t{64} << 10);
  for (int i = 0; i < kKeys; i += 331) {
    backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
    std::string got;
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kFound);
    EXPECT_EQ(DecodeI64(got), 2 * i) << i;
  }
}

// The filters of all the cache's states share one limit, a quarter of the
// cache: the one whose growth would pass it is dropped, the others stay.
TEST(WriteBackCacheTest, FiltersOfWrittenKeysShareOneLimit) {
  TestingStateDir dir("wbc-filters-shared");
  auto backend = OpenWithCache(dir.path(), 64 << 10);  // filters of 16 KiB in all
  AggregatingState* a = *backend->GetAggregatingState(
      {.name = "a", .function = SumFunction(), .write_back_cache = true});
  AggregatingState* b = *backend->GetAggregatingState(
      {.name = "b", .function = SumFunction(), .write_back_cache = true});
  // Each state's keys take parts of 1,024, 2,048 and 4,096 keys (8,960
  // bytes); both would be over 16 KiB. `a` has its three first.
  constexpr int kKeys = 6000;
  for (AggregatingState* state : {a, b}) {
    for (int i = 0; i < kKeys; ++i) {
      backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
      ASSERT_TRUE(state->Add("", EncodeI64(i)).ok());
    }
  }
  const StateCacheStats stats = backend->cache_stats();
  EXPECT_LE(stats.bytes, size_t{64} << 10);
  // `a`'s new keys all skipped their reads (but for false positives); `b`'s
  // only until its third part would have passed the limit: 3,072 keys
  // written, and those in the cache meanwhile.
  EXPECT_GT(stats.loads_skipped, uint64_t{kKeys} * 97 / 100 + 3072 * 97 / 100);
  EXPECT_LE(stats.loads_skipped, uint64_t{kKeys} + 3072 + (64 << 10) / WriteBackCache::kEntryOverhead);
  for (AggregatingState* state : {a, b}) {
    for (int i = 0; i < kKeys; i += 97) {
      backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
      std::string got;
      ASSERT_EQ(*state->Get("", &got), StateLookup::kFound);
      EXPECT_EQ(DecodeI64(got), i);
    }
  }
}

// A restored state with more keys than its filter could hold gets none:
// no scan of them at registration, and every miss reads RocksDB.
TEST(WriteBackCacheTest, ARestoredStateTooLargeForAFilterReadsEveryMiss) {
  TestingStateDir dir("wbc-restored-large");
  constexpr size_t kCacheBytes = 64 << 10;  // filters of at most 16 KiB: some 6,500 keys estimated
  constexpr int kKeys = 30000;
  {
    auto backend = OpenWithCache(dir.path(), kCacheBytes);
    AggregatingState* sum = *backend->GetAggregatingState(
        {.name = "sum", .function = SumFunction(), .write_back_cache = true});
    for (int i = 0; i < kKeys; ++i) {
      backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
      ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
    }
  }
  auto backend =
      KeyedStateBackend::Open({.path = dir.path(), .wipe_on_open = false, .write_back_cache_bytes = kCacheBytes});
  ASSERT_TRUE(backend.ok()) << backend.status();
  AggregatingState* sum = *(*backend)->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  for (int i = 0; i < 100; ++i) {
    (*backend)->SetCurrentKey(i % 128, "new" + std::to_string(i));
    std::string got;
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kAbsent);
  }
  (*backend)->SetCurrentKey(5, "k5");
  std::string got;
  ASSERT_EQ(*sum->Get("", &got), StateLookup::kFound);
  EXPECT_EQ(DecodeI64(got), 5);
  EXPECT_EQ((*backend)->cache_stats().loads_skipped, 0u);
}

// The hash table is sized for a full cache when the cache is made: filling
// the cache never rehashes its keys (a stall on the task thread).
TEST(WriteBackCacheTest, TheTableNeverGrowsAsTheCacheFills) {
  TestingStateDir dir("wbc-table");
  constexpr size_t kCacheBytes = 256 << 10;
  auto backend = OpenWithCache(dir.path(), kCacheBytes);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  const size_t slots = backend->cache_stats().table_capacity;
  ASSERT_GT(slots, 0u);
  for (int i = 0; i < 20000; ++i) {  // far more than fit
    backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
    ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
  }
  const StateCacheStats stats = backend->cache_stats();
  EXPECT_GT(stats.evicted, 0u);  // the cache was full
  EXPECT_GT(stats.entries, slots / 4);
  EXPECT_EQ(stats.table_capacity, slots);
}

// Eviction makes room a little at a time: a 256th of the cache, not an
// eighth (which in a 4 MiB cache is some 3,000 entries in one call).
TEST(WriteBackCacheTest, EvictionMakesRoomALittleAtATime) {
  TestingStateDir dir("wbc-evict-small");
  constexpr size_t kCacheBytes = 4 << 20;
  auto backend = OpenWithCache(dir.path(), kCacheBytes);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  uint64_t most = 0;
  uint64_t calls_that_evicted = 0;
  for (int i = 0; i < 60000; ++i) {  // some 2.5 times what fits
    backend->SetCurrentKey(i % 128, "k" + std::to_string(i));
    const uint64_t before = backend->cache_stats().evicted;
    ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
    const uint64_t evicted = backend->cache_stats().evicted - before;
    most = std::max(most, evicted);
    if (evicted > 0) ++calls_that_evicted;
  }
  // Each entry is charged at least kEntryOverhead bytes. An Add may evict
  // twice (its read's Acquire, its MarkDirty), a 256th each: the filter of
  // written keys grows by a part at once (80 KiB here at the first
  // eviction's writes), and is made room for over the Adds that follow.
  EXPECT_GT(calls_that_evicted, 0u);
  EXPECT_LE(most, 2 * (kCacheBytes / WriteBackCache::kEvictFraction / WriteBackCache::kEntryOverhead + 1));
  EXPECT_LE(backend->cache_stats().bytes, kCacheBytes);
}

TEST(WriteBackCacheTest, EvictionWritesDirtyEntriesThroughInBatches) {
  TestingStateDir dir("wbc-evict");
  constexpr size_t kCacheBytes = 64 << 10;
  auto backend = OpenWithCache(dir.path(), kCacheBytes);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  constexpr int kKeys = 5000;  // far more than fit in 64 KiB
  for (int round = 1; round <= 3; ++round) {
    for (int i = 0; i < kKeys; ++i) {
      backend->SetCurrentKey(i % 128, "key" + std::to_string(i));
      ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
    }
  }
  const StateCacheStats stats = backend->cache_stats();
  EXPECT_LE(stats.bytes, kCacheBytes);
  EXPECT_GT(stats.evicted, 0u);
  EXPECT_GT(stats.written_on_evict, 0u);
  EXPECT_LT(stats.batches, stats.written_on_evict);  // many entries per WriteBatch
  EXPECT_EQ(stats.written_on_flush, 0u);
  // Key 0 was evicted long ago: RocksDB holds its latest sum already.
  EXPECT_EQ(DecodeI64(RawGet(*backend, sum->id(), StateKey(0, "key0"))), 0);
  const std::string raw1 = RawGet(*backend, sum->id(), StateKey(1, "key1"));
  EXPECT_EQ(DecodeI64(raw1), 3);
  // Reads through the cache see every update, evicted or not.
  for (int i = 0; i < kKeys; ++i) {
    backend->SetCurrentKey(i % 128, "key" + std::to_string(i));
    std::string got;
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kFound);
    ASSERT_EQ(DecodeI64(got), 3 * i) << i;
  }
}

// Keys longer than an entry keeps inline go to the heap and work the same:
// hits, eviction, write-back and reads back from RocksDB.
TEST(WriteBackCacheTest, LongKeysWorkLikeShortOnes) {
  TestingStateDir dir("wbc-long");
  auto backend = OpenWithCache(dir.path(), 64 << 10);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  auto key = [](int i) { return std::string(i % 2 == 0 ? 60 : 3, 'k') + std::to_string(i); };
  constexpr int kKeys = 2000;  // far more than fit in 64 KiB
  for (int round = 1; round <= 2; ++round) {
    for (int i = 0; i < kKeys; ++i) {
      backend->SetCurrentKey(i % 128, key(i));
      ASSERT_TRUE(sum->Add("", EncodeI64(i)).ok());
    }
  }
  EXPECT_GT(backend->cache_stats().evicted, 0u);
  for (int i = 0; i < kKeys; ++i) {
    backend->SetCurrentKey(i % 128, key(i));
    std::string got;
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kFound) << i;
    ASSERT_EQ(DecodeI64(got), 2 * i) << i;
  }
  ASSERT_TRUE(backend->Flush().ok());
  EXPECT_EQ(DecodeI64(RawGet(*backend, sum->id(), StateKey(2 % 128, key(2)))), 4);
}

// Eviction gives a second chance (CLOCK): a key used between every two new
// keys of a scan far larger than the cache stays cached, where first-in,
// first-out would evict it once per turn through the cache (some 12 times
// here).
TEST(WriteBackCacheTest, AKeyInUseSurvivesAScan) {
  TestingStateDir dir("wbc-clock");
  auto backend = OpenWithCache(dir.path(), 64 << 10);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  std::string got;
  backend->SetCurrentKey(0, "hot");
  ASSERT_TRUE(v->Put("", "h").ok());
  for (int i = 0; i < 5000; ++i) {
    backend->SetCurrentKey(i % 128, "scan" + std::to_string(i));
    ASSERT_TRUE(v->Put("", "s").ok());
    backend->SetCurrentKey(0, "hot");
    ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);
  }
  const StateCacheStats stats = backend->cache_stats();
  EXPECT_GT(stats.evicted, 4000u);
  // Each scan key misses once; "hot" only at its first use.
  EXPECT_EQ(stats.misses, 5001u);
}

// A window's life: its accumulator is created by a load that finds nothing,
// folded into, then cleared when the window fires. RocksDB never held it, so
// the cleared entry leaves the cache at once (no tombstone, no slot aging
// behind the open windows), while a cleared entry RocksDB may hold stays
// dirty until its delete is written.
TEST(WriteBackCacheTest, ClearedEntriesRocksDBNeverHeldLeaveTheCache) {
  TestingStateDir dir("wbc-drop");
  auto backend = OpenWithCache(dir.path(), 1 << 20);
  AggregatingState* sum = *backend->GetAggregatingState(
      {.name = "sum", .function = SumFunction(), .write_back_cache = true});
  constexpr int kWindows = 1000;
  for (int w = 0; w < kWindows; ++w) {
    backend->SetCurrentKey(w % 128, "key" + std::to_string(w));
    ASSERT_TRUE(sum->Add("", EncodeI64(w)).ok());
    ASSERT_TRUE(sum->Add("", EncodeI64(1)).ok());
  }
  EXPECT_EQ(backend->cache_stats().entries, size_t{kWindows});
  EXPECT_EQ(backend->DirtyCacheEntries().records(), size_t{kWindows});
  for (int w = 0; w < kWindows; ++w) {
    backend->SetCurrentKey(w % 128, "key" + std::to_string(w));
    std::string got;
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kFound);
    ASSERT_EQ(DecodeI64(got), w + 1);
    ASSERT_TRUE(sum->Clear("").ok());
    ASSERT_EQ(*sum->Get("", &got), StateLookup::kAbsent);  // a load again: RocksDB has none
  }
  StateCacheStats stats = backend->cache_stats();
  EXPECT_EQ(stats.dropped, uint64_t{kWindows});
  EXPECT_EQ(stats.evicted, 0u);
  EXPECT_EQ(stats.batches, 0u);  // nothing ever reached RocksDB
  EXPECT_TRUE(backend->DirtyCacheEntries().empty());
  // The loads after the clears cached absence; those are clean entries.
  EXPECT_EQ(stats.entries, size_t{kWindows});

  // Once RocksDB holds a value, clearing it is a delete that must be written.
  backend->SetCurrentKey(3, "flushed");
  ASSERT_TRUE(sum->Add("", EncodeI64(5)).ok());
  ASSERT_TRUE(backend->Flush().ok());
  EXPECT_EQ(DecodeI64(RawGet(*backend, sum->id(), StateKey(3, "flushed"))), 5);
  ASSERT_TRUE(sum->Clear("").ok());
  EXPECT_EQ(backend->cache_stats().dropped, uint64_t{kWindows});
  EXPECT_EQ(backend->DirtyCacheEntries().records(), 1u);  // the delete
  ASSERT_TRUE(backend->Flush().ok());
  EXPECT_TRUE(RawGet(*backend, sum->id(), StateKey(3, "flushed")).empty());
}

// Settling: an entry that did not change for two intervals between
// snapshots is written to RocksDB during the next one (a window quiet only
// until it fires is not), so that the snapshots after carry
// only what changes (q4's closed auctions, written once, were copied into
// every snapshot).
TEST(WriteBackCacheTest, EntriesUnchangedForTwoWholeIntervalsSettleIntoRocksDB) {
  TestingStateDir dir("wbc-settle");
  auto backend = OpenWithCache(dir.path(), 8 << 20);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  constexpr int kCold = 1000, kHot = 10;
  auto group = [](const std::string& key) { return static_cast<int>(std::hash<std::string>()(key) % 128); };
  auto put = [&](const std::string& key, const std::string& value) {
    backend->SetCurrentKey(group(key), key);
    ASSERT_TRUE(v->Put("", value).ok());
  };
  auto touch_hot = [&](int rounds) {
    for (int r = 0; r < rounds; ++r) {
      for (int h = 0; h < kHot; ++h) put("hot" + std::to_string(h), "r" + std::to_string(r));
    }
  };
  for (int c = 0; c < kCold; ++c) put("cold" + std::to_string(c), "c" + std::to_string(c));
  touch_hot(1);
  EXPECT_EQ(backend->DirtyCacheEntries().records(), size_t{kCold + kHot}) << "snapshot 1: everything is new";
  touch_hot(100);
  EXPECT_EQ(backend->DirtyCacheEntries().records(), size_t{kCold + kHot}) << "snapshot 2: the cold ones still ride";
  touch_hot(100);
  EXPECT_EQ(backend->DirtyCacheEntries().records(), size_t{kCold + kHot}) << "snapshot 3: quiet for one interval";
  EXPECT_EQ(backend->cache_stats().written_on_settle, 0u) << "nothing was cold for two intervals before snapshot 3";
  put("cold5", "changed");  // changed after snapshot 3: not cold any more
  touch_hot(100);
  const StateCacheStats stats = backend->cache_stats();
  EXPECT_EQ(stats.written_on_settle, uint64_t{kCold - 1});
  EXPECT_EQ(stats.evicted, 0u);
  backend->SetCurrentKey(group("cold7"), "cold7");
  EXPECT_EQ(RawGet(*backend, v->id(), StateKey(group("cold7"), "cold7")), "c7") << "in RocksDB now";
  EXPECT_TRUE(RawGet(*backend, v->id(), StateKey(group("cold5"), "cold5")).empty())
      << "changed after snapshot 3: still only in the cache";
  EXPECT_EQ(backend->DirtyCacheEntries().records(), size_t{kHot + 1}) << "snapshot 4: the hot ones and cold5";
  // Settled entries stay cached, readable, clean.
  std::string got;
  ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);
  EXPECT_EQ(got, "c7");
  EXPECT_EQ(backend->cache_stats().misses, stats.misses);
}

// Settling spreads over about half of the next interval's Acquire calls
// (judged by the last interval's), 16 or more listed slots (one WriteBatch)
// now and then, instead of one slot per call from the start: q4's aggregate
// over auctions settled its 9,000 cold entries in the first 150 ms after
// each 1 s checkpoint, and its latency rose with it.
TEST(WriteBackCacheTest, SettlingSpreadsOverHalfTheNextInterval) {
  TestingStateDir dir("wbc-settle-spread");
  auto backend = OpenWithCache(dir.path(), 8 << 20);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  constexpr int kCold = 1000, kHot = 10;
  auto put = [&](const std::string& key) {
    backend->SetCurrentKey(static_cast<int>(std::hash<std::string>()(key) % 128), key);
    ASSERT_TRUE(v->Put("", "x").ok());
  };
  auto touch_hot = [&](int rounds) {
    for (int r = 0; r < rounds; ++r) {
      for (int h = 0; h < kHot; ++h) put("hot" + std::to_string(h));
    }
  };
  for (int c = 0; c < kCold; ++c) put("cold" + std::to_string(c));
  backend->DirtyCacheEntries();
  touch_hot(10'000);  // an interval of 100,000 calls
  backend->DirtyCacheEntries();
  touch_hot(10'000);  // the cold ones quiet for two
  EXPECT_EQ(backend->cache_stats().written_on_settle, 0u);
  backend->DirtyCacheEntries();
  touch_hot(1'000);  // a tenth of it
  const uint64_t early = backend->cache_stats().written_on_settle;
  EXPECT_GT(early, 0u);
  EXPECT_LT(early, uint64_t{kCold / 4}) << "settled in the first tenth of the interval";
  touch_hot(4'500);  // past half of it
  EXPECT_EQ(backend->cache_stats().written_on_settle, uint64_t{kCold});
}

// The puts of a snapshot's delta, by RocksDB key (deletes as "<deleted>").
std::map<std::string, std::string> DeltaEntries(CacheDelta delta) {
  std::map<std::string, std::string> entries;
  const std::string bytes = std::move(delta).Finish();
  const absl::Status parsed = CacheDelta::Parse(
      bytes, [&](std::string_view, std::string_view key, const std::string_view* value) -> absl::Status {
        EXPECT_TRUE(entries.emplace(key, value != nullptr ? std::string(*value) : "<deleted>").second)
            << "a key twice in one delta";
        return absl::OkStatus();
      });
  EXPECT_TRUE(parsed.ok()) << parsed;
  return entries;
}

// A snapshot whose copy of the cache runs later (on the TaskManager's copy
// thread, or in steps on the task thread) has every entry as it was when the
// snapshot was taken, whatever the task thread changed meanwhile, and
// whenever the copy runs: before, during or after the changes, in steps
// around them, or after the cache is gone.
TEST(WriteBackCacheTest, ASnapshotCopiedLaterHasTheEntriesOfItsTime) {
  // kDuringChangesAtLowPriority: the copy runs at nice 19, so that it is
  // often preempted holding an entry the task then waits for (a TaskManager
  // copies at the tasks' priority; this makes the waits common).
  enum class When {
    kAfterChanges,
    kDuringChanges,
    kDuringChangesAtLowPriority,
    kAfterTheCacheIsGone,
    kInStepsAroundChanges,
  };
  for (When when : {When::kAfterChanges, When::kDuringChanges, When::kDuringChangesAtLowPriority,
                    When::kAfterTheCacheIsGone, When::kInStepsAroundChanges}) {
    SCOPED_TRACE(static_cast<int>(when));
    TestingStateDir dir("wbc-later");
    auto backend = OpenWithCache(dir.path(), 8 << 20);
    ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
    constexpr int kKeys = 20000;
    auto put = [&](const std::string& key, const std::string& value) {
      backend->SetCurrentKey(static_cast<int>(key.size()) % 128, key);
      ASSERT_TRUE(v->Put("", value).ok());
    };
    std::map<std::string, std::string> want;
    for (int i = 0; i < kKeys; ++i) {
      const std::string key = "k" + std::to_string(i);
      put(key, "before" + std::to_string(i));
      want[StateKey(static_cast<int>(key.size()) % 128, key)] = "before" + std::to_string(i);
    }
    std::vector<KeyedStateBackend::LaterDelta> later;
    CacheDelta delta = backend->DirtyCacheEntries(&later);
    EXPECT_EQ(delta.records(), 0u) << "nothing copied on the task thread";
    ASSERT_EQ(later.size(), 1u);
    auto change = [&] {
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = "k" + std::to_string(i);
        if (i % 4 == 0) {
          backend->SetCurrentKey(static_cast<int>(key.size()) % 128, key);
          ASSERT_TRUE(v->Clear("").ok());
        } else {
          put(key, "after" + std::to_string(i));
        }
      }
      for (int i = 0; i < kKeys / 4; ++i) put("new" + std::to_string(i), "new");
    };
    switch (when) {
      case When::kAfterChanges:
        change();
        later[0](&delta);
        break;
      case When::kDuringChanges: {
        std::thread copy([&] { later[0](&delta); });
        change();
        copy.join();
        break;
      }
      case When::kDuringChangesAtLowPriority: {
        std::thread copy([&] {
          EXPECT_TRUE(LowerThreadPriority().ok());
          later[0](&delta);
        });
        change();
        copy.join();
        break;
      }
      case When::kInStepsAroundChanges: {
        // A step before the changes, the rest after, on the same thread
        // (a task copying between batches of its input).
        size_t budget = 1000;
        EXPECT_FALSE(later[0].Copy(&delta, &budget));
        EXPECT_EQ(budget, 0u) << "a step copies what its budget allows";
        change();
        int steps = 1;
        for (;;) {
          ++steps;
          budget = 3000;
          if (later[0].Copy(&delta, &budget)) break;
          ASSERT_EQ(budget, 0u);
        }
        EXPECT_EQ(steps, 1 + (kKeys - 1000 + 2999) / 3000);
        EXPECT_TRUE(later[0].done());
        break;
      }
      case When::kAfterTheCacheIsGone:
        change();
        backend.reset();
        later[0](&delta);
        break;
    }
    later.clear();
    EXPECT_EQ(DeltaEntries(std::move(delta)), want);
    if (backend == nullptr) continue;
    // The next snapshot has the entries as they are now.
    const std::map<std::string, std::string> next = DeltaEntries(backend->DirtyCacheEntries());
    EXPECT_EQ(next.size(), size_t{kKeys + kKeys / 4});
    EXPECT_EQ(next.at(StateKey(2, "k1")), "after1");
    EXPECT_EQ(next.at(StateKey(2, "k0")), "<deleted>");
    EXPECT_EQ(next.at(StateKey(4, "new1")), "new");
  }
}

// Two snapshots before the first one's copy ran (the second finishes it on
// the task thread), then the cache is gone (the task was cancelled): the
// first copy, run last, has the entries of its time and touches no entry.
TEST(WriteBackCacheTest, ASnapshotCopyOvertakenByTheNextAndRunAfterTheCacheIsGone) {
  TestingStateDir dir("wbc-overtaken");
  auto backend = OpenWithCache(dir.path(), 8 << 20);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  auto put = [&](const std::string& key, const std::string& value) {
    backend->SetCurrentKey(3, key);
    ASSERT_TRUE(v->Put("", value).ok());
  };
  for (int i = 0; i < 1000; ++i) put("k" + std::to_string(i), "first");
  std::vector<KeyedStateBackend::LaterDelta> first;
  CacheDelta first_delta = backend->DirtyCacheEntries(&first);
  for (int i = 0; i < 1000; i += 2) put("k" + std::to_string(i), "second");
  std::vector<KeyedStateBackend::LaterDelta> second;
  CacheDelta second_delta = backend->DirtyCacheEntries(&second);
  backend.reset();
  ASSERT_EQ(first.size(), 1u);
  first[0](&first_delta);
  const std::map<std::string, std::string> entries = DeltaEntries(std::move(first_delta));
  EXPECT_EQ(entries.size(), 1000u);
  EXPECT_EQ(entries.at(StateKey(3, "k0")), "first");
  EXPECT_EQ(entries.at(StateKey(3, "k1")), "first");
  for (auto& fn : second) fn(&second_delta);
  const std::map<std::string, std::string> next = DeltaEntries(std::move(second_delta));
  EXPECT_EQ(next.at(StateKey(3, "k0")), "second");
}

// A snapshot whose copy never runs (the checkpoint was declined) leaves the
// cache as if it had.
TEST(WriteBackCacheTest, ASnapshotCopyThatNeverRunsIsForgotten) {
  TestingStateDir dir("wbc-dropped");
  auto backend = OpenWithCache(dir.path(), 8 << 20);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  backend->SetCurrentKey(1, "k");
  ASSERT_TRUE(v->Put("", "one").ok());
  {
    std::vector<KeyedStateBackend::LaterDelta> later;
    EXPECT_TRUE(backend->DirtyCacheEntries(&later).empty());
    ASSERT_EQ(later.size(), 1u);
  }
  ASSERT_TRUE(v->Put("", "two").ok());
  const std::map<std::string, std::string> next = DeltaEntries(backend->DirtyCacheEntries());
  EXPECT_EQ(next, (std::map<std::string, std::string>{{StateKey(1, "k"), "two"}}));
}

TEST(WriteBackCacheTest, FlushPersistsEveryDirtyEntry) {
  TestingStateDir dir("wbc-flush");
  {
    auto backend = OpenWithCache(dir.path(), 1 << 20);
    ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
    for (int i = 0; i < 100; ++i) {
      backend->SetCurrentKey(i, "k" + std::to_string(i));
      ASSERT_TRUE(v->Put("", "v" + std::to_string(i)).ok());
    }
    backend->SetCurrentKey(0, "k0");
    ASSERT_TRUE(v->Clear("").ok());
    EXPECT_TRUE(RawGet(*backend, v->id(), StateKey(5, "k5")).empty());
    ASSERT_TRUE(backend->Flush().ok());
    EXPECT_EQ(backend->cache_stats().written_on_flush, 100u);
    EXPECT_EQ(RawGet(*backend, v->id(), StateKey(5, "k5")), "v5");
    EXPECT_TRUE(RawGet(*backend, v->id(), StateKey(0, "k0")).empty());
    // A second flush has nothing to write.
    ASSERT_TRUE(backend->Flush().ok());
    EXPECT_EQ(backend->cache_stats().written_on_flush, 100u);
  }
  // Read back through raw RocksDB, with no backend in between.
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.path(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const std::string& name : names) cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir.path(), cfs, &handles, &raw).ok());
  rocksdb::ColumnFamilyHandle* v_cf = nullptr;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "v") v_cf = handles[i];
  }
  ASSERT_NE(v_cf, nullptr);
  int found = 0;
  for (int i = 0; i < 100; ++i) {
    std::string value;
    if (raw->Get(rocksdb::ReadOptions(), v_cf, StateKey(i, "k" + std::to_string(i)), &value).ok()) {
      EXPECT_EQ(value, "v" + std::to_string(i));
      ++found;
    }
  }
  EXPECT_EQ(found, 99);
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

TEST(WriteBackCacheTest, TimedEntriesCarryTheirWriteTimeToRocksDB) {
  TestingStateDir dir("wbc-ttl");
  ManualStateClock clock(5000);
  auto opened = KeyedStateBackend::Open({.path = dir.path(), .clock = &clock});
  ASSERT_TRUE(opened.ok());
  KeyedStateBackend& backend = **opened;
  ValueState* v = *backend.GetValueState({.name = "v", .ttl_ms = 100, .write_back_cache = true});
  backend.SetCurrentKey(0, "k");
  ASSERT_TRUE(v->Put("", "x").ok());
  ASSERT_TRUE(backend.Flush().ok());
  const std::string raw = RawGet(backend, v->id(), StateKey(0, "k"));
  ASSERT_EQ(raw.size(), 9u);  // 8-byte write time + "x"
  EXPECT_EQ(raw.substr(8), "x");
  clock.Advance(100);
  std::string got;
  EXPECT_EQ(*v->Get("", &got), StateLookup::kAbsent);
  ASSERT_TRUE(backend.CompactState(v->id()).ok());
  EXPECT_TRUE(RawGet(backend, v->id(), StateKey(0, "k")).empty());
}

TEST(WriteBackCacheTest, ZeroCapacityTurnsTheCacheOff) {
  TestingStateDir dir("wbc-off");
  auto backend = OpenWithCache(dir.path(), 0);
  ValueState* v = *backend->GetValueState({.name = "v", .write_back_cache = true});
  EXPECT_FALSE(v->cached());
  backend->SetCurrentKey(0, "k");
  ASSERT_TRUE(v->Put("", "x").ok());
  EXPECT_EQ(RawGet(*backend, v->id(), StateKey(0, "k")), "x");
}

}  // namespace
}  // namespace vstream
