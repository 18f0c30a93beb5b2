#include "state/keyed_state_backend.h"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "common/cpu_set.h"
#include "common/wait_for.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/metadata.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "state/key_groups.h"
#include "state/state_descriptor.h"

namespace vstream {
namespace {

std::string TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST(KeyedStateBackendTest, PutGetDeletePerStateAndKeyGroup) {
  auto backend = KeyedStateBackend::Open({.path = TempDir("ksb")});
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto a = (*backend)->RegisterState("a");
  auto b = (*backend)->RegisterState("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  ASSERT_TRUE((*backend)->Put(*a, 7, "key", "va").ok());
  ASSERT_TRUE((*backend)->Put(*b, 7, "key", "vb").ok());
  std::string v;
  ASSERT_TRUE((*backend)->Get(*a, 7, "key", &v).ok());
  EXPECT_EQ(v, "va");
  ASSERT_TRUE((*backend)->Get(*b, 7, "key", &v).ok());
  EXPECT_EQ(v, "vb");
  EXPECT_TRUE(absl::IsNotFound((*backend)->Get(*a, 8, "key", &v)));
  ASSERT_TRUE((*backend)->Delete(*a, 7, "key").ok());
  EXPECT_TRUE(absl::IsNotFound((*backend)->Get(*a, 7, "key", &v)));
}

// A backend with one map state "m", its column family in the compaction
// style the options ask for.
struct OpenedMap {
  std::unique_ptr<KeyedStateBackend> backend;
  MapState* map = nullptr;  // null if anything failed
  rocksdb::ColumnFamilyHandle* cf = nullptr;
};
OpenedMap OpenMap(const KeyedStateBackendOptions& options) {
  OpenedMap o;
  auto backend = KeyedStateBackend::Open(options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  if (!backend.ok()) return o;
  o.backend = std::move(*backend);
  auto map = o.backend->GetMapState(MapStateDescriptor{.name = "m"});
  EXPECT_TRUE(map.ok()) << map.status();
  if (!map.ok()) return o;
  o.cf = o.backend->column_family((*map)->id());
  EXPECT_EQ(o.backend->db()->GetOptions(o.cf).compaction_style,
            options.universal_compaction ? rocksdb::kCompactionStyleUniversal : rocksdb::kCompactionStyleLevel);
  o.map = *map;
  return o;
}

// Map state tests' keys "k<i>", with their key groups of 128.
void SetMapKey(KeyedStateBackend& backend, int i) {
  const std::string key = "k" + std::to_string(i);
  backend.SetCurrentKey(KeyGroupForHash(HashKeyBytes(key), 128), key);
}

// The current key's entries, as "user key=value" in user key order.
std::vector<std::string> MapEntries(MapState& map) {
  std::vector<std::string> got;
  EXPECT_TRUE(map.ForEachInRange("", "", "", [&](std::string_view k, std::string_view v) {
    got.push_back(std::string(k) + "=" + std::string(v));
    return true;
  }).ok());
  return got;
}

// A MapState's scan of one key asks each SST file's prefix filter for
// [key group][key] first: a key with no entries reads no file. Keys that
// are byte prefixes of each other ("k1", "k10") stay apart (the length
// prefix), and scans across keys (ForEachKey) still see every entry.
TEST(KeyedStateBackendTest, MapScansOfAbsentKeysSkipSstFilesAndScansAcrossKeysSeeAll) {
  OpenedMap opened = OpenMap({.path = TempDir("ksb-prefix")});
  ASSERT_NE(opened.map, nullptr);
  KeyedStateBackend& backend = *opened.backend;
  MapState& map = *opened.map;
  // No compaction may merge the three files below.
  ASSERT_TRUE(backend.db()->SetOptions(opened.cf, {{"disable_auto_compactions", "true"}}).ok());
  // Three SST files, each with three entries of every even key below 300.
  for (int file = 0; file < 3; ++file) {
    for (int i = 0; i < 300; i += 2) {
      SetMapKey(backend, i);
      for (int e = 0; e < 3; ++e) {
        ASSERT_TRUE(map.Put("", "u" + std::to_string(file * 3 + e), "v").ok());
      }
    }
    ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), opened.cf).ok());
  }
  std::string files;
  ASSERT_TRUE(backend.db()->GetProperty(opened.cf, "rocksdb.num-files-at-level0", &files));
  ASSERT_EQ(files, "3");
  auto scan = [&](int i) {
    SetMapKey(backend, i);
    return MapEntries(map).size();
  };
  EXPECT_EQ(scan(10), 9u);   // "k10": its own 9 entries, not "k100".."k108"'s
  EXPECT_EQ(scan(1), 0u);    // "k1": odd, absent, though "k10" starts with it
  EXPECT_EQ(scan(100), 9u);

  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  for (int i = 1; i < 300; i += 2) EXPECT_EQ(scan(i), 0u);
  const uint64_t skipped = rocksdb::get_perf_context()->bloom_sst_miss_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  // 150 absent keys, 3 files each: nearly every file skipped (10 bits per
  // key: about 1% false positives).
  EXPECT_GE(skipped, 400u);

  int64_t entries = 0;
  ASSERT_TRUE(backend.ForEachKey(map.id(), KeyGroupRange{0, 127}, [&](const StateKeyView&) { ++entries; }).ok());
  EXPECT_EQ(entries, 150 * 9);
  opened.backend.reset();
  std::filesystem::remove_all(TempDir("ksb-prefix"));
}

// A state directory whose files sit in levels below 0 (leveled compaction,
// the default before universal) opens with universal compaction and the
// other way round: a restore of an older snapshot, or of a newer one.
TEST(KeyedStateBackendTest, ReopensStateWrittenWithTheOtherCompactionStyle) {
  for (const bool first_universal : {false, true}) {
    SCOPED_TRACE(first_universal ? "universal, then leveled" : "leveled, then universal");
    const std::string path = TempDir(first_universal ? "ksb-style-u" : "ksb-style-l");
    {
      OpenedMap first = OpenMap({.path = path, .universal_compaction = first_universal});
      ASSERT_NE(first.map, nullptr);
      KeyedStateBackend& backend = *first.backend;
      rocksdb::ColumnFamilyHandle* cf = first.cf;
      for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 200; ++i) {
          SetMapKey(backend, i);
          ASSERT_TRUE(first.map->Put("", "u" + std::to_string(round), "v" + std::to_string(i)).ok());
        }
        ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), cf).ok());
      }
      // Everything into one file below level 0.
      rocksdb::CompactRangeOptions compact;
      compact.change_level = true;
      compact.target_level = 3;
      ASSERT_TRUE(backend.db()->CompactRange(compact, cf, nullptr, nullptr).ok());
      std::string at_level;
      ASSERT_TRUE(backend.db()->GetProperty(cf, "rocksdb.num-files-at-level3", &at_level));
      ASSERT_EQ(at_level, "1");
    }
    OpenedMap reopened = OpenMap({.path = path, .wipe_on_open = false, .universal_compaction = !first_universal});
    ASSERT_NE(reopened.map, nullptr);
    KeyedStateBackend& backend = *reopened.backend;
    rocksdb::ColumnFamilyHandle* cf = reopened.cf;
    for (int i = 0; i < 200; i += 7) {
      SetMapKey(backend, i);
      const std::string v = "v" + std::to_string(i);
      EXPECT_EQ(MapEntries(*reopened.map), (std::vector<std::string>{"u0=" + v, "u1=" + v, "u2=" + v}));
    }
    // Writes and a compaction in the new style work on the old files.
    SetMapKey(backend, 1);
    ASSERT_TRUE(reopened.map->Put("", "u3", "new").ok());
    ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), cf).ok());
    ASSERT_TRUE(backend.db()->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
    int64_t entries = 0;
    ASSERT_TRUE(
        backend.ForEachKey(reopened.map->id(), KeyGroupRange{0, 127}, [&](const StateKeyView&) { ++entries; }).ok());
    EXPECT_EQ(entries, 601);
    reopened.backend.reset();
    std::filesystem::remove_all(path);
  }
}

// A task flushes its backends' large memtables in the background shortly
// before a checkpoint is due, so that the snapshot's flush on the task
// thread has little left: only the column families holding at least the
// given number of entries, without waiting, and their data stays readable.
TEST(KeyedStateBackendTest, FlushesOnlyLargeMemtablesInTheBackground) {
  auto opened = KeyedStateBackend::Open({.path = TempDir("ksb-preflush")});
  ASSERT_TRUE(opened.ok()) << opened.status();
  KeyedStateBackend& backend = **opened;
  const StateId large = *backend.RegisterState("large");
  const StateId small = *backend.RegisterState("small");
  for (int i = 0; i < 20'000; ++i) ASSERT_TRUE(backend.Put(large, i % 128, "k" + std::to_string(i), "value").ok());
  // 10 KB: past what the memtable's allocated-size property tells apart.
  for (int i = 0; i < 1'000; ++i) ASSERT_TRUE(backend.Put(small, i % 128, "k" + std::to_string(i), "v").ok());
  auto entries = [&](StateId id) {
    uint64_t n = 0;
    EXPECT_TRUE(backend.db()->GetIntProperty(backend.column_family(id),
                                             rocksdb::DB::Properties::kNumEntriesActiveMemTable, &n));
    return n;
  };
  auto files = [&](StateId id) {
    rocksdb::ColumnFamilyMetaData meta;
    backend.db()->GetColumnFamilyMetaData(backend.column_family(id), &meta);
    return meta.file_count;
  };
  absl::StatusOr<bool> none = backend.FlushMemtablesInBackground(50'000);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(*none) << "no memtable that large";
  EXPECT_EQ(entries(large), 20'000u);
  absl::StatusOr<bool> started = backend.FlushMemtablesInBackground(10'000);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_TRUE(*started);
  EXPECT_EQ(entries(large), 0u) << "a new memtable at once";
  EXPECT_TRUE(WaitFor([&] { return files(large) == 1; }, std::chrono::seconds(10))) << "flushed to an SST";
  EXPECT_EQ(files(small), 0u) << "a small memtable stays";
  EXPECT_EQ(entries(small), 1'000u);
  std::string got;
  ASSERT_TRUE(backend.Get(large, 7, "k7", &got).ok());
  EXPECT_EQ(got, "value");
}

// RocksDB's LOG holds warnings and errors only unless asked for more: a
// flush's events (written on the thread that asks for the flush, a task
// snapshotting) are in it at INFO only.
TEST(KeyedStateBackendTest, TheRocksDbLogHoldsWarningsOnlyByDefault) {
  for (const bool info : {false, true}) {
    SCOPED_TRACE(info ? "INFO" : "default");
    const std::string path = TempDir(info ? "ksb-log-info" : "ksb-log");
    KeyedStateBackendOptions options{.path = path};
    if (info) options.info_log_level = rocksdb::InfoLogLevel::INFO_LEVEL;
    auto opened = KeyedStateBackend::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    KeyedStateBackend& backend = **opened;
    auto state = backend.RegisterState("values", /*write_back_cache=*/false);
    ASSERT_TRUE(state.ok()) << state.status();
    ASSERT_TRUE(backend.Put(*state, 3, "key", "value").ok());
    ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), backend.column_family(*state)).ok());
    std::ifstream log(path + "/LOG");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.find("\"event\": \"flush_started\"") != std::string::npos, info) << text.size() << " bytes";
    opened->reset();
    std::filesystem::remove_all(path);
  }
}

TEST(KeyGroupsTest, RangesPartitionAllKeyGroupsContiguously) {
  for (int maxp : {1, 7, 128, 1000}) {
    for (int p = 1; p <= std::min(maxp, 9); ++p) {
      int next = 0;
      for (int s = 0; s < p; ++s) {
        KeyGroupRange r = KeyGroupRangeForSubtask(maxp, p, s);
        EXPECT_EQ(r.start, next);
        for (int kg = r.start; kg <= r.end; ++kg) EXPECT_EQ(SubtaskForKeyGroup(kg, maxp, p), s);
        next = r.end + 1;
      }
      EXPECT_EQ(next, maxp);
    }
  }
}

TEST(KeyGroupsTest, HashSpreadsKeysOverKeyGroups) {
  std::vector<int> counts(128);
  for (int i = 0; i < 12800; ++i) {
    std::string k = "patient-" + std::to_string(i);
    counts[KeyGroupForHash(HashKeyBytes(k), 128)]++;
  }
  for (int c : counts) {
    EXPECT_GT(c, 50);
    EXPECT_LT(c, 160);
  }
}

// LowerCompactionPriority: compactions (RocksDB's LOW pool, threads
// "rocksdb:low") run at nice kBackgroundNice from their next job on;
// flushes (the HIGH pool, which a snapshot waits for) and the calling
// thread keep their priority.
TEST(KeyedStateBackendTest, CompactionsRunAtLowPriorityOnceLowered) {
  const int base = getpriority(PRIO_PROCESS, 0);  // the test may run under `nice`
  ASSERT_TRUE(LowerCompactionPriority().ok());
  auto backend = KeyedStateBackend::Open({.path = TempDir("ksb-nice")});
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto id = (*backend)->RegisterState("a");
  ASSERT_TRUE(id.ok());
  rocksdb::ColumnFamilyHandle* cf = (*backend)->column_family(*id);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE((*backend)->Put(*id, i % 128, "k" + std::to_string(i), "v").ok());
    ASSERT_TRUE((*backend)->db()->Flush(rocksdb::FlushOptions(), cf).ok());
  }
  // A manual compaction runs on a LOW thread while this one waits.
  ASSERT_TRUE((*backend)->db()->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
  const std::vector<int> low = NiceOfThreads(0, "rocksdb:low");
  ASSERT_FALSE(low.empty()) << "no compaction thread";
  EXPECT_TRUE(std::find(low.begin(), low.end(), kBackgroundNice) != low.end())
      << "no compaction thread at nice " << kBackgroundNice;
  for (int nice : NiceOfThreads(0, "rocksdb:high")) EXPECT_EQ(nice, base) << "a flush thread";
  EXPECT_EQ(getpriority(PRIO_PROCESS, 0), base);
}

// The instances of a TaskManager share one block cache, and RocksDB keeps
// objects of the first instance's in it (its statistics collector keeps
// that instance's clock): closing that instance must leave them usable.
TEST(KeyedStateBackendTest, ClosingOneInstanceLeavesTheOthersSharingItsCacheWhole) {
  auto resources = StateResources::Create(StateMemoryBudget());
  ASSERT_TRUE(resources.ok()) << resources.status();
  std::unique_ptr<KeyedStateBackend> backends[2];
  for (int b = 0; b < 2; ++b) {
    auto opened = KeyedStateBackend::Open({.path = TempDir("ksb-shared-" + std::to_string(b)),
                                           .resources = *resources});
    ASSERT_TRUE(opened.ok()) << opened.status();
    backends[b] = std::move(*opened);
    auto seen = backends[b]->GetMapState({.name = "seen", .ttl_ms = 3600000, .filter_recent_keys = true});
    ASSERT_TRUE(seen.ok()) << seen.status();
    auto id = backends[b]->RegisterState("values");
    ASSERT_TRUE(id.ok()) << id.status();
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(backends[b]->Put(*id, i % 128, "k" + std::to_string(i), "v").ok());
    ASSERT_TRUE(backends[b]->db()->Flush(rocksdb::FlushOptions(), backends[b]->column_family(*id)).ok());
    std::string v;
    ASSERT_TRUE(backends[b]->Get(*id, 7, "k7", &v).ok());  // blocks into the shared cache
    std::map<std::string, std::string> stats;
    ASSERT_TRUE(backends[b]->db()->GetMapProperty(rocksdb::DB::Properties::kBlockCacheEntryStats, &stats));
  }
  backends[0].reset();
  std::map<std::string, std::string> stats;
  ASSERT_TRUE(backends[1]->db()->GetMapProperty(rocksdb::DB::Properties::kBlockCacheEntryStats, &stats));
  EXPECT_FALSE(stats.empty());
}

}  // namespace
}  // namespace vstream
