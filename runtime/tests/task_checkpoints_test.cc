#include "runtime/task_checkpoints.h"

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/operators/aggregate_operator.h"
#include "state/tests/testing_state.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

class FakeResponder : public CheckpointResponder {
 public:
  void Acknowledge(const proto::AcknowledgeCheckpointRequest& ack) override {
    std::lock_guard<std::mutex> lock(mu_);
    acks_.push_back(ack);
    cv_.notify_all();
  }
  void Decline(const proto::DeclineCheckpointRequest& decline) override {
    std::lock_guard<std::mutex> lock(mu_);
    declines_.push_back(decline);
    cv_.notify_all();
  }
  size_t acks() {
    std::lock_guard<std::mutex> lock(mu_);
    return acks_.size();
  }
  // Waits (up to 30 s) for the ack of `id`.
  std::optional<proto::AcknowledgeCheckpointRequest> WaitForAck(int64_t id) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<proto::AcknowledgeCheckpointRequest> found;
    cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const auto& a : acks_) {
        if (a.checkpoint_id() == id) found = a;
      }
      return found.has_value() || !declines_.empty();
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<proto::AcknowledgeCheckpointRequest> acks_;
  std::vector<proto::DeclineCheckpointRequest> declines_;
};

class NullOutput : public Output {
 public:
  void Push(RowBatch&) override {}
  void Finish() override {}
  void PushWatermark(int64_t) override {}
};

// Keeps the count field of the last row pushed.
class LastRow : public Output {
 public:
  void Push(RowBatch& batch) override {
    if (!batch.empty()) count = batch[batch.size() - 1][1].i;
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}
  int64_t count = -1;
};

class TaskCheckpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() / ("vstream-task-ckpt-" + std::to_string(::getpid()))).string();
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto storage = CheckpointStorage::Open(root_ + "/storage");
    ASSERT_TRUE(storage.ok());
    storage_ = std::move(*storage);
  }
  void TearDown() override {
    counting_.reset();  // closes its RocksDB before the directory goes
    fs::remove_all(root_);
  }

  // Pushes `n` rows over `keys` keys into the running count.
  void Push(AggregateOperator& op, int first, int n, int keys) {
    RowBatch batch(1);
    for (int i = first; i < first + n; ++i) batch.Append()[0].SetString("patient-" + std::to_string(i % keys));
    op.Push(batch);
    ASSERT_TRUE(op.status().ok()) << op.status();
  }

  // A running count per key ("k", then "n"), opened on `state_dir`
  // (restored: a restored one), its rows to `out`.
  std::unique_ptr<AggregateOperator> OpenCount(OperatorCounters& counters, Output& out, const std::string& state_dir,
                                               bool restored = false) {
    proto::AggregateCall count;
    count.set_name("n");
    count.set_func("count");
    auto op = std::make_unique<AggregateOperator>(counters, in_, std::vector<int>{0},
                                                  std::vector<proto::AggregateCall>{count});
    op->set_output(&out);
    OperatorContext ctx;
    ctx.job_id = "job";
    ctx.vertex_id = 3;
    ctx.state_dir = state_dir;
    ctx.restored = restored;
    if (absl::Status s = op->Open(ctx); !s.ok()) {
      ADD_FAILURE() << s;
      return nullptr;
    }
    return op;
  }

  // Restores the one operator of checkpoint `ack` and expects each of the
  // 1000 keys it tries to count `count` + 1 with one more row.
  void ExpectRestoredCounts(const proto::AcknowledgeCheckpointRequest& ack, int64_t count);

  // The running count a test checkpoints, on StateDir(), its rows dropped:
  // *counting_ once this returned true.
  bool OpenCounting() {
    counting_ = OpenCount(counting_counters_, dropped_, StateDir());
    return counting_ != nullptr;
  }
  std::string StateDir() const { return root_ + "/state/3-0"; }
  // OpenCounting's operator, checkpointed with copies in slices and one
  // executor for copies and uploads; null if it did not open.
  struct InSlices {
    FakeResponder responder;
    Executor uploads{"test-uploads"};
    std::unique_ptr<TaskCheckpoints> checkpoints;
  };
  std::unique_ptr<InSlices> CountingInSlices() {
    if (!OpenCounting()) return nullptr;
    auto t = std::make_unique<InSlices>();
    t->checkpoints = std::make_unique<TaskCheckpoints>("job", "job/0/0/0", 0, KeyGroupRange{0, 127}, storage_,
                                                       &t->responder, &t->uploads, &t->uploads);
    t->checkpoints->AddOperator(3, counting_.get(), StateDir());
    t->checkpoints->set_copy_in_slices(true);
    return t;
  }

  const Schema in_{{{"k", FieldType::kString}}};
  std::string root_;
  std::shared_ptr<CheckpointStorage> storage_;
  OperatorCounters counting_counters_;
  NullOutput dropped_;
  std::unique_ptr<AggregateOperator> counting_;
};

void TaskCheckpointsTest::ExpectRestoredCounts(const proto::AcknowledgeCheckpointRequest& ack, int64_t count) {
  ASSERT_EQ(ack.operators_size(), 1);
  const std::string restored = root_ + "/restored-" + std::to_string(ack.checkpoint_id());
  ASSERT_TRUE(RestoreKeyedState(*storage_, ack.operators(0).keyed(), {0, 127}, restored).ok());
  OperatorCounters counters;
  LastRow last;
  std::unique_ptr<AggregateOperator> again = OpenCount(counters, last, restored, /*restored=*/true);
  ASSERT_NE(again, nullptr);
  for (int k = 0; k < 1000; k += 37) {
    Push(*again, k, 1, 1000);
    EXPECT_EQ(last.count, count + 1) << "key " << k << ": " << count << " at checkpoint " << ack.checkpoint_id()
                                     << ", then this one";
  }
}

TEST_F(TaskCheckpointsTest, SnapshotsKeyedStateUploadsItAndAcknowledges) {
  ASSERT_TRUE(OpenCounting());
  AggregateOperator& op = *counting_;

  FakeResponder responder;
  Executor uploads("test-uploads");
  TaskCheckpoints checkpoints("job", "job/0/0/0", 0, {0, 127}, storage_, &responder, &uploads);
  checkpoints.AddOperator(3, &op, StateDir());

  Push(op, 0, 5000, 1000);
  checkpoints.Snapshot(1, 7);
  auto ack = responder.WaitForAck(1);
  ASSERT_TRUE(ack.has_value()) << "no acknowledgement of checkpoint 1";
  EXPECT_EQ(ack->job_id(), "job");
  EXPECT_EQ(ack->task_id(), "job/0/0/0");
  ASSERT_EQ(ack->operators_size(), 1);
  const proto::OperatorSnapshot& snap = ack->operators(0);
  EXPECT_EQ(snap.vertex_id(), 3);
  ASSERT_TRUE(snap.has_keyed());
  EXPECT_GT(snap.keyed().files_size(), 0);
  EXPECT_EQ(ack->stats().alignment_ms(), 7);
  EXPECT_GT(ack->stats().bytes_total(), 0);
  EXPECT_EQ(ack->stats().bytes_uploaded(), ack->stats().bytes_total()) << "the first checkpoint uploads everything";
  for (const auto& f : snap.keyed().files()) EXPECT_TRUE(storage_->Exists(f.path()).ok()) << f.path();

  // Restored, the snapshot holds every one of the 1000 keys.
  const std::string restored = root_ + "/restored";
  ASSERT_TRUE(RestoreKeyedState(*storage_, snap.keyed(), {0, 127}, restored).ok());
  {
    auto backend = KeyedStateBackend::Open({.path = restored, .wipe_on_open = false});
    ASSERT_TRUE(backend.ok()) << backend.status();
    auto id = (*backend)->RegisterState("acc", true);
    ASSERT_TRUE(id.ok());
    int keys = 0;
    ASSERT_TRUE((*backend)->ForEachKey(*id, {0, 127}, [&](const StateKeyView&) { ++keys; }).ok());
    EXPECT_EQ(keys, 1000);
  }

  // An operator opened on the restored state goes on counting: each key
  // had 5 records at checkpoint 1.
  {
    OperatorCounters counters2;
    LastRow last;
    std::unique_ptr<AggregateOperator> again = OpenCount(counters2, last, restored, /*restored=*/true);
    ASSERT_NE(again, nullptr);
    Push(*again, 0, 1, 1000);
    EXPECT_EQ(last.count, 6);
  }

  // The 1000 keys live in the write-back cache: each checkpoint carries
  // them in CACHE-DELTA (not through RocksDB), the newest values.
  checkpoints.OnNotification(1, true);
  Push(op, 5000, 10, 1000);
  checkpoints.Snapshot(2, 0);
  ack = responder.WaitForAck(2);
  ASSERT_TRUE(ack.has_value()) << "no acknowledgement of checkpoint 2";
  bool delta = false;
  for (const auto& f : ack->operators(0).keyed().files()) delta = delta || f.name() == CacheDelta::kFileName;
  EXPECT_TRUE(delta);
  EXPECT_LE(ack->stats().bytes_uploaded(), ack->stats().bytes_total());
}

// With a copy thread, the copies a snapshot left for later run there, and
// only then the upload on the upload thread: an upload held up (as a
// low-priority thread is on a busy CPU) holds up neither the copy thread
// (it answers a call while the upload waits) nor the task, and the
// checkpoint holds the state of its barrier, not the changes made while
// its upload waited.
TEST_F(TaskCheckpointsTest, CopiesOnTheCopyThreadWhileTheUploadWaits) {
  ASSERT_TRUE(OpenCounting());
  AggregateOperator& op = *counting_;

  FakeResponder responder;
  Executor uploads("test-uploads");
  Executor copies("test-copies");
  TaskCheckpoints checkpoints("job", "job/0/0/0", 0, {0, 127}, storage_, &responder, &uploads, &copies);
  checkpoints.AddOperator(3, &op, StateDir());

  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  uploads.Post([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  // Checkpoint 1 holds 5 of each of the 1000 keys; the acknowledgement waits
  // for the upload thread.
  Push(op, 0, 5000, 1000);
  checkpoints.Snapshot(1, 0);
  const std::thread::id copy_thread = copies.Call([] { return std::this_thread::get_id(); });
  EXPECT_NE(copy_thread, std::this_thread::get_id());
  // The copies have run (the call came after them); the task changes every
  // key again while the upload still waits.
  Push(op, 5000, 5000, 1000);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  auto ack = responder.WaitForAck(1);
  ASSERT_TRUE(ack.has_value()) << "no acknowledgement of checkpoint 1";
  ExpectRestoredCounts(*ack, 5);
}

// Copied in slices on the task thread: the snapshot's copy waits for
// CopySlice calls (the task's, between batches of its input), the upload
// only after the last one, and the checkpoint holds the state of its
// barrier though the task changed every key between the slices. The copy
// thread copies nothing.
TEST_F(TaskCheckpointsTest, CopiesInSlicesOnTheTaskThread) {
  ASSERT_TRUE(OpenCounting());
  AggregateOperator& op = *counting_;

  FakeResponder responder;
  Executor uploads("test-uploads");
  Executor copies("test-copies");
  TaskCheckpoints checkpoints("job", "job/0/0/0", 0, {0, 127}, storage_, &responder, &uploads, &copies);
  checkpoints.AddOperator(3, &op, StateDir());
  checkpoints.set_copy_in_slices(true);

  // Checkpoint 1 holds 5 of each of the 1000 keys (1000 cache entries).
  Push(op, 0, 5000, 1000);
  checkpoints.Snapshot(1, 0);
  ASSERT_TRUE(checkpoints.copy_pending());
  // Half the keys change before any slice: the task copies those itself.
  Push(op, 5000, 500, 1000);
  int slices = 0;
  while (checkpoints.copy_pending()) {
    // Nothing is posted before the last slice.
    EXPECT_EQ(uploads.Call([&] { return responder.acks(); }), 0u) << "after " << slices << " slices";
    checkpoints.CopySlice(100);
    ++slices;
    Push(op, 5500 + slices, 1, 1000);  // and the task goes on between slices
    ASSERT_LE(slices, 1000) << "the copy does not end";
  }
  EXPECT_EQ(slices, 11) << "the RocksDB checkpoint's links, then 1000 entries, 100 a slice";
  // The rest of the keys change after the copy.
  Push(op, 6000, 1000, 1000);
  auto ack = responder.WaitForAck(1);
  ASSERT_TRUE(ack.has_value()) << "no acknowledgement of checkpoint 1";
  ExpectRestoredCounts(*ack, 5);
}

// A copy still under way when the next snapshot is taken, or when the task
// ends (WaitForUploads), or when copying in slices is turned off, is
// finished there: every checkpoint is acknowledged.
TEST_F(TaskCheckpointsTest, ACopyInSlicesIsFinishedByTheNextSnapshotAndAtTheEnd) {
  std::unique_ptr<InSlices> t = CountingInSlices();
  ASSERT_NE(t, nullptr);
  AggregateOperator& op = *counting_;
  FakeResponder& responder = t->responder;
  TaskCheckpoints& checkpoints = *t->checkpoints;
  for (int id = 1; id <= 2; ++id) {
    Push(op, id * 1000, 1000, 1000);
    checkpoints.Snapshot(id, 0);
    EXPECT_TRUE(checkpoints.copy_pending()) << "checkpoint " << id;
  }
  EXPECT_TRUE(responder.WaitForAck(1).has_value()) << "checkpoint 2's snapshot did not finish 1's copy";
  std::atomic<bool> cancelled{false};
  checkpoints.WaitForUploads(cancelled);
  EXPECT_FALSE(checkpoints.copy_pending());
  EXPECT_TRUE(responder.WaitForAck(2).has_value()) << "WaitForUploads did not finish checkpoint 2's copy";

  Push(op, 3000, 1000, 1000);
  checkpoints.Snapshot(3, 0);
  EXPECT_TRUE(checkpoints.copy_pending());
  checkpoints.set_copy_in_slices(false);
  EXPECT_FALSE(checkpoints.copy_pending());
  EXPECT_TRUE(responder.WaitForAck(3).has_value());
  // Off, the copy runs at once (here on the upload thread).
  Push(op, 4000, 1000, 1000);
  checkpoints.Snapshot(4, 0);
  EXPECT_FALSE(checkpoints.copy_pending());
  EXPECT_TRUE(responder.WaitForAck(4).has_value());
}

// A snapshot taken while copying in slices that waits for its channel state
// until after slicing is off (the input ended meanwhile) has its RocksDB
// files linked when it is posted, on this thread: RocksDB deletes files
// again before the upload, and the upload holds the state at the snapshot.
TEST_F(TaskCheckpointsTest, ASnapshotWaitingForItsChannelStatePastTheSlicesIsLinkedWhenPosted) {
  std::unique_ptr<InSlices> t = CountingInSlices();
  ASSERT_NE(t, nullptr);
  AggregateOperator& op = *counting_;
  TaskCheckpoints& checkpoints = *t->checkpoints;
  Push(op, 0, 5000, 1000);
  checkpoints.Snapshot(1, 0, /*channel_state_pending=*/true);
  EXPECT_EQ(FileDeletionsEnabled(*op.keyed_state()), 0u) << "listed, not linked";
  checkpoints.set_copy_in_slices(false);
  checkpoints.SetChannelState(1, ChannelState(), /*unaligned=*/false);
  EXPECT_EQ(FileDeletionsEnabled(*op.keyed_state()), 1u) << "linked when posted, on the task thread";
  Push(op, 5000, 1000, 1000);
  auto ack = t->responder.WaitForAck(1);
  ASSERT_TRUE(ack.has_value()) << "no acknowledgement of checkpoint 1";
  ExpectRestoredCounts(*ack, 5);
}

}  // namespace
}  // namespace vstream
