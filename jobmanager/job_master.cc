#include "jobmanager/job_master.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/absl_compat.h"
#include "common/latency_histogram.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"

namespace vstream {

namespace {

bool TerminalTask(proto::TaskState s) {
  return s == proto::TASK_FINISHED || s == proto::TASK_CANCELED || s == proto::TASK_FAILED;
}

// GrpcGateway marks errors of RPCs that never reached the TaskManager.
constexpr char kUnreachable[] = "unreachable: ";

}  // namespace

JobMaster::JobMaster(std::string job_id, proto::JobGraph graph, int64_t submitted_at_ms,
                     ResourceManager& resources, TaskManagerGateway& gateway,
                     std::function<void()> on_state_change,
                     std::unique_ptr<CheckpointCoordinator> checkpoints, MainThreadTimers* timers, int attempt)
    : job_id_(std::move(job_id)),
      graph_(std::move(graph)),
      submitted_at_ms_(submitted_at_ms),
      resources_(resources),
      gateway_(gateway),
      on_state_change_(std::move(on_state_change)),
      checkpoints_(std::move(checkpoints)),
      timers_(timers),
      attempt_(attempt) {
  BuildChains();
  absl::StatusOr<RestartBackoff> restart = RestartBackoff::Create(graph_.restart(), checkpoints_ != nullptr);
  if (!restart.ok()) {  // JobManager::Submit rejects such graphs
    spdlog::error("job {}: {}; it will not restart", job_id_, std::string(restart.status().message()));
    restart = RestartBackoff::Create(proto::RestartSpec(), false);
  }
  restart_ = std::move(*restart);
}

JobMaster::~JobMaster() = default;

namespace {

// An edge a consumer may be chained behind: FORWARD, from a main output, at
// the consumer's parallelism.
bool ChainableEdge(const proto::JobGraph& graph, const proto::JobEdge& e) {
  return e.partitioning() == proto::FORWARD && e.side_output().empty() &&
         graph.vertices(e.source()).parallelism() == graph.vertices(e.target()).parallelism();
}

// ChainedTo, given the chain head of every vertex before `vertex`.
int ChainedToGivenHeads(const proto::JobGraph& graph, int vertex, const std::vector<int>& head) {
  int inputs = 0, producer = -1;
  bool all_chainable = true;
  for (const auto& e : graph.edges()) {
    if (e.target() != vertex) continue;
    ++inputs;
    if (!ChainableEdge(graph, e)) {
      all_chainable = false;
    } else if (producer < 0) {
      producer = e.source();
    }
  }
  if (inputs == 1) return producer;
  // A union of branches of one task (two patterns over one stream, as in
  // the clinical workload) merges them by call and joins their chain: as in
  // Flink, where a union is no operator at all, it costs no exchange.
  if (inputs < 2 || !all_chainable || !graph.vertices(vertex).op().has_union_()) return -1;
  for (const auto& e : graph.edges()) {
    if (e.target() != vertex) continue;
    // Inputs come first (JobManager::Submit checks); any other union heads a chain.
    if (e.source() >= vertex || head[e.source()] != head[producer]) return -1;
  }
  return producer;
}

}  // namespace

std::vector<int> ChainProducers(const proto::JobGraph& graph) {
  // In vertex order, each vertex's chain head known before its consumers
  // ask: linear in the vertices, where following each union's inputs up
  // again would not be.
  const int n = graph.vertices_size();
  std::vector<int> producer(n), head(n);
  for (int v = 0; v < n; ++v) {
    producer[v] = ChainedToGivenHeads(graph, v, head);
    head[v] = producer[v] >= 0 && producer[v] < v ? head[producer[v]] : v;
  }
  return producer;
}

int ChainedTo(const proto::JobGraph& graph, int vertex) { return ChainProducers(graph)[vertex]; }

bool IsChainedEdge(const proto::JobGraph& graph, const proto::JobEdge& edge, const std::vector<int>& producers) {
  if (!edge.side_output().empty()) return false;
  const int up = producers[edge.target()];
  // A chained union's every input edge is chained (ChainedTo names the first).
  return up == edge.source() || (up >= 0 && graph.vertices(edge.target()).op().has_union_());
}

bool IsChainedEdge(const proto::JobGraph& graph, const proto::JobEdge& edge) {
  return IsChainedEdge(graph, edge, ChainProducers(graph));
}

std::string ChannelLayout(const proto::JobGraph& graph) {
  std::string layout;
  const std::vector<int> producers = ChainProducers(graph);
  for (const proto::JobEdge& e : graph.edges()) {
    absl::StrAppend(&layout, e.source(), ">", e.target(), e.side_output().empty() ? "" : "/", e.side_output(), ":",
                    e.target_input(), ":", proto::Partitioning_Name(e.partitioning()), ":");
    for (int k : e.key_fields()) absl::StrAppend(&layout, k, ",");
    if (e.projection_size() > 0) absl::StrAppend(&layout, "=", absl::StrJoin(e.projection(), ","));
    absl::StrAppend(&layout, ":", std::max(1, graph.vertices(e.source()).parallelism()), ":",
                    std::max(1, graph.vertices(e.target()).parallelism()),
                    IsChainedEdge(graph, e, producers) ? ":chained" : "", ";");
  }
  // A projected source's rows, in flight as they are, hold nulls for the
  // fields it did not make.
  for (const proto::JobVertex& v : graph.vertices()) {
    if (v.op().has_source() && v.op().source().reads_size() > 0) {
      absl::StrAppend(&layout, v.id(), " reads ", absl::StrJoin(v.op().source().reads(), ","), ";");
    }
  }
  return layout;
}

absl::Status CheckInFlightRecordsFit(const proto::CheckpointMetadata& metadata, const proto::JobGraph& graph,
                                     std::string_view uri) {
  const bool in_flight = std::any_of(metadata.operators().begin(), metadata.operators().end(),
                                     [](const proto::OperatorSnapshot& op) { return !op.channel_state().empty(); });
  if (!in_flight) return absl::OkStatus();
  for (const auto& [vertex, n] : SubtasksPerVertex(metadata)) {
    const int parallelism = std::max(1, graph.vertices(vertex).parallelism());
    if (n != parallelism) {
      return absl::InvalidArgumentError(absl::StrCat(
          AV(uri), " is an unaligned checkpoint (it holds in-flight records), which restores only at the parallelism "
          "it was taken at: operator '", graph.vertices(vertex).name(), "' had ", n, " subtask(s), the job has ",
          parallelism, ". Take a savepoint (always aligned) to rescale"));
    }
  }
  if (!metadata.channel_layout().empty()) {
    if (metadata.channel_layout() == ChannelLayout(graph)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        AV(uri), " is an unaligned checkpoint (it holds in-flight records), which restores only into a job whose "
        "network channels are those it was taken with, and job '", graph.name(), "' partitions or chains its "
        "operators differently. Take a savepoint (always aligned) of the job as it was to change it"));
  }
  // Taken before checkpoints recorded their layout: at least every vertex
  // with in-flight records must still head its chain.
  for (const proto::OperatorSnapshot& op : metadata.operators()) {
    if (op.channel_state().empty()) continue;
    if (const int producer = ChainedTo(graph, op.vertex_id()); producer >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          AV(uri), " is an unaligned checkpoint whose in-flight records went to operator '",
          graph.vertices(op.vertex_id()).name(), "' over the network, but this job chains it behind '",
          graph.vertices(producer).name(),
          "', so they have no channel to go back into. Take a savepoint (always aligned) of the job as it was "
          "to change how it is partitioned or chained"));
    }
  }
  return absl::OkStatus();
}

std::map<int, int> KeyGroupFields(const proto::JobGraph& graph) {
  std::map<int, int> fields;
  for (const proto::JobVertex& v : graph.vertices()) {
    if (v.key_group_fields() != 0) fields[v.id()] = v.key_group_fields();
  }
  return fields;
}

namespace {

// The key_by of a keyed vertex (window, aggregate, process); empty for others.
const google::protobuf::RepeatedPtrField<std::string>& KeyBy(const proto::JobVertex& v) {
  static const google::protobuf::RepeatedPtrField<std::string> kNone;
  if (v.op().has_window()) return v.op().window().key_by();
  if (v.op().has_aggregate()) return v.op().aggregate().key_by();
  if (v.op().has_process()) return v.op().process().key_by();
  return kNone;
}

}  // namespace

std::string KeyByNames(const proto::JobVertex& v, int fields) {
  const auto& key_by = KeyBy(v);
  const int n = fields > 0 && fields < key_by.size() ? fields : key_by.size();
  return absl::StrJoin(key_by.begin(), key_by.begin() + n, ", ");
}

namespace {

// How `v` groups its keys when grouped by its first `fields` key fields (0:
// all), for CheckKeyGroupingFits's message.
std::string Grouping(const proto::JobVertex& v, int fields) {
  if (fields <= 0 || fields >= KeyBy(v).size()) return absl::StrCat("all its key fields [", KeyByNames(v, 0), "]");
  return absl::StrCat("the first ", fields, " of its key fields [", KeyByNames(v, fields), "]");
}

}  // namespace

absl::Status CheckKeyGroupingFits(const proto::CheckpointMetadata& metadata, const proto::JobGraph& graph,
                                  std::string_view uri) {
  // A count of key fields suffices: the grouping fields are always the key's
  // first ones, and state under another key_by is another state anyway.
  for (const proto::OperatorSnapshot& op : metadata.operators()) {
    if (!op.has_keyed()) continue;
    const proto::JobVertex& v = graph.vertices(op.vertex_id());
    const auto it = metadata.key_group_fields().find(op.vertex_id());
    const int taken = it == metadata.key_group_fields().end() ? 0 : it->second;
    if (taken == v.key_group_fields()) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        AV(uri), " holds the state of operator '", v.name(), "' grouped (key groups, subtasks) by ",
        Grouping(v, taken), ", but job '", graph.name(), "' groups its records by ",
        Grouping(v, v.key_group_fields()),
        ", since its input is partitioned so or no longer is (docs/job-spec.md, \"Partitioned streams\"): no "
        "record would find its key's state. Restore it into the job as it was partitioned when it was taken"));
  }
  return absl::OkStatus();
}

void JobMaster::BuildChains() {
  const int n = graph_.vertices_size();
  chain_of_vertex_.assign(n, -1);
  const std::vector<int> producers = ChainProducers(graph_);
  for (int v = 0; v < n; ++v) {
    int joined = -1;
    if (const int u = producers[v]; u >= 0 && chain_of_vertex_[u] >= 0) joined = chain_of_vertex_[u];
    if (joined < 0) {
      joined = static_cast<int>(chains_.size());
      chains_.emplace_back();
    }
    chains_[joined].push_back(v);
    chain_of_vertex_[v] = joined;
  }
  task_index_.resize(chains_.size());
  for (size_t c = 0; c < chains_.size(); ++c) {
    const int p = std::max(1, graph_.vertices(chains_[c][0]).parallelism());
    slots_needed_ = std::max(slots_needed_, p);
    for (int s = 0; s < p; ++s) {
      ExecutionVertex ev;
      ev.chain = static_cast<int>(c);
      ev.subtask = s;
      task_index_[c].push_back(tasks_.size());
      tasks_.push_back(std::move(ev));
    }
  }
  AssignTaskIds();
}

void JobMaster::AssignTaskIds() {
  for (ExecutionVertex& t : tasks_) t.task_id = absl::StrCat(job_id_, "/a", attempt_, "/c", t.chain, "/s", t.subtask);
}

bool JobMaster::terminal() const {
  return state_ == proto::FINISHED || state_ == proto::FAILED || state_ == proto::CANCELED;
}

void JobMaster::SetState(proto::JobState state, const std::string& message) {
  if (state_ == state && message_ == message) return;
  state_ = state;
  message_ = message;
  if (terminal()) {
    ended_at_ms_ = NowMillis();
    resources_.Release(job_id_);
  }
  if (checkpoints_ && (terminal() || state == proto::CANCELLING)) {
    // Before on_state_change_: the stored final status shows the aborts.
    std::string reason = state == proto::FINISHED ? "the job finished"
                         : state == proto::FAILED ? absl::StrCat("the job failed: ", message)
                                                  : std::string("the job was cancelled");
    checkpoints_->Shutdown(reason);
  }
  spdlog::info("job {} is {}{}{}", job_id_, proto::JobState_Name(state), message.empty() ? "" : ": ", message);
  if (on_state_change_) on_state_change_();
}

void JobMaster::TryStart() {
  if (state_ != proto::CREATED) return;
  auto slots = resources_.Allocate(job_id_, slots_needed_);
  if (!slots) {
    std::string msg = absl::StrCat("waiting for task slots: the job needs ", slots_needed_, ", ",
                                   resources_.FreeSlots(), " of ", resources_.TotalSlots(),
                                   " are free on ", resources_.NumTaskManagers(), " TaskManager(s)");
    if (msg != message_) SetState(proto::CREATED, msg);
    return;
  }
  for (auto& t : tasks_) t.slot = (*slots)[t.subtask];
  if (checkpoints_) {
    std::vector<CheckpointTask> tasks;
    for (const auto& t : tasks_) {
      const bool source = graph_.vertices(chains_[t.chain][0]).op().has_source();
      tasks.push_back(CheckpointTask{t.task_id, t.slot.address, source, chains_[t.chain], t.subtask});
    }
    checkpoints_->SetTasks(std::move(tasks));
  }
  SetState(proto::RUNNING);
  Deploy();
}

std::string JobMaster::PartitionId(int edge, int producer_subtask) const {
  return absl::StrCat(job_id_, "/a", attempt_, "/e", edge, "/s", producer_subtask);
}

const ExecutionVertex& JobMaster::TaskOf(int chain, int subtask) const {
  return tasks_[task_index_[chain][subtask]];
}

proto::TaskDeploymentDescriptor JobMaster::Descriptor(size_t i) const {
  const ExecutionVertex& t = tasks_[i];
  const std::vector<int>& chain = chains_[t.chain];
  proto::TaskDeploymentDescriptor tdd;
  tdd.set_job_id(job_id_);
  tdd.set_task_id(t.task_id);
  *tdd.mutable_graph() = graph_;
  for (int v : chain) tdd.add_chain(v);
  tdd.set_subtask_index(t.subtask);
  tdd.set_parallelism(std::max(1, graph_.vertices(chain[0]).parallelism()));
  tdd.set_buffer_timeout_ms(graph_.buffer_timeout_ms());
  tdd.set_attempt(attempt_);
  if (checkpoints_) tdd.set_checkpoint_storage(checkpoints_->storage_uri());
  if (restore_) {
    // The task's part of the checkpoint: its chain's operators; its own
    // subtask's snapshots, and at another parallelism those it may need:
    // keyed state of key groups it now owns, operator state of subtasks
    // that no longer exist (the task picks them, see StreamTask).
    proto::TaskRestore* restore = tdd.mutable_restore();
    restore->set_checkpoint_id(restore_->checkpoint_id());
    restore->set_storage(restore_storage_);
    const int parallelism = std::max(1, graph_.vertices(chain[0]).parallelism());
    std::map<int, int> snapshot_parallelism = SubtasksPerVertex(*restore_);
    for (const proto::OperatorSnapshot& op : restore_->operators()) {
      if (op.vertex_id() < 0 || op.vertex_id() >= graph_.vertices_size() ||
          chain_of_vertex_[op.vertex_id()] != t.chain) {
        continue;
      }
      const bool own = op.subtask_index() == t.subtask;
      const bool orphan = op.subtask_index() >= parallelism && op.subtask_index() % parallelism == t.subtask;
      const bool rescaled = snapshot_parallelism[op.vertex_id()] != parallelism;
      if (own || orphan || (rescaled && op.has_keyed())) *restore->add_operators() = op;
    }
  }
  auto in_chain = [&](int v) { return chain_of_vertex_[v] == t.chain; };
  for (int e = 0; e < graph_.edges_size(); ++e) {
    const proto::JobEdge& edge = graph_.edges(e);
    const bool internal = in_chain(edge.source()) && in_chain(edge.target());
    if (internal) continue;
    const bool forward = edge.partitioning() == proto::FORWARD &&
                         graph_.vertices(edge.source()).parallelism() == graph_.vertices(edge.target()).parallelism();
    if (in_chain(edge.source())) {
      auto* out = tdd.add_outputs();
      out->set_edge_index(e);
      out->set_partition_id(PartitionId(e, t.subtask));
      out->set_num_subpartitions(forward ? 1 : std::max(1, graph_.vertices(edge.target()).parallelism()));
    }
    if (edge.target() == chain[0]) {
      auto* gate = tdd.add_inputs();
      gate->set_edge_index(e);
      const int producer_chain = chain_of_vertex_[edge.source()];
      const int producers = std::max(1, graph_.vertices(edge.source()).parallelism());
      for (int j = 0; j < producers; ++j) {
        if (forward && j != t.subtask) continue;
        auto* ch = gate->add_channels();
        ch->set_producer_address(TaskOf(producer_chain, j).slot.address);
        ch->set_partition_id(PartitionId(e, j));
        ch->set_subpartition(forward ? 0 : t.subtask);
      }
    }
  }
  return tdd;
}

void JobMaster::Deploy() {
  for (size_t i = 0; i < tasks_.size(); ++i) {
    tasks_[i].state = proto::TASK_DEPLOYING;
    const std::string task_id = tasks_[i].task_id;
    const std::string tm = tasks_[i].slot.task_manager_id;
    gateway_.Deploy(tasks_[i].slot.address, Descriptor(i), [this, task_id, tm](const std::string& error) {
      if (error.empty()) return;
      bool ours = false;
      for (auto& t : tasks_) {
        if (t.task_id == task_id && !TerminalTask(t.state)) {
          t.state = proto::TASK_FAILED;
          t.error = absl::StrCat("deployment failed: ", error);
          ours = true;
        }
      }
      if (ours) {
        if (state_ == proto::RUNNING) {
          OnFailure(absl::StrCat("could not deploy task ", task_id, ": ", error));
        } else {
          MaybeRestart();
          CheckCompletion();
        }
      }
      OnRpcError(tm, error);
    });
  }
}

void JobMaster::OnRpcError(const std::string& task_manager_id, const std::string& error) {
  if (absl::StartsWith(error, kUnreachable) && on_task_manager_unreachable_) {
    on_task_manager_unreachable_(task_manager_id);
  }
}

void JobMaster::OnTaskReport(const proto::TaskReport& report) {
  for (auto& t : tasks_) {
    if (t.task_id != report.task_id()) continue;
    for (const auto& m : report.metrics()) t.metrics[m.vertex_id()] = m;
    if (TerminalTask(t.state)) return;  // final states do not change
    if (report.state() != proto::TASK_STATE_UNSPECIFIED) t.state = report.state();
    if (checkpoints_ && report.state() != proto::TASK_STATE_UNSPECIFIED && state_ == proto::RUNNING) {
      checkpoints_->OnTaskState(t.task_id, report.state());
    }
    if (report.state() == proto::TASK_FAILED) t.error = report.error();
    if (state_ == proto::RESTARTING) {
      MaybeRestart();
      return;
    }
    if (report.state() == proto::TASK_FAILED) {
      OnFailure(absl::StrCat("task ", graph_.vertices(chains_[t.chain][0]).name(), " (subtask ", t.subtask,
                             ") failed: ", report.error()));
      return;
    }
    if (report.state() == proto::TASK_CANCELED && state_ == proto::RUNNING) {
      // Not asked for (that would be CANCELLING): its TaskManager stopped.
      OnFailure(absl::StrCat("task ", graph_.vertices(chains_[t.chain][0]).name(), " (subtask ", t.subtask,
                             ") was cancelled by its TaskManager"));
      return;
    }
    if (state_ == proto::RUNNING && report.state() == proto::TASK_RUNNING) {
      bool all_running = true;
      for (const auto& other : tasks_) all_running = all_running && other.state == proto::TASK_RUNNING;
      if (all_running) restart_->OnRunning(NowMillis());
    }
    CheckCompletion();
    return;
  }
}

void JobMaster::OnTaskManagerLost(const std::string& task_manager_id) {
  if (terminal() || state_ == proto::CREATED) return;
  bool affected = false;
  for (auto& t : tasks_) {
    if (t.slot.task_manager_id == task_manager_id && !TerminalTask(t.state)) {
      t.state = proto::TASK_FAILED;
      t.error = "TaskManager lost";
      affected = true;
    }
  }
  if (!affected) return;
  if (state_ == proto::RUNNING) {
    OnFailure(absl::StrCat("TaskManager ", task_manager_id, " was lost"));
  } else {
    MaybeRestart();
    CheckCompletion();
  }
}

void JobMaster::CancelTasks() {
  for (auto& t : tasks_) {
    if (TerminalTask(t.state)) continue;
    if (t.state == proto::TASK_SCHEDULED) {
      t.state = proto::TASK_CANCELED;
      continue;
    }
    const std::string tm = t.slot.task_manager_id;
    const std::string task_id = t.task_id;
    gateway_.Cancel(t.slot.address, t.task_id, [this, tm, task_id](const std::string& error) {
      if (error.empty()) return;
      spdlog::warn("job {}: cancel of task {} failed: {}", job_id_, task_id, error);
      OnRpcError(tm, error);
    });
  }
}

void JobMaster::Fail(const std::string& message) {
  if (terminal()) return;
  CancelTasks();
  for (auto& t : tasks_) {
    if (!TerminalTask(t.state)) t.state = proto::TASK_CANCELED;
  }
  SetState(proto::FAILED, message);
}

void JobMaster::OnFailure(const std::string& message) {
  if (state_ != proto::RUNNING) return;
  last_failure_ = message;
  std::string why;
  const std::optional<int64_t> delay = restart_->OnFailure(NowMillis(), &why);
  if (!delay) {
    Fail(restarts_ == 0 ? message : absl::StrCat(message, " (", why, " after ", restarts_, " restart(s))"));
    return;
  }
  if (checkpoints_) checkpoints_->Reset(absl::StrCat("the job restarts: ", message));
  restart_delay_passed_ = false;
  const uint64_t generation = ++restart_generation_;
  const int64_t latest = checkpoints_ ? checkpoints_->latest_completed().value : 0;
  SetState(proto::RESTARTING,
           absl::StrCat(message, "; restarting in ", *delay, " ms from ",
                        latest > 0 ? absl::StrCat("checkpoint ", latest)
                        : initial_restore_ ? absl::StrCat("savepoint ", initial_restore_storage_)
                                           : std::string("the beginning")));
  CancelTasks();
  auto passed = [this, generation] {
    if (generation != restart_generation_) return;
    restart_delay_passed_ = true;
    MaybeRestart();
  };
  if (timers_ != nullptr && *delay > 0) {
    timers_->Schedule(*delay, passed);
  } else {
    passed();
  }
}

void JobMaster::MaybeRestart() {
  if (state_ != proto::RESTARTING || !restart_delay_passed_) return;
  for (const auto& t : tasks_) {
    if (!TerminalTask(t.state)) return;  // the failed attempt's tasks still end
  }
  Restart();
}

void JobMaster::Restart() {
  resources_.Release(job_id_);
  ++attempt_;
  ++restarts_;
  restore_ = initial_restore_;
  restore_storage_ = initial_restore_storage_;
  if (checkpoints_ && checkpoints_->latest_metadata() != nullptr) {
    restore_ = *checkpoints_->latest_metadata();
    restore_storage_.clear();
  }
  restored_checkpoint_ = restore_ ? restore_->checkpoint_id() : 0;
  AssignTaskIds();
  for (auto& t : tasks_) {
    t.state = proto::TASK_SCHEDULED;
    t.error.clear();
    t.metrics.clear();
    t.slot = SlotRef{};
  }
  spdlog::info("job {}: restart {} (attempt {}) from {}", job_id_, restarts_, attempt_,
               restored_checkpoint_ > 0 ? absl::StrCat("checkpoint ", restored_checkpoint_)
                                        : std::string("the beginning"));
  state_ = proto::CREATED;
  message_.clear();
  TryStart();
  if (state_ == proto::CREATED && on_state_change_) on_state_change_();
}

void JobMaster::SetInitialRestore(proto::CheckpointMetadata metadata, std::string storage) {
  initial_restore_ = std::move(metadata);
  initial_restore_storage_ = std::move(storage);
  restore_ = initial_restore_;
  restore_storage_ = initial_restore_storage_;
  restored_checkpoint_ = restore_->checkpoint_id();
}

void JobMaster::TriggerSavepoint(const std::string& target_dir, bool stop, CheckpointCoordinator::SavepointDone done) {
  if (!checkpoints_) {
    done(absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id_, " takes no checkpoints; savepoints need `checkpointing:` in its spec")));
    return;
  }
  if (state_ != proto::RUNNING) {
    done(absl::FailedPreconditionError(
        absl::StrCat("job ", job_id_, " is ", proto::JobState_Name(state_), ", not RUNNING")));
    return;
  }
  checkpoints_->TriggerSavepoint(
      target_dir, [this, stop, done = std::move(done)](absl::StatusOr<std::pair<std::string, int64_t>> result) {
        if (result.ok() && stop && state_ == proto::RUNNING) {
          // Flink's stop-with-savepoint: the job ends FINISHED. The
          // savepoint's notification goes out before the cancellations, so
          // sinks publish what it covers (else a resume from it does).
          stopped_with_ = result->first;
          ++restart_generation_;
          CancelTasks();
          SetState(proto::CANCELLING, absl::StrCat("stopping after savepoint ", result->first));
          CheckCompletion();
        }
        done(std::move(result));
      });
}

void JobMaster::ResumeFrom(const proto::JobStatus& stored) {
  restarts_ = stored.restarts();
  last_failure_ = stored.last_failure();
  if (checkpoints_ && checkpoints_->latest_metadata() != nullptr) {
    restore_ = *checkpoints_->latest_metadata();
    restore_storage_.clear();
    restored_checkpoint_ = restore_->checkpoint_id();
  }
}

void JobMaster::Cancel() {
  if (terminal()) return;
  ++restart_generation_;
  if (state_ == proto::CREATED) {
    for (auto& t : tasks_) t.state = proto::TASK_CANCELED;
    SetState(proto::CANCELED, "cancelled before it started");
    return;
  }
  CancelTasks();
  SetState(proto::CANCELLING);
  CheckCompletion();
}

void JobMaster::MarkFailed(const std::string& message) {
  for (auto& t : tasks_) {
    if (!TerminalTask(t.state)) t.state = proto::TASK_CANCELED;
  }
  SetState(proto::FAILED, message);
}

void JobMaster::KeepCheckpointRecord(const proto::JobStatus& stored) {
  *checkpoint_record_.mutable_checkpoints() = stored.checkpoints();
  checkpoint_record_.set_latest_completed_checkpoint(stored.latest_completed_checkpoint());
  checkpoint_record_.set_checkpoint_storage(stored.checkpoint_storage());
}

void JobMaster::OnAcknowledgeCheckpoint(const proto::AcknowledgeCheckpointRequest& ack) {
  if (checkpoints_) {
    checkpoints_->ReceiveAcknowledge(ack);
  } else {
    spdlog::debug("job {}: acknowledgement of checkpoint {} from task {} ignored: checkpointing is off", job_id_,
                  ack.checkpoint_id(), ack.task_id());
  }
}

void JobMaster::OnDeclineCheckpoint(const proto::DeclineCheckpointRequest& decline) {
  if (checkpoints_) {
    checkpoints_->ReceiveDecline(decline);
  } else {
    spdlog::debug("job {}: decline of checkpoint {} by task {} ignored: checkpointing is off", job_id_,
                  decline.checkpoint_id(), decline.task_id());
  }
}

void JobMaster::CheckCompletion() {
  bool all_terminal = true, all_finished = true;
  for (const auto& t : tasks_) {
    all_terminal = all_terminal && TerminalTask(t.state);
    all_finished = all_finished && t.state == proto::TASK_FINISHED;
  }
  if (all_finished && state_ == proto::RUNNING) {
    SetState(proto::FINISHED);
  } else if (all_terminal && state_ == proto::CANCELLING) {
    if (stopped_with_.empty()) {
      SetState(proto::CANCELED);
    } else {
      SetState(proto::FINISHED, absl::StrCat("stopped with savepoint ", stopped_with_));
    }
  } else if (on_state_change_ && state_ == proto::RUNNING) {
    // Task-level progress is visible through Status(); no job state change.
  }
}

proto::JobStatus JobMaster::Status() const {
  proto::JobStatus s;
  s.set_job_id(job_id_);
  s.set_name(graph_.name());
  s.set_state(state_);
  s.set_message(message_);
  s.set_submitted_at_ms(submitted_at_ms_);
  s.set_restarts(restarts_);
  s.set_last_failure(last_failure_);
  s.set_restored_checkpoint(restored_checkpoint_);
  s.set_attempt(attempt_);
  s.set_started_from(initial_restore_storage_);
  s.set_ended_at_ms(ended_at_ms_);
  for (const auto& v : graph_.vertices()) {
    auto* vs = s.add_vertices();
    vs->set_vertex_id(v.id());
    vs->set_name(v.name());
    vs->set_parallelism(v.parallelism());
    const int c = chain_of_vertex_[v.id()];
    proto::TaskState least = proto::TASK_FINISHED;
    LatencyCounts latency;
    for (size_t idx : task_index_[c]) {
      const ExecutionVertex& t = tasks_[idx];
      vs->add_subtask_states(t.state);
      // The least advanced state: scheduled < deploying < running < terminal.
      auto rank = [](proto::TaskState st) {
        switch (st) {
          case proto::TASK_SCHEDULED: return 0;
          case proto::TASK_DEPLOYING: return 1;
          case proto::TASK_RUNNING: return 2;
          case proto::TASK_FAILED: return 3;
          case proto::TASK_CANCELED: return 4;
          default: return 5;
        }
      };
      if (rank(t.state) < rank(least)) least = t.state;
      auto it = t.metrics.find(v.id());
      if (it != t.metrics.end()) {
        vs->set_records_in(vs->records_in() + it->second.records_in());
        vs->set_records_out(vs->records_out() + it->second.records_out());
        vs->set_dead_letters(vs->dead_letters() + it->second.dead_letters());
        vs->set_late_records(vs->late_records() + it->second.late_records());
        const auto& m = it->second;
        for (int i = 0; i < m.latency_buckets_size() && i < m.latency_counts_size(); ++i) {
          latency.Add(m.latency_buckets(i), m.latency_counts(i));
        }
      }
    }
    vs->set_state(least);
    if (latency.total() > 0) {
      vs->set_latency_markers(latency.total());
      vs->set_latency_p50_us(latency.Quantile(0.50));
      vs->set_latency_p99_us(latency.Quantile(0.99));
      vs->set_latency_p999_us(latency.Quantile(0.999));
      vs->set_latency_max_us(latency.Max());
    }
  }
  if (checkpoints_) {
    checkpoints_->AddStatus(&s);
  } else {
    s.MergeFrom(checkpoint_record_);
  }
  return s;
}

}  // namespace vstream
