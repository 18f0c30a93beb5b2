#include "state/keyed_state_backend.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
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

// A MapState's scan of one key asks each SST file's prefix filter for
// [key group][key] first: a key with no entries reads no file. Keys that
// are byte prefixes of each other ("k1", "k10") stay apart (the length
// prefix), and scans across keys (ForEachKey) still see every entry.
TEST(KeyedStateBackendTest, MapScansOfAbsentKeysSkipSstFilesAndScansAcrossKeysSeeAll) {
  auto opened = KeyedStateBackend::Open({.path = TempDir("ksb-prefix")});
  ASSERT_TRUE(opened.ok()) << opened.status();
  KeyedStateBackend& backend = **opened;
  auto map = backend.GetMapState(MapStateDescriptor{.name = "m"});
  ASSERT_TRUE(map.ok()) << map.status();
  const StateId id = (*map)->id();
  // No compaction may merge the three files below.
  ASSERT_TRUE(backend.db()->SetOptions(backend.column_family(id), {{"disable_auto_compactions", "true"}}).ok());
  auto key = [](int i) { return "k" + std::to_string(i); };
  auto group = [&](int i) { return KeyGroupForHash(HashKeyBytes(key(i)), 128); };
  // Three SST files, each with three entries of every even key below 300.
  for (int file = 0; file < 3; ++file) {
    for (int i = 0; i < 300; i += 2) {
      backend.SetCurrentKey(group(i), key(i));
      for (int e = 0; e < 3; ++e) {
        ASSERT_TRUE((*map)->Put("", "u" + std::to_string(file * 3 + e), "v").ok());
      }
    }
    ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), backend.column_family(id)).ok());
  }
  std::string files;
  ASSERT_TRUE(backend.db()->GetProperty(backend.column_family(id), "rocksdb.num-files-at-level0", &files));
  ASSERT_EQ(files, "3");
  auto scan = [&](int i) {
    backend.SetCurrentKey(group(i), key(i));
    int n = 0;
    EXPECT_TRUE((*map)->ForEachInRange("", "", "", [&](std::string_view, std::string_view) {
      ++n;
      return true;
    }).ok());
    return n;
  };
  EXPECT_EQ(scan(10), 9);   // "k10": its own 9 entries, not "k100".."k108"'s
  EXPECT_EQ(scan(1), 0);    // "k1": odd, absent, though "k10" starts with it
  EXPECT_EQ(scan(100), 9);

  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  for (int i = 1; i < 300; i += 2) EXPECT_EQ(scan(i), 0);
  const uint64_t skipped = rocksdb::get_perf_context()->bloom_sst_miss_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  // 150 absent keys, 3 files each: nearly every file skipped (10 bits per
  // key: about 1% false positives).
  EXPECT_GE(skipped, 400u);

  int64_t entries = 0;
  ASSERT_TRUE(backend.ForEachKey(id, KeyGroupRange{0, 127}, [&](const StateKeyView&) { ++entries; }).ok());
  EXPECT_EQ(entries, 150 * 9);
  opened->reset();
  std::filesystem::remove_all(TempDir("ksb-prefix"));
}

// A state directory whose files sit in levels below 0 (leveled compaction,
// the default before universal) opens with universal compaction and the
// other way round: a restore of an older snapshot, or of a newer one.
TEST(KeyedStateBackendTest, ReopensStateWrittenWithTheOtherCompactionStyle) {
  for (const bool first_universal : {false, true}) {
    SCOPED_TRACE(first_universal ? "universal, then leveled" : "leveled, then universal");
    const std::string path = TempDir(first_universal ? "ksb-style-u" : "ksb-style-l");
    auto key = [](int i) { return "k" + std::to_string(i); };
    auto group = [&](int i) { return KeyGroupForHash(HashKeyBytes(key(i)), 128); };
    {
      auto opened = KeyedStateBackend::Open({.path = path, .universal_compaction = first_universal});
      ASSERT_TRUE(opened.ok()) << opened.status();
      KeyedStateBackend& backend = **opened;
      auto map = backend.GetMapState(MapStateDescriptor{.name = "m"});
      ASSERT_TRUE(map.ok()) << map.status();
      ASSERT_EQ(backend.db()->GetOptions(backend.column_family((*map)->id())).compaction_style,
                first_universal ? rocksdb::kCompactionStyleUniversal : rocksdb::kCompactionStyleLevel);
      for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 200; ++i) {
          backend.SetCurrentKey(group(i), key(i));
          ASSERT_TRUE((*map)->Put("", "u" + std::to_string(round), "v" + std::to_string(i)).ok());
        }
        ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), backend.column_family((*map)->id())).ok());
      }
      // Everything into one file below level 0.
      rocksdb::CompactRangeOptions compact;
      compact.change_level = true;
      compact.target_level = 3;
      ASSERT_TRUE(backend.db()->CompactRange(compact, backend.column_family((*map)->id()), nullptr, nullptr).ok());
      std::string at_level;
      ASSERT_TRUE(backend.db()->GetProperty(backend.column_family((*map)->id()), "rocksdb.num-files-at-level3",
                                            &at_level));
      ASSERT_EQ(at_level, "1");
    }
    auto opened = KeyedStateBackend::Open({.path = path, .wipe_on_open = false, .universal_compaction = !first_universal});
    ASSERT_TRUE(opened.ok()) << opened.status();
    KeyedStateBackend& backend = **opened;
    auto map = backend.GetMapState(MapStateDescriptor{.name = "m"});
    ASSERT_TRUE(map.ok()) << map.status();
    ASSERT_EQ(backend.db()->GetOptions(backend.column_family((*map)->id())).compaction_style,
              first_universal ? rocksdb::kCompactionStyleLevel : rocksdb::kCompactionStyleUniversal);
    for (int i = 0; i < 200; i += 7) {
      backend.SetCurrentKey(group(i), key(i));
      std::vector<std::string> got;
      ASSERT_TRUE((*map)->ForEachInRange("", "", "", [&](std::string_view k, std::string_view v) {
        got.push_back(std::string(k) + "=" + std::string(v));
        return true;
      }).ok());
      const std::string v = "v" + std::to_string(i);
      EXPECT_EQ(got, (std::vector<std::string>{"u0=" + v, "u1=" + v, "u2=" + v}));
    }
    // Writes and a compaction in the new style work on the old files.
    backend.SetCurrentKey(group(1), key(1));
    ASSERT_TRUE((*map)->Put("", "u3", "new").ok());
    ASSERT_TRUE(backend.db()->Flush(rocksdb::FlushOptions(), backend.column_family((*map)->id())).ok());
    ASSERT_TRUE(backend.db()
                    ->CompactRange(rocksdb::CompactRangeOptions(), backend.column_family((*map)->id()), nullptr,
                                   nullptr)
                    .ok());
    int64_t entries = 0;
    ASSERT_TRUE(backend.ForEachKey((*map)->id(), KeyGroupRange{0, 127}, [&](const StateKeyView&) { ++entries; }).ok());
    EXPECT_EQ(entries, 601);
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

}  // namespace
}  // namespace vstream
