#include "state/buffered_map_state.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/wait_for.h"
#include "gtest/gtest.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/state_snapshot.h"
#include "state/tests/testing_state.h"

namespace vstream {
namespace {

constexpr KeyGroupRange kAll{0, 127};

std::string Key(int i) { return "key-" + std::to_string(i); }
int KeyGroup(int i) { return KeyGroupForHash(HashKeyBytes(Key(i)), 128); }
// Order-preserving user keys, as the interval join's times.
std::string UserKey(int t) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "t%08d", t);
  return buf;
}

struct Opened {
  std::unique_ptr<KeyedStateBackend> backend;
  MapState* disk = nullptr;
  std::unique_ptr<BufferedMapState> buffer;
};

Opened Open(const std::string& path, bool restored, size_t memory_limit) {
  Opened o;
  auto backend = KeyedStateBackend::Open({.path = path, .wipe_on_open = !restored});
  EXPECT_TRUE(backend.ok()) << backend.status();
  o.backend = std::move(*backend);
  auto disk = o.backend->GetMapState(MapStateDescriptor{.name = "buffer"});
  EXPECT_TRUE(disk.ok()) << disk.status();
  o.disk = *disk;
  auto buffer = BufferedMapState::Create(*o.backend, o.disk, restored, memory_limit);
  EXPECT_TRUE(buffer.ok()) << buffer.status();
  o.buffer = std::move(*buffer);
  return o;
}

// The entries of key i with user keys in [from, to), as "user key=value".
std::vector<std::string> Range(BufferedMapState& b, int i, int from, int to) {
  std::vector<std::string> got;
  absl::Status s = b.ForEachInRange(KeyGroup(i), Key(i), UserKey(from), UserKey(to),
                                    [&](std::string_view k, std::string_view v) {
                                      got.push_back(std::string(k) + "=" + std::string(v));
                                      return true;
                                    });
  EXPECT_TRUE(s.ok()) << s;
  return got;  // in user key order, as they came
}

int64_t EntriesOnDisk(KeyedStateBackend& backend, StateId id) {
  int64_t n = 0;
  EXPECT_TRUE(backend.ForEachKey(id, kAll, [&](const StateKeyView&) { ++n; }).ok());
  return n;
}

std::string Entry(int t, const std::string& v) { return UserKey(t) + "=" + v; }

// What the model tests check the state against: (key index, user key) -> value.
using Model = std::map<std::pair<int, std::string>, std::string>;

// The entries of `key` with user keys in [from, to) (to "": no upper end), as
// "user key=value", in the order ForEachInRange gives them.
std::vector<std::string> ReadRange(BufferedMapState& b, const std::string& key, const std::string& from,
                                   const std::string& to) {
  std::vector<std::string> got;
  const absl::Status s = b.ForEachInRange(KeyGroupForHash(HashKeyBytes(key), 128), key, from, to,
                                          [&](std::string_view uk, std::string_view v) {
                                            got.push_back(std::string(uk) + "=" + std::string(v));
                                            return true;
                                          });
  EXPECT_TRUE(s.ok()) << s;
  return got;
}

// The same from the model, for key index k.
std::vector<std::string> ModelRange(const Model& model, int k, const std::string& from, const std::string& to) {
  std::vector<std::string> w;
  for (auto it = model.lower_bound({k, from}); it != model.end() && it->first.first == k; ++it) {
    if (!to.empty() && it->first.second >= to) break;
    w.push_back(it->first.second + "=" + it->second);
  }
  return w;
}

// Checkpoint storage under root (null if it cannot be opened).
std::shared_ptr<CheckpointStorage> OpenStorage(const TestingStateDir& root) {
  auto storage = CheckpointStorage::Open("file://" + root.path() + "/storage");
  EXPECT_TRUE(storage.ok()) << storage.status();
  return storage.ok() ? std::shared_ptr<CheckpointStorage>(std::move(*storage)) : nullptr;
}

TEST(BufferedMapStateTest, EntriesLiveInMemoryAndNeverReachRocksDb) {
  TestingStateDir dir("buffered-map");
  Opened o = Open(dir.path(), false, BufferedMapState::kDefaultMemoryLimit);
  for (int i = 0; i < 3; ++i) {
    for (int t = 0; t < 10; ++t) ASSERT_TRUE(o.buffer->Put(KeyGroup(i), Key(i), UserKey(t), "v" + std::to_string(i)).ok());
  }
  EXPECT_EQ(Range(*o.buffer, 1, 3, 6), (std::vector<std::string>{Entry(3, "v1"), Entry(4, "v1"), Entry(5, "v1")}));
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(1), Key(1), UserKey(4)).ok());
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(1), Key(1), UserKey(99)).ok());  // none: a no-op
  EXPECT_EQ(Range(*o.buffer, 1, 3, 6), (std::vector<std::string>{Entry(3, "v1"), Entry(5, "v1")}));
  // An open upper end: to the key's last entry, not into the next key's.
  std::vector<std::string> tail;
  ASSERT_TRUE(o.buffer->ForEachInRange(KeyGroup(2), Key(2), UserKey(8), "", [&](std::string_view k, std::string_view) {
    tail.emplace_back(k);
    return true;
  }).ok());
  EXPECT_EQ(tail, (std::vector<std::string>{UserKey(8), UserKey(9)}));
  ASSERT_TRUE(o.buffer->Put(KeyGroup(0), Key(0), UserKey(0), "replaced").ok());
  EXPECT_EQ(Range(*o.buffer, 0, 0, 1), (std::vector<std::string>{Entry(0, "replaced")}));
  EXPECT_EQ(o.buffer->memory_entries(), 29u);
  EXPECT_FALSE(o.buffer->may_be_on_disk());
  ASSERT_TRUE(o.backend->Flush().ok());
  EXPECT_EQ(EntriesOnDisk(*o.backend, o.disk->id()), 0);
  // Removing everything frees all but the chunk being filled.
  const size_t full = o.buffer->memory_bytes();
  for (int i = 0; i < 3; ++i) {
    for (int t = 0; t < 10; ++t) ASSERT_TRUE(o.buffer->Remove(KeyGroup(i), Key(i), UserKey(t)).ok());
  }
  EXPECT_EQ(o.buffer->memory_entries(), 0u);
  EXPECT_LT(o.buffer->memory_bytes(), full);
  EXPECT_LE(o.buffer->memory_bytes(), size_t{256} << 10);
}

TEST(BufferedMapStateTest, ChunksHeldByALiveEntryCountAgainstTheLimit) {
  TestingStateDir dir("buffered-map-chunks");
  // 64 KiB: chunks of 4 KiB. One entry that never leaves, then a stream of
  // entries that each leave at once: the chunks behind the first stay
  // allocated, so they must count, and spill the buffer in the end.
  Opened o = Open(dir.path(), false, size_t{64} << 10);
  ASSERT_TRUE(o.buffer->Put(KeyGroup(0), Key(0), UserKey(0), "pinned").ok());
  const std::string value(100, 'v');
  int t = 1;
  for (; t < 10'000 && !o.buffer->may_be_on_disk(); ++t) {
    ASSERT_TRUE(o.buffer->Put(KeyGroup(1), Key(1), UserKey(t), value).ok());
    ASSERT_TRUE(o.buffer->Remove(KeyGroup(1), Key(1), UserKey(t)).ok());
  }
  EXPECT_TRUE(o.buffer->may_be_on_disk()) << "the dead chunks were not counted: " << o.buffer->memory_bytes();
  // Each entry's record (key and 100-byte value) is about 130 bytes in a
  // chunk: 64 KiB hold about 500 of them.
  EXPECT_GT(t, 400) << "spilled too early";
  EXPECT_EQ(Range(*o.buffer, 0, 0, 1), (std::vector<std::string>{Entry(0, "pinned")}));
  // The spilled entry gone, reads skip RocksDB again.
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(0), Key(0), UserKey(0)).ok());
  EXPECT_FALSE(o.buffer->may_be_on_disk());
}

TEST(BufferedMapStateTest, BeyondTheMemoryLimitEntriesSpillAndReadsSeeBoth) {
  TestingStateDir dir("buffered-map-spill");
  Opened o = Open(dir.path(), false, /*memory_limit=*/1000);
  for (int t = 0; t < 40; ++t) ASSERT_TRUE(o.buffer->Put(KeyGroup(7), Key(7), UserKey(t), "x").ok());
  EXPECT_TRUE(o.buffer->may_be_on_disk());
  EXPECT_LT(o.buffer->memory_entries(), 40u);
  const int64_t on_disk = EntriesOnDisk(*o.backend, o.disk->id());
  EXPECT_EQ(on_disk + static_cast<int64_t>(o.buffer->memory_entries()), 40);
  std::vector<std::string> want;
  for (int t = 5; t < 35; ++t) want.push_back(Entry(t, "x"));
  EXPECT_EQ(Range(*o.buffer, 7, 5, 35), want);
  // Removing a spilled entry and one in memory.
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(7), Key(7), UserKey(0)).ok());
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(7), Key(7), UserKey(39)).ok());
  EXPECT_EQ(Range(*o.buffer, 7, 0, 40).size(), 38u);
  EXPECT_EQ(Range(*o.buffer, 7, 0, 1).size(), 0u);
  EXPECT_EQ(Range(*o.buffer, 7, 39, 40).size(), 0u);
  // Once every spilled entry is removed, reads skip RocksDB again.
  for (int t = 1; t < 39; ++t) ASSERT_TRUE(o.buffer->Remove(KeyGroup(7), Key(7), UserKey(t)).ok());
  EXPECT_FALSE(o.buffer->may_be_on_disk());
  EXPECT_EQ(o.buffer->memory_entries(), 0u);
}

TEST(BufferedMapStateTest, ASnapshotKeepsTheEntriesInMemoryAndARestoreFindsThemOnDisk) {
  TestingStateDir root("buffered-map-snapshot");
  std::shared_ptr<CheckpointStorage> shared = OpenStorage(root);
  ASSERT_NE(shared, nullptr);
  IncrementalSnapshotter snap(shared, "job-op-0-a");
  proto::KeyedStateHandle handle;
  {
    // 64 KiB: chunks of 4 KiB, so that the entries below span several.
    Opened o = Open(root.path() + "/db", false, size_t{64} << 10);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(o.buffer->Put(KeyGroup(i), Key(i), UserKey(i), "kept").ok());
    ASSERT_TRUE(o.buffer->Remove(KeyGroup(3), Key(3), UserKey(3)).ok());
    ASSERT_TRUE(o.buffer->Put(KeyGroup(7), Key(7), UserKey(7), "replaced").ok());
    // Every third one removed: runs of live records between dead ones.
    for (int t = 0; t < 200; ++t) {
      ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), std::string(100, 'a' + t % 26)).ok());
    }
    for (int t = 0; t < 200; t += 3) ASSERT_TRUE(o.buffer->Remove(KeyGroup(60), Key(60), UserKey(t)).ok());
    ASSERT_FALSE(o.buffer->may_be_on_disk());
    auto local = TakeLocalSnapshot(*o.backend, 1, root.path() + "/local-1", kAll);
    ASSERT_TRUE(local.ok()) << local.status();
    auto uploaded = snap.Upload(*local, "chk-1/op-0");
    ASSERT_TRUE(uploaded.ok()) << uploaded.status();
    handle = *uploaded;
    // After the snapshot: not in it.
    ASSERT_TRUE(o.buffer->Put(KeyGroup(50), Key(50), UserKey(50), "later").ok());
    EXPECT_FALSE(o.buffer->may_be_on_disk()) << "a snapshot does not spill";
  }
  ASSERT_TRUE(RestoreKeyedState(*shared, handle, kAll, root.path() + "/restored").ok());
  Opened r = Open(root.path() + "/restored", true, BufferedMapState::kDefaultMemoryLimit);
  EXPECT_TRUE(r.buffer->may_be_on_disk());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Range(*r.buffer, i, 0, 100), i == 3   ? std::vector<std::string>{}
                                           : i == 7 ? std::vector<std::string>{Entry(i, "replaced")}
                                                    : std::vector<std::string>{Entry(i, "kept")})
        << i;
  }
  EXPECT_TRUE(Range(*r.buffer, 50, 0, 100).empty());
  std::vector<std::string> want60;
  for (int t = 0; t < 200; ++t) {
    if (t % 3 != 0) want60.push_back(Entry(t, std::string(100, 'a' + t % 26)));
  }
  EXPECT_EQ(Range(*r.buffer, 60, 0, 200), want60);
  // A restored entry is removed from disk.
  ASSERT_TRUE(r.buffer->Remove(KeyGroup(5), Key(5), UserKey(5)).ok());
  EXPECT_TRUE(Range(*r.buffer, 5, 0, 100).empty());
  for (int i = 0; i < 20; ++i) {
    if (i == 3 || i == 5) continue;
    ASSERT_TRUE(r.buffer->Remove(KeyGroup(i), Key(i), UserKey(i)).ok());
  }
  for (int t = 1; t < 200; ++t) {
    if (t % 3 == 0) continue;
    ASSERT_TRUE(r.buffer->Remove(KeyGroup(60), Key(60), UserKey(t)).ok());
  }
  EXPECT_FALSE(r.buffer->may_be_on_disk()) << "every restored entry is gone";
}

// A snapshot's synchronous part only takes references to the chunks; the
// copy runs later (in Upload). Entries removed or replaced meanwhile are
// still in that snapshot, and not in the next one, taken before the first
// was copied (overlapping snapshots); entries put after it are not in it.
TEST(BufferedMapStateTest, ASnapshotCopiedLaterHoldsWhatWasLiveWhenItWasTaken) {
  TestingStateDir root("buffered-map-later");
  std::shared_ptr<CheckpointStorage> shared = OpenStorage(root);
  ASSERT_NE(shared, nullptr);
  IncrementalSnapshotter snap(shared, "job-op-0-a");
  // The entries of key 60 in snapshot `handle`, restored.
  auto restored = [&](const proto::KeyedStateHandle& handle, const std::string& name) {
    const std::string dir = root.path() + "/" + name;
    EXPECT_TRUE(RestoreKeyedState(*shared, handle, kAll, dir).ok());
    Opened r = Open(dir, true, BufferedMapState::kDefaultMemoryLimit);
    return Range(*r.buffer, 60, 0, 1000);
  };
  auto upload = [&](LocalSnapshot& local, const std::string& dir) {
    auto handle = snap.Upload(local, dir);
    EXPECT_TRUE(handle.ok()) << handle.status();
    return handle.ok() ? *handle : proto::KeyedStateHandle();
  };
  auto value = [](int t, char c) { return std::string(100, c) + std::to_string(t); };

  // 256 KiB: chunks of 16 KiB; the entries span several and never spill
  // by themselves (a key on disk must not be put again).
  Opened o = Open(root.path() + "/db", false, size_t{256} << 10);
  for (int t = 0; t < 300; ++t) ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), value(t, 'a')).ok());
  auto first = TakeLocalSnapshot(*o.backend, 1, root.path() + "/local-1", kAll);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->cache_delta.records(), 0u) << "the entries are copied later";
  EXPECT_EQ(first->cache_delta_later.size(), 1u);
  // After the first snapshot: every third removed, every fifth replaced,
  // 20 new ones.
  for (int t = 0; t < 300; t += 3) ASSERT_TRUE(o.buffer->Remove(KeyGroup(60), Key(60), UserKey(t)).ok());
  for (int t = 1; t < 300; t += 5) {
    if (t % 3 != 0) {
      ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), value(t, 'b')).ok());
    }
  }
  for (int t = 300; t < 320; ++t) ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), value(t, 'c')).ok());
  ASSERT_FALSE(o.buffer->may_be_on_disk());
  auto second = TakeLocalSnapshot(*o.backend, 2, root.path() + "/local-2", kAll);
  ASSERT_TRUE(second.ok()) << second.status();

  std::vector<std::string> want1, want2;
  for (int t = 0; t < 300; ++t) want1.push_back(Entry(t, value(t, 'a')));
  for (int t = 0; t < 320; ++t) {
    if (t < 300 && t % 3 == 0) continue;
    want2.push_back(Entry(t, value(t, t >= 300 ? 'c' : t % 5 == 1 ? 'b' : 'a')));
  }
  EXPECT_EQ(restored(upload(*first, "chk-1/op-0"), "restored-1"), want1);
  EXPECT_EQ(restored(upload(*second, "chk-2/op-0"), "restored-2"), want2);

  // Both copies done: the removals listed meanwhile are marked now. A
  // spill while a snapshot waits for its copy leaves that snapshot whole.
  for (int t = 1; t < 300; t += 3) ASSERT_TRUE(o.buffer->Remove(KeyGroup(60), Key(60), UserKey(t)).ok());
  auto third = TakeLocalSnapshot(*o.backend, 3, root.path() + "/local-3", kAll);
  ASSERT_TRUE(third.ok()) << third.status();
  ASSERT_TRUE(o.buffer->Spill().ok());
  ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(999), "after the spill").ok());
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(60), Key(60), UserKey(999)).ok());
  std::vector<std::string> want3;
  for (int t = 0; t < 320; ++t) {
    if (t < 300 && t % 3 != 2) continue;
    want3.push_back(Entry(t, value(t, t >= 300 ? 'c' : t % 5 == 1 ? 'b' : 'a')));
  }
  EXPECT_EQ(restored(upload(*third, "chk-3/op-0"), "restored-3"), want3);
  EXPECT_EQ(Range(*o.buffer, 60, 0, 1000), want3) << "the live state, on disk after the spill";
}

// Over the limit, each Put spills a few of the oldest entries (not all of
// memory at once: 32 MiB held q3's join 100+ ms), so memory stays near the
// limit; a snapshot taken before, copied after, still holds what was live
// when it was taken.
TEST(BufferedMapStateTest, OverTheLimitEachPutSpillsAFewOfTheOldest) {
  TestingStateDir root("buffered-map-spill-few");
  std::shared_ptr<CheckpointStorage> shared = OpenStorage(root);
  ASSERT_NE(shared, nullptr);
  IncrementalSnapshotter snap(shared, "job-op-0-a");
  auto value = [](int t) { return std::string(100, 'a' + t % 26) + std::to_string(t); };
  // 256 KiB: chunks of 16 KiB, about 120 entries each.
  constexpr size_t kLimit = size_t{256} << 10;
  Opened o = Open(root.path() + "/db", false, kLimit);
  std::vector<std::string> before, all;
  for (int t = 0; t < 1000; ++t) {
    ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), value(t)).ok());
    before.push_back(Entry(t, value(t)));
  }
  ASSERT_FALSE(o.buffer->may_be_on_disk()) << "under the limit";
  all = before;
  auto local = TakeLocalSnapshot(*o.backend, 1, root.path() + "/local-1", kAll);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_EQ(local->cache_delta_later.size(), 1u) << "copied later";
  uint64_t most_per_put = 0;
  size_t most_bytes = 0;
  for (int t = 1000; t < 5000; ++t) {
    const uint64_t spilled = o.buffer->spilled();
    ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), value(t)).ok());
    all.push_back(Entry(t, value(t)));
    most_per_put = std::max(most_per_put, o.buffer->spilled() - spilled);
    most_bytes = std::max(most_bytes, o.buffer->memory_bytes());
  }
  EXPECT_GT(o.buffer->spilled(), 2000u) << "4,000 entries past the limit";
  EXPECT_LE(most_per_put, 8u) << "a Put spilled more than a few entries";
  // The limit, the chunk being filled, and the slots of the front chunk
  // being spilled.
  EXPECT_LE(most_bytes, kLimit + (size_t{32} << 10)) << "memory grew past the limit";
  EXPECT_EQ(EntriesOnDisk(*o.backend, o.disk->id()), static_cast<int64_t>(o.buffer->spilled()));
  EXPECT_EQ(o.buffer->spilled() + o.buffer->memory_entries(), 5000u);
  EXPECT_EQ(Range(*o.buffer, 60, 0, 5000), all) << "memory and disk merged, in order";
  // The snapshot's copy runs now, after the spills freed its chunks here.
  auto handle = snap.Upload(*local, "chk-1/op-0");
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(RestoreKeyedState(*shared, *handle, kAll, root.path() + "/restored").ok());
  Opened r = Open(root.path() + "/restored", true, BufferedMapState::kDefaultMemoryLimit);
  EXPECT_EQ(Range(*r.buffer, 60, 0, 5000), before);
}

// An entry still in memory two snapshots after it came settles into RocksDB
// (a few per Put): the snapshot after that carries it in RocksDB's files,
// not in its delta, and a restore finds every entry either way.
TEST(BufferedMapStateTest, AnEntryOlderThanTwoSnapshotsSettlesIntoRocksDb) {
  TestingStateDir root("buffered-map-settle");
  std::shared_ptr<CheckpointStorage> shared = OpenStorage(root);
  ASSERT_NE(shared, nullptr);
  IncrementalSnapshotter snap(shared, "job-op-0-a");
  auto value = [](int t) { return std::string(200, 'a' + t % 26) + std::to_string(t); };
  std::vector<std::string> want;
  // 1 MiB: chunks of 64 KiB; 500 entries fill about two.
  Opened o = Open(root.path() + "/db", false, size_t{1} << 20);
  auto put = [&](int from, int to) {
    for (int t = from; t < to; ++t) {
      ASSERT_TRUE(o.buffer->Put(KeyGroup(60), Key(60), UserKey(t), value(t)).ok());
      want.push_back(Entry(t, value(t)));
    }
  };
  auto snapshot = [&](int id) {
    auto local = TakeLocalSnapshot(*o.backend, id, root.path() + "/local-" + std::to_string(id), kAll);
    EXPECT_TRUE(local.ok()) << local.status();
    // The copies Upload would run, run first to count what they add.
    for (auto& fn : local->cache_delta_later) fn(&local->cache_delta);
    local->cache_delta_later.clear();
    const size_t records = local->cache_delta.records();
    auto handle = snap.Upload(*local, "chk-" + std::to_string(id) + "/op-0");
    EXPECT_TRUE(handle.ok()) << handle.status();
    return std::make_pair(records, handle.ok() ? *handle : proto::KeyedStateHandle());
  };
  put(0, 500);
  EXPECT_EQ(snapshot(1).first, 500u);
  put(500, 1000);
  EXPECT_EQ(o.buffer->settled(), 0u) << "in one snapshot only";
  EXPECT_FALSE(o.buffer->may_be_on_disk());
  EXPECT_EQ(snapshot(2).first, 1000u);
  put(1000, 1500);  // every fourth Put settles up to 5 of the first 500
  // The first 64 KiB chunk's (about 300): the next one took entries after
  // the first snapshot too.
  EXPECT_GE(o.buffer->settled(), 250u);
  EXPECT_LE(o.buffer->settled(), 500u) << "only what was in the first snapshot";
  EXPECT_TRUE(o.buffer->may_be_on_disk());
  EXPECT_EQ(EntriesOnDisk(*o.backend, o.disk->id()), static_cast<int64_t>(o.buffer->settled()));
  EXPECT_TRUE(o.buffer->MayBeOnDisk(KeyGroup(60), Key(60))) << "settled entries' key is in the filter";
  int others = 0;
  for (int i = 100; i < 200; ++i) others += o.buffer->MayBeOnDisk(KeyGroup(i), Key(i)) ? 1 : 0;
  EXPECT_LT(others, 5) << "keys never written";
  // The round is done: the column family was flushed in the background, so
  // the next snapshot's RocksDB checkpoint has no memtable to flush.
  EXPECT_FALSE(o.buffer->settled_unflushed());
  rocksdb::ColumnFamilyHandle* cf = o.backend->column_family(o.disk->id());
  ASSERT_NE(cf, nullptr);
  auto memtable_entries = [&] {
    uint64_t active = 0, immutable = 0;
    o.backend->db()->GetIntProperty(cf, "rocksdb.num-entries-active-mem-table", &active);
    o.backend->db()->GetIntProperty(cf, "rocksdb.num-entries-imm-mem-tables", &immutable);
    return active + immutable;
  };
  WaitFor([&] { return memtable_entries() == 0; }, std::chrono::seconds(10), std::chrono::milliseconds(5));
  EXPECT_EQ(memtable_entries(), 0u) << "settled entries still in the memtable after 10 s";
  EXPECT_EQ(Range(*o.buffer, 60, 0, 2000), want) << "memory and disk merged, in order";
  const uint64_t settled = o.buffer->settled();
  auto [records, handle] = snapshot(3);
  EXPECT_EQ(records, 1500u - settled) << "settled entries are not in the delta";
  ASSERT_TRUE(RestoreKeyedState(*shared, handle, kAll, root.path() + "/restored").ok());
  Opened r = Open(root.path() + "/restored", true, BufferedMapState::kDefaultMemoryLimit);
  EXPECT_EQ(Range(*r.buffer, 60, 0, 2000), want);
  // A settled entry is removed from disk.
  ASSERT_TRUE(o.buffer->Remove(KeyGroup(60), Key(60), UserKey(0)).ok());
  EXPECT_EQ(Range(*o.buffer, 60, 0, 1), std::vector<std::string>{});
}

// Reads of a key none of whose entries reached RocksDB skip it, also once
// other keys' entries did: a filter of the prefixes written there (a
// restore's scan fills it again). q3's join keeps every record and probes
// mostly new sellers. Past its share of the limit the filter is off and
// every read looks on disk.
TEST(BufferedMapStateTest, ReadsLookInRocksDbOnlyForKeysWithEntriesThere) {
  TestingStateDir root("buffered-map-filter");
  std::shared_ptr<CheckpointStorage> shared = OpenStorage(root);
  ASSERT_NE(shared, nullptr);
  IncrementalSnapshotter snap(shared, "job-op-0-a");
  const std::vector<std::string> on_disk{Entry(1, "on disk")}, in_memory{Entry(1, "in memory")};
  proto::KeyedStateHandle handle;
  {
    Opened o = Open(root.path() + "/db", false, size_t{1} << 20);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(o.buffer->Put(KeyGroup(i), Key(i), UserKey(1), "on disk").ok());
    ASSERT_TRUE(o.buffer->Spill().ok());
    for (int i = 1000; i < 2000; ++i) ASSERT_TRUE(o.buffer->Put(KeyGroup(i), Key(i), UserKey(1), "in memory").ok());
    ASSERT_TRUE(o.buffer->may_be_on_disk());
    EXPECT_GT(o.buffer->disk_filter_bytes(), 0u);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(o.buffer->MayBeOnDisk(KeyGroup(i), Key(i))) << i;
    uint64_t reads = o.buffer->disk_reads();
    for (int i = 1000; i < 2000; ++i) EXPECT_EQ(Range(*o.buffer, i, 0, 10), in_memory) << i;
    const uint64_t false_positives = o.buffer->disk_reads() - reads;
    EXPECT_LT(false_positives, 50u) << "of 1,000 keys only in memory (about 1% expected)";
    reads = o.buffer->disk_reads();
    for (int i = 0; i < 100; ++i) EXPECT_EQ(Range(*o.buffer, i, 0, 10), on_disk) << i;
    EXPECT_EQ(o.buffer->disk_reads() - reads, 100u);
    // Removing an entry of a key only in memory, and one on disk.
    ASSERT_TRUE(o.buffer->Remove(KeyGroup(1000), Key(1000), UserKey(1)).ok());
    ASSERT_TRUE(o.buffer->Remove(KeyGroup(0), Key(0), UserKey(1)).ok());
    EXPECT_TRUE(Range(*o.buffer, 0, 0, 10).empty());
    EXPECT_EQ(EntriesOnDisk(*o.backend, o.disk->id()), 99);
    // Removes of keys never written skip RocksDB, and leave the count of
    // entries on disk whole: it reaches 0 only with the last of them.
    for (int i = 3000; i < 3100; ++i) ASSERT_TRUE(o.buffer->Remove(KeyGroup(i), Key(i), UserKey(1)).ok());
    EXPECT_EQ(EntriesOnDisk(*o.backend, o.disk->id()), 99);
    auto local = TakeLocalSnapshot(*o.backend, 1, root.path() + "/local-1", kAll);
    ASSERT_TRUE(local.ok()) << local.status();
    auto uploaded = snap.Upload(*local, "chk-1/op-0");
    ASSERT_TRUE(uploaded.ok()) << uploaded.status();
    handle = *uploaded;
    for (int i = 1; i < 99; ++i) ASSERT_TRUE(o.buffer->Remove(KeyGroup(i), Key(i), UserKey(1)).ok());
    EXPECT_TRUE(o.buffer->may_be_on_disk()) << "one entry left on disk";
    ASSERT_TRUE(o.buffer->Remove(KeyGroup(99), Key(99), UserKey(1)).ok());
    EXPECT_FALSE(o.buffer->may_be_on_disk()) << "the count was exact";
    // Confirmed empty: a new filter, holding only what reaches the disk next.
    EXPECT_EQ(o.buffer->disk_filter_bytes(), 0u);
    ASSERT_TRUE(o.buffer->Put(KeyGroup(4000), Key(4000), UserKey(1), "on disk").ok());
    ASSERT_TRUE(o.buffer->Spill().ok());
    EXPECT_TRUE(o.buffer->MayBeOnDisk(KeyGroup(4000), Key(4000)));
    int old_keys = 0;
    for (int i = 0; i < 100; ++i) old_keys += o.buffer->MayBeOnDisk(KeyGroup(i), Key(i)) ? 1 : 0;
    EXPECT_LT(old_keys, 5) << "the keys once on disk are out of the new filter";
  }
  // Restored: every entry is on disk, and its key in the filter.
  ASSERT_TRUE(RestoreKeyedState(*shared, handle, kAll, root.path() + "/restored").ok());
  Opened r = Open(root.path() + "/restored", true, BufferedMapState::kDefaultMemoryLimit);
  for (int i = 1; i < 100; ++i) EXPECT_TRUE(r.buffer->MayBeOnDisk(KeyGroup(i), Key(i))) << i;
  for (int i = 1001; i < 2000; ++i) EXPECT_TRUE(r.buffer->MayBeOnDisk(KeyGroup(i), Key(i))) << i;
  EXPECT_EQ(Range(*r.buffer, 1500, 0, 10), in_memory);
  int never_written = 0;
  for (int i = 5000; i < 6000; ++i) never_written += r.buffer->MayBeOnDisk(KeyGroup(i), Key(i)) ? 1 : 0;
  EXPECT_LT(never_written, 50) << "of 1,000 keys never written";
  // A 4 KiB limit leaves the filter 1 KiB: past it, every key may be on disk.
  TestingStateDir small("buffered-map-filter-off");
  Opened o = Open(small.path(), false, size_t{4} << 10);
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(o.buffer->Put(KeyGroup(i), Key(i), UserKey(1), "spilled").ok());
  EXPECT_GT(o.buffer->spilled(), 1000u);
  EXPECT_EQ(o.buffer->disk_filter_bytes(), 0u);
  EXPECT_TRUE(o.buffer->MayBeOnDisk(KeyGroup(9999), Key(9999)));
  for (int i = 0; i < 2000; i += 7) {
    EXPECT_EQ(Range(*o.buffer, i, 0, 10), std::vector<std::string>{Entry(1, "spilled")}) << i;
  }
}

// Puts in and out of order, replacements, removes of the oldest, the
// newest and ones between, and range reads, checked against a std::map
// after every step; with a small limit, so that spilled entries are read
// and removed too. Odd keys are long, and their user keys too (both past
// what lives inline).
TEST(BufferedMapStateTest, ReadsAgreeWithAnOrderedMapWhateverTheOrderOfPutsAndRemoves) {
  const auto key = [](int k) { return k % 2 == 0 ? Key(k) : Key(k) + std::string(60, 'x'); };
  const auto user_key = [](int k, int t) { return k % 2 == 0 ? UserKey(t) : UserKey(t) + "-and-a-long-suffix"; };
  for (const size_t limit : {size_t{64} << 20, size_t{16} << 10}) {
    TestingStateDir dir("bms-model");
    Opened o = Open(dir.path(), false, limit);
    const size_t empty_bytes = o.buffer->memory_bytes();
    Model model;
    const auto range = [&](int k, const std::string& from, const std::string& to) {
      return ReadRange(*o.buffer, key(k), from, to);
    };
    const auto want = [&](int k, const std::string& from, const std::string& to) {
      return ModelRange(model, k, from, to);
    };
    std::mt19937 rng(7);
    for (int step = 0; step < 20000; ++step) {
      const int k = static_cast<int>(rng() % 8);
      const int kg = KeyGroupForHash(HashKeyBytes(key(k)), 128);
      // Mostly increasing times, some from the past.
      const int t = 1000 + step / 4 - static_cast<int>(rng() % 3 == 0 ? rng() % 50 : 0);
      const int op = static_cast<int>(rng() % 10);
      if (op < 6) {
        const std::string v = "v" + std::to_string(step);
        // A key that may be on disk must not be put again (the contract).
        if (model.count({k, user_key(k, t)}) != 0 && limit < (size_t{1} << 20)) continue;
        ASSERT_TRUE(o.buffer->Put(kg, key(k), user_key(k, t), v).ok());
        model[{k, user_key(k, t)}] = v;
      } else if (op == 7) {
        // Every entry of the key below a time (an interval join's cleanup).
        const std::string to = user_key(k, t - 20);
        ASSERT_TRUE(o.buffer->RemoveBelow(kg, key(k), to).ok());
        model.erase(model.lower_bound({k, ""}), model.lower_bound({k, to}));
      } else {
        // The oldest of the key, its newest, or any.
        auto lo = model.lower_bound({k, ""});
        auto hi = model.lower_bound({k + 1, ""});
        if (lo == hi) continue;
        auto victim = lo;
        if (op == 8) victim = std::prev(hi);
        if (op == 9) std::advance(victim, static_cast<std::ptrdiff_t>(rng() % std::distance(lo, hi)));
        ASSERT_TRUE(o.buffer->Remove(kg, key(k), victim->first.second).ok());
        model.erase(victim);
      }
      if (step % 97 == 0) {
        ASSERT_EQ(range(k, user_key(k, t - 40), user_key(k, t + 1)), want(k, user_key(k, t - 40), user_key(k, t + 1)))
            << "step " << step << " limit " << limit;
      }
    }
    for (int k = 0; k < 8; ++k) ASSERT_EQ(range(k, "", ""), want(k, "", "")) << "limit " << limit;
    if (limit > (size_t{1} << 20)) {
      EXPECT_EQ(o.buffer->memory_entries(), model.size());
    } else {
      EXPECT_GT(o.buffer->spilled(), 0u);
    }
    // Removing everything (half the keys an entry at a time, half at once)
    // leaves no entry, and no memory counted but the chunk being filled.
    for (const auto& [k_uk, v] : model) {
      const int k = k_uk.first;
      if (k >= 4) continue;
      ASSERT_TRUE(o.buffer->Remove(KeyGroupForHash(HashKeyBytes(key(k)), 128), key(k), k_uk.second).ok());
    }
    for (int k = 4; k < 8; ++k) {
      ASSERT_TRUE(o.buffer->RemoveBelow(KeyGroupForHash(HashKeyBytes(key(k)), 128), key(k), "").ok());
    }
    for (int k = 0; k < 8; ++k) EXPECT_TRUE(range(k, "", "").empty()) << k;
    EXPECT_EQ(o.buffer->memory_entries(), 0u);
    EXPECT_LE(o.buffer->memory_bytes(), empty_bytes + (size_t{256} << 10));
  }
}

// An interval join's user keys: 8 bytes of time, 8 of sequence number, both
// big-endian (bytes over 0x7f included: the order is unsigned).
std::string JoinKey(uint64_t time, uint64_t seq) {
  std::string k;
  for (uint64_t v : {time, seq}) {
    for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  return k;
}

// A join subtask reads its inputs' subtasks in turns of a buffer each, each
// in time order but apart in time: with as many lanes as inputs, every Put
// appends; with fewer, some go into the middle. Either way reads (whole,
// ranges, stopped early), removes of the oldest and of any entry, and
// replacements agree with an ordered map; with a small limit, with the
// spilled entries merged in too.
TEST(BufferedMapStateTest, InterleavedOrderedInputsAppendToLanesAndReadInOrder) {
  struct Case {
    int inputs;
    int lanes;
    bool mid_run_puts;
    size_t limit;
  };
  constexpr size_t kBig = size_t{64} << 20, kSmall = size_t{16} << 10;
  for (const Case c : {Case{2, 2, false, kBig}, Case{2, 1, true, kBig}, Case{3, 2, true, kBig}, Case{1, 2, false, kBig},
                       Case{2, 2, false, kSmall}}) {
    SCOPED_TRACE(testing::Message() << c.inputs << " inputs, " << c.lanes << " lanes, limit " << c.limit);
    TestingStateDir dir("bms-lanes");
    auto backend = KeyedStateBackend::Open({.path = dir.path()});
    ASSERT_TRUE(backend.ok()) << backend.status();
    auto disk = (*backend)->GetMapState(MapStateDescriptor{.name = "buffer"});
    ASSERT_TRUE(disk.ok()) << disk.status();
    auto created = BufferedMapState::Create(**backend, *disk, false, c.limit, c.lanes);
    ASSERT_TRUE(created.ok()) << created.status();
    BufferedMapState& buffer = **created;
    Model model;
    const auto read = [&](int k, const std::string& from, const std::string& to) {
      return ReadRange(buffer, Key(k), from, to);
    };
    const auto want = [&](int k, const std::string& from, const std::string& to) {
      return ModelRange(model, k, from, to);
    };
    // Times from just below 2^63 (0x7f.. bytes) to past it (0x80..).
    const uint64_t base = (uint64_t{1} << 63) - 3000;
    std::vector<uint64_t> next(static_cast<size_t>(c.inputs));
    for (int in = 0; in < c.inputs; ++in) next[static_cast<size_t>(in)] = base - static_cast<uint64_t>(in) * 45;
    uint64_t seq = 0;
    std::mt19937 rng(11);
    for (int turn = 0; turn < 600; ++turn) {
      const int in = turn % c.inputs;
      for (int r = 0; r < 7; ++r) {
        const uint64_t t = next[static_cast<size_t>(in)] += 3;
        const int k = static_cast<int>((t / 3) % 4);  // inputs meet at equal times: the sequence orders them
        const std::string uk = JoinKey(t, seq++);
        const std::string v = "v" + std::to_string(seq);
        ASSERT_TRUE(buffer.Put(KeyGroup(k), Key(k), uk, v, /*new_key=*/true).ok());
        model[{k, uk}] = v;
      }
      if (turn % 10 == 9) {
        // The join's cleanup: every key's entries before a time, oldest first.
        const std::string cutoff = JoinKey(*std::min_element(next.begin(), next.end()) - 300, 0);
        for (int k = 0; k < 4; ++k) {
          for (const std::string& e : read(k, "", cutoff)) {
            const std::string uk = e.substr(0, 16);
            ASSERT_TRUE(buffer.Remove(KeyGroup(k), Key(k), uk).ok());
            model.erase({k, uk});
          }
        }
      }
      if (turn % 13 == 5) {
        // Any entry of a key: removed, or (all in memory) replaced.
        const int k = static_cast<int>(rng() % 4);
        auto lo = model.lower_bound({k, ""});
        const auto n = std::distance(lo, model.lower_bound({k + 1, ""}));
        if (n > 0) {
          std::advance(lo, static_cast<std::ptrdiff_t>(rng() % static_cast<uint64_t>(n)));
          const std::string uk = lo->first.second;
          if (c.limit == kBig && rng() % 2 == 0) {
            ASSERT_TRUE(buffer.Put(KeyGroup(k), Key(k), uk, "replaced").ok());
            lo->second = "replaced";
          } else {
            ASSERT_TRUE(buffer.Remove(KeyGroup(k), Key(k), uk).ok());
            model.erase(lo);
          }
        }
      }
      if (turn % 37 == 0) {
        const std::string from = JoinKey(next[0] - 200, 0), to = JoinKey(next[0] - 50, 0);
        for (int k = 0; k < 4; ++k) ASSERT_EQ(read(k, from, to), want(k, from, to)) << "turn " << turn;
        // Stopped after three.
        std::vector<std::string> first;
        ASSERT_TRUE(buffer
                        .ForEachInRange(KeyGroup(1), Key(1), "", "",
                                        [&](std::string_view uk, std::string_view v) {
                                          first.push_back(std::string(uk) + "=" + std::string(v));
                                          return first.size() < 3;
                                        })
                        .ok());
        std::vector<std::string> all = want(1, "", "");
        all.resize(std::min<size_t>(all.size(), 3));
        ASSERT_EQ(first, all) << "turn " << turn;
      }
    }
    for (int k = 0; k < 4; ++k) ASSERT_EQ(read(k, "", ""), want(k, "", "")) << k;
    EXPECT_GT(model.size(), 100u);
    EXPECT_EQ(buffer.inserts() > 0, c.mid_run_puts) << buffer.inserts();
    if (c.limit == kBig) {
      EXPECT_EQ(buffer.memory_entries(), model.size());
      EXPECT_EQ(EntriesOnDisk(**backend, (*disk)->id()), 0);
    } else {
      EXPECT_GT(buffer.spilled(), 0u);
      EXPECT_GT(EntriesOnDisk(**backend, (*disk)->id()), 0);
    }
  }
}

TEST(BufferedMapStateTest, RefusesAMapStateWithTtl) {
  TestingStateDir dir("buffered-map-ttl");
  auto backend = KeyedStateBackend::Open({.path = dir.path()});
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto disk = (*backend)->GetMapState(MapStateDescriptor{.name = "timed", .ttl_ms = 1000});
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_FALSE(BufferedMapState::Create(**backend, *disk, false).ok());
  auto untimed = (*backend)->GetMapState(MapStateDescriptor{.name = "untimed"});
  ASSERT_TRUE(untimed.ok()) << untimed.status();
  for (const int lanes : {0, BufferedMapState::kLanes + 1}) {
    auto refused = BufferedMapState::Create(**backend, *untimed, false, BufferedMapState::kDefaultMemoryLimit, lanes);
    ASSERT_FALSE(refused.ok()) << lanes;
    EXPECT_NE(refused.status().message().find("lanes must be 1 to 2"), std::string::npos) << refused.status();
  }
}

}  // namespace
}  // namespace vstream
