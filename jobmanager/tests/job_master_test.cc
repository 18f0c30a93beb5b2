#include "jobmanager/job_master.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vstream {
namespace {

using ::testing::HasSubstr;

// Records what the JobMaster asks of TaskManagers.
class TestingGateway : public TaskManagerGateway {
 public:
  void Deploy(const std::string& address, const proto::TaskDeploymentDescriptor& tdd,
              std::function<void(const std::string&)> done) override {
    deployed.push_back({address, tdd});
    done("");
  }
  void Cancel(const std::string& address, const std::string& task_id,
              std::function<void(const std::string&)> done) override {
    cancelled.push_back(task_id);
    auto it = cancel_error_at.find(address);
    const std::string error = it != cancel_error_at.end() ? it->second : cancel_error;
    if (defer_cancel_replies) {
      // As the real gateway does: the reply comes later, on the main thread.
      cancel_replies.push_back([done = std::move(done), error] { done(error); });
    } else {
      done(error);
    }
  }
  // Delivers the deferred replies to Cancel.
  void ReplyToCancels() {
    std::vector<std::function<void()>> replies = std::move(cancel_replies);
    cancel_replies.clear();
    for (auto& reply : replies) reply();
  }
  std::string cancel_error;                            // the reply to every Cancel...
  std::map<std::string, std::string> cancel_error_at;  // ...but those to this address
  bool defer_cancel_replies = false;
  std::vector<std::function<void()>> cancel_replies;

  std::vector<std::pair<std::string, proto::TaskDeploymentDescriptor>> deployed;
  std::vector<std::string> cancelled;
};

// A graph of the named vertices (ids in order), each at parallelism 2, and
// AddEdge's edges (a hash edge keyed by field 0).
proto::JobGraph VerticesGraph(std::initializer_list<const char*> names) {
  proto::JobGraph g;
  g.set_name("t");
  g.set_max_parallelism(128);
  for (const char* name : names) {
    auto* v = g.add_vertices();
    v->set_id(g.vertices_size() - 1);
    v->set_name(name);
    v->set_parallelism(2);
  }
  return g;
}
void AddEdge(proto::JobGraph& g, int from, int to, proto::Partitioning p) {
  auto* e = g.add_edges();
  e->set_source(from);
  e->set_target(to);
  e->set_partitioning(p);
  if (p == proto::HASH) e->add_key_fields(0);
}

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

// A source read by two filters over forward edges is one chain, a tree (as
// Flink chains it), not a source task that ships every record to two
// filter tasks; the filters' hash edges to a join leave it.
TEST(JobMasterTest, ChainsEveryForwardConsumerOfAVertexIntoATree) {
  proto::JobGraph g = VerticesGraph({"src", "left", "right", "join", "sink"});
  AddEdge(g, 0, 1, proto::FORWARD);
  AddEdge(g, 0, 2, proto::FORWARD);
  AddEdge(g, 1, 3, proto::HASH);
  AddEdge(g, 2, 3, proto::HASH);
  AddEdge(g, 3, 4, proto::FORWARD);
  ResourceManager rm;
  TestingGateway gw;
  JobMaster jm("job", g, 0, rm, gw, nullptr);
  ASSERT_EQ(jm.chains().size(), 2u);
  EXPECT_EQ(jm.chains()[0], (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(jm.chains()[1], (std::vector<int>{3, 4}));  // the join has two inputs: it heads a chain
}

// A union of two branches of one chain (the clinical workload's two
// patterns over the deduplicated stream) joins that chain, both its input
// edges chained; a union of two sources' streams, or one behind a hash
// edge, heads a chain of its own.
TEST(JobMasterTest, ChainsAUnionOfBranchesOfOneChainIntoIt) {
  auto graph = [](bool two_sources, proto::Partitioning into_union) {
    proto::JobGraph g = VerticesGraph({"src", "other", "left", "right", "both", "sink"});
    g.mutable_vertices(4)->mutable_op()->mutable_union_();
    AddEdge(g, 0, 2, proto::FORWARD);
    AddEdge(g, two_sources ? 1 : 0, 3, proto::FORWARD);
    AddEdge(g, 2, 4, into_union);
    AddEdge(g, 3, 4, proto::FORWARD);
    AddEdge(g, 4, 5, proto::HASH);
    return g;
  };
  const proto::JobGraph branches = graph(false, proto::FORWARD);
  EXPECT_EQ(ChainedTo(branches, 4), 2);
  EXPECT_TRUE(IsChainedEdge(branches, branches.edges(2)));
  EXPECT_TRUE(IsChainedEdge(branches, branches.edges(3)));
  EXPECT_FALSE(IsChainedEdge(branches, branches.edges(4)));
  ResourceManager rm;
  TestingGateway gw;
  JobMaster jm("job", branches, 0, rm, gw, nullptr);
  ASSERT_EQ(jm.chains().size(), 3u);
  EXPECT_EQ(jm.chains()[0], (std::vector<int>{0, 2, 3, 4}));
  EXPECT_EQ(jm.chains()[1], (std::vector<int>{1}));
  EXPECT_EQ(jm.chains()[2], (std::vector<int>{5}));

  const proto::JobGraph sources = graph(true, proto::FORWARD);
  EXPECT_EQ(ChainedTo(sources, 4), -1);
  EXPECT_FALSE(IsChainedEdge(sources, sources.edges(2)));
  EXPECT_FALSE(IsChainedEdge(sources, sources.edges(3)));
  const proto::JobGraph hashed = graph(false, proto::HASH);
  EXPECT_EQ(ChainedTo(hashed, 4), -1);
  EXPECT_FALSE(IsChainedEdge(hashed, hashed.edges(3)));
  // The channel layout an unaligned checkpoint records says so too.
  EXPECT_THAT(ChannelLayout(branches), ::testing::HasSubstr("2>4:0:FORWARD::2:2:chained;3>4:0:FORWARD::2:2:chained;"));
  EXPECT_THAT(ChannelLayout(sources), ::testing::HasSubstr("2>4:0:FORWARD::2:2;3>4:0:FORWARD::2:2;"));
}

// An unaligned checkpoint's in-flight records go back into the channels
// they were taken from: into the head of a chain, at the same parallelism.
// Into a job that now chains that vertex behind its input (say, its hash
// edge became FORWARD) they have nowhere to go: refused, not dropped.
TEST(JobMasterTest, InFlightRecordsRestoreOnlyIntoAChainHeadAtTheirParallelism) {
  proto::CheckpointMetadata metadata;
  for (int subtask = 0; subtask < 2; ++subtask) {
    for (int vertex = 0; vertex < 3; ++vertex) {
      proto::OperatorSnapshot* op = metadata.add_operators();
      op->set_vertex_id(vertex);
      op->set_subtask_index(subtask);
      if (vertex == 2) op->set_channel_state("chk-3/in-flight");  // the sink, behind the hash edge
    }
  }
  EXPECT_TRUE(CheckInFlightRecordsFit(metadata, ThreeVertexGraph(2), "/ck/chk-3").ok());
  EXPECT_EQ(ChainedTo(ThreeVertexGraph(2), 1), 0);
  EXPECT_EQ(ChainedTo(ThreeVertexGraph(2), 2), -1);

  absl::Status rescaled = CheckInFlightRecordsFit(metadata, ThreeVertexGraph(3), "/ck/chk-3");
  EXPECT_EQ(rescaled.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rescaled.message()), ::testing::HasSubstr("restores only at the parallelism"));

  proto::JobGraph chained = ThreeVertexGraph(2);
  chained.mutable_edges(1)->set_partitioning(proto::FORWARD);
  chained.mutable_edges(1)->clear_key_fields();
  EXPECT_EQ(ChainedTo(chained, 2), 1);
  absl::Status moved = CheckInFlightRecordsFit(metadata, chained, "/ck/chk-3");
  EXPECT_EQ(moved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(moved.message()),
              ::testing::HasSubstr("/ck/chk-3 is an unaligned checkpoint whose in-flight records went to operator "
                                   "'sink' over the network, but this job chains it behind 'filter'"));

  // A checkpoint that recorded its channel layout restores only into the
  // same: here the sink still heads its chain, but its producer's side
  // changed (the source's forward edge became a hash exchange, so the
  // filter's chain and the positions of the outputs moved).
  metadata.set_channel_layout(ChannelLayout(ThreeVertexGraph(2)));
  EXPECT_TRUE(CheckInFlightRecordsFit(metadata, ThreeVertexGraph(2), "/ck/chk-3").ok());
  proto::JobGraph producer_changed = ThreeVertexGraph(2);
  producer_changed.mutable_edges(0)->set_partitioning(proto::HASH);
  producer_changed.mutable_edges(0)->add_key_fields(0);
  EXPECT_EQ(ChainedTo(producer_changed, 2), -1);
  absl::Status changed = CheckInFlightRecordsFit(metadata, producer_changed, "/ck/chk-3");
  EXPECT_EQ(changed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(changed.message()),
              ::testing::HasSubstr("restores only into a job whose network channels are those it was taken with"));
  // The same edges, but the hash edge now carries fewer fields (the sink's
  // in-flight records were encoded with all of them): refused too.
  proto::JobGraph projected = ThreeVertexGraph(2);
  projected.mutable_edges(1)->add_projection(0);
  EXPECT_EQ(CheckInFlightRecordsFit(metadata, projected, "/ck/chk-3").code(), absl::StatusCode::kInvalidArgument);
  // The same edges, but the source makes fewer fields (projection pushdown):
  // in-flight rows of the old job may lack a field the new one reads.
  proto::JobGraph pushed = ThreeVertexGraph(2);
  pushed.mutable_vertices(0)->mutable_op()->mutable_source()->add_reads(0);
  EXPECT_THAT(ChannelLayout(pushed), ::testing::EndsWith(";0 reads 0;"));
  EXPECT_EQ(CheckInFlightRecordsFit(metadata, pushed, "/ck/chk-3").code(), absl::StatusCode::kInvalidArgument);

  // Aligned (no in-flight records): anything goes.
  for (proto::OperatorSnapshot& op : *metadata.mutable_operators()) op.clear_channel_state();
  EXPECT_TRUE(CheckInFlightRecordsFit(metadata, producer_changed, "/ck/chk-3").ok());
  EXPECT_TRUE(CheckInFlightRecordsFit(metadata, chained, "/ck/chk-3").ok());
  EXPECT_TRUE(CheckInFlightRecordsFit(metadata, ThreeVertexGraph(3), "/ck/chk-3").ok());
}

// A keyed state sits in the key groups of its vertex's grouping when it was
// taken: it restores only into a vertex grouped the same way, whatever the
// parallelism; checkpoints that did not record it grouped by every key field.
TEST(JobMasterTest, KeyedStateRestoresOnlyIntoAVertexThatGroupsItsKeysTheSameWay) {
  proto::JobGraph grouped = ThreeVertexGraph(2);
  proto::JobVertex& alerts = *grouped.mutable_vertices(2);
  alerts.set_name("pattern_alerts");
  alerts.mutable_op()->mutable_process()->add_key_by("patient_id");
  alerts.mutable_op()->mutable_process()->add_key_by("pattern");
  alerts.set_key_group_fields(1);
  EXPECT_THAT(KeyGroupFields(grouped), ::testing::ElementsAre(::testing::Pair(2, 1)));
  proto::JobGraph by_all = grouped;
  by_all.mutable_vertices(2)->set_key_group_fields(0);
  EXPECT_TRUE(KeyGroupFields(by_all).empty());

  proto::CheckpointMetadata metadata;  // as recorded before key_group_fields was
  proto::OperatorSnapshot* op = metadata.add_operators();
  op->set_vertex_id(2);
  op->mutable_keyed();
  metadata.add_operators()->set_vertex_id(1);  // no keyed state: any grouping
  EXPECT_TRUE(CheckKeyGroupingFits(metadata, by_all, "/sp/savepoint-1").ok());
  absl::Status s = CheckKeyGroupingFits(metadata, grouped, "/sp/savepoint-1");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("/sp/savepoint-1 holds the state of operator 'pattern_alerts' "
                                                "grouped (key groups, subtasks) by all its key fields [patient_id, "
                                                "pattern], but job 't' groups its records by the first 1 of its "
                                                "key fields [patient_id]"));

  (*metadata.mutable_key_group_fields())[2] = 1;
  EXPECT_TRUE(CheckKeyGroupingFits(metadata, grouped, "/sp/savepoint-1").ok());
  grouped.mutable_vertices(2)->set_parallelism(3);  // rescaled: the same key groups
  EXPECT_TRUE(CheckKeyGroupingFits(metadata, grouped, "/sp/savepoint-1").ok());
  s = CheckKeyGroupingFits(metadata, by_all, "/sp/savepoint-1");
  EXPECT_THAT(s.message(), ::testing::HasSubstr("by the first 1 of its key fields [patient_id], but job 't' groups "
                                                "its records by all its key fields [patient_id, pattern]"));
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


// ---- restarts ---------------------------------------------------------------

void Report(JobMaster& jm, const std::string& task_id, proto::TaskState state, const std::string& error = "") {
  proto::TaskReport r;
  r.set_task_id(task_id);
  r.set_state(state);
  r.set_error(error);
  jm.OnTaskReport(r);
}

std::vector<std::string> TaskIds(const JobMaster& jm) {
  std::vector<std::string> ids;
  for (const auto& t : jm.tasks()) ids.push_back(t.task_id);
  return ids;
}

void ReportAll(JobMaster& jm, proto::TaskState state) {
  for (const std::string& id : TaskIds(jm)) Report(jm, id, state);
}

// The operator state a task acknowledges for one operator at a checkpoint.
std::string OperatorState(int vertex, int subtask, int64_t checkpoint) {
  return absl::StrCat("v", vertex, "s", subtask, "@", checkpoint);
}

// Every task acknowledges `checkpoint` with operator state for each
// operator of its chain.
void AcknowledgeWithState(JobMaster& jm, int64_t checkpoint) {
  const std::vector<ExecutionVertex> tasks = jm.tasks();
  for (const ExecutionVertex& t : tasks) {
    proto::AcknowledgeCheckpointRequest ack;
    ack.set_job_id("job");
    ack.set_task_id(t.task_id);
    ack.set_checkpoint_id(checkpoint);
    for (int v : jm.chains()[t.chain]) {
      proto::OperatorSnapshot* op = ack.add_operators();
      op->set_vertex_id(v);
      op->set_subtask_index(t.subtask);
      op->set_operator_state(OperatorState(v, t.subtask, checkpoint));
    }
    jm.OnAcknowledgeCheckpoint(ack);
  }
}

// The restore of a descriptor as "v<vertex>s<subtask>@<checkpoint>" strings.
std::vector<std::string> RestoredStates(const proto::TaskDeploymentDescriptor& tdd) {
  std::vector<std::string> out;
  for (const proto::OperatorSnapshot& op : tdd.restore().operators()) out.push_back(op.operator_state());
  std::sort(out.begin(), out.end());
  return out;
}

// Jobs on a ResourceManager, a recording gateway and a hand-moved clock
// (also the JobMaster's restart timers); checkpoints go to a temporary dir.
class JobMasterRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "job-master-restart-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // ThreeVertexGraph(p) whose first vertex is a source, checkpointing every
  // 100 ms, with the default restart strategy.
  static proto::JobGraph CheckpointedGraph(int p) {
    proto::JobGraph graph = ThreeVertexGraph(p);
    graph.mutable_vertices(0)->mutable_op()->mutable_source();
    graph.mutable_checkpointing()->set_interval_ms(100);
    return graph;
  }

  // A JobMaster with a CheckpointCoordinator if the graph checkpoints;
  // `record`: where completed checkpoints are recorded (empty: nowhere).
  std::unique_ptr<JobMaster> NewJob(const proto::JobGraph& graph, int attempt = 0, const std::string& record = "") {
    std::unique_ptr<CheckpointCoordinator> coordinator;
    if (graph.checkpointing().interval_ms() > 0) {
      CheckpointCoordinatorOptions options;
      options.job_id = "job";
      options.spec = graph.checkpointing();
      auto storage = CheckpointStorage::Open(dir_);
      EXPECT_TRUE(storage.ok()) << storage.status();
      auto created = CheckpointCoordinator::Create(
          options, std::move(*storage),
          record.empty() ? nullptr : std::make_unique<CompletedCheckpointStore>(record), cgw_, cgw_);
      EXPECT_TRUE(created.ok()) << created.status();
      coordinator = std::move(*created);
    }
    return std::make_unique<JobMaster>("job", graph, 0, rm_, gw_, nullptr, std::move(coordinator), &cgw_, attempt);
  }

  // Deploys the job, runs its tasks and completes checkpoint 1 with state.
  void RunAndCompleteCheckpoint(JobMaster& jm) {
    jm.TryStart();
    ASSERT_EQ(jm.state(), proto::RUNNING);
    ReportAll(jm, proto::TASK_RUNNING);
    cgw_.Advance(100);
    ASSERT_EQ(cgw_.triggered.size(), jm.tasks().size());
    AcknowledgeWithState(jm, 1);
    ASSERT_EQ(jm.Status().latest_completed_checkpoint(), 1);
  }

  // The descriptors deployed from index `from` on.
  std::vector<proto::TaskDeploymentDescriptor> DeployedSince(size_t from) const {
    std::vector<proto::TaskDeploymentDescriptor> out;
    for (size_t i = from; i < gw_.deployed.size(); ++i) out.push_back(gw_.deployed[i].second);
    return out;
  }

  std::string dir_;
  ResourceManager rm_;
  TestingGateway gw_;
  TestingCheckpointGateway cgw_;
};

TEST_F(JobMasterRestartTest, FailedTaskRestartsTheJobFromTheLatestCheckpointWithTheNextAttempt) {
  std::string replaced;
  rm_.Register("r1", "h1:1", 2, 0, &replaced);
  std::unique_ptr<JobMaster> jm = NewJob(CheckpointedGraph(2));
  ASSERT_NO_FATAL_FAILURE(RunAndCompleteCheckpoint(*jm));
  ASSERT_EQ(gw_.deployed.size(), 4u);
  for (const auto& tdd : DeployedSince(0)) {
    EXPECT_EQ(tdd.attempt(), 0);
    EXPECT_THAT(tdd.task_id(), HasSubstr("/a0/"));
    EXPECT_FALSE(tdd.has_restore());
  }

  // Tasks: c0/s0, c0/s1 (src+filter), c1/s0, c1/s1 (sink). The last fails.
  const std::vector<std::string> old_ids = TaskIds(*jm);
  Report(*jm, old_ids[3], proto::TASK_FAILED, "boom");
  EXPECT_EQ(jm->state(), proto::RESTARTING);
  EXPECT_THAT(jm->Status().message(), HasSubstr("restarting in 100 ms from checkpoint 1"));
  EXPECT_EQ(gw_.cancelled, (std::vector<std::string>{old_ids[0], old_ids[1], old_ids[2]}))
      << "every task of the failed attempt that still runs";
  {
    const proto::JobStatus st = jm->Status();
    EXPECT_EQ(st.restarts(), 0);
    EXPECT_EQ(st.attempt(), 0);
    EXPECT_EQ(st.last_failure(), "task sink (subtask 1) failed: boom");
  }

  // The old tasks end, but the delay (100 ms, the default initial backoff)
  // has not passed.
  for (size_t i = 0; i < 3; ++i) Report(*jm, old_ids[i], proto::TASK_CANCELED);
  EXPECT_EQ(jm->state(), proto::RESTARTING);
  cgw_.Advance(99);
  EXPECT_EQ(jm->state(), proto::RESTARTING);
  EXPECT_EQ(gw_.deployed.size(), 4u);
  cgw_.Advance(1);
  ASSERT_EQ(jm->state(), proto::RUNNING);
  ASSERT_EQ(gw_.deployed.size(), 8u);

  // Attempt 1, in task ids, partition ids and descriptors, restoring exactly
  // the task's own operators of checkpoint 1.
  const std::vector<std::string> new_ids = TaskIds(*jm);
  for (const std::string& id : new_ids) {
    EXPECT_THAT(id, HasSubstr("/a1/"));
    EXPECT_EQ(std::count(old_ids.begin(), old_ids.end(), id), 0);
  }
  for (const proto::TaskDeploymentDescriptor& tdd : DeployedSince(4)) {
    SCOPED_TRACE(tdd.task_id());
    EXPECT_EQ(tdd.attempt(), 1);
    EXPECT_THAT(tdd.task_id(), HasSubstr("job/a1/"));
    EXPECT_EQ(std::count(new_ids.begin(), new_ids.end(), tdd.task_id()), 1);
    for (const auto& out : tdd.outputs()) EXPECT_THAT(out.partition_id(), HasSubstr("/a1/"));
    for (const auto& gate : tdd.inputs()) {
      for (const auto& ch : gate.channels()) EXPECT_THAT(ch.partition_id(), HasSubstr("/a1/"));
    }
    ASSERT_TRUE(tdd.has_restore());
    EXPECT_EQ(tdd.restore().checkpoint_id(), 1);
    std::vector<std::string> expected;
    for (int v : tdd.chain()) expected.push_back(OperatorState(v, tdd.subtask_index(), 1));
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(RestoredStates(tdd), expected);
    for (const auto& op : tdd.restore().operators()) {
      EXPECT_EQ(op.subtask_index(), tdd.subtask_index());
      EXPECT_FALSE(op.finished());
    }
  }
  EXPECT_EQ(rm_.FreeSlots(), 0) << "the slots were released and taken again";

  const proto::JobStatus st = jm->Status();
  EXPECT_EQ(st.state(), proto::RUNNING);
  EXPECT_EQ(st.restarts(), 1);
  EXPECT_EQ(st.attempt(), 1);
  EXPECT_EQ(st.restored_checkpoint(), 1);
  EXPECT_EQ(st.last_failure(), "task sink (subtask 1) failed: boom");

  // A late report of the old attempt changes nothing.
  Report(*jm, old_ids[0], proto::TASK_FAILED, "late");
  EXPECT_EQ(jm->state(), proto::RUNNING);

  // The new attempt takes checkpoints again, going on from 2.
  ReportAll(*jm, proto::TASK_RUNNING);
  const size_t triggered = cgw_.triggered.size();
  cgw_.Advance(100);
  ASSERT_EQ(cgw_.triggered.size(), triggered + 4);
  EXPECT_EQ(std::vector<std::string>(cgw_.triggered.begin() + triggered, cgw_.triggered.end()), new_ids);
  ASSERT_EQ(jm->checkpoints()->pending().size(), 1u);
  EXPECT_EQ(jm->checkpoints()->pending()[0].value, 2);
}

TEST_F(JobMasterRestartTest, RestartStrategyNoneFailsAtTheFirstFailure) {
  std::string replaced;
  rm_.Register("r1", "h1:1", 1, 0, &replaced);
  proto::JobGraph graph = CheckpointedGraph(1);
  graph.mutable_restart()->set_strategy(proto::RESTART_NONE);
  std::unique_ptr<JobMaster> jm = NewJob(graph);
  ASSERT_NO_FATAL_FAILURE(RunAndCompleteCheckpoint(*jm));
  Report(*jm, jm->tasks()[0].task_id, proto::TASK_FAILED, "boom");
  EXPECT_EQ(jm->state(), proto::FAILED);
  EXPECT_EQ(jm->Status().message(), "task src (subtask 0) failed: boom");
  cgw_.Advance(60'000);
  EXPECT_EQ(gw_.deployed.size(), 2u) << "never redeployed";
  const proto::JobStatus st = jm->Status();
  EXPECT_EQ(st.restarts(), 0);
  EXPECT_EQ(st.attempt(), 0);
  EXPECT_EQ(st.restored_checkpoint(), 0);
  EXPECT_EQ(st.last_failure(), "task src (subtask 0) failed: boom");
  EXPECT_EQ(rm_.FreeSlots(), 1);
}

TEST_F(JobMasterRestartTest, FixedDelayRestartsFromScratchThenFailsWhenItsAttemptsAreUsed) {
  std::string replaced;
  rm_.Register("r1", "h1:1", 1, 0, &replaced);
  proto::JobGraph graph = ThreeVertexGraph(1);  // no checkpointing
  graph.mutable_restart()->set_strategy(proto::RESTART_FIXED_DELAY);
  graph.mutable_restart()->set_attempts(1);
  graph.mutable_restart()->set_delay_ms(500);
  std::unique_ptr<JobMaster> jm = NewJob(graph);
  jm->TryStart();
  ASSERT_EQ(gw_.deployed.size(), 2u);
  ReportAll(*jm, proto::TASK_RUNNING);

  const std::vector<std::string> old_ids = TaskIds(*jm);
  Report(*jm, old_ids[0], proto::TASK_FAILED, "boom");
  EXPECT_EQ(jm->state(), proto::RESTARTING);
  EXPECT_THAT(jm->Status().message(), HasSubstr("restarting in 500 ms from the beginning"));
  EXPECT_EQ(gw_.cancelled, std::vector<std::string>{old_ids[1]});

  // The delay passes first; the restart waits for the cancelled task.
  cgw_.Advance(500);
  EXPECT_EQ(jm->state(), proto::RESTARTING);
  EXPECT_EQ(gw_.deployed.size(), 2u);
  Report(*jm, old_ids[1], proto::TASK_CANCELED);
  ASSERT_EQ(jm->state(), proto::RUNNING);
  ASSERT_EQ(gw_.deployed.size(), 4u);
  for (const proto::TaskDeploymentDescriptor& tdd : DeployedSince(2)) {
    EXPECT_EQ(tdd.attempt(), 1);
    EXPECT_THAT(tdd.task_id(), HasSubstr("/a1/"));
    EXPECT_FALSE(tdd.has_restore()) << "no checkpoint: from scratch";
    EXPECT_EQ(tdd.checkpoint_storage(), "");
  }
  EXPECT_EQ(jm->Status().restarts(), 1);
  EXPECT_EQ(jm->Status().restored_checkpoint(), 0);

  ReportAll(*jm, proto::TASK_RUNNING);
  Report(*jm, jm->tasks()[1].task_id, proto::TASK_FAILED, "boom again");
  EXPECT_EQ(jm->state(), proto::FAILED);
  const proto::JobStatus st = jm->Status();
  EXPECT_THAT(st.message(), HasSubstr("task sink (subtask 0) failed: boom again"));
  EXPECT_THAT(st.message(), HasSubstr("restart strategy fixed_delay: all 1 restart attempts used"));
  EXPECT_THAT(st.message(), HasSubstr("after 1 restart(s)"));
  EXPECT_EQ(st.last_failure(), "task sink (subtask 0) failed: boom again");
  EXPECT_EQ(st.restarts(), 1);
  EXPECT_EQ(st.attempt(), 1);
  cgw_.Advance(10'000);
  EXPECT_EQ(gw_.deployed.size(), 4u);
}

TEST_F(JobMasterRestartTest, UnreachableTaskManagerIsGivenUpAtOnce) {
  std::string replaced;
  const std::string tm1 = rm_.Register("r1", "h1:1", 1, 0, &replaced);
  const std::string tm2 = rm_.Register("r2", "h2:1", 1, 0, &replaced);
  std::unique_ptr<JobMaster> jm = NewJob(CheckpointedGraph(2));
  // What JobManager::GiveUpTaskManager does.
  std::vector<std::string> unreachable;
  jm->set_on_task_manager_unreachable([&](const std::string& tm) {
    unreachable.push_back(tm);
    if (rm_.Remove(tm)) jm->OnTaskManagerLost(tm);
  });
  ASSERT_NO_FATAL_FAILURE(RunAndCompleteCheckpoint(*jm));

  // h2's process is gone: a task on h1 reads from it and fails; the cancel
  // RPCs to h2 cannot connect. On h1 the task to cancel has already ended.
  gw_.defer_cancel_replies = true;
  gw_.cancel_error_at["h2:1"] = "unreachable: failed to connect to all addresses";
  gw_.cancel_error_at["h1:1"] = "no such task";
  std::string failed, on_h1;
  for (const auto& t : jm->tasks()) {
    if (t.slot.task_manager_id != tm1) continue;
    (t.chain == 1 ? failed : on_h1) = t.task_id;
  }
  ASSERT_FALSE(failed.empty());
  ASSERT_FALSE(on_h1.empty());
  Report(*jm, failed, proto::TASK_FAILED, "the data stream from h2:1 broke");
  ASSERT_EQ(jm->state(), proto::RESTARTING);
  ASSERT_EQ(gw_.cancelled.size(), 3u);
  Report(*jm, on_h1, proto::TASK_CANCELED);
  cgw_.Advance(100);
  EXPECT_EQ(jm->state(), proto::RESTARTING) << "h2's tasks have not ended";

  gw_.ReplyToCancels();
  EXPECT_FALSE(unreachable.empty());
  for (const std::string& tm : unreachable) EXPECT_EQ(tm, tm2) << "only an unreachable TaskManager is given up";
  EXPECT_EQ(rm_.Find(tm2), nullptr);
  EXPECT_NE(rm_.Find(tm1), nullptr);

  // With h2 given up, its tasks ended: the restart needs 2 slots, 1 is left.
  EXPECT_EQ(jm->state(), proto::CREATED);
  EXPECT_THAT(jm->Status().message(), HasSubstr("the job needs 2, 1 of 1 are free on 1 TaskManager(s)"));
  EXPECT_EQ(jm->Status().attempt(), 1);
  const size_t before = gw_.deployed.size();
  rm_.Register("r3", "h3:1", 1, 0, &replaced);
  jm->TryStart();
  ASSERT_EQ(jm->state(), proto::RUNNING);
  ASSERT_EQ(gw_.deployed.size(), before + 4);
  for (size_t i = before; i < gw_.deployed.size(); ++i) {
    EXPECT_NE(gw_.deployed[i].first, "h2:1");
    EXPECT_EQ(gw_.deployed[i].second.attempt(), 1);
    EXPECT_EQ(gw_.deployed[i].second.restore().checkpoint_id(), 1);
  }
}

TEST_F(JobMasterRestartTest, ResumedJobGoesOnFromTheRecordedCheckpointAndCounts) {
  const std::string record = dir_ + "/checkpoints.pb";
  std::string replaced;
  rm_.Register("r1", "h1:1", 1, 0, &replaced);
  proto::JobStatus stored;
  {
    std::unique_ptr<JobMaster> before = NewJob(CheckpointedGraph(1), 0, record);
    ASSERT_NO_FATAL_FAILURE(RunAndCompleteCheckpoint(*before));
    Report(*before, before->tasks()[0].task_id, proto::TASK_FAILED, "boom");
    ASSERT_EQ(before->state(), proto::RESTARTING);
    Report(*before, before->tasks()[1].task_id, proto::TASK_CANCELED);
    cgw_.Advance(100);
    ASSERT_EQ(before->state(), proto::RUNNING);
    stored = before->Status();
    ASSERT_EQ(stored.attempt(), 1);
    // The JobManager dies here; its TaskManager's slots go with it.
    rm_.Release("job");
  }
  cgw_.timers.clear();  // of the JobMaster and coordinator that are gone

  // A new JobManager on the same data dir: the stored attempt + 1.
  std::unique_ptr<JobMaster> jm = NewJob(CheckpointedGraph(1), stored.attempt() + 1, record);
  jm->ResumeFrom(stored);
  const proto::JobStatus st = jm->Status();
  EXPECT_EQ(st.restarts(), 1);
  EXPECT_EQ(st.last_failure(), "task src (subtask 0) failed: boom");
  EXPECT_EQ(st.restored_checkpoint(), 1);
  EXPECT_EQ(st.attempt(), 2);
  const size_t before = gw_.deployed.size();
  jm->TryStart();
  ASSERT_EQ(gw_.deployed.size(), before + 2);
  for (size_t i = before; i < gw_.deployed.size(); ++i) {
    const proto::TaskDeploymentDescriptor& tdd = gw_.deployed[i].second;
    EXPECT_THAT(tdd.task_id(), HasSubstr("/a2/"));
    EXPECT_EQ(tdd.attempt(), 2);
    EXPECT_EQ(tdd.restore().checkpoint_id(), 1);
    std::vector<std::string> expected;
    for (int v : tdd.chain()) expected.push_back(OperatorState(v, 0, 1));
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(RestoredStates(tdd), expected);
  }
}

}  // namespace
}  // namespace vstream
