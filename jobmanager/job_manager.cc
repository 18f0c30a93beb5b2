#include "jobmanager/job_manager.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "jobmanager/completed_checkpoint_store.h"
#include "proto/client.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace vstream {

namespace fs = std::filesystem;

namespace {

// The error text of an RPC to a TaskManager; "unreachable: ..." when it
// never got there (JobMaster gives such a TaskManager up at once).
std::string RpcError(const grpc::Status& s) {
  if (s.ok()) return "";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::StrCat("unreachable: ", s.error_message());
  }
  return s.error_message();
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  if (absl::IsNotFound(s)) code = grpc::StatusCode::NOT_FOUND;
  if (absl::IsInvalidArgument(s)) code = grpc::StatusCode::INVALID_ARGUMENT;
  if (absl::IsFailedPrecondition(s)) code = grpc::StatusCode::FAILED_PRECONDITION;
  return grpc::Status(code, std::string(s.message()));
}

std::string NewJobId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(NowMillis()));
  return absl::StrCat(absl::Hex(gen(), absl::kZeroPad16), absl::Hex(gen(), absl::kZeroPad16));
}

bool WriteAtomically(const fs::path& path, const std::string& bytes) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.good()) return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), {});
  return true;
}

}  // namespace

// Outgoing calls to TaskManagers, on the RPC executor; results go back to main.
class JobManager::GrpcGateway : public TaskManagerGateway, public CheckpointGateway {
 public:
  GrpcGateway(Executor& main, Executor& rpc) : main_(main), rpc_(rpc) {}

  void Deploy(const std::string& address, const proto::TaskDeploymentDescriptor& tdd,
              std::function<void(const std::string&)> done) override {
    rpc_.Post([this, address, tdd, done = std::move(done)] {
      proto::DeployTaskResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Status s = Stub(address)->DeployTask(&ctx, tdd, &resp);
      std::string error = RpcError(s);
      main_.Post([done, error] { done(error); });
    });
  }

  void Cancel(const std::string& address, const std::string& task_id,
              std::function<void(const std::string&)> done) override {
    rpc_.Post([this, address, task_id, done = std::move(done)] {
      proto::CancelTaskRequest req;
      req.set_task_id(task_id);
      proto::CancelTaskResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::Status s = Stub(address)->CancelTask(&ctx, req, &resp);
      std::string error = RpcError(s);
      main_.Post([done, error] { done(error); });
    });
  }

  void TriggerCheckpoint(const std::string& address, const proto::TriggerCheckpointRequest& request,
                         std::function<void(const std::string&)> done) override {
    rpc_.Post([this, address, request, done = std::move(done)] {
      proto::TriggerCheckpointResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      grpc::Status s = Stub(address)->TriggerCheckpoint(&ctx, request, &resp);
      std::string error = s.ok() ? "" : s.error_message();
      main_.Post([done, error] { done(error); });
    });
  }

  void NotifyCheckpoint(const std::string& address, const proto::CheckpointNotification& notification) override {
    rpc_.Post([this, address, notification] {
      proto::CheckpointNotificationResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      grpc::Status s = Stub(address)->NotifyCheckpoint(&ctx, notification, &resp);
      if (!s.ok()) {
        spdlog::warn("notification of checkpoint {} to task {} at {} failed: {}", notification.checkpoint_id(),
                     notification.task_id(), address, s.error_message());
      }
    });
  }

 private:
  // RPC executor thread only.
  proto::TaskExecutor::Stub* Stub(const std::string& address) {
    auto& stub = stubs_[address];
    if (!stub) {
      grpc::ChannelArguments args;
      args.SetMaxSendMessageSize(64 << 20);
      stub = proto::TaskExecutor::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    }
    return stub.get();
  }

  Executor& main_;
  Executor& rpc_;
  std::map<std::string, std::unique_ptr<proto::TaskExecutor::Stub>> stubs_;
};

// Checkpoint timers on the main executor, by the wall clock.
class JobManager::MainTimers : public MainThreadTimers {
 public:
  explicit MainTimers(Executor& main) : main_(main) {}
  int64_t Now() override { return NowMillis(); }
  void Schedule(int64_t delay_ms, std::function<void()> fn) override {
    main_.Schedule(std::chrono::milliseconds(delay_ms), std::move(fn));
  }

 private:
  Executor& main_;
};

class JobManager::DispatcherService final : public proto::Dispatcher::Service {
 public:
  explicit DispatcherService(JobManager& jm) : jm_(jm) {}
  grpc::Status SubmitJob(grpc::ServerContext*, const proto::SubmitJobRequest* req,
                         proto::SubmitJobResponse* resp) override {
    auto id = jm_.main_->Call([&] { return jm_.Submit(req->graph(), req->from_savepoint()); });
    if (!id.ok()) return ToGrpc(id.status());
    resp->set_job_id(*id);
    return grpc::Status::OK;
  }
  grpc::Status ListJobs(grpc::ServerContext*, const proto::ListJobsRequest*,
                        proto::ListJobsResponse* resp) override {
    *resp = jm_.main_->Call([&] { return jm_.List(); });
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext*, const proto::JobIdRequest* req, proto::JobStatus* resp) override {
    auto s = jm_.main_->Call([&] { return jm_.Get(req->job_id()); });
    if (!s.ok()) return ToGrpc(s.status());
    *resp = *s;
    return grpc::Status::OK;
  }
  grpc::Status CancelJob(grpc::ServerContext*, const proto::JobIdRequest* req,
                         proto::CancelJobResponse*) override {
    return ToGrpc(jm_.main_->Call([&] { return jm_.Cancel(req->job_id()); }));
  }
  // Waits (on this gRPC thread) until the savepoint is complete or failed.
  grpc::Status TriggerSavepoint(grpc::ServerContext* ctx, const proto::SavepointRequest* req,
                                proto::SavepointResponse* resp) override {
    auto result = std::make_shared<std::promise<absl::StatusOr<std::pair<std::string, int64_t>>>>();
    auto future = result->get_future();
    jm_.main_->Call([&] {
      auto it = jm_.jobs_.find(req->job_id());
      if (it == jm_.jobs_.end()) {
        result->set_value(absl::NotFoundError(absl::StrCat("no job with id ", req->job_id())));
        return 0;
      }
      const std::string target = req->target_dir().empty() ? jm_.DefaultSavepointDir() : req->target_dir();
      it->second->TriggerSavepoint(target, req->stop(),
                                   [result](absl::StatusOr<std::pair<std::string, int64_t>> r) {
                                     result->set_value(std::move(r));
                                   });
      return 0;
    });
    while (future.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    absl::StatusOr<std::pair<std::string, int64_t>> r = future.get();
    if (!r.ok()) return ToGrpc(r.status());
    resp->set_path(r->first);
    resp->set_checkpoint_id(r->second);
    return grpc::Status::OK;
  }

 private:
  JobManager& jm_;
};

class JobManager::ResourceManagerService final : public proto::ResourceManager::Service {
 public:
  explicit ResourceManagerService(JobManager& jm) : jm_(jm) {}
  grpc::Status RegisterTaskManager(grpc::ServerContext*, const proto::RegisterTaskManagerRequest* req,
                                   proto::RegisterTaskManagerResponse* resp) override {
    if (req->slots() < 1 || req->address().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a TaskManager needs an address and at least one slot");
    }
    jm_.main_->Call([&] {
      std::string replaced;
      std::string id = jm_.resources_.Register(req->resource_id(), req->address(), req->slots(), NowMillis(), &replaced);
      spdlog::info("TaskManager {} registered from {} with {} slots", id, req->address(), req->slots());
      if (!replaced.empty()) {
        for (auto& [job_id, jm] : jm_.jobs_) jm->OnTaskManagerLost(replaced);
      }
      resp->set_task_manager_id(id);
      resp->set_heartbeat_interval_ms(jm_.options_.heartbeat_interval_ms);
      jm_.OnSlotsChanged();
      return 0;
    });
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const proto::HeartbeatRequest* req,
                         proto::HeartbeatResponse* resp) override {
    jm_.main_->Call([&] {
      if (!jm_.resources_.Heartbeat(req->task_manager_id(), NowMillis())) {
        resp->set_unknown_task_manager(true);
        return 0;
      }
      for (const auto& r : req->tasks()) {
        auto it = jm_.jobs_.find(r.job_id());
        if (it != jm_.jobs_.end()) it->second->OnTaskReport(r);
      }
      return 0;
    });
    return grpc::Status::OK;
  }
  grpc::Status UpdateTaskState(grpc::ServerContext*, const proto::TaskReport* req,
                               proto::UpdateTaskStateResponse*) override {
    jm_.main_->Call([&] {
      auto it = jm_.jobs_.find(req->job_id());
      if (it != jm_.jobs_.end()) it->second->OnTaskReport(*req);
      return 0;
    });
    return grpc::Status::OK;
  }
  // Unknown jobs are ignored: a task of a job that is gone cannot help it.
  grpc::Status AcknowledgeCheckpoint(grpc::ServerContext*, const proto::AcknowledgeCheckpointRequest* req,
                                     proto::AcknowledgeCheckpointResponse*) override {
    jm_.main_->Call([&] {
      auto it = jm_.jobs_.find(req->job_id());
      if (it != jm_.jobs_.end()) {
        it->second->OnAcknowledgeCheckpoint(*req);
      } else {
        spdlog::debug("acknowledgement of checkpoint {} for unknown job {} ignored", req->checkpoint_id(),
                      req->job_id());
      }
      return 0;
    });
    return grpc::Status::OK;
  }
  grpc::Status DeclineCheckpoint(grpc::ServerContext*, const proto::DeclineCheckpointRequest* req,
                                 proto::DeclineCheckpointResponse*) override {
    jm_.main_->Call([&] {
      auto it = jm_.jobs_.find(req->job_id());
      if (it != jm_.jobs_.end()) {
        it->second->OnDeclineCheckpoint(*req);
      } else {
        spdlog::debug("decline of checkpoint {} for unknown job {} ignored", req->checkpoint_id(), req->job_id());
      }
      return 0;
    });
    return grpc::Status::OK;
  }

  // Not through the main thread: WatermarkAlignment locks for itself.
  grpc::Status ReportWatermarks(grpc::ServerContext*, const proto::ReportWatermarksRequest* req,
                                proto::ReportWatermarksResponse* resp) override {
    const int64_t now = MonotonicMillis();
    for (const proto::SourceWatermark& s : req->sources()) resp->add_max_watermark(jm_.alignment_.Report(s, now));
    return grpc::Status::OK;
  }

 private:
  JobManager& jm_;
};

JobManager::JobManager(JobManagerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Start(const JobManagerOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  std::unique_ptr<JobManager> jm(new JobManager(options));
  RETURN_IF_ERROR(jm->Init());
  return jm;
}

absl::Status JobManager::Init() {
  std::error_code ec;
  fs::create_directories(fs::path(options_.data_dir) / "jobs", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create data dir ", options_.data_dir, ": ", ec.message()));
  main_ = std::make_unique<Executor>("jm-main");
  rpc_ = std::make_unique<Executor>("jm-rpc");
  gateway_ = std::make_unique<GrpcGateway>(*main_, *rpc_);
  timers_ = std::make_unique<MainTimers>(*main_);
  main_->Call([this] {
    LoadJobStore();
    return 0;
  });
  dispatcher_service_ = std::make_unique<DispatcherService>(*this);
  rm_service_ = std::make_unique<ResourceManagerService>(*this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options_.host, ":", options_.rpc_port), grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(dispatcher_service_.get());
  builder.RegisterService(rm_service_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.host, ":", options_.rpc_port));
  }
  spdlog::info("JobManager listening on {}", address());
  main_->Schedule(std::chrono::milliseconds(options_.heartbeat_interval_ms), [this] { CheckHeartbeats(); });
  return absl::OkStatus();
}

std::string JobManager::address() const { return absl::StrCat(options_.host, ":", port_); }

JobManager::~JobManager() { Stop(); }

void JobManager::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (main_) main_->Stop();
  if (rpc_) rpc_->Stop();
  spdlog::info("JobManager stopped");
}

void JobManager::CheckHeartbeats() {
  for (const std::string& id : resources_.ExpireSilent(NowMillis(), options_.heartbeat_timeout_ms)) {
    spdlog::warn("TaskManager {} missed heartbeats for {} ms: lost", id, options_.heartbeat_timeout_ms);
    for (auto& [job_id, jm] : jobs_) jm->OnTaskManagerLost(id);
  }
  main_->Schedule(std::chrono::milliseconds(options_.heartbeat_interval_ms), [this] { CheckHeartbeats(); });
}

void JobManager::OnSlotsChanged() {
  for (auto& [id, jm] : jobs_) jm->TryStart();
}

void JobManager::PersistJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  const fs::path dir = fs::path(options_.data_dir) / "jobs" / job_id;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::exists(dir / "graph.pb")) WriteAtomically(dir / "graph.pb", it->second->graph().SerializeAsString());
  if (!WriteAtomically(dir / "status.pb", it->second->Status().SerializeAsString())) {
    spdlog::error("cannot write job store entry for job {}", job_id);
  }
}

std::unique_ptr<JobMaster> JobManager::NewJobMaster(const std::string& job_id, const proto::JobGraph& graph,
                                                   int64_t submitted_at_ms,
                                                   std::unique_ptr<CheckpointCoordinator> checkpoints, int attempt) {
  auto jm = std::make_unique<JobMaster>(job_id, graph, submitted_at_ms, resources_, *gateway_,
                                        [this, job_id] { PersistJob(job_id); }, std::move(checkpoints),
                                        timers_.get(), attempt);
  jm->set_on_task_manager_unreachable([this](const std::string& tm) { GiveUpTaskManager(tm, "unreachable"); });
  return jm;
}

void JobManager::GiveUpTaskManager(const std::string& id, const std::string& why) {
  if (!resources_.Remove(id)) return;
  spdlog::warn("TaskManager {} is {}: lost", id, why);
  for (auto& [job_id, jm] : jobs_) jm->OnTaskManagerLost(id);
}

std::string JobManager::DefaultSavepointDir() const {
  std::error_code ec;
  return (fs::absolute(options_.data_dir, ec) / "savepoints").lexically_normal().string();
}

absl::StatusOr<proto::CheckpointMetadata> JobManager::ReadSavepoint(const std::string& uri,
                                                                   const proto::JobGraph& graph) {
  auto storage = CheckpointStorage::Open(uri);
  if (!storage.ok()) return storage.status();
  absl::StatusOr<std::string> bytes = (*storage)->Read("_metadata");
  proto::CheckpointMetadata metadata;
  if (!bytes.ok()) {
    return absl::NotFoundError(absl::StrCat("no savepoint at ", uri, ": ", bytes.status().message()));
  }
  if (!metadata.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("the savepoint metadata ", uri, "/_metadata is corrupt"));
  }
  for (const proto::OperatorSnapshot& op : metadata.operators()) {
    if (op.vertex_id() < 0 || op.vertex_id() >= graph.vertices_size()) {
      return absl::InvalidArgumentError(absl::StrCat("the savepoint ", uri, " has state of operator #",
                                                     op.vertex_id(), ", which job '", graph.name(),
                                                     "' does not have (it has ", graph.vertices_size(), ")"));
    }
  }
  RETURN_IF_ERROR(CheckInFlightRecordsFit(metadata, graph, uri));
  RETURN_IF_ERROR(CheckKeyGroupingFits(metadata, graph, uri));
  return metadata;
}

void JobManager::LoadJobStore() {
  const fs::path root = fs::path(options_.data_dir) / "jobs";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    std::string graph_bytes, status_bytes;
    proto::JobGraph graph;
    proto::JobStatus status;
    if (!ReadFile(entry.path() / "graph.pb", &graph_bytes) || !graph.ParseFromString(graph_bytes)) continue;
    ReadFile(entry.path() / "status.pb", &status_bytes);
    status.ParseFromString(status_bytes);
    const std::string job_id = entry.path().filename().string();
    const bool ended =
        status.state() == proto::FINISHED || status.state() == proto::CANCELED || status.state() == proto::FAILED;
    if (!ended && graph.checkpointing().interval_ms() > 0) {
      // A job that ran: it resumes from its latest completed checkpoint
      // (the coordinator reads checkpoints.pb) once TaskManagers offer slots.
      auto checkpoints = CreateCheckpointCoordinator(job_id, graph);
      if (checkpoints.ok()) {
        auto jm = NewJobMaster(job_id, graph, status.submitted_at_ms(), std::move(*checkpoints), status.attempt() + 1);
        if (!status.started_from().empty()) {
          auto savepoint = ReadSavepoint(status.started_from(), graph);
          if (savepoint.ok()) {
            jm->SetInitialRestore(std::move(*savepoint), status.started_from());
          } else {
            spdlog::error("job store: job {} started from savepoint {}, which cannot be read any more: {}", job_id,
                          status.started_from(), std::string(savepoint.status().message()));
          }
        }
        jm->ResumeFrom(status);
        JobMaster* raw = jm.get();
        jobs_[job_id] = std::move(jm);
        spdlog::info("job store: job {} resumes ({} before the JobManager restarted); restoring {}", job_id,
                     proto::JobState_Name(status.state()),
                     raw->Status().restored_checkpoint() > 0
                         ? absl::StrCat("checkpoint ", raw->Status().restored_checkpoint())
                         : std::string("nothing: no checkpoint had completed"));
        continue;
      }
      spdlog::error("job store: job {} cannot resume: {}", job_id, std::string(checkpoints.status().message()));
    }
    auto jm = NewJobMaster(job_id, graph, status.submitted_at_ms(), nullptr, status.attempt());
    JobMaster* raw = jm.get();
    jobs_[job_id] = std::move(jm);
    // checkpoints.pb is written at every completion, status.pb only at job
    // state changes: the former knows the latest completed checkpoint.
    auto completed = CompletedCheckpointStore((entry.path() / "checkpoints.pb").string()).Load();
    if (completed.ok() && completed->checkpoints_size() > 0) {
      const auto& latest = completed->checkpoints(completed->checkpoints_size() - 1);
      if (latest.checkpoint_id() > status.latest_completed_checkpoint()) {
        status.set_latest_completed_checkpoint(latest.checkpoint_id());
        status.set_checkpoint_storage(latest.storage());
      }
    }
    raw->KeepCheckpointRecord(status);
    switch (status.state()) {
      case proto::FINISHED:
      case proto::CANCELED:
      case proto::FAILED:
        // Keep the final record as it was.
        raw->MarkFailed(status.message());
        break;
      default:
        raw->MarkFailed("the JobManager restarted while the job ran, and the job takes no checkpoints to "
                        "resume from; resubmit it");
    }
    spdlog::info("job store: loaded job {} ({})", job_id, proto::JobState_Name(status.state()));
  }
}

absl::StatusOr<std::string> JobManager::Submit(const proto::JobGraph& graph, const std::string& from_savepoint) {
  if (graph.vertices_size() == 0) return absl::InvalidArgumentError("the job graph has no vertices");
  for (int i = 0; i < graph.vertices_size(); ++i) {
    if (graph.vertices(i).id() != i) return absl::InvalidArgumentError("vertex ids must be 0..n-1 in order");
  }
  for (const auto& e : graph.edges()) {
    if (e.source() < 0 || e.source() >= graph.vertices_size() || e.target() < 0 ||
        e.target() >= graph.vertices_size() || e.source() >= e.target()) {
      return absl::InvalidArgumentError("job graph edges must point forward between existing vertices");
    }
  }
  if (auto restart = RestartBackoff::Create(graph.restart(), graph.checkpointing().interval_ms() > 0); !restart.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("job '", graph.name(), "': ", restart.status().message()));
  }
  const std::string job_id = NewJobId();
  ASSIGN_OR_RETURN(std::unique_ptr<CheckpointCoordinator> checkpoints, CreateCheckpointCoordinator(job_id, graph));
  std::optional<proto::CheckpointMetadata> savepoint;
  if (!from_savepoint.empty()) {
    auto read = ReadSavepoint(from_savepoint, graph);
    if (!read.ok()) return read.status();
    savepoint = std::move(*read);
  }
  auto jm = NewJobMaster(job_id, graph, NowMillis(), std::move(checkpoints), 0);
  if (savepoint) jm->SetInitialRestore(std::move(*savepoint), from_savepoint);
  JobMaster* raw = jm.get();
  jobs_[job_id] = std::move(jm);
  spdlog::info("job {} ('{}') submitted with {} vertices", job_id, graph.name(), graph.vertices_size());
  PersistJob(job_id);
  raw->TryStart();
  return job_id;
}

absl::StatusOr<std::unique_ptr<CheckpointCoordinator>> JobManager::CreateCheckpointCoordinator(
    const std::string& job_id, const proto::JobGraph& graph) {
  const proto::CheckpointingSpec& spec = graph.checkpointing();
  if (spec.interval_ms() <= 0) return std::unique_ptr<CheckpointCoordinator>();
  // Each job in a directory of its own under the configured storage, as
  // Flink's <state.checkpoints.dir>/<job id>.
  std::string root = spec.storage();
  if (root.empty()) {
    std::error_code ec;
    const fs::path data_dir = fs::absolute(options_.data_dir, ec);
    root = (data_dir / "checkpoints").lexically_normal().string();
  }
  auto storage = CheckpointStorage::Open(absl::StrCat(root, root.back() == '/' ? "" : "/", job_id));
  if (!storage.ok()) {
    return absl::Status(storage.status().code(),
                        absl::StrCat("job '", graph.name(), "': ", storage.status().message()));
  }
  CheckpointCoordinatorOptions options;
  options.job_id = job_id;
  options.spec = spec;
  options.channel_layout = ChannelLayout(graph);
  options.key_group_fields = KeyGroupFields(graph);
  auto store = std::make_unique<CompletedCheckpointStore>(
      (fs::path(options_.data_dir) / "jobs" / job_id / "checkpoints.pb").string());
  auto coordinator = CheckpointCoordinator::Create(std::move(options), std::move(*storage), std::move(store),
                                                   *gateway_, *timers_);
  if (!coordinator.ok()) {
    return absl::Status(coordinator.status().code(),
                        absl::StrCat("job '", graph.name(), "': ", coordinator.status().message()));
  }
  return std::move(*coordinator);
}

proto::ListJobsResponse JobManager::List() {
  proto::ListJobsResponse resp;
  for (const auto& [id, jm] : jobs_) *resp.add_jobs() = jm->Status();
  return resp;
}

absl::StatusOr<proto::JobStatus> JobManager::Get(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job with id ", job_id));
  return it->second->Status();
}

absl::Status JobManager::Cancel(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job with id ", job_id));
  if (it->second->terminal()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " already ended (", proto::JobState_Name(it->second->state()), ")"));
  }
  it->second->Cancel();
  return absl::OkStatus();
}

}  // namespace vstream
