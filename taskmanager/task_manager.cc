#include "taskmanager/task_manager.h"

#include <pthread.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/cpu_set.h"
#include "common/process_memory.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"

namespace vstream {

struct TaskManager::Task {
  proto::TaskDeploymentDescriptor tdd;
  std::unique_ptr<StreamTask> stream_task;  // set on the task thread once built
  std::mutex mu;                            // guards stream_task, state, error
  proto::TaskState state = proto::TASK_DEPLOYING;
  std::string error;
  bool cancel_requested = false;
  std::thread thread;
  bool reported_final = false;
};

// Acknowledgements and declines of checkpoints, from the upload thread to
// the JobManager. A lost one only fails that checkpoint (it times out).
class TaskManager::Responder final : public CheckpointResponder {
 public:
  explicit Responder(proto::ResourceManager::Stub* jobmanager) : jobmanager_(jobmanager) {}
  void Acknowledge(const proto::AcknowledgeCheckpointRequest& ack) override {
    proto::AcknowledgeCheckpointResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = jobmanager_->AcknowledgeCheckpoint(&ctx, ack, &resp);
    if (!s.ok()) {
      spdlog::warn("cannot acknowledge checkpoint {} of task {}: {}", ack.checkpoint_id(), ack.task_id(),
                   s.error_message());
    }
  }
  void Decline(const proto::DeclineCheckpointRequest& decline) override {
    proto::DeclineCheckpointResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = jobmanager_->DeclineCheckpoint(&ctx, decline, &resp);
    if (!s.ok()) {
      spdlog::warn("cannot decline checkpoint {} of task {}: {}", decline.checkpoint_id(), decline.task_id(),
                   s.error_message());
    }
  }

 private:
  proto::ResourceManager::Stub* const jobmanager_;
};

class TaskManager::ExecutorService final : public proto::TaskExecutor::Service {
 public:
  explicit ExecutorService(TaskManager& tm) : tm_(tm) {}
  grpc::Status DeployTask(grpc::ServerContext*, const proto::TaskDeploymentDescriptor* req,
                          proto::DeployTaskResponse*) override {
    tm_.Deploy(*req);
    return grpc::Status::OK;
  }
  grpc::Status CancelTask(grpc::ServerContext*, const proto::CancelTaskRequest* req,
                          proto::CancelTaskResponse*) override {
    tm_.CancelTask(req->task_id());
    return grpc::Status::OK;
  }
  grpc::Status TriggerCheckpoint(grpc::ServerContext*, const proto::TriggerCheckpointRequest* req,
                                 proto::TriggerCheckpointResponse*) override {
    const BarrierOptions options{.unaligned = req->unaligned(), .aligned_deadline_ms = req->aligned_deadline_ms()};
    const bool running = tm_.WithStreamTask(req->task_id(),
                                            [&](StreamTask& t) { t.TriggerCheckpoint(req->checkpoint_id(), options); });
    if (!running) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no running task " + req->task_id());
    return grpc::Status::OK;
  }
  grpc::Status NotifyCheckpoint(grpc::ServerContext*, const proto::CheckpointNotification* req,
                                proto::CheckpointNotificationResponse*) override {
    tm_.WithStreamTask(req->task_id(),
                       [&](StreamTask& t) { t.NotifyCheckpoint(req->checkpoint_id(), req->completed()); });
    return grpc::Status::OK;
  }

 private:
  TaskManager& tm_;
};

TaskManager::TaskManager(TaskManagerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<TaskManager>> TaskManager::Start(const TaskManagerOptions& options) {
  if (options.jobmanager_address.empty()) return absl::InvalidArgumentError("--jobmanager is required");
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (options.slots < 1) return absl::InvalidArgumentError("--slots must be at least 1");
  if (options.memory_bytes > 0 &&
      options.state_memory_bytes > options.memory_bytes - TaskManagerOptions::kFrameworkMemoryBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state-memory-mb ", options.state_memory_bytes >> 20, " does not fit in --memory-mb ",
        options.memory_bytes >> 20, ": state may take at most the process memory minus ",
        TaskManagerOptions::kFrameworkMemoryBytes >> 20, " MiB for the rest of the TaskManager"));
  }
  std::unique_ptr<TaskManager> tm(new TaskManager(options));
  RETURN_IF_ERROR(tm->Init());
  return tm;
}

absl::Status TaskManager::Init() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create data dir ", options_.data_dir, ": ", ec.message()));
  // A stable identity: a TaskManager restarted on the same data dir is the same one.
  const auto id_path = std::filesystem::path(options_.data_dir) / "resource-id";
  {
    std::ifstream in(id_path);
    std::getline(in, resource_id_);
  }
  if (resource_id_.empty()) {
    std::random_device rd;
    resource_id_ = absl::StrCat("tm-", absl::Hex(static_cast<uint64_t>(rd()) << 32 | rd(), absl::kZeroPad16));
    std::ofstream(id_path) << resource_id_ << "\n";
  }
  // Local state of a previous run is never used again: a restart restores
  // from checkpoint storage.
  std::filesystem::remove_all(std::filesystem::path(options_.data_dir) / "state", ec);

  StateMemoryBudget budget;
  budget.total_bytes = options_.state_memory_bytes;
  budget.slots = options_.slots;
  auto resources = StateResources::Create(budget);
  if (!resources.ok()) return resources.status();
  state_resources_ = std::move(*resources);
  spdlog::info("state memory {} MiB: block cache {} MiB (memtables up to {} MiB of it), write-back cache {} MiB per "
               "stateful operator subtask",
               options_.state_memory_bytes >> 20, state_resources_->cache_capacity_bytes() >> 20,
               state_resources_->write_buffer_limit_bytes() >> 20, state_resources_->write_back_cache_bytes() >> 20);

  data_service_ = std::make_unique<DataExchangeService>(partitions_);
  executor_service_ = std::make_unique<ExecutorService>(*this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options_.host, ":", options_.rpc_port),
                           grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(data_service_->service());
  builder.RegisterService(executor_service_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::ServerCompletionQueue> network_queue = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.host, ":", options_.rpc_port));
  }
  network_ = std::make_unique<NetworkThread>(std::move(network_queue));
  data_service_->Start(network_.get());
  address_ = absl::StrCat(options_.host, ":", port_);
  jobmanager_ = proto::ResourceManager::NewStub(
      grpc::CreateChannel(options_.jobmanager_address, grpc::InsecureChannelCredentials()));
  checkpoint_responder_ = std::make_unique<Responder>(jobmanager_.get());
  snapshot_uploads_ = std::make_unique<Executor>("snapshot-uploads");
  snapshot_copies_ = std::make_unique<Executor>("snapshot-copies");
  if (options_.low_priority_background) {
    snapshot_uploads_->Call([] {
      if (absl::Status s = LowerThreadPriority(); !s.ok()) spdlog::warn("snapshot uploads: {}", s.ToString());
    });
    if (absl::Status s = LowerCompactionPriority(); !s.ok()) {
      spdlog::warn("RocksDB compactions: {}", s.ToString());
    } else {
      spdlog::info("checkpoint uploads and RocksDB compactions at nice {} (--background-priority low)",
                   kBackgroundNice);
    }
  }
  spdlog::info("TaskManager {} listening on {} with {} slots", resource_id_, address_, options_.slots);
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  alignment_thread_ = std::thread([this] { AlignmentLoop(); });
  return absl::OkStatus();
}

TaskManager::~TaskManager() { Stop(); }

void TaskManager::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  aligned_sources_.Stop();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (alignment_thread_.joinable()) alignment_thread_.join();
  std::map<std::string, std::unique_ptr<Task>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(tasks_);
  }
  for (auto& [id, task] : tasks) {
    std::lock_guard<std::mutex> lock(task->mu);
    task->cancel_requested = true;
    if (task->stream_task) task->stream_task->Cancel();
  }
  partitions_.ReleaseWithPrefix("");
  for (auto& [id, task] : tasks) {
    if (task->thread.joinable()) task->thread.join();
  }
  snapshot_copies_.reset();  // drops copies not yet started (a running one may still post its upload)
  snapshot_uploads_.reset();  // drops uploads not yet started
  // Closes their input channels (cancelling the streams not at their end)
  // while the network thread still runs.
  tasks.clear();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  // Nothing may start on the network queue once it is shut down: the
  // streams the server cancelled end first.
  if (data_service_ && network_) data_service_->AwaitStreamsGone();
  if (network_) network_->Stop();
  spdlog::info("TaskManager {} stopped", resource_id_);
}

void TaskManager::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stopping_; });
}

proto::TaskReport TaskManager::MakeReport(Task* task) {
  proto::TaskReport r;
  r.set_job_id(task->tdd.job_id());
  r.set_task_id(task->tdd.task_id());
  std::lock_guard<std::mutex> lock(task->mu);
  r.set_state(task->state);
  r.set_error(task->error);
  if (task->stream_task) {
    for (const auto& c : task->stream_task->counters()) {
      auto* m = r.add_metrics();
      m->set_vertex_id(c->vertex_id);
      m->set_records_in(c->records_in.load(std::memory_order_relaxed));
      m->set_records_out(c->records_out.load(std::memory_order_relaxed));
      m->set_dead_letters(c->dead_letters.load(std::memory_order_relaxed));
      m->set_late_records(c->late_records.load(std::memory_order_relaxed));
      c->latency.ForEach([m](int bucket, int64_t n) {
        m->add_latency_buckets(bucket);
        m->add_latency_counts(n);
      });
    }
  }
  return r;
}

void TaskManager::CheckMemory() {
  const int64_t rss = ResidentBytes();
  if (rss > peak_resident_.load(std::memory_order_relaxed)) peak_resident_.store(rss, std::memory_order_relaxed);
  if (options_.memory_bytes <= 0) return;
  const bool over = rss > options_.memory_bytes;
  if (over && !over_memory_) {
    spdlog::warn("resident memory {} MiB is above --memory-mb {} (state memory {} MiB)", rss >> 20,
                 options_.memory_bytes >> 20, options_.state_memory_bytes >> 20);
  } else if (!over && over_memory_) {
    spdlog::info("resident memory {} MiB is back within --memory-mb {}", rss >> 20, options_.memory_bytes >> 20);
  }
  over_memory_ = over;
}

void TaskManager::HeartbeatLoop() {
  int interval_ms = 1000;
  std::unique_lock<std::mutex> lock(mu_);
  int failures = 0;
  while (!stopping_) {
    lock.unlock();
    CheckMemory();
    if (!registered_) {
      proto::RegisterTaskManagerRequest req;
      req.set_address(address_);
      req.set_slots(options_.slots);
      req.set_resource_id(resource_id_);
      proto::RegisterTaskManagerResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      grpc::Status s = jobmanager_->RegisterTaskManager(&ctx, req, &resp);
      if (s.ok()) {
        lock.lock();
        task_manager_id_ = resp.task_manager_id();
        lock.unlock();
        interval_ms = resp.heartbeat_interval_ms() > 0 ? static_cast<int>(resp.heartbeat_interval_ms()) : 1000;
        registered_ = true;
        failures = 0;
        spdlog::info("registered with JobManager {} as {}", options_.jobmanager_address, resp.task_manager_id());
      } else if (failures++ % 10 == 0) {
        spdlog::warn("cannot register with JobManager {}: {} (retrying)", options_.jobmanager_address,
                     s.error_message());
      }
    } else {
      proto::HeartbeatRequest req;
      std::vector<std::string> final_reported;
      {
        std::lock_guard<std::mutex> l(mu_);
        req.set_task_manager_id(task_manager_id_);
        for (auto& [id, task] : tasks_) {
          *req.add_tasks() = MakeReport(task.get());
          if (task->reported_final) final_reported.push_back(id);
        }
      }
      proto::HeartbeatResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(2 * interval_ms));
      grpc::Status s = jobmanager_->Heartbeat(&ctx, req, &resp);
      if (s.ok() && resp.unknown_task_manager()) {
        // The JobManager restarted or gave this TaskManager up: its tasks
        // belong to attempts that are over. They end before the slots are
        // offered again, so that no old task meets its successor.
        spdlog::warn("JobManager does not know this TaskManager any more; cancelling {} task(s) and registering again",
                     req.tasks_size());
        CancelAllAndWait();
        registered_ = false;
        lock.lock();  // the loop's top unlocks
        continue;
      }
      if (!s.ok() && failures++ % 10 == 0) spdlog::warn("heartbeat failed: {}", s.error_message());
      if (s.ok()) failures = 0;
      // Tasks whose final state went out are forgotten.
      std::vector<std::unique_ptr<Task>> done;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& id : final_reported) {
          auto it = tasks_.find(id);
          if (it != tasks_.end()) {
            done.push_back(std::move(it->second));
            tasks_.erase(it);
          }
        }
      }
      for (auto& t : done) {
        if (t->thread.joinable()) t->thread.join();
      }
      ForgetTasks(std::move(done));
    }
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(registered_ ? interval_ms : 500), [&] { return stopping_; });
  }
}

void TaskManager::AlignmentLoop() {
  // When no source is aligned: how often to look for one.
  constexpr int64_t kIdleCheckMs = 100;
  // Without an answer for this long (a JobManager without alignment, or
  // unreachable), the sources read freely rather than stop for good.
  constexpr int64_t kGiveUpMs = 10'000;
  int failures = 0;
  int64_t last_answer_ms = MonotonicMillis();
  bool gave_up = false;
  int64_t interval_ms = 0;
  while (aligned_sources_.Wait(std::chrono::milliseconds(interval_ms))) {
    std::vector<std::shared_ptr<AlignedSource>> sources = aligned_sources_.Snapshot();
    if (sources.empty()) {
      interval_ms = kIdleCheckMs;
      last_answer_ms = MonotonicMillis();
      continue;
    }
    interval_ms = INT64_MAX;
    proto::ReportWatermarksRequest req;
    std::vector<bool> was_done(sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
      const AlignedSource& src = *sources[i];
      interval_ms = std::min(interval_ms, src.update_interval_ms > 0 ? src.update_interval_ms : kIdleCheckMs);
      const int64_t watermark = src.watermark.load(std::memory_order_relaxed);
      was_done[i] = src.done.load(std::memory_order_acquire);
      proto::SourceWatermark* w = req.add_sources();
      w->set_job_id(src.job_id);
      w->set_attempt(src.attempt);
      w->set_group(src.group);
      w->set_vertex_id(src.vertex_id);
      w->set_subtask(src.subtask);
      w->set_watermark(watermark);
      w->set_active(!was_done[i] && watermark != INT64_MIN && !src.idle.load(std::memory_order_relaxed));
      w->set_starting(!was_done[i] && watermark == INT64_MIN);
      w->set_max_drift_ms(src.max_drift_ms);
      w->set_group_size(src.group_size);
    }
    proto::ReportWatermarksResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::Status s = jobmanager_->ReportWatermarks(&ctx, req, &resp);
    if (s.ok() && resp.max_watermark_size() == req.sources_size()) {
      failures = 0;
      last_answer_ms = MonotonicMillis();
      if (gave_up) spdlog::info("watermark alignment: the JobManager answers again");
      gave_up = false;
      for (size_t i = 0; i < sources.size(); ++i) {
        sources[i]->max_watermark.store(resp.max_watermark(static_cast<int>(i)), std::memory_order_relaxed);
      }
      aligned_sources_.ForgetDone(sources, was_done);
      continue;
    }
    if (failures++ % 50 == 0) {
      spdlog::warn("cannot report source watermarks for alignment: {}", s.ok() ? "malformed answer" : s.error_message());
    }
    if (!gave_up && MonotonicMillis() - last_answer_ms >= kGiveUpMs) {
      // The sources keep their last bound until then.
      spdlog::warn("watermark alignment: no answer from the JobManager for {} s; aligned sources read unbounded "
                   "until it answers",
                   kGiveUpMs / 1000);
      gave_up = true;
    }
    if (gave_up) {
      for (const auto& src : sources) src->max_watermark.store(INT64_MAX, std::memory_order_relaxed);
    }
  }
}

void TaskManager::ForgetTasks(std::vector<std::unique_ptr<Task>> done) {
  std::vector<std::string> dirs;
  for (auto& t : done) {
    for (int v : t->tdd.chain()) dirs.push_back(StreamTask::StateDir(options_.data_dir, t->tdd, v));
  }
  done.clear();  // closes their RocksDB instances
  for (const std::string& dir : dirs) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    std::filesystem::remove(parent, ec);                // a<attempt>/, if empty
    std::filesystem::remove(parent.parent_path(), ec);  // <job>/, if empty
  }
}

void TaskManager::CancelAllAndWait() {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, task] : tasks_) ids.push_back(id);
  }
  for (const std::string& id : ids) CancelTask(id);
  std::vector<std::unique_ptr<Task>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, task] : tasks_) done.push_back(std::move(task));
    tasks_.clear();
  }
  for (auto& t : done) {
    if (t->thread.joinable()) t->thread.join();
  }
  ForgetTasks(std::move(done));
}

void TaskManager::Deploy(const proto::TaskDeploymentDescriptor& tdd) {
  auto task = std::make_unique<Task>();
  task->tdd = tdd;
  Task* raw = task.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    tasks_[tdd.task_id()] = std::move(task);
    raw->thread = std::thread([this, raw] { RunTask(raw); });
  }
  spdlog::info("task {} deployed{}", tdd.task_id(),
               tdd.has_restore() ? absl::StrCat(", restoring checkpoint ", tdd.restore().checkpoint_id()) : "");
}

void TaskManager::CancelTask(const std::string& task_id) {
  std::string job_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) return;
    Task* task = it->second.get();
    job_id = absl::StrCat(task->tdd.job_id(), "/a", task->tdd.attempt());
    std::lock_guard<std::mutex> tl(task->mu);
    task->cancel_requested = true;
    if (task->stream_task) task->stream_task->Cancel();
  }
  partitions_.ReleaseWithPrefix(job_id + "/");
}

bool TaskManager::WithStreamTask(const std::string& task_id, const std::function<void(StreamTask&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return false;
  std::lock_guard<std::mutex> tl(it->second->mu);
  if (!it->second->stream_task) return false;
  fn(*it->second->stream_task);
  return true;
}

void TaskManager::Report(Task* task) {
  proto::TaskReport report = MakeReport(task);
  for (int attempt = 0; attempt < 5; ++attempt) {
    proto::UpdateTaskStateResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    if (jobmanager_->UpdateTaskState(&ctx, report, &resp).ok()) return;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; })) return;
  }
  // The heartbeat carries the state too.
}

void TaskManager::RunTask(Task* task) {
  // Named for top, perf and /proc (task-v<head vertex id>-<subtask>), where
  // it would otherwise carry the name of the gRPC thread that deployed it.
  const std::string thread_name = absl::StrCat("task-v", task->tdd.chain_size() > 0 ? task->tdd.chain(0) : -1, "-",
                                               task->tdd.subtask_index());
  pthread_setname_np(pthread_self(), thread_name.substr(0, 15).c_str());
  const std::string name = absl::StrCat("task ", task->tdd.task_id());
  StreamTaskEnv env;
  env.partitions = &partitions_;
  env.channels = &channels_;
  env.network = network_.get();
  env.data_dir = options_.data_dir;
  env.own_address = address_;
  env.receive_credits = options_.receive_credits;
  env.send_queue_buffers = options_.send_queue_buffers;
  env.state_resources = state_resources_;
  env.checkpoint_responder = checkpoint_responder_.get();
  env.snapshot_uploads = snapshot_uploads_.get();
  env.snapshot_copies = snapshot_copies_.get();
  env.aligned_sources = &aligned_sources_;
  auto created = StreamTask::Create(task->tdd, env);
  absl::Status result;
  if (created.ok()) {
    {
      std::lock_guard<std::mutex> lock(task->mu);
      task->stream_task = std::move(*created);
      task->state = proto::TASK_RUNNING;
      if (task->cancel_requested) task->stream_task->Cancel();
    }
    Report(task);
    result = task->stream_task->Run();
  } else {
    result = created.status();
  }
  {
    std::lock_guard<std::mutex> lock(task->mu);
    if (result.ok()) {
      task->state = proto::TASK_FINISHED;
    } else if (absl::IsCancelled(result) || task->cancel_requested) {
      task->state = proto::TASK_CANCELED;
    } else {
      task->state = proto::TASK_FAILED;
      task->error = std::string(result.message());
    }
  }
  if (result.ok()) {
    spdlog::info("{} finished", name);
  } else if (task->state == proto::TASK_FAILED) {
    spdlog::error("{} failed: {}", name, std::string(result.message()));
  } else {
    spdlog::info("{} cancelled", name);
  }
  Report(task);
  std::lock_guard<std::mutex> lock(task->mu);
  task->reported_final = true;
}

}  // namespace vstream
