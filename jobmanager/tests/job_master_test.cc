#include "jobmanager/job_master.h"

#include <stdlib.h>

#include <filesystem>
#include <map>

#include "gtest/gtest.h"

namespace vstream {
namespace {

// Records what the JobMaster asks of TaskManagers.
class TestingGateway : public TaskManagerGateway {
 public:
  void Deploy(const std::string& address, const proto::TaskDeploymentDescriptor& tdd,
              std::function<void(const std::string&)> done) override {
    deployed.push_back({address, tdd});
    done("");
  }
  void Cancel(const std::string&, const std::string& task_id, std::function<void(const std::string&)> done) override {
    cancelled.push_back(task_id);
    done(cancel_error);
  }
  std::string cancel_error;

  std::vector<std::pair<std::string, proto::TaskDeploymentDescriptor>> deployed;
  std::vector<std::string> cancelled;
};

// source(p) -forward-> filter(p) -hash-> sink(p)
proto::JobGraph ThreeVertexGraph(int p) {
  proto::JobGraph g;
  g.set_name("t");
  g.set_max_parallelism(128);
  for (int i = 0; i < 3; ++i) {
    auto* v = g.add_vertices();
    v->set_id(i);
    v->set_name(i == 0 ? "src" : i == 1 ? "filter" : "sink");
    v->set_parallelism(p);
  }
  auto* e1 = g.add_edges();
  e1->set_source(0);
  e1->set_target(1);
  e1->set_partitioning(proto::FORWARD);
  auto* e2 = g.add_edges();
  e2->set_source(1);
  e2->set_target(2);
  e2->set_partitioning(proto::HASH);
  e2->add_key_fields(0);
  return g;
}

TEST(JobMasterTest, ChainsForwardEdgesOfEqualParallelism) {
  ResourceManager rm;
  TestingGateway gw;
  JobMaster jm("job", ThreeVertexGraph(2), 0, rm, gw, nullptr);
  ASSERT_EQ(jm.chains().size(), 2u);
  EXPECT_EQ(jm.chains()[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(jm.chains()[1], (std::vector<int>{2}));
  EXPECT_EQ(jm.tasks().size(), 4u);
}

TEST(JobMasterTest, WaitsForSlotsWithAClearMessageThenDeploysSpreadOut) {
  ResourceManager rm;
  TestingGateway gw;
  std::string replaced;
  rm.Register("r1", "h1:1", 2, 0, &replaced);
  JobMaster jm("job", ThreeVertexGraph(3), 0, rm, gw, nullptr);
  jm.TryStart();
  EXPECT_EQ(jm.state(), proto::CREATED);
  EXPECT_NE(jm.Status().message().find("needs 3, 2 of 2 are free"), std::string::npos) << jm.Status().message();
  EXPECT_TRUE(gw.deployed.empty());

  rm.Register("r2", "h2:1", 2, 0, &replaced);
  jm.TryStart();
  EXPECT_EQ(jm.state(), proto::RUNNING);
  ASSERT_EQ(gw.deployed.size(), 6u);
  int on_h1 = 0;
  for (auto& [addr, tdd] : gw.deployed) on_h1 += addr == "h1:1";
  EXPECT_GE(on_h1, 2);
  EXPECT_LE(on_h1, 4);
  EXPECT_EQ(rm.FreeSlots(), 1);
}

TEST(JobMasterTest, HashEdgeReadsFromEveryProducerSubtask) {
  ResourceManager rm;
  TestingGateway gw;
  std::string replaced;
  rm.Register("r1", "h1:1", 2, 0, &replaced);
  JobMaster jm("job", ThreeVertexGraph(2), 0, rm, gw, nullptr);
  jm.TryStart();
  for (auto& [addr, tdd] : gw.deployed) {
    if (tdd.chain(0) == 2) {
      ASSERT_EQ(tdd.inputs_size(), 1);
      EXPECT_EQ(tdd.inputs(0).channels_size(), 2);
      for (const auto& ch : tdd.inputs(0).channels()) EXPECT_EQ(ch.subpartition(), tdd.subtask_index());
      EXPECT_EQ(tdd.outputs_size(), 0);
    } else {
      ASSERT_EQ(tdd.outputs_size(), 1);
      EXPECT_EQ(tdd.outputs(0).num_subpartitions(), 2);
      EXPECT_EQ(tdd.inputs_size(), 0);
    }
  }
}

TEST(JobMasterTest, FinishesWhenAllTasksFinishAndFailsOnATaskFailure) {
  ResourceManager rm;
  TestingGateway gw;
  std::string replaced;
  rm.Register("r1", "h1:1", 4, 0, &replaced);
  JobMaster ok("ok", ThreeVertexGraph(1), 0, rm, gw, nullptr);
  ok.TryStart();
  for (const auto& t : ok.tasks()) {
    proto::TaskReport r;
    r.set_task_id(t.task_id);
    r.set_state(proto::TASK_FINISHED);
    EXPECT_EQ(ok.state(), proto::RUNNING);
    ok.OnTaskReport(r);
  }
  EXPECT_EQ(ok.state(), proto::FINISHED);
  EXPECT_EQ(rm.FreeSlots(), 4);

  JobMaster bad("bad", ThreeVertexGraph(1), 0, rm, gw, nullptr);
  bad.TryStart();
  proto::TaskReport r;
  r.set_task_id(bad.tasks()[0].task_id);
  r.set_state(proto::TASK_FAILED);
  r.set_error("boom");
  bad.OnTaskReport(r);
  EXPECT_EQ(bad.state(), proto::FAILED);
  EXPECT_NE(bad.Status().message().find("boom"), std::string::npos);
  EXPECT_EQ(gw.cancelled.size(), 1u);  // the other task
}

TEST(JobMasterTest, LostTaskManagerFailsTheJob) {
  ResourceManager rm;
  TestingGateway gw;
  std::string replaced;
  std::string tm = rm.Register("r1", "h1:1", 2, 0, &replaced);
  JobMaster jm("job", ThreeVertexGraph(1), 0, rm, gw, nullptr);
  jm.TryStart();
  auto lost = rm.ExpireSilent(10'000, 5'000);
  ASSERT_EQ(lost, std::vector<std::string>{tm});
  jm.OnTaskManagerLost(tm);
  EXPECT_EQ(jm.state(), proto::FAILED);
}

// The checkpoint side of a TaskManager, and a clock moved by hand.
class TestingCheckpointGateway : public CheckpointGateway, public MainThreadTimers {
 public:
  void TriggerCheckpoint(const std::string&, const proto::TriggerCheckpointRequest& request,
                         std::function<void(const std::string&)> done) override {
    triggered.push_back(request.task_id());
    done("");
  }
  void NotifyCheckpoint(const std::string&, const proto::CheckpointNotification& n) override {
    notified.push_back(n.task_id());
  }
  int64_t Now() override { return now; }
  void Schedule(int64_t delay_ms, std::function<void()> fn) override { timers.emplace(now + delay_ms, std::move(fn)); }
  void Advance(int64_t ms) {
    const int64_t until = now + ms;
    while (!timers.empty() && timers.begin()->first <= until) {
      now = timers.begin()->first;
      auto fn = std::move(timers.begin()->second);
      timers.erase(timers.begin());
      fn();
    }
    now = until;
  }

  std::vector<std::string> triggered;
  std::vector<std::string> notified;
  int64_t now = 1000;
  std::multimap<int64_t, std::function<void()>> timers;
};

TEST(JobMasterTest, CheckpointsOfARunningJob) {
  std::string dir = (std::filesystem::temp_directory_path() / "job-master-test-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  ResourceManager rm;
  TestingGateway gw;
  TestingCheckpointGateway cgw;
  std::string replaced;
  rm.Register("r1", "h1:1", 2, 0, &replaced);
  proto::JobGraph graph = ThreeVertexGraph(1);
  graph.mutable_vertices(0)->mutable_op()->mutable_source();
  graph.mutable_checkpointing()->set_interval_ms(100);
  graph.mutable_restart()->set_strategy(proto::RESTART_NONE);
  CheckpointCoordinatorOptions options;
  options.job_id = "job";
  options.spec = graph.checkpointing();
  auto coordinator = CheckpointCoordinator::Create(options, *CheckpointStorage::Open(dir), nullptr, cgw, cgw);
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  JobMaster jm("job", graph, 0, rm, gw, nullptr, std::move(*coordinator));
  jm.TryStart();
  ASSERT_EQ(gw.deployed.size(), 2u);
  for (const auto& [addr, tdd] : gw.deployed) EXPECT_EQ(tdd.checkpoint_storage(), "file://" + dir);

  cgw.Advance(1000);
  EXPECT_TRUE(cgw.triggered.empty()) << "no task runs yet";
  for (const auto& t : jm.tasks()) {
    proto::TaskReport r;
    r.set_task_id(t.task_id);
    r.set_state(proto::TASK_RUNNING);
    jm.OnTaskReport(r);
  }
  cgw.Advance(100);
  ASSERT_EQ(cgw.triggered, (std::vector<std::string>{jm.tasks()[0].task_id, jm.tasks()[1].task_id}))
      << "every running task (only sources act while their input runs)";
  for (const auto& t : jm.tasks()) {
    proto::AcknowledgeCheckpointRequest ack;
    ack.set_task_id(t.task_id);
    ack.set_checkpoint_id(1);
    jm.OnAcknowledgeCheckpoint(ack);
  }
  EXPECT_EQ(jm.Status().latest_completed_checkpoint(), 1);
  EXPECT_EQ(cgw.notified.size(), 2u);

  cgw.Advance(100);
  proto::TaskReport failed;
  failed.set_task_id(jm.tasks()[1].task_id);
  failed.set_state(proto::TASK_FAILED);
  failed.set_error("boom");
  jm.OnTaskReport(failed);
  EXPECT_EQ(jm.state(), proto::FAILED);
  const proto::JobStatus st = jm.Status();
  ASSERT_EQ(st.checkpoints_size(), 2);
  EXPECT_EQ(st.checkpoints(1).state(), proto::CHECKPOINT_FAILED);
  EXPECT_EQ(st.checkpoints(1).failure(), "task " + jm.tasks()[1].task_id + " failed");
  const size_t triggers = cgw.triggered.size();
  cgw.Advance(1000);
  EXPECT_EQ(cgw.triggered.size(), triggers) << "a failed job takes no checkpoints";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(JobMasterTest, WithoutCheckpointingTasksGetNoStorage) {
  ResourceManager rm;
  TestingGateway gw;
  std::string replaced;
  rm.Register("r1", "h1:1", 2, 0, &replaced);
  JobMaster jm("job", ThreeVertexGraph(1), 0, rm, gw, nullptr);
  jm.TryStart();
  for (const auto& [addr, tdd] : gw.deployed) EXPECT_EQ(tdd.checkpoint_storage(), "");
  EXPECT_EQ(jm.Status().checkpoints_size(), 0);
  EXPECT_EQ(jm.Status().checkpoint_storage(), "");
}

}  // namespace
}  // namespace vstream
