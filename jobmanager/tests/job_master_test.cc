#include "jobmanager/job_master.h"

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
  void Cancel(const std::string&, const std::string& task_id) override { cancelled.push_back(task_id); }

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

}  // namespace
}  // namespace vstream
