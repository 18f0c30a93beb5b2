#include "state/state_snapshot.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/wait_for.h"
#include "gtest/gtest.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"
#include "state/state_clock.h"
#include "state/state_log.h"
#include "state/tests/testing_state.h"
#include "state/timer_queue.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  auto dir = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir.string();
}

std::string Key(int i) { return "patient-" + std::to_string(i); }
int KeyGroup(int i) { return KeyGroupForHash(HashKeyBytes(Key(i)), 128); }

// Writes `n` keys starting at `first` with values "<tag>-i", through the
// write-back cache (so a snapshot must flush it to see them).
void WriteKeys(KeyedStateBackend& backend, StateId state, int first, int n, const std::string& tag) {
  for (int i = first; i < first + n; ++i) {
    ASSERT_TRUE(backend.Put(state, KeyGroup(i), Key(i), tag + "-" + std::to_string(i)).ok());
  }
}

class StateSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = TempDir("state-snapshot");
    fs::create_directories(root_);
    auto storage = CheckpointStorage::Open("file://" + root_ + "/storage");
    ASSERT_TRUE(storage.ok()) << storage.status();
    storage_ = std::move(*storage);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<KeyedStateBackend> OpenBackend(const std::string& name, bool wipe, StateId* state) {
    auto backend = KeyedStateBackend::Open({.path = root_ + "/" + name, .wipe_on_open = wipe});
    EXPECT_TRUE(backend.ok()) << backend.status();
    auto id = (*backend)->RegisterState("values", /*write_back_cache=*/true);
    EXPECT_TRUE(id.ok()) << id.status();
    *state = *id;
    return std::move(*backend);
  }

  // through_rocksdb: flush the write-back cache into RocksDB first (so the
  // state is in SST files); else the snapshot keeps its dirty entries in
  // CACHE-DELTA, as tasks do.
  absl::StatusOr<proto::KeyedStateHandle> Snapshot(KeyedStateBackend& backend, IncrementalSnapshotter& snap,
                                                   int64_t id, bool through_rocksdb = true) {
    if (through_rocksdb) {
      if (absl::Status s = backend.Flush(); !s.ok()) return s;
    }
    auto local = TakeLocalSnapshot(backend, id, root_ + "/local-" + std::to_string(id), kAll);
    if (!local.ok()) return local.status();
    return snap.Upload(*local, "chk-" + std::to_string(id) + "/op-0");
  }

  static constexpr KeyGroupRange kAll{0, 127};
  std::string root_;
  std::shared_ptr<CheckpointStorage> storage_;
};

TEST_F(StateSnapshotTest, RestoreSeesExactlyTheStateAtTheSnapshot) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  WriteKeys(*backend, state, 0, 5000, "v1");
  ASSERT_TRUE(backend->Flush().ok());
  // In RocksDB, then changed in the cache only: the snapshot's cache delta
  // must overwrite and delete them.
  WriteKeys(*backend, state, 0, 10, "v1b");
  for (int i = 10; i < 20; ++i) ASSERT_TRUE(backend->Delete(state, KeyGroup(i), Key(i)).ok());
  auto handle = Snapshot(*backend, snap, 1, /*through_rocksdb=*/false);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_FALSE(fs::exists(root_ + "/local-1")) << "the local snapshot is removed after upload";
  bool has_delta = false;
  for (const auto& f : handle->files()) has_delta = has_delta || f.name() == CacheDelta::kFileName;
  EXPECT_TRUE(has_delta) << "the dirty cache entries travel as CACHE-DELTA";
  // Changes after the snapshot must not appear in the restored state.
  WriteKeys(*backend, state, 0, 100, "v2");
  WriteKeys(*backend, state, 5000, 100, "v2");
  ASSERT_TRUE(backend->Flush().ok());

  ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  std::string v;
  for (int i = 0; i < 5000; ++i) {
    if (i >= 10 && i < 20) {
      EXPECT_TRUE(absl::IsNotFound(restored->Get(restored_state, KeyGroup(i), Key(i), &v))) << i;
      continue;
    }
    ASSERT_TRUE(restored->Get(restored_state, KeyGroup(i), Key(i), &v).ok()) << i;
    ASSERT_EQ(v, (i < 10 ? "v1b-" : "v1-") + std::to_string(i));
  }
  EXPECT_FALSE(fs::exists(root_ + "/restored/" + CacheDelta::kFileName)) << "applied on open, then removed";
  EXPECT_TRUE(absl::IsNotFound(restored->Get(restored_state, KeyGroup(5000), Key(5000), &v)));
}

// Small private files (MANIFEST, CURRENT, OPTIONS, a small CACHE-DELTA)
// travel in the handle, not as files in storage; a large CACHE-DELTA and the
// SSTs are files. Both restore.
TEST_F(StateSnapshotTest, SmallFilesTravelInTheHandle) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  WriteKeys(*backend, state, 0, 5000, "v1");
  ASSERT_TRUE(backend->Flush().ok());
  WriteKeys(*backend, state, 0, 10, "small");  // a CACHE-DELTA of 10 entries
  auto small = Snapshot(*backend, snap, 1, /*through_rocksdb=*/false);
  ASSERT_TRUE(small.ok()) << small.status();
  std::set<std::string> inlined;
  for (const auto& f : small->files()) {
    if (f.shared()) {
      EXPECT_FALSE(IsInlineStateFile(f)) << f.name();
      EXPECT_TRUE(storage_->Exists(f.path()).ok()) << f.path();
      continue;
    }
    ASSERT_TRUE(IsInlineStateFile(f)) << f.name() << " (" << f.size() << " bytes) is a file: " << f.path();
    EXPECT_EQ(f.data().size(), f.size()) << f.name();
    inlined.insert(f.name().substr(0, f.name().find('-')));
  }
  EXPECT_EQ(inlined, (std::set<std::string>{"CACHE", "CURRENT", "MANIFEST", "OPTIONS"}));
  auto listed = storage_->List("chk-1");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty()) << "nothing private was written: " << listed->front();

  // Over kInlineStateFileBytes of dirty entries: CACHE-DELTA is a file.
  WriteKeys(*backend, state, 0, 2000, "large");
  auto large = Snapshot(*backend, snap, 2, /*through_rocksdb=*/false);
  ASSERT_TRUE(large.ok()) << large.status();
  bool delta_file = false;
  for (const auto& f : large->files()) {
    if (f.name() != CacheDelta::kFileName) continue;
    ASSERT_GT(f.size(), kInlineStateFileBytes);
    EXPECT_FALSE(IsInlineStateFile(f));
    EXPECT_TRUE(f.data().empty());
    delta_file = storage_->Exists(f.path()).ok();
  }
  EXPECT_TRUE(delta_file) << "a large CACHE-DELTA is a file in storage";

  for (const auto& [handle, tag, n, name] :
       {std::tuple{&*small, "small", 10, "restored-small"}, std::tuple{&*large, "large", 2000, "restored-large"}}) {
    ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/" + name).ok()) << name;
    StateId restored_state;
    auto restored = OpenBackend(name, false, &restored_state);
    std::string v;
    for (int i = 0; i < 5000; ++i) {
      ASSERT_TRUE(restored->Get(restored_state, KeyGroup(i), Key(i), &v).ok()) << name << " " << i;
      ASSERT_EQ(v, (i < n ? std::string(tag) + "-" : "v1-") + std::to_string(i)) << name;
    }
  }
}

// An inline file whose bytes do not match its recorded size is a corrupt
// handle: DataLoss, not a database opened from a truncated MANIFEST.
TEST_F(StateSnapshotTest, AnInlineFileOfTheWrongSizeIsDataLoss) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  WriteKeys(*backend, state, 0, 100, "v1");
  auto handle = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(handle.ok()) << handle.status();
  bool cut = false;
  for (auto& f : *handle->mutable_files()) {
    if (!IsInlineStateFile(f) || f.name().rfind("MANIFEST", 0) != 0) continue;
    f.mutable_data()->pop_back();
    cut = true;
  }
  ASSERT_TRUE(cut) << "the MANIFEST travels inline";
  absl::Status s = RestoreKeyedState(*storage_, *handle, kAll, root_ + "/restored");
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("MANIFEST"), std::string::npos) << s;
}

// The CACHE-DELTA buffer an upload has written serves the next snapshot
// (DeltaBuffers): its memory is reused, and the next snapshot restores
// exactly its own state, none of the earlier delta's.
TEST_F(StateSnapshotTest, TheNextSnapshotWritesItsCacheDeltaIntoTheLastOnesBuffer) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  WriteKeys(*backend, state, 0, 3000, "v1");  // about 50 KB of delta: a file, not inline
  auto first = Snapshot(*backend, snap, 1, /*through_rocksdb=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  std::string kept = backend->delta_buffers()->Take();
  ASSERT_GT(kept.capacity(), kInlineStateFileBytes) << "the upload gave the delta's buffer back";
  const char* memory = kept.data();
  backend->delta_buffers()->Give(std::move(kept));

  WriteKeys(*backend, state, 0, 100, "v2");
  ASSERT_TRUE(backend->Delete(state, KeyGroup(100), Key(100)).ok());
  auto second = Snapshot(*backend, snap, 2, /*through_rocksdb=*/false);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(backend->delta_buffers()->Take().data(), memory) << "the second delta was written into the first's";

  ASSERT_TRUE(RestoreKeyedState(*storage_, *second, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  std::string v;
  for (int i = 0; i < 3000; ++i) {
    if (i == 100) {
      EXPECT_TRUE(absl::IsNotFound(restored->Get(restored_state, KeyGroup(i), Key(i), &v)));
      continue;
    }
    ASSERT_TRUE(restored->Get(restored_state, KeyGroup(i), Key(i), &v).ok()) << i;
    ASSERT_EQ(v, (i < 100 ? "v2-" : "v1-") + std::to_string(i));
  }
}

// Write-back cache settling (state/write_back_cache.h): entries unchanged
// for two intervals between snapshots are written to RocksDB during the
// next one and leave the later snapshots' CACHE-DELTA; the RocksDB
// checkpoint has them.
TEST_F(StateSnapshotTest, SettledCacheEntriesAreInTheNextSnapshot) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  auto touch_hot = [&](int rounds) {
    for (int r = 0; r < rounds; ++r) WriteKeys(*backend, state, 1000, 10, "hot" + std::to_string(r));
  };
  WriteKeys(*backend, state, 0, 1000, "v1");
  ASSERT_TRUE(Snapshot(*backend, snap, 1, /*through_rocksdb=*/false).ok());
  touch_hot(200);
  ASSERT_TRUE(Snapshot(*backend, snap, 2, /*through_rocksdb=*/false).ok());
  touch_hot(200);
  EXPECT_EQ(backend->cache_stats().written_on_settle, 0u) << "quiet for one interval only";
  ASSERT_TRUE(Snapshot(*backend, snap, 3, /*through_rocksdb=*/false).ok());
  // Changed before settling starts: 6 is hot again, 5 is deleted.
  WriteKeys(*backend, state, 6, 1, "v3");
  ASSERT_TRUE(backend->Delete(state, KeyGroup(5), Key(5)).ok());
  touch_hot(200);
  EXPECT_EQ(backend->cache_stats().written_on_settle, 998u);
  auto handle = Snapshot(*backend, snap, 4, /*through_rocksdb=*/false);
  ASSERT_TRUE(handle.ok()) << handle.status();
  for (const auto& f : handle->files()) {
    if (f.name() == CacheDelta::kFileName) {
      EXPECT_LT(f.size(), 1000u) << "11 entries, not 1,010";
    }
  }
  WriteKeys(*backend, state, 0, 1010, "after");
  ASSERT_TRUE(backend->Flush().ok());

  ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  std::string v;
  for (int i = 0; i < 1010; ++i) {
    if (i == 5) {
      EXPECT_TRUE(absl::IsNotFound(restored->Get(restored_state, KeyGroup(i), Key(i), &v)));
      continue;
    }
    ASSERT_TRUE(restored->Get(restored_state, KeyGroup(i), Key(i), &v).ok()) << i;
    const std::string want = i >= 1000 ? "hot199-" : i == 6 ? "v3-" : "v1-";
    ASSERT_EQ(v, want + std::to_string(i));
  }
}

TEST_F(StateSnapshotTest, LaterCheckpointsReferenceSstFilesOfCompletedOnes) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  WriteKeys(*backend, state, 0, 20000, "v1");
  auto first = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(snap.last_reused(), 0u);
  snap.OnCheckpointComplete(1);
  WriteKeys(*backend, state, 20000, 10, "v1");
  auto second = Snapshot(*backend, snap, 2);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GE(snap.last_reused(), 1u) << "the SST of checkpoint 1 is referenced, not uploaded again";
  int shared_in_both = 0;
  for (const auto& a : first->files()) {
    for (const auto& b : second->files()) {
      if (a.shared() && a.path() == b.path()) ++shared_in_both;
    }
  }
  EXPECT_EQ(shared_in_both, static_cast<int>(snap.last_reused()));
  // Restoring the second sees both generations of writes.
  ASSERT_TRUE(RestoreKeyedState(*storage_, *second, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  std::string v;
  ASSERT_TRUE(restored->Get(restored_state, KeyGroup(7), Key(7), &v).ok());
  EXPECT_EQ(v, "v1-7");
  ASSERT_TRUE(restored->Get(restored_state, KeyGroup(20005), Key(20005), &v).ok());
  EXPECT_EQ(v, "v1-20005");
}

// The files later uploads may reference are those of the latest completed
// checkpoint: once a compaction has merged earlier files, they are gone
// from it (the set does not grow with the job's uptime), and the next
// checkpoint still references what it can.
TEST_F(StateSnapshotTest, OnlyTheLatestCompletedCheckpointsFilesAreReferencedLater) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  for (int id = 1; id <= 3; ++id) {  // fewer files than start a compaction (4)
    WriteKeys(*backend, state, id * 1000, 1000, "v1");
    ASSERT_TRUE(Snapshot(*backend, snap, id).ok());
    snap.OnCheckpointComplete(id);
  }
  EXPECT_EQ(snap.confirmed_files(), 3u) << "a file per flush";
  ASSERT_TRUE(backend->db()->CompactRange(rocksdb::CompactRangeOptions(), backend->column_family(state), nullptr,
                                          nullptr).ok());
  auto compacted = Snapshot(*backend, snap, 4);
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  EXPECT_EQ(snap.last_reused(), 0u) << "the compaction's output is new";
  snap.OnCheckpointComplete(4);
  size_t ssts = 0;
  for (const auto& f : compacted->files()) ssts += f.shared() ? 1 : 0;
  EXPECT_EQ(snap.confirmed_files(), ssts);
  EXPECT_LT(snap.confirmed_files(), 3u);
  WriteKeys(*backend, state, 9000, 10, "v1");
  ASSERT_TRUE(Snapshot(*backend, snap, 5).ok());
  EXPECT_EQ(snap.last_reused(), ssts) << "checkpoint 4's files are referenced by checkpoint 5";
}

// A snapshot that lists its files in the sync part and links them later
// (a TaskManager's task, between batches): the files listed outlive a
// compaction meanwhile, the restore sees the state at the snapshot, and
// RocksDB deletes them once the link released its hold.
TEST_F(StateSnapshotTest, FilesListedAndLinkedLaterOutliveACompactionMeanwhile) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  for (int i = 0; i < 3; ++i) {  // three SSTs, fewer than start a compaction (4)
    WriteKeys(*backend, state, i * 1000, 1000, "v1");
    ASSERT_TRUE(backend->Flush().ok());
    ASSERT_TRUE(backend->db()->Flush(rocksdb::FlushOptions(), backend->column_family(state)).ok());
  }
  auto local = TakeLocalSnapshot(*backend, 1, root_ + "/local-1", kAll, /*link_later=*/true);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE(local->unlinked.has_value());
  EXPECT_FALSE(fs::exists(root_ + "/local-1")) << "nothing linked yet";
  std::vector<fs::path> listed;
  for (const std::string& f : local->unlinked->files) {
    if (f.ends_with(".sst")) listed.push_back(fs::path(root_) / "db" / f.substr(1));
  }
  ASSERT_EQ(listed.size(), 3u);
  // After the snapshot: more writes, and a compaction that makes the
  // listed files obsolete.
  WriteKeys(*backend, state, 0, 100, "v2");
  ASSERT_TRUE(backend->Flush().ok());
  ASSERT_TRUE(backend->db()->CompactRange(rocksdb::CompactRangeOptions(), backend->column_family(state), nullptr,
                                          nullptr).ok());
  for (const fs::path& f : listed) EXPECT_TRUE(fs::exists(f)) << f << " is held until linked";
  size_t budget = 10;  // less than the link counts: the link alone
  local->CopySome(&budget);
  EXPECT_EQ(budget, 0u);
  EXPECT_FALSE(local->unlinked.has_value());
  ASSERT_TRUE(local->link_status.ok()) << local->link_status;
  EXPECT_EQ(FileDeletionsEnabled(*backend), 1u) << "the link released the hold";
  EXPECT_TRUE(WaitFor([&] { return std::none_of(listed.begin(), listed.end(), [](const fs::path& f) {
                        return fs::exists(f);
                      }); }, std::chrono::seconds(10)))
      << "once linked, the obsolete files are RocksDB's to delete";
  auto handle = snap.Upload(*local, "chk-1/op-0");
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  std::string v;
  for (int i : {0, 99, 100, 2999}) {
    ASSERT_TRUE(restored->Get(restored_state, KeyGroup(i), Key(i), &v).ok()) << i;
    EXPECT_EQ(v, "v1-" + std::to_string(i)) << "the state at the snapshot, not the writes after it";
  }
  EXPECT_TRUE(absl::IsNotFound(restored->Get(restored_state, KeyGroup(3000), Key(3000), &v)));
}

// A snapshot dropped before its link (a declined checkpoint), even after its
// backend closed, lets go of its hold without touching the closed RocksDB.
TEST_F(StateSnapshotTest, AnUnlinkedSnapshotOutlivingItsBackendReleasesNothing) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  WriteKeys(*backend, state, 0, 100, "v1");
  EXPECT_EQ(FileDeletionsEnabled(*backend), 1u);
  auto first = TakeLocalSnapshot(*backend, 1, root_ + "/local-1", kAll, /*link_later=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(FileDeletionsEnabled(*backend), 0u) << "held until linked";
  { LocalSnapshot dropped = std::move(*first); }  // released on the open backend
  EXPECT_EQ(FileDeletionsEnabled(*backend), 1u) << "a snapshot dropped unlinked lets go of its hold";
  auto second = TakeLocalSnapshot(*backend, 2, root_ + "/local-2", kAll, /*link_later=*/true);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->unlinked->hold.held());
  backend.reset();
  second->unlinked->hold.Release();
  EXPECT_FALSE(second->unlinked->hold.held());
}

TEST_F(StateSnapshotTest, FilesOfAnUncompletedCheckpointAreNotReferenced) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "job-op-0-a");
  WriteKeys(*backend, state, 0, 1000, "v1");
  ASSERT_TRUE(Snapshot(*backend, snap, 1).ok());
  // Checkpoint 1 never completes (aborted): its files may be deleted.
  auto second = Snapshot(*backend, snap, 2);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(snap.last_reused(), 0u);
  for (const auto& f : second->files()) {
    if (f.shared()) {
      EXPECT_NE(f.path().find("job-op-0-a-"), std::string::npos) << f.path();
    }
  }
}

TEST_F(StateSnapshotTest, RestoredSstFilesAreReferencedByTheNextCheckpoint) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "attempt-1");
  WriteKeys(*backend, state, 0, 3000, "v1");
  auto handle = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(handle.ok());
  backend.reset();
  ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  IncrementalSnapshotter snap2(storage_, "attempt-2");
  snap2.AddRestored(*handle);
  auto next = Snapshot(*restored, snap2, 2);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GE(snap2.last_reused(), 1u);
}

// A logged state (a map with a filter of recent keys: state/state_log.h)
// is not flushed by snapshots: they hold its log's segments, each uploaded
// once and referenced by later checkpoints, until the log is large enough
// to flush; the flush (in the background) then ends them.
TEST_F(StateSnapshotTest, ALoggedStateIsFlushedOnlyOnceItsLogIsLarge) {
  // The log (1 MiB at most) reaches its limit before the memtable fills.
  // RocksDB's LOG at INFO: the flush's events say which thread ran it.
  auto opened = KeyedStateBackend::Open({.path = root_ + "/db",
                                         .write_buffer_bytes = size_t{2} << 20,
                                         .info_log_level = rocksdb::InfoLogLevel::INFO_LEVEL});
  ASSERT_TRUE(opened.ok()) << opened.status();
  KeyedStateBackend& backend = **opened;
  auto seen = backend.GetMapState({.name = "seen", .ttl_ms = 3600000, .filter_recent_keys = true});
  ASSERT_TRUE(seen.ok()) << seen.status();
  rocksdb::ColumnFamilyHandle* cf = backend.column_family((*seen)->id());
  auto sst_files = [&] {
    rocksdb::ColumnFamilyMetaData meta;
    backend.db()->GetColumnFamilyMetaData(cf, &meta);
    return meta.file_count;
  };
  int written = 0;
  auto write = [&](int n) {
    for (int end = written + n; written < end; ++written) {
      backend.SetCurrentKey(KeyGroup(written), Key(written));
      ASSERT_TRUE((*seen)->Put("", "message", std::to_string(written)).ok());
    }
  };
  auto segments = [](const proto::KeyedStateHandle& h) {
    std::map<std::string, std::string> out;  // name -> path
    for (const proto::StateFile& f : h.files()) {
      if (StateLog::IsSegmentFile(f.name())) out[f.name()] = f.path();
    }
    return out;
  };
  IncrementalSnapshotter snap(storage_, "job-op-0-a");

  ASSERT_NO_FATAL_FAILURE(write(1000));
  auto first = Snapshot(backend, snap, 1, /*through_rocksdb=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(segments(*first).size(), 1u);
  EXPECT_EQ(sst_files(), 0u) << "the snapshot did not flush the logged state";
  snap.OnCheckpointComplete(1);
  ASSERT_NO_FATAL_FAILURE(write(1000));
  auto second = Snapshot(backend, snap, 2, /*through_rocksdb=*/false);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(segments(*second).size(), 2u);
  const auto& [name, path] = *segments(*first).begin();
  EXPECT_EQ(segments(*second).at(name), path) << "checkpoint 1's segment is referenced, not uploaded again";
  EXPECT_EQ(sst_files(), 0u);
  snap.OnCheckpointComplete(2);

  // Past state_log_flush_bytes, the snapshot starts a flush; once it is
  // done the segments before it go.
  while (backend.state_log_bytes() < backend.state_log_flush_bytes()) ASSERT_NO_FATAL_FAILURE(write(1000));
  auto third = Snapshot(backend, snap, 3, /*through_rocksdb=*/false);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_GE(segments(*third).size(), 3u);
  absl::Status maintained;
  WaitFor([&] {
    maintained = backend.MaintainStateLog();
    return !maintained.ok() || backend.state_log_bytes() == 0;
  }, std::chrono::seconds(30));
  ASSERT_TRUE(maintained.ok()) << maintained;
  ASSERT_EQ(backend.state_log_bytes(), 0u) << "the flush did not end the log within 30 s";
  EXPECT_GE(sst_files(), 1u);
  // No snapshot waited for that flush: it ran with the compactions, on a
  // thread of RocksDB's LOW pool (the LOG names the thread of each job).
  std::ifstream log(backend.path() + "/LOG");
  std::vector<std::string> flush_threads;
  for (std::string line; std::getline(log, line);) {
    if (line.find("\"event\": \"flush_started\"") == std::string::npos) continue;
    const std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    ASSERT_GE(words.size(), 2u) << line;
    std::ifstream comm("/proc/self/task/" + words[1] + "/comm");  // [time] [thread id] ...
    std::string name;
    std::getline(comm, name);
    flush_threads.push_back(name);
  }
  EXPECT_EQ(flush_threads, std::vector<std::string>{"rocksdb:low"});
  snap.OnCheckpointComplete(3);
  ASSERT_NO_FATAL_FAILURE(write(10));
  // Deletes in the log of entries whose Puts are in the SST files now.
  constexpr int kRemoved = 10;
  for (int i = 0; i < kRemoved; ++i) {
    backend.SetCurrentKey(KeyGroup(i), Key(i));
    ASSERT_TRUE((*seen)->Remove("", "message").ok());
  }
  auto fourth = Snapshot(backend, snap, 4, /*through_rocksdb=*/false);
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  const auto last = segments(*fourth);
  ASSERT_EQ(last.size(), 1u) << "only the writes since the flush";
  EXPECT_EQ(segments(*third).count(last.begin()->first), 0u);

  // Each checkpoint restores to exactly its writes.
  const std::vector<std::pair<const proto::KeyedStateHandle*, int>> checkpoints{{&*second, 2000}, {&*fourth, written}};
  for (const auto& [handle, count] : checkpoints) {
    const std::string dir = root_ + "/restored-" + std::to_string(count);
    ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, dir).ok());
    auto restored = KeyedStateBackend::Open({.path = dir, .wipe_on_open = false});
    ASSERT_TRUE(restored.ok()) << restored.status();
    auto restored_seen = (*restored)->GetMapState({.name = "seen", .ttl_ms = 3600000, .filter_recent_keys = true});
    ASSERT_TRUE(restored_seen.ok()) << restored_seen.status();
    for (const auto& entry : fs::directory_iterator(dir)) {
      EXPECT_FALSE(StateLog::IsSegmentFile(entry.path().filename().string())) << "applied on open, then removed";
    }
    std::string v;
    for (int i = 0; i <= written; ++i) {
      (*restored)->SetCurrentKey(KeyGroup(i), Key(i));
      auto r = (*restored_seen)->Get("", "message", &v);
      ASSERT_TRUE(r.ok()) << r.status();
      const bool removed = handle == &*fourth && i < kRemoved;
      ASSERT_EQ(*r, i < count && !removed ? StateLookup::kFound : StateLookup::kAbsent) << i << " of " << count;
      if (i < count && !removed) {
        ASSERT_EQ(v, std::to_string(i));
      }
    }
  }
}

TEST_F(StateSnapshotTest, RestoreChecksHandlesAndFiles) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "x");
  WriteKeys(*backend, state, 0, 100, "v1");
  auto handle = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(handle.ok());
  proto::KeyedStateHandle bad = *handle;
  bad.mutable_files(0)->set_size(bad.files(0).size() + 1);
  absl::Status s = RestoreKeyedState(*storage_, bad, kAll, root_ + "/r2");
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_FALSE(fs::exists(root_ + "/r2")) << "a failed restore leaves no half-restored state";
  // The same checks when the files go to a temporary directory.
  s = RestoreKeyedState(*storage_, bad, {0, 63}, root_ + "/r2");
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_FALSE(fs::exists(root_ + "/r2"));
  EXPECT_FALSE(fs::exists(root_ + "/r2.rescale-0")) << "temporary directories are removed on error too";
  for (const char* name : {"../escape", "", ".."}) {
    bad = *handle;
    bad.mutable_files(0)->set_name(name);
    EXPECT_TRUE(absl::IsDataLoss(RestoreKeyedState(*storage_, bad, kAll, root_ + "/r3"))) << name;
    EXPECT_TRUE(absl::IsDataLoss(RestoreKeyedState(*storage_, bad, {0, 63}, root_ + "/r3"))) << name;
  }
  bad = *handle;
  bad.set_key_group_end(70000);
  EXPECT_TRUE(absl::IsDataLoss(RestoreKeyedState(*storage_, bad, kAll, root_ + "/r4")));
  EXPECT_TRUE(absl::IsInvalidArgument(RestoreKeyedState(*storage_, *handle, {5, 4}, root_ + "/r4")));
  // Two handles for the same key groups: not one checkpoint of one operator.
  std::vector<proto::KeyedStateHandle> twice{*handle, *handle};
  EXPECT_TRUE(absl::IsInvalidArgument(RestoreKeyedState(*storage_, twice, {0, 63}, root_ + "/r4")));
  // The target directory must be empty.
  fs::create_directories(root_ + "/r5");
  std::ofstream(root_ + "/r5/stray") << "x";
  EXPECT_TRUE(absl::IsFailedPrecondition(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/r5")));
  EXPECT_TRUE(fs::exists(root_ + "/r5/stray")) << "a directory the restore did not create is left alone";
}

TEST_F(StateSnapshotTest, CorruptSnapshotIsAnErrorNotACrash) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "x");
  WriteKeys(*backend, state, 0, 5000, "v1");
  auto handle = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(handle.ok());
  // Overwrite the middle of every SST in storage, keeping its size.
  for (const proto::StateFile& f : handle->files()) {
    if (!f.shared()) continue;
    std::fstream file(root_ + "/storage/" + f.path(), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.is_open()) << f.path();
    file.seekp(static_cast<std::streamoff>(f.size() / 3));
    const std::string garbage(64, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  absl::Status s = RestoreKeyedState(*storage_, *handle, {0, 63}, root_ + "/r");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_FALSE(fs::exists(root_ + "/r"));
  EXPECT_FALSE(fs::exists(root_ + "/r.rescale-0"));
  // A handle without its MANIFEST (only the SSTs): no database to open.
  proto::KeyedStateHandle ssts_only = *handle;
  ssts_only.clear_files();
  for (const proto::StateFile& f : handle->files()) {
    if (f.shared()) *ssts_only.add_files() = f;
  }
  s = RestoreKeyedState(*storage_, ssts_only, {0, 63}, root_ + "/r");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(fs::exists(root_ + "/r"));
}

// ---- Restoring at another parallelism --------------------------------------

constexpr int kMaxParallelism = 128;
constexpr int kRescaleKeys = 3000;
constexpr int64_t kTtlMs = int64_t{3600} * 1000;

// Timer payloads start with the key group (timer_queue.h).
std::string TimerPayload(int i) {
  std::string p;
  AppendKeyGroupBytes(KeyGroup(i), &p);
  p.append(Key(i));
  return p;
}

// Every kind of state a redistribution copies: a value state through the
// write-back cache, one with a TTL, a MapState, a ListState and an
// associative AggregatingState (both written as RocksDB merges), and a timer
// queue.
struct OperatorStates {
  StateId values = 0;
  ValueState* ttl_values = nullptr;
  MapState* map = nullptr;
  MapState* seen = nullptr;  // with a filter of recent keys: logged (state/state_log.h)
  ListState* list = nullptr;
  AggregatingState* sum = nullptr;
  std::unique_ptr<TimerQueue> timers;
};

void DeclareStates(KeyedStateBackend& backend, OperatorStates* out) {
  auto values = backend.RegisterState("values", /*write_back_cache=*/true);
  ASSERT_TRUE(values.ok()) << values.status();
  out->values = *values;
  auto ttl_values = backend.GetValueState({.name = "ttl_values", .ttl_ms = kTtlMs});
  ASSERT_TRUE(ttl_values.ok()) << ttl_values.status();
  out->ttl_values = *ttl_values;
  auto map = backend.GetMapState({.name = "map"});
  ASSERT_TRUE(map.ok()) << map.status();
  out->map = *map;
  auto seen = backend.GetMapState({.name = "seen", .ttl_ms = kTtlMs, .filter_recent_keys = true});
  ASSERT_TRUE(seen.ok()) << seen.status();
  out->seen = *seen;
  auto list = backend.GetListState({.name = "list"});
  ASSERT_TRUE(list.ok()) << list.status();
  out->list = *list;
  auto sum = backend.GetAggregatingState({.name = "sum", .function = SumFunction(), .associative = true});
  ASSERT_TRUE(sum.ok()) << sum.status();
  out->sum = *sum;
  ASSERT_TRUE((*sum)->uses_merge());
  auto timers = TimerQueue::Create(backend, "events", /*memory_limit=*/100);
  ASSERT_TRUE(timers.ok()) << timers.status();
  out->timers = std::move(*timers);
}

class RescaleRestoreTest : public StateSnapshotTest {
 protected:
  void SetUp() override {
    StateSnapshotTest::SetUp();
    clock_.Set(1'000'000);
    // Two subtasks at parallelism 2, each with the keys of its key groups.
    for (int sub = 0; sub < 2; ++sub) {
      const KeyGroupRange range = KeyGroupRangeForSubtask(kMaxParallelism, 2, sub);
      auto backend = KeyedStateBackend::Open({.path = root_ + "/old-" + std::to_string(sub), .clock = &clock_});
      ASSERT_TRUE(backend.ok()) << backend.status();
      OperatorStates states;
      ASSERT_NO_FATAL_FAILURE(DeclareStates(**backend, &states));
      std::vector<int> mine;
      for (int i = 0; i < kRescaleKeys; ++i) {
        if (KeyGroup(i) >= range.start && KeyGroup(i) <= range.end) mine.push_back(i);
      }
      ASSERT_FALSE(mine.empty());
      // Merges first, folded into base values by a full compaction, then
      // merges again: the snapshot holds base values with operands on top.
      for (int i : mine) {
        (*backend)->SetCurrentKey(KeyGroup(i), Key(i));
        ASSERT_TRUE(states.list->Add("", "first-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.sum->Add("", EncodeI64(i)).ok());
      }
      ASSERT_TRUE((*backend)->CompactState(states.list->id()).ok());
      ASSERT_TRUE((*backend)->CompactState(states.sum->id()).ok());
      for (int i : mine) {
        (*backend)->SetCurrentKey(KeyGroup(i), Key(i));
        ASSERT_TRUE(states.list->Add("", "second-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.sum->Add("", EncodeI64(1000000)).ok());
        ASSERT_TRUE(states.ttl_values->Put("", "ttl-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.map->Put("w" + std::to_string(i % 7), "a", "map-a-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.map->Put("w" + std::to_string(i % 7), "b", "map-b-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.seen->Put("", "m" + std::to_string(i), "seen-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.seen->Put("", "gone", "x").ok());
        ASSERT_TRUE(states.seen->Remove("", "gone").ok());
        ASSERT_TRUE((*backend)->Put(states.values, KeyGroup(i), Key(i), "v-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.timers->Add(100 + i % 50, TimerPayload(i)).ok());
        ASSERT_TRUE(states.timers->Add(5000 + i, TimerPayload(i)).ok());
        ttl_raw_[i] = RawGet(**backend, states.ttl_values->id(), StateKey(KeyGroup(i), Key(i)));
        ASSERT_FALSE(ttl_raw_[i].empty());
      }
      // Another file of operands: a key has several on top of its base.
      for (StateId id : {states.list->id(), states.sum->id()}) {
        ASSERT_TRUE((*backend)->db()->Flush(rocksdb::FlushOptions(), (*backend)->column_family(id)).ok());
      }
      for (int i : mine) {
        (*backend)->SetCurrentKey(KeyGroup(i), Key(i));
        ASSERT_TRUE(states.list->Add("", "third-" + std::to_string(i)).ok());
        ASSERT_TRUE(states.sum->Add("", EncodeI64(1000000)).ok());
      }
      // No Persist: the timers still in memory (beyond the 100 the queue
      // spilled) travel in the snapshot's CACHE-DELTA, as in tasks.
      IncrementalSnapshotter snap(storage_, "old-" + std::to_string(sub));
      auto local = TakeLocalSnapshot(**backend, 1, root_ + "/local-" + std::to_string(sub), range);
      ASSERT_TRUE(local.ok()) << local.status();
      auto handle = snap.Upload(*local, "chk-1/op-" + std::to_string(sub));
      ASSERT_TRUE(handle.ok()) << handle.status();
      // The logged state is in the snapshot's state log only: no SST of it.
      int segments = 0;
      for (const proto::StateFile& f : handle->files()) segments += StateLog::IsSegmentFile(f.name()) ? 1 : 0;
      EXPECT_EQ(segments, 1);
      rocksdb::ColumnFamilyMetaData seen_files;
      (*backend)->db()->GetColumnFamilyMetaData((*backend)->column_family(states.seen->id()), &seen_files);
      EXPECT_EQ(seen_files.file_count, 0u);
      handles_.push_back(*handle);
    }
  }

  // Opens a restored instance as the operator would, and checks that it
  // holds exactly the keys and timers of `target`, with their values.
  void ExpectExactly(const std::string& dir, KeyGroupRange target, bool compact_first = false) {
    auto backend = KeyedStateBackend::Open({.path = dir, .wipe_on_open = false, .clock = &clock_});
    ASSERT_TRUE(backend.ok()) << backend.status();
    OperatorStates states;
    ASSERT_NO_FATAL_FAILURE(DeclareStates(**backend, &states));
    if (compact_first) {
      // The operator's merge operator folds the copied operands into their base.
      ASSERT_TRUE((*backend)->CompactState(states.list->id()).ok());
      ASSERT_TRUE((*backend)->CompactState(states.sum->id()).ok());
    }
    int owned = 0;
    std::string v;
    // The files of the restored map state filter on each key's prefix, as
    // the backend's own do: a scan of a key that is not the target's skips
    // them (unless the operators' compaction rewrote them first).
    uint64_t files_skipped = 0;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    for (int i = 0; i < kRescaleKeys; ++i) {
      const int kg = KeyGroup(i);
      const bool mine = kg >= target.start && kg <= target.end;
      owned += mine ? 1 : 0;
      const std::string n = std::to_string(i);
      absl::Status got = (*backend)->Get(states.values, kg, Key(i), &v);
      if (!mine) {
        ASSERT_TRUE(absl::IsNotFound(got)) << "key " << i << " of key group " << kg << " is not the target's";
        (*backend)->SetCurrentKey(kg, Key(i));
        rocksdb::get_perf_context()->Reset();
        auto no_map = states.map->IsEmpty("w" + std::to_string(i % 7));
        files_skipped += rocksdb::get_perf_context()->bloom_sst_miss_count;
        ASSERT_TRUE(no_map.ok() && *no_map) << i;
        auto not_seen = states.seen->IsEmpty("");
        ASSERT_TRUE(not_seen.ok() && *not_seen) << i;
        std::vector<std::string> list;
        auto in_list = states.list->Get("", &list);
        ASSERT_TRUE(in_list.ok());
        ASSERT_EQ(*in_list, StateLookup::kAbsent) << i;
        continue;
      }
      ASSERT_TRUE(got.ok()) << "key " << i << ": " << got;
      ASSERT_EQ(v, "v-" + n);
      (*backend)->SetCurrentKey(kg, Key(i));
      auto r = states.ttl_values->Get("", &v);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kFound) << i;
      ASSERT_EQ(v, "ttl-" + n);
      ASSERT_EQ(RawGet(**backend, states.ttl_values->id(), StateKey(kg, Key(i))), ttl_raw_[i])
          << "the TTL write time is copied unchanged";
      r = states.map->Get("w" + std::to_string(i % 7), "a", &v);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kFound) << i;
      ASSERT_EQ(v, "map-a-" + n);
      r = states.map->Get("w" + std::to_string(i % 7), "b", &v);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kFound) << i;
      ASSERT_EQ(v, "map-b-" + n);
      r = states.seen->Get("", "m" + n, &v);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kFound) << i;
      ASSERT_EQ(v, "seen-" + n);
      r = states.seen->Get("", "gone", &v);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kAbsent) << i << ": the log's delete applies after its put";
      std::vector<std::string> list;
      r = states.list->Get("", &list);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kFound) << i;
      ASSERT_EQ(list, (std::vector<std::string>{"first-" + n, "second-" + n, "third-" + n}));
      r = states.sum->Get("", &v);
      ASSERT_TRUE(r.ok() && *r == StateLookup::kFound) << i;
      ASSERT_EQ(DecodeI64(v), i + 2000000);
    }
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    EXPECT_GT(owned, 0);
    if (owned < kRescaleKeys) {
      EXPECT_GE(files_skipped, static_cast<uint64_t>(kRescaleKeys - owned) * 9 / 10);
    }
    // The timers: those of the target's keys, each once, in time order.
    std::vector<std::pair<int64_t, std::string>> expected;
    for (int i = 0; i < kRescaleKeys; ++i) {
      if (KeyGroup(i) < target.start || KeyGroup(i) > target.end) continue;
      expected.emplace_back(100 + i % 50, TimerPayload(i));
      expected.emplace_back(5000 + i, TimerPayload(i));
    }
    std::sort(expected.begin(), expected.end());
    std::vector<std::pair<int64_t, std::string>> popped;
    auto n = states.timers->PopUpTo(INT64_MAX, [&](int64_t t, std::string_view p) { popped.emplace_back(t, p); });
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(popped, expected);
    // Nothing of the copy is left beside the restored instance.
    for (const auto& entry : fs::directory_iterator(fs::path(dir).parent_path())) {
      EXPECT_EQ(entry.path().filename().string().find(".rescale-"), std::string::npos) << entry.path();
    }
  }

  ManualStateClock clock_;
  std::map<int, std::string> ttl_raw_;
  std::vector<proto::KeyedStateHandle> handles_;
};

TEST_F(RescaleRestoreTest, ScaleOutFromTwoToThreeSubtasks) {
  for (int sub = 0; sub < 3; ++sub) {
    const KeyGroupRange target = KeyGroupRangeForSubtask(kMaxParallelism, 3, sub);
    const std::string dir = root_ + "/new-" + std::to_string(sub);
    absl::Status s = RestoreKeyedState(*storage_, handles_, target, dir);
    ASSERT_TRUE(s.ok()) << s;
    SCOPED_TRACE("subtask " + std::to_string(sub));
    ASSERT_NO_FATAL_FAILURE(ExpectExactly(dir, target, /*compact_first=*/sub == 1));
  }
}

TEST_F(RescaleRestoreTest, ScaleInFromTwoToOneSubtask) {
  const std::string dir = root_ + "/new";
  ASSERT_TRUE(RestoreKeyedState(*storage_, handles_, kAll, dir).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectExactly(dir, kAll));
}

TEST_F(RescaleRestoreTest, SameRangeDownloadsTheSnapshotAsItIs) {
  const std::string dir = root_ + "/same";
  const KeyGroupRange target = KeyGroupRangeForSubtask(kMaxParallelism, 2, 1);
  ASSERT_TRUE(RestoreKeyedState(*storage_, handles_, target, dir).ok());
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.insert(entry.path().filename().string());
  std::set<std::string> snapshot;
  for (const proto::StateFile& f : handles_[1].files()) snapshot.insert(f.name());
  EXPECT_EQ(files, snapshot) << "the fast path copies the snapshot's files, nothing else";
  ASSERT_NO_FATAL_FAILURE(ExpectExactly(dir, target));
}

TEST_F(RescaleRestoreTest, NoOverlappingSnapshotGivesAnEmptyInstance) {
  const std::string dir = root_ + "/empty";
  const KeyGroupRange target = KeyGroupRangeForSubtask(kMaxParallelism, 2, 0);
  ASSERT_TRUE(RestoreKeyedState(*storage_, std::vector<proto::KeyedStateHandle>{handles_[1]}, target, dir).ok());
  auto backend = KeyedStateBackend::Open({.path = dir, .wipe_on_open = false});
  ASSERT_TRUE(backend.ok()) << backend.status();
  OperatorStates states;
  ASSERT_NO_FATAL_FAILURE(DeclareStates(**backend, &states));
  int64_t entries = 0;
  ASSERT_TRUE((*backend)->ForEachKey(states.values, kAll, [&](const StateKeyView&) { ++entries; }).ok());
  ASSERT_TRUE((*backend)->ForEachKey(states.list->id(), kAll, [&](const StateKeyView&) { ++entries; }).ok());
  EXPECT_EQ(entries, 0);
  EXPECT_EQ(*states.timers->PopUpTo(INT64_MAX, [](int64_t, std::string_view) {}), 0u);
  // And with no handles at all.
  ASSERT_TRUE(RestoreKeyedState(*storage_, std::vector<proto::KeyedStateHandle>{}, target, root_ + "/none").ok());
  EXPECT_TRUE(KeyedStateBackend::Open({.path = root_ + "/none", .wipe_on_open = false}).ok());
}

TEST_F(RescaleRestoreTest, RestoredInstanceSnapshotsAndRestoresAgain) {
  // 2 -> 3 -> 1: the restored instance is an ordinary backend.
  std::vector<proto::KeyedStateHandle> three;
  for (int sub = 0; sub < 3; ++sub) {
    const KeyGroupRange target = KeyGroupRangeForSubtask(kMaxParallelism, 3, sub);
    const std::string dir = root_ + "/mid-" + std::to_string(sub);
    ASSERT_TRUE(RestoreKeyedState(*storage_, handles_, target, dir).ok());
    auto backend = KeyedStateBackend::Open({.path = dir, .wipe_on_open = false, .clock = &clock_});
    ASSERT_TRUE(backend.ok()) << backend.status();
    OperatorStates states;
    ASSERT_NO_FATAL_FAILURE(DeclareStates(**backend, &states));
    IncrementalSnapshotter snap(storage_, "mid-" + std::to_string(sub));
    auto local = TakeLocalSnapshot(**backend, 2, root_ + "/local-mid-" + std::to_string(sub), target);
    ASSERT_TRUE(local.ok()) << local.status();
    auto handle = snap.Upload(*local, "chk-2/op-" + std::to_string(sub));
    ASSERT_TRUE(handle.ok()) << handle.status();
    three.push_back(*handle);
  }
  const std::string dir = root_ + "/final";
  ASSERT_TRUE(RestoreKeyedState(*storage_, three, kAll, dir).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectExactly(dir, kAll, /*compact_first=*/true));
}

TEST(CheckpointStorageTest, WritesAreWholeAndListed) {
  const std::string root = TempDir("checkpoint-storage");
  auto storage = CheckpointStorage::Open(root);
  ASSERT_TRUE(storage.ok()) << storage.status();
  ASSERT_TRUE((*storage)->Write("chk-1/_metadata", "meta").ok());
  ASSERT_TRUE((*storage)->Write("chk-2/_metadata", "meta2").ok());
  auto names = (*storage)->List("");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"chk-1", "chk-2"}));
  auto data = (*storage)->Read("chk-2/_metadata");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "meta2");
  EXPECT_TRUE((*storage)->Exists("chk-1/_metadata").ok());
  ASSERT_TRUE((*storage)->Delete("chk-1").ok());
  EXPECT_TRUE(absl::IsNotFound((*storage)->Exists("chk-1/_metadata")));
  EXPECT_TRUE(absl::IsNotFound((*storage)->Read("chk-1/_metadata").status()));
  EXPECT_TRUE((*storage)->Delete("chk-1").ok()) << "deleting what is gone is fine";
  EXPECT_TRUE(absl::IsInvalidArgument((*storage)->Delete(""))) << "never the whole storage";
  // Paths from metadata never leave the root: absolute or with "..".
  const std::string outside = TempDir("checkpoint-storage-outside");
  fs::create_directories(outside);
  ASSERT_TRUE(CheckpointStorage::Open(outside).ok());
  ASSERT_TRUE((*CheckpointStorage::Open(outside))->Write("victim", "keep").ok());
  const std::string victim = (fs::path(outside) / "victim").string();
  const std::string relative_victim = (fs::path("..") / fs::path(outside).filename() / "victim").string();
  for (const std::string& path : {victim, relative_victim, std::string("chk-2/../../x")}) {
    EXPECT_TRUE(absl::IsInvalidArgument((*storage)->Delete(path))) << path;
    EXPECT_TRUE(absl::IsInvalidArgument((*storage)->Read(path).status())) << path;
    EXPECT_TRUE(absl::IsInvalidArgument((*storage)->Exists(path))) << path;
    EXPECT_TRUE(absl::IsInvalidArgument((*storage)->Write(path, "x"))) << path;
    EXPECT_TRUE(absl::IsInvalidArgument((*storage)->Download(path, root + "/copy"))) << path;
    EXPECT_TRUE(absl::IsInvalidArgument((*storage)->List(path).status())) << path;
  }
  EXPECT_TRUE(fs::exists(victim)) << "a path outside the root deleted a file there";
  fs::remove_all(outside);
  EXPECT_TRUE((*storage)->Exists("chk-2/_metadata").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(CheckpointStorage::Open("s3://bucket/x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(CheckpointStorage::Open("relative/dir").status()));
  fs::remove_all(root);
}

}  // namespace
}  // namespace vstream
