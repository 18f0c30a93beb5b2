#pragma once
// The JobMaster of one job: expands the JobGraph into an execution graph
// (chains of operators x parallelism), asks the ResourceManager for slots,
// deploys the tasks, tracks their states and metrics, and decides the job's
// state:
//
//   CREATED --slots--> RUNNING --all tasks finished--> FINISHED
//      ^                  |--a task failed / TM lost, no restart left--> FAILED
//      |                  |--a task failed / TM lost--> RESTARTING
//      |                                                   |
//      +---- the delay of the restart strategy passed, ----+
//            every task of the failed attempt ended
//      CREATED, RUNNING, RESTARTING --cancel--> CANCELLING --> CANCELED
//
// Restarts (Flink's full failover): the failed attempt's tasks are
// cancelled; once they all ended (or their TaskManager is gone) and the
// restart strategy's delay passed, the job's slots are released and
// allocated again, on whichever TaskManagers have them free, and every task
// is deployed anew with the next attempt number, restoring its part of the
// latest completed checkpoint (none: from scratch).
//
// Chaining: vertex B joins its producer A's chain when the edge A->B is a
// forward edge of equal parallelism and B has no other input, or when B is
// a union whose inputs are all such edges from one chain (ChainedTo). A
// chain is a tree (a source read by two filters is one task, as in Flink)
// but for such unions; its vertex list is in topological order, head first.
// Chained operators call each other directly in one task.
//
// Checkpoints: a job with checkpointing on has a CheckpointCoordinator,
// which the JobMaster owns and keeps informed: the tasks and their slots
// when it deploys, every task state change, the checkpoint messages of the
// tasks, and the job's end (which stops it).
//
// Thread-compatible: runs on the JobManager's main executor thread.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobmanager/checkpoint_coordinator.h"
#include "jobmanager/restart_strategy.h"
#include "jobmanager/resource_manager.h"
#include "proto/client.pb.h"
#include "proto/control.pb.h"

namespace vstream {

// How a JobMaster talks to TaskManagers. Calls must not block; their
// results come back through the callbacks, on the main thread.
class TaskManagerGateway {
 public:
  virtual ~TaskManagerGateway() = default;
  virtual void Deploy(const std::string& address, const proto::TaskDeploymentDescriptor& tdd,
                      std::function<void(const std::string& error)> done) = 0;
  // `done` gets the RPC's error (empty: the TaskManager took the request).
  virtual void Cancel(const std::string& address, const std::string& task_id,
                      std::function<void(const std::string& error)> done) = 0;
};

// The vertex whose chain `vertex` joins: its only input, over a FORWARD
// edge from a main output of equal parallelism; or, for a union whose every
// input is such an edge from an operator of one chain (branches of one task
// merged again), its first input; -1: it heads a chain.
int ChainedTo(const proto::JobGraph& graph, int vertex);
// ChainedTo of every vertex, in one pass over the graph.
std::vector<int> ChainProducers(const proto::JobGraph& graph);
// Whether `edge` passes records by call inside a chain (not over the network);
// producers: ChainProducers(graph), for callers that ask of many edges.
bool IsChainedEdge(const proto::JobGraph& graph, const proto::JobEdge& edge, const std::vector<int>& producers);
bool IsChainedEdge(const proto::JobGraph& graph, const proto::JobEdge& edge);

// The network channels of `graph`, as text: every edge in order with its
// partitioning, key fields, projection (which fields its records are
// encoded with), both parallelisms and whether it is chained, and the fields
// each projected source makes (SourceSpec.reads). A task stores
// the records in flight on its channels by their positions among its
// chain's inputs and outputs, which this fixes.
std::string ChannelLayout(const proto::JobGraph& graph);

// Whether an unaligned checkpoint's in-flight records (at `uri`) have
// somewhere to go in `graph`: they belong to channels between particular
// subtasks of particular chains, so they restore only at the parallelism
// they were taken at, and only into a graph of the same ChannelLayout; a
// checkpoint that recorded none (taken before layouts were recorded) only
// into vertices that still head their chains (one now chained behind its
// input has no channels). OK for an aligned checkpoint or savepoint.
absl::Status CheckInFlightRecordsFit(const proto::CheckpointMetadata& metadata, const proto::JobGraph& graph,
                                     std::string_view uri);

// "a, b": the first `fields` of the key_by of keyed vertex `v` (window,
// aggregate, process; all of them if 0), as a message names them.
std::string KeyByNames(const proto::JobVertex& v, int fields);

// Vertex id -> JobVertex.key_group_fields of each vertex of `graph` whose key
// groups come from only the first key fields (not 0), as a checkpoint's
// metadata records them.
std::map<int, int> KeyGroupFields(const proto::JobGraph& graph);

// Whether each keyed state in the checkpoint or savepoint at `uri` is grouped
// (key group, subtask) as its vertex in `graph` groups its records: a state
// grouped by all its key fields restored into a vertex that groups by the
// first of them (or the other way round) would sit in key groups no record
// of its key reaches. The job's partitioning decides (docs/job-spec.md,
// "Partitioned streams").
absl::Status CheckKeyGroupingFits(const proto::CheckpointMetadata& metadata, const proto::JobGraph& graph,
                                  std::string_view uri);

struct ExecutionVertex {
  std::string task_id;
  int chain = 0;
  int subtask = 0;
  SlotRef slot;
  proto::TaskState state = proto::TASK_SCHEDULED;
  std::string error;
  std::map<int, proto::OperatorMetrics> metrics;  // by vertex id
};

class JobMaster {
 public:
  // checkpoints: the job's CheckpointCoordinator; null: checkpointing off.
  // timers: for restart delays (null: restarts happen at once). attempt: of
  // the first deployment (a job the JobManager resumes goes on counting).
  JobMaster(std::string job_id, proto::JobGraph graph, int64_t submitted_at_ms,
            ResourceManager& resources, TaskManagerGateway& gateway,
            std::function<void()> on_state_change,
            std::unique_ptr<CheckpointCoordinator> checkpoints = nullptr, MainThreadTimers* timers = nullptr,
            int attempt = 0);
  ~JobMaster();

  // Deploys if enough slots are free; otherwise waits (CREATED, with a message).
  void TryStart();
  void OnTaskReport(const proto::TaskReport& report);
  void OnTaskManagerLost(const std::string& task_manager_id);
  void Cancel();
  // Marks a job restored from the job store without its tasks.
  void MarkFailed(const std::string& message);
  // A job the JobManager resumes after its own restart: counts and reasons
  // of earlier restarts as stored; it starts from the latest checkpoint.
  void ResumeFrom(const proto::JobStatus& stored);
  // The job starts from a savepoint (or retained checkpoint) in `storage`,
  // instead of from scratch; restarts before its first own checkpoint
  // completes go back to it too.
  void SetInitialRestore(proto::CheckpointMetadata metadata, std::string storage);
  // vstream savepoint / stop: `done` gets the savepoint's URI and id. With
  // `stop`, the job's tasks are cancelled once the savepoint completed, and
  // the job ends FINISHED.
  void TriggerSavepoint(const std::string& target_dir, bool stop, CheckpointCoordinator::SavepointDone done);
  // Called when a TaskManager turned out unreachable (an RPC to it failed),
  // so that it is given up at once instead of after the heartbeat timeout.
  void set_on_task_manager_unreachable(std::function<void(const std::string& task_manager_id)> fn) {
    on_task_manager_unreachable_ = std::move(fn);
  }
  // For a job restored from the job store: its checkpoint fields as stored
  // (checkpoints, latest_completed_checkpoint, checkpoint_storage), shown
  // by Status() since it has no coordinator.
  void KeepCheckpointRecord(const proto::JobStatus& stored);

  // ResourceManager.AcknowledgeCheckpoint / DeclineCheckpoint of a task.
  void OnAcknowledgeCheckpoint(const proto::AcknowledgeCheckpointRequest& ack);
  void OnDeclineCheckpoint(const proto::DeclineCheckpointRequest& decline);
  // Null if checkpointing is off.
  CheckpointCoordinator* checkpoints() const { return checkpoints_.get(); }

  proto::JobState state() const { return state_; }
  bool terminal() const;
  proto::JobStatus Status() const;
  const proto::JobGraph& graph() const { return graph_; }
  const std::vector<std::vector<int>>& chains() const { return chains_; }
  const std::vector<ExecutionVertex>& tasks() const { return tasks_; }
  // The descriptor of task i (exposed for tests).
  proto::TaskDeploymentDescriptor Descriptor(size_t i) const;

 private:
  void BuildChains();
  void AssignTaskIds();
  void Deploy();
  void Fail(const std::string& message);
  // A failure: restart if the strategy allows, else fail.
  void OnFailure(const std::string& message);
  void MaybeRestart();
  void Restart();
  void CancelTasks();
  void OnRpcError(const std::string& task_manager_id, const std::string& error);
  void SetState(proto::JobState state, const std::string& message = "");
  void CheckCompletion();
  std::string PartitionId(int edge, int producer_subtask) const;
  const ExecutionVertex& TaskOf(int chain, int subtask) const;

  std::string job_id_;
  proto::JobGraph graph_;
  int64_t submitted_at_ms_;
  int64_t ended_at_ms_ = 0;
  ResourceManager& resources_;
  TaskManagerGateway& gateway_;
  std::function<void()> on_state_change_;
  const std::unique_ptr<CheckpointCoordinator> checkpoints_;  // null: off
  proto::JobStatus checkpoint_record_;  // restored jobs: what the store said

  proto::JobState state_ = proto::CREATED;
  std::string message_;
  std::vector<std::vector<int>> chains_;  // vertex ids per chain, head first
  std::vector<int> chain_of_vertex_;
  std::vector<std::vector<size_t>> task_index_;  // [chain][subtask] -> tasks_ index
  std::vector<ExecutionVertex> tasks_;
  int slots_needed_ = 0;

  MainThreadTimers* timers_;  // null: restart at once
  std::optional<RestartBackoff> restart_;
  std::function<void(const std::string&)> on_task_manager_unreachable_;
  int attempt_ = 0;
  int restarts_ = 0;
  std::string last_failure_;
  int64_t restored_checkpoint_ = 0;
  std::optional<proto::CheckpointMetadata> restore_;  // what the next deployment restores
  std::string restore_storage_;                        // where its files are; empty: checkpoint storage
  std::optional<proto::CheckpointMetadata> initial_restore_;  // the savepoint the job started from
  std::string initial_restore_storage_;
  std::string stopped_with_;  // stop-with-savepoint: the savepoint; the job ends FINISHED
  bool restart_delay_passed_ = false;
  uint64_t restart_generation_ = 0;  // invalidates restart timers
};

}  // namespace vstream
