#include "jobmanager/checkpoint_coordinator.h"

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Records what the coordinator asks of TaskManagers. Trigger results come
// back at once, as `trigger_error` says.
class TestingCheckpointGateway : public CheckpointGateway {
 public:
  struct Trigger {
    std::string address;
    proto::TriggerCheckpointRequest request;
  };
  void TriggerCheckpoint(const std::string& address, const proto::TriggerCheckpointRequest& request,
                         std::function<void(const std::string&)> done) override {
    triggers.push_back({address, request});
    done(trigger_error);
  }
  void NotifyCheckpoint(const std::string&, const proto::CheckpointNotification& n) override {
    notifications.push_back(n);
  }

  // Task ids triggered for checkpoint `id`.
  std::vector<std::string> TriggeredTasks(int64_t id) const {
    std::vector<std::string> out;
    for (const auto& t : triggers) {
      if (t.request.checkpoint_id() == id) out.push_back(t.request.task_id());
    }
    return out;
  }
  std::vector<std::string> Notified(int64_t id, bool completed) const {
    std::vector<std::string> out;
    for (const auto& n : notifications) {
      if (n.checkpoint_id() == id && n.completed() == completed) out.push_back(n.task_id());
    }
    return out;
  }

  std::string trigger_error;
  std::vector<Trigger> triggers;
  std::vector<proto::CheckpointNotification> notifications;
};

// A clock that moves only when told; timers run as it passes them, in order.
class ManualTimers : public MainThreadTimers {
 public:
  int64_t Now() override { return now_; }
  void Schedule(int64_t delay_ms, std::function<void()> fn) override {
    timers_.emplace(now_ + delay_ms, std::move(fn));
  }
  void Advance(int64_t ms) {
    const int64_t until = now_ + ms;
    while (!timers_.empty() && timers_.begin()->first <= until) {
      auto it = timers_.begin();
      now_ = std::max(now_, it->first);
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    now_ = until;
  }

 private:
  int64_t now_ = 1'700'000'000'000;
  std::multimap<int64_t, std::function<void()>> timers_;
};

// A job of two source tasks and three others, with a temporary checkpoint
// storage and job store. Build() makes the coordinator.
class CheckpointCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ckpt-coordinator-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    spec_.set_interval_ms(1000);
    spec_.set_timeout_ms(60'000);
    spec_.set_max_concurrent(1);
    spec_.set_retained(3);
  }
  void TearDown() override {
    coordinator_.reset();
    retired_.clear();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string StoragePath() const { return (dir_ / "storage").string(); }
  std::string StorePath() const { return (dir_ / "jobs" / "job" / "checkpoints.pb").string(); }

  std::unique_ptr<CheckpointCoordinator> Make() {
    auto storage = CheckpointStorage::Open(StoragePath());
    EXPECT_TRUE(storage.ok()) << storage.status();
    CheckpointCoordinatorOptions options;
    options.job_id = "job";
    options.spec = spec_;
    options.channel_layout = "0>1:0:HASH:0,:2:2;";
    auto c = CheckpointCoordinator::Create(std::move(options), std::move(*storage),
                                           std::make_unique<CompletedCheckpointStore>(StorePath()), gateway_,
                                           timers_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  void Build() {
    // A replaced coordinator lives on, as in the JobManager: its timers may
    // still run.
    if (coordinator_) retired_.push_back(std::move(coordinator_));
    coordinator_ = Make();
    ASSERT_NE(coordinator_, nullptr);
    storage_ = *CheckpointStorage::Open(StoragePath());
    coordinator_->SetTasks({{"src-0", "tm1:1", true, {0}, 0},
                            {"src-1", "tm2:1", true, {0}, 1},
                            {"agg-0", "tm1:1", false, {1}, 0},
                            {"agg-1", "tm2:1", false, {1}, 1},
                            {"sink-0", "tm1:1", false, {2}, 0}});
  }
  const std::vector<std::string>& AllTasks() const { return all_tasks_; }
  void RunAll() {
    for (const auto& t : all_tasks_) coordinator_->OnTaskState(t, proto::TASK_RUNNING);
  }

  // Writes `files` to storage (as the task would upload them) and
  // acknowledges checkpoint `id` with them. A name under shared/ is a shared
  // file; anything else is private.
  void Ack(const std::string& task, int64_t id, const std::vector<std::string>& files = {}, int64_t bytes = 100,
           int64_t alignment_ms = 5) {
    proto::AcknowledgeCheckpointRequest ack;
    ack.set_job_id("job");
    ack.set_task_id(task);
    ack.set_checkpoint_id(id);
    proto::OperatorSnapshot* op = ack.add_operators();
    // src-<i>: vertex 0, agg-<i>: vertex 1, sink-<i>: vertex 2; subtask i.
    op->set_vertex_id(task.rfind("src", 0) == 0 ? 0 : task.rfind("agg", 0) == 0 ? 1 : 2);
    op->set_subtask_index(task.back() - '0');
    op->set_operator_state("pos");
    for (const std::string& f : files) {
      proto::StateFile* sf = op->mutable_keyed()->add_files();
      sf->set_size(4);
      if (f.rfind("inline:", 0) == 0) {  // its bytes in the handle, no path
        sf->set_name(f.substr(7));
        sf->set_data("data");
        continue;
      }
      ASSERT_TRUE(storage_->Write(f, "data").ok());
      sf->set_name(fs::path(f).filename().string());
      sf->set_path(f);
      sf->set_shared(f.rfind("shared/", 0) == 0);
    }
    ack.mutable_stats()->set_bytes_total(bytes);
    ack.mutable_stats()->set_alignment_ms(alignment_ms);
    coordinator_->ReceiveAcknowledge(ack);
  }
  void AckAll(int64_t id) {
    for (const auto& t : all_tasks_) Ack(t, id);
  }

  bool Exists(const std::string& path) const { return fs::exists(dir_ / "storage" / path); }

  proto::JobStatus Status() const {
    proto::JobStatus s;
    coordinator_->AddStatus(&s);
    return s;
  }
  static std::vector<int64_t> Ids(const std::vector<CheckpointId>& ids) {
    std::vector<int64_t> out;
    for (CheckpointId id : ids) out.push_back(id.value);
    return out;
  }

  fs::path dir_;
  proto::CheckpointingSpec spec_;
  TestingCheckpointGateway gateway_;
  ManualTimers timers_;
  std::unique_ptr<CheckpointStorage> storage_;  // the same directory, to look at
  std::unique_ptr<CheckpointCoordinator> coordinator_;
  std::vector<std::unique_ptr<CheckpointCoordinator>> retired_;
  const std::vector<std::string> all_tasks_ = {"src-0", "src-1", "agg-0", "agg-1", "sink-0"};
};

TEST_F(CheckpointCoordinatorTest, TriggersOnceEveryTaskRuns) {
  Build();
  timers_.Advance(5000);
  EXPECT_THAT(gateway_.triggers, IsEmpty());
  for (size_t i = 0; i + 1 < AllTasks().size(); ++i) coordinator_->OnTaskState(AllTasks()[i], proto::TASK_RUNNING);
  timers_.Advance(5000);
  EXPECT_THAT(gateway_.triggers, IsEmpty()) << "sink-0 is not running yet";

  coordinator_->OnTaskState("sink-0", proto::TASK_RUNNING);
  timers_.Advance(999);
  EXPECT_THAT(gateway_.triggers, IsEmpty());
  timers_.Advance(1);
  EXPECT_THAT(gateway_.TriggeredTasks(1), ElementsAre("src-0", "src-1", "agg-0", "agg-1", "sink-0"))
      << "every running task hears of it; only sources act on it while their input runs";
  ASSERT_EQ(gateway_.triggers.size(), 5u);
  EXPECT_EQ(gateway_.triggers[0].address, "tm1:1");
  EXPECT_EQ(gateway_.triggers[1].address, "tm2:1");
  EXPECT_EQ(gateway_.triggers[0].request.timestamp_ms(), timers_.Now());
  EXPECT_EQ(Ids(coordinator_->pending()), std::vector<int64_t>{1});
  ASSERT_EQ(Status().checkpoints_size(), 1);
  EXPECT_EQ(Status().checkpoints(0).state(), proto::CHECKPOINT_IN_PROGRESS);
  EXPECT_EQ(Status().checkpoints(0).tasks(), 5);
}

TEST_F(CheckpointCoordinatorTest, CompletesOnlyAfterEveryTaskAcknowledged) {
  Build();
  RunAll();
  timers_.Advance(1000);
  const int64_t triggered_at = timers_.Now();
  Ack("src-0", 1, {"shared/src-0-000001.sst", "chk-1/10-0/MANIFEST-000001"}, 100, 0);
  Ack("src-1", 1, {}, 50, 0);
  Ack("agg-0", 1, {}, 10, 30);
  timers_.Advance(250);
  Ack("agg-1", 1, {}, 10, 70);
  EXPECT_EQ(Ids(coordinator_->pending()), std::vector<int64_t>{1});
  EXPECT_FALSE(Exists("chk-1/_metadata"));
  EXPECT_THAT(gateway_.notifications, IsEmpty());

  Ack("sink-0", 1, {}, 5, 20);
  EXPECT_THAT(Ids(coordinator_->pending()), IsEmpty());
  EXPECT_EQ(coordinator_->latest_completed().value, 1);

  auto bytes = storage_->Read("chk-1/_metadata");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  proto::CheckpointMetadata m;
  ASSERT_TRUE(m.ParseFromString(*bytes));
  EXPECT_EQ(m.job_id(), "job");
  EXPECT_EQ(m.checkpoint_id(), 1);
  EXPECT_EQ(m.timestamp_ms(), triggered_at);
  EXPECT_EQ(m.completed_at_ms(), triggered_at + 250);
  EXPECT_EQ(m.channel_layout(), "0>1:0:HASH:0,:2:2;");
  ASSERT_EQ(m.operators_size(), 5);
  for (int i = 1; i < m.operators_size(); ++i) {
    EXPECT_LT(std::make_pair(m.operators(i - 1).vertex_id(), m.operators(i - 1).subtask_index()),
              std::make_pair(m.operators(i).vertex_id(), m.operators(i).subtask_index()));
  }
  EXPECT_EQ(m.operators(0).keyed().files_size(), 2);
  EXPECT_EQ(m.operators(0).operator_state(), "pos");

  EXPECT_EQ(gateway_.Notified(1, true), AllTasks());

  // Recorded in the job store.
  auto record = CompletedCheckpointStore(StorePath()).Load();
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_EQ(record->checkpoints_size(), 1);
  EXPECT_EQ(record->checkpoints(0).checkpoint_id(), 1);
  EXPECT_EQ(record->checkpoints(0).metadata_path(), "chk-1/_metadata");
  EXPECT_EQ(record->checkpoints(0).storage(), coordinator_->storage_uri());

  const proto::JobStatus st = Status();
  EXPECT_EQ(st.latest_completed_checkpoint(), 1);
  EXPECT_EQ(st.checkpoint_storage(), "file://" + StoragePath());
  ASSERT_EQ(st.checkpoints_size(), 1);
  EXPECT_EQ(st.checkpoints(0).state(), proto::CHECKPOINT_COMPLETED);
  EXPECT_EQ(st.checkpoints(0).duration_ms(), 250);
  EXPECT_EQ(st.checkpoints(0).bytes(), 175);
  EXPECT_EQ(st.checkpoints(0).alignment_ms(), 70);
  EXPECT_EQ(st.checkpoints(0).acknowledged(), 5);
  EXPECT_EQ(st.checkpoints(0).triggered_at_ms(), triggered_at);
}

TEST_F(CheckpointCoordinatorTest, CheckpointIdsGoUpEveryInterval) {
  Build();
  RunAll();
  for (int64_t id = 1; id <= 3; ++id) {
    timers_.Advance(1000);
    EXPECT_EQ(gateway_.TriggeredTasks(id).size(), 5u) << id;
    AckAll(id);
  }
  EXPECT_EQ(coordinator_->latest_completed().value, 3);
  EXPECT_EQ(Ids(coordinator_->retained()), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(CheckpointCoordinatorTest, TimeoutAbortsAndDeletesTheCheckpointDirectory) {
  spec_.set_timeout_ms(5000);
  Build();
  RunAll();
  timers_.Advance(1000);
  Ack("src-0", 1, {"chk-1/0-0/MANIFEST-000003", "shared/src-0-000007.sst"});
  Ack("agg-0", 1, {"chk-1/10-0/CURRENT"});
  ASSERT_TRUE(Exists("chk-1/0-0/MANIFEST-000003"));
  timers_.Advance(4999);
  EXPECT_EQ(Ids(coordinator_->pending()), std::vector<int64_t>{1});
  timers_.Advance(1);
  // The periodic trigger that waited for 1 to end starts 2 at once.
  EXPECT_EQ(Ids(coordinator_->pending()), std::vector<int64_t>{2});
  EXPECT_FALSE(Exists("chk-1"));
  EXPECT_FALSE(Exists("shared/src-0-000007.sst"));
  EXPECT_EQ(gateway_.Notified(1, false), AllTasks());
  EXPECT_EQ(coordinator_->latest_completed().value, 0);

  const proto::JobStatus st = Status();
  ASSERT_GE(st.checkpoints_size(), 1);
  EXPECT_EQ(st.checkpoints(0).checkpoint_id(), 1);
  EXPECT_EQ(st.checkpoints(0).state(), proto::CHECKPOINT_FAILED);
  EXPECT_EQ(st.checkpoints(0).duration_ms(), 5000);
  EXPECT_THAT(st.checkpoints(0).failure(), HasSubstr("expired after 5000 ms with 2 of 5 tasks done"));
  EXPECT_THAT(st.checkpoints(0).failure(), HasSubstr("waiting for src-1, agg-1, sink-0"));

  // Checkpointing goes on: the next one completes.
  ASSERT_EQ(gateway_.TriggeredTasks(2).size(), 5u);
  AckAll(2);
  EXPECT_EQ(coordinator_->latest_completed().value, 2);
}

TEST_F(CheckpointCoordinatorTest, DeclineAbortsPendingCheckpoint) {
  Build();
  RunAll();
  timers_.Advance(1000);
  // A file the completed checkpoint 1 refers to, and one that 2 uploads.
  Ack("src-0", 1, {"shared/src-0-000001.sst"});
  for (size_t i = 1; i < AllTasks().size(); ++i) Ack(AllTasks()[i], 1);
  timers_.Advance(1000);
  Ack("src-0", 2, {"shared/src-0-000001.sst", "shared/src-0-000002.sst", "chk-2/0-0/MANIFEST-000002"});

  proto::DeclineCheckpointRequest decline;
  decline.set_job_id("job");
  decline.set_task_id("agg-1");
  decline.set_checkpoint_id(2);
  decline.set_reason("cannot snapshot: disk full");
  coordinator_->ReceiveDecline(decline);

  EXPECT_THAT(Ids(coordinator_->pending()), IsEmpty());
  EXPECT_FALSE(Exists("chk-2"));
  EXPECT_FALSE(Exists("shared/src-0-000002.sst"));
  EXPECT_TRUE(Exists("shared/src-0-000001.sst")) << "checkpoint 1 still refers to it";
  EXPECT_TRUE(Exists("chk-1/_metadata"));
  EXPECT_EQ(gateway_.Notified(2, false), AllTasks());
  const proto::JobStatus st = Status();
  ASSERT_EQ(st.checkpoints_size(), 2);
  EXPECT_EQ(st.checkpoints(1).state(), proto::CHECKPOINT_FAILED);
  EXPECT_EQ(st.checkpoints(1).failure(), "task agg-1 declined it: cannot snapshot: disk full");
  EXPECT_EQ(st.latest_completed_checkpoint(), 1);
}

TEST_F(CheckpointCoordinatorTest, RetentionDeletesOldCheckpointsAndTheSharedFilesOnlyTheyReferTo) {
  spec_.set_retained(2);
  Build();
  RunAll();
  // shared files per checkpoint: 1: a b, 2: b c, 3: c d, 4: d e
  const std::vector<std::vector<std::string>> files = {
      {"shared/a.sst", "shared/b.sst", "chk-1/0-0/MANIFEST"},
      {"shared/b.sst", "shared/c.sst", "chk-2/0-0/MANIFEST"},
      {"shared/c.sst", "shared/d.sst", "chk-3/0-0/MANIFEST"},
      {"shared/d.sst", "shared/e.sst", "chk-4/0-0/MANIFEST"}};
  for (int64_t id = 1; id <= 4; ++id) {
    timers_.Advance(1000);
    Ack("src-0", id, files[id - 1]);
    for (size_t i = 1; i < AllTasks().size(); ++i) Ack(AllTasks()[i], id);
    ASSERT_EQ(coordinator_->latest_completed().value, id);
    if (id == 3) {
      EXPECT_EQ(Ids(coordinator_->retained()), (std::vector<int64_t>{2, 3}));
      EXPECT_FALSE(Exists("chk-1"));
      EXPECT_FALSE(Exists("shared/a.sst"));
      EXPECT_TRUE(Exists("shared/b.sst")) << "checkpoint 2 refers to it";
      EXPECT_TRUE(Exists("chk-2/_metadata"));
      EXPECT_TRUE(Exists("chk-3/_metadata"));
    }
  }
  EXPECT_EQ(Ids(coordinator_->retained()), (std::vector<int64_t>{3, 4}));
  EXPECT_FALSE(Exists("chk-2"));
  EXPECT_FALSE(Exists("shared/b.sst"));
  EXPECT_TRUE(Exists("shared/c.sst"));
  EXPECT_TRUE(Exists("shared/d.sst"));
  EXPECT_TRUE(Exists("shared/e.sst"));
  EXPECT_TRUE(Exists("chk-3/0-0/MANIFEST"));

  auto record = CompletedCheckpointStore(StorePath()).Load();
  ASSERT_TRUE(record.ok());
  ASSERT_EQ(record->checkpoints_size(), 2);
  EXPECT_EQ(record->checkpoints(0).checkpoint_id(), 3);
  EXPECT_EQ(record->checkpoints(1).checkpoint_id(), 4);
}

TEST_F(CheckpointCoordinatorTest, MaxConcurrentIsRespected) {
  spec_.set_max_concurrent(2);
  Build();
  RunAll();
  timers_.Advance(1000);
  timers_.Advance(1000);
  EXPECT_EQ(Ids(coordinator_->pending()), (std::vector<int64_t>{1, 2}));
  timers_.Advance(5000);
  EXPECT_EQ(Ids(coordinator_->pending()), (std::vector<int64_t>{1, 2}));
  EXPECT_THAT(gateway_.TriggeredTasks(3), IsEmpty());

  // A free slot: the waiting trigger goes at once.
  AckAll(1);
  EXPECT_EQ(Ids(coordinator_->pending()), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(gateway_.TriggeredTasks(3).size(), 5u);

  // Completing 3 subsumes the older 2.
  AckAll(3);
  EXPECT_EQ(coordinator_->latest_completed().value, 3);
  const proto::JobStatus st = Status();
  bool found = false;
  for (const auto& c : st.checkpoints()) {
    if (c.checkpoint_id() != 2) continue;
    found = true;
    EXPECT_EQ(c.state(), proto::CHECKPOINT_FAILED);
    EXPECT_EQ(c.failure(), "subsumed by checkpoint 3");
  }
  EXPECT_TRUE(found);
}

TEST_F(CheckpointCoordinatorTest, MinPauseDelaysTheNextTriggerAfterACompletion) {
  spec_.set_min_pause_ms(3000);
  Build();
  RunAll();
  timers_.Advance(1000);
  timers_.Advance(500);
  AckAll(1);  // completed at 1500
  timers_.Advance(2999);
  EXPECT_THAT(gateway_.TriggeredTasks(2), IsEmpty());
  timers_.Advance(1);
  EXPECT_EQ(gateway_.TriggeredTasks(2).size(), 5u);
}

TEST_F(CheckpointCoordinatorTest, FinishedTasksCountAsAcknowledgedWithNoState) {
  Build();
  RunAll();
  coordinator_->OnTaskState("src-1", proto::TASK_FINISHED);
  timers_.Advance(1000);
  EXPECT_THAT(gateway_.TriggeredTasks(1), ElementsAre("src-0", "agg-0", "agg-1", "sink-0"))
      << "a finished task is not triggered";
  Ack("src-0", 1);
  Ack("agg-0", 1);
  Ack("agg-1", 1);
  coordinator_->OnTaskState("sink-0", proto::TASK_FINISHED);  // before acknowledging
  EXPECT_EQ(coordinator_->latest_completed().value, 1);
  EXPECT_THAT(gateway_.Notified(1, true), ElementsAre("src-0", "agg-0", "agg-1"));
  auto m = storage_->Read("chk-1/_metadata");
  ASSERT_TRUE(m.ok());
  proto::CheckpointMetadata metadata;
  ASSERT_TRUE(metadata.ParseFromString(*m));
  // Three acknowledged; src-1 and sink-0 finished, which the metadata says
  // so that a restore does not run them again.
  std::vector<std::tuple<int, int, bool>> ops;
  for (const auto& op : metadata.operators()) ops.emplace_back(op.vertex_id(), op.subtask_index(), op.finished());
  EXPECT_THAT(ops, ::testing::UnorderedElementsAre(std::make_tuple(0, 0, false), std::make_tuple(0, 1, true),
                                                   std::make_tuple(1, 0, false), std::make_tuple(1, 1, false),
                                                   std::make_tuple(2, 0, true)));
  EXPECT_EQ(Status().checkpoints(0).tasks(), 4);

  // Every task finished: nothing to checkpoint.
  for (const char* t : {"src-0", "agg-0", "agg-1"}) coordinator_->OnTaskState(t, proto::TASK_FINISHED);
  EXPECT_EQ(coordinator_->TriggerCheckpoint(), TriggerResult::kNoRunningSource);
}

TEST_F(CheckpointCoordinatorTest, TaskFailureAbortsPendingCheckpoints) {
  Build();
  RunAll();
  timers_.Advance(1000);
  Ack("src-0", 1, {"chk-1/0-0/CURRENT"});
  coordinator_->OnTaskState("agg-1", proto::TASK_FAILED);
  EXPECT_THAT(Ids(coordinator_->pending()), IsEmpty());
  EXPECT_FALSE(Exists("chk-1"));
  EXPECT_EQ(Status().checkpoints(0).failure(), "task agg-1 failed");
  EXPECT_THAT(gateway_.Notified(1, false), ElementsAre("src-0", "src-1", "agg-0", "sink-0"));

  coordinator_->OnTaskState("agg-1", proto::TASK_RUNNING);  // a failed task stays failed
  EXPECT_EQ(coordinator_->TriggerCheckpoint(), TriggerResult::kTasksNotRunning);
}

TEST_F(CheckpointCoordinatorTest, ShutdownAbortsAndStopsTriggering) {
  Build();
  RunAll();
  timers_.Advance(1000);
  coordinator_->Shutdown("the job was cancelled");
  EXPECT_THAT(Ids(coordinator_->pending()), IsEmpty());
  EXPECT_EQ(Status().checkpoints(0).failure(), "the job was cancelled");
  const size_t triggers = gateway_.triggers.size();
  timers_.Advance(10'000);
  EXPECT_EQ(gateway_.triggers.size(), triggers);
  EXPECT_EQ(coordinator_->TriggerCheckpoint(), TriggerResult::kStopped);
}

TEST_F(CheckpointCoordinatorTest, AcknowledgementsOfUnknownOrAbortedCheckpointsAreIgnored) {
  Build();
  RunAll();
  timers_.Advance(1000);
  Ack("src-0", 7);  // never triggered
  Ack("nobody", 1);  // no such task
  EXPECT_EQ(Ids(coordinator_->pending()), std::vector<int64_t>{1});
  coordinator_->Shutdown("stop");

  // A late acknowledgement of the aborted checkpoint: its files go.
  Ack("src-1", 1, {"shared/src-1-000009.sst", "chk-1/1-0/MANIFEST-000009"});
  EXPECT_FALSE(Exists("shared/src-1-000009.sst"));
  EXPECT_FALSE(Exists("chk-1"));
  EXPECT_EQ(coordinator_->latest_completed().value, 0);
}

// Inline state files (small private files whose bytes travel in the handle,
// state/state_snapshot.h) have no path: they go into _metadata as they are,
// and completing, aborting or discarding a checkpoint deletes nothing for
// them.
TEST_F(CheckpointCoordinatorTest, InlineStateFilesTravelInTheMetadataAndAreNeverDeleted) {
  spec_.set_timeout_ms(5000);
  Build();
  RunAll();
  timers_.Advance(1000);
  Ack("src-0", 1, {"shared/src-0-000001.sst", "inline:MANIFEST-000001"});
  for (size_t i = 1; i < AllTasks().size(); ++i) Ack(AllTasks()[i], 1, {"inline:CURRENT"});
  ASSERT_EQ(coordinator_->latest_completed().value, 1);
  auto bytes = storage_->Read("chk-1/_metadata");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  proto::CheckpointMetadata m;
  ASSERT_TRUE(m.ParseFromString(*bytes));
  int inline_files = 0;
  for (const auto& op : m.operators()) {
    for (const auto& f : op.keyed().files()) {
      if (!f.path().empty()) continue;
      ++inline_files;
      EXPECT_EQ(f.data(), "data") << f.name();
    }
  }
  EXPECT_EQ(inline_files, 5);

  // Checkpoint 2 times out with inline files acknowledged, and a late
  // acknowledgement of it comes in: only chk-2 goes.
  timers_.Advance(1000);
  Ack("src-0", 2, {"shared/src-0-000001.sst", "inline:MANIFEST-000002"});
  timers_.Advance(5000);
  EXPECT_EQ(gateway_.Notified(2, false), AllTasks());
  Ack("src-1", 2, {"inline:CURRENT"});
  EXPECT_TRUE(Exists("chk-1/_metadata"));
  EXPECT_TRUE(Exists("shared/src-0-000001.sst")) << "checkpoint 1 refers to it";
  EXPECT_EQ(coordinator_->latest_completed().value, 1);
}

TEST_F(CheckpointCoordinatorTest, AbortedSharedFilesWaitWhileAnotherCheckpointIsPending) {
  spec_.set_max_concurrent(2);
  Build();
  RunAll();
  timers_.Advance(1000);
  timers_.Advance(1000);
  // Both pending checkpoints upload the same new SST under the same name.
  Ack("src-0", 1, {"shared/src-0-000004.sst"});
  proto::DeclineCheckpointRequest decline;
  decline.set_task_id("sink-0");
  decline.set_checkpoint_id(1);
  decline.set_reason("no");
  coordinator_->ReceiveDecline(decline);
  EXPECT_TRUE(Exists("shared/src-0-000004.sst")) << "checkpoint 2 may still refer to it";

  Ack("src-0", 2, {"shared/src-0-000004.sst"});
  for (size_t i = 1; i < AllTasks().size(); ++i) Ack(AllTasks()[i], 2);
  EXPECT_EQ(coordinator_->latest_completed().value, 2);
  EXPECT_TRUE(Exists("shared/src-0-000004.sst")) << "checkpoint 2 refers to it";
}

TEST_F(CheckpointCoordinatorTest, AFailedTriggerAbortsTheCheckpoint) {
  Build();
  RunAll();
  gateway_.trigger_error = "no running task src-0";
  timers_.Advance(1000);
  EXPECT_THAT(Ids(coordinator_->pending()), IsEmpty());
  EXPECT_THAT(Status().checkpoints(0).failure(),
              HasSubstr("cannot trigger it at task src-0 on tm1:1: no running task src-0"));
}

TEST_F(CheckpointCoordinatorTest, ANewCoordinatorTakesOverTheRecordedCheckpoints) {
  spec_.set_retained(2);
  Build();
  RunAll();
  for (int64_t id = 1; id <= 2; ++id) {
    timers_.Advance(1000);
    Ack("src-0", id, {absl::StrCat("shared/x-", id, ".sst")});
    for (size_t i = 1; i < AllTasks().size(); ++i) Ack(AllTasks()[i], id);
  }
  coordinator_->Shutdown("restart");

  Build();  // the same storage and job store
  EXPECT_EQ(Ids(coordinator_->retained()), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(coordinator_->latest_completed().value, 2);
  RunAll();
  timers_.Advance(1000);
  EXPECT_EQ(gateway_.TriggeredTasks(3).size(), 5u);
  Ack("src-0", 3, {"shared/x-2.sst", "shared/x-3.sst"});
  for (size_t i = 1; i < AllTasks().size(); ++i) Ack(AllTasks()[i], 3);
  EXPECT_EQ(Ids(coordinator_->retained()), (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(Exists("shared/x-1.sst"));
  EXPECT_TRUE(Exists("shared/x-2.sst"));
}

TEST(CheckpointCoordinatorCreateTest, RejectsABadSpecAndFillsDefaults) {
  TestingCheckpointGateway gateway;
  ManualTimers timers;
  std::string tmpl = (fs::temp_directory_path() / "ckpt-create-test-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  CheckpointCoordinatorOptions options;
  options.job_id = "job";
  auto off = CheckpointCoordinator::Create(options, *CheckpointStorage::Open(tmpl), nullptr, gateway, timers);
  EXPECT_FALSE(off.ok());
  EXPECT_THAT(std::string(off.status().message()), HasSubstr("interval must be > 0"));

  options.spec.set_interval_ms(100);
  options.spec.set_retained(-1);
  auto negative = CheckpointCoordinator::Create(options, *CheckpointStorage::Open(tmpl), nullptr, gateway, timers);
  EXPECT_FALSE(negative.ok());

  // Zeros take the defaults: one at a time, retained 3, timeout 10 min.
  options.spec.set_retained(0);
  auto c = CheckpointCoordinator::Create(options, *CheckpointStorage::Open(tmpl), nullptr, gateway, timers);
  ASSERT_TRUE(c.ok()) << c.status();
  (*c)->SetTasks({{"src", "tm:1", true, {0}, 0}});
  (*c)->OnTaskState("src", proto::TASK_RUNNING);
  timers.Advance(100);
  EXPECT_EQ((*c)->pending().size(), 1u);
  EXPECT_EQ((*c)->TriggerCheckpoint(), TriggerResult::kTooManyConcurrent);
  timers.Advance(10 * 60 * 1000 - 1);
  EXPECT_EQ((*c)->pending().size(), 1u);
  timers.Advance(1);
  EXPECT_EQ((*c)->pending().size(), 1u) << "the first expired and the waiting trigger started the next";
  EXPECT_EQ((*c)->pending()[0].value, 2);
  c->reset();
  std::error_code ec;
  fs::remove_all(tmpl, ec);
}

}  // namespace
}  // namespace vstream
