#include "state/state_snapshot.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/keyed_state_backend.h"

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

  absl::StatusOr<proto::KeyedStateHandle> Snapshot(KeyedStateBackend& backend, IncrementalSnapshotter& snap,
                                                   int64_t id) {
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
  auto handle = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_FALSE(fs::exists(root_ + "/local-1")) << "the local snapshot is removed after upload";
  // Changes after the snapshot must not appear in the restored state.
  WriteKeys(*backend, state, 0, 100, "v2");
  WriteKeys(*backend, state, 5000, 100, "v2");
  ASSERT_TRUE(backend->Flush().ok());

  ASSERT_TRUE(RestoreKeyedState(*storage_, *handle, kAll, root_ + "/restored").ok());
  StateId restored_state;
  auto restored = OpenBackend("restored", false, &restored_state);
  std::string v;
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(restored->Get(restored_state, KeyGroup(i), Key(i), &v).ok()) << i;
    ASSERT_EQ(v, "v1-" + std::to_string(i));
  }
  EXPECT_TRUE(absl::IsNotFound(restored->Get(restored_state, KeyGroup(5000), Key(5000), &v)));
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

TEST_F(StateSnapshotTest, RestoreChecksRangeAndFileSizes) {
  StateId state;
  auto backend = OpenBackend("db", true, &state);
  IncrementalSnapshotter snap(storage_, "x");
  WriteKeys(*backend, state, 0, 100, "v1");
  auto handle = Snapshot(*backend, snap, 1);
  ASSERT_TRUE(handle.ok());
  absl::Status other_range = RestoreKeyedState(*storage_, *handle, {0, 63}, root_ + "/r1");
  EXPECT_TRUE(absl::IsUnimplemented(other_range)) << other_range;
  proto::KeyedStateHandle bad = *handle;
  bad.mutable_files(0)->set_size(bad.files(0).size() + 1);
  absl::Status s = RestoreKeyedState(*storage_, bad, kAll, root_ + "/r2");
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  bad = *handle;
  bad.mutable_files(0)->set_name("../escape");
  EXPECT_TRUE(absl::IsDataLoss(RestoreKeyedState(*storage_, bad, kAll, root_ + "/r3")));
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
  EXPECT_TRUE(absl::IsInvalidArgument(CheckpointStorage::Open("s3://bucket/x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(CheckpointStorage::Open("relative/dir").status()));
  fs::remove_all(root);
}

}  // namespace
}  // namespace vstream
