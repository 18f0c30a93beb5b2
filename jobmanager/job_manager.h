#pragma once
// The JobManager process: the Dispatcher (client API, job store, one
// JobMaster per job) and the ResourceManager (TaskManager registry, slots,
// heartbeats), served over one gRPC port.
//
// Threads: all state lives on one main executor thread (actor-style, as in
// Flink); gRPC handlers Call() into it. Outgoing calls to TaskManagers run
// on a separate RPC executor so that a slow TaskManager never blocks the
// main thread.
//
// The job store: <data-dir>/jobs/<job id>/graph.pb and status.pb, written
// atomically (write, then rename) on every job state change, and
// checkpoints.pb, the job's retained completed checkpoints (written by its
// CheckpointCoordinator whenever one completes).
//
// Checkpoint storage: a job's checkpoints go to <storage>/<job id>, where
// <storage> is its checkpointing.storage, by default
// file://<data-dir>/checkpoints.

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/executor.h"
#include "grpcpp/grpcpp.h"
#include "jobmanager/job_master.h"
#include "jobmanager/resource_manager.h"
#include "jobmanager/watermark_alignment.h"

namespace vstream {

struct JobManagerOptions {
  // Address to bind. Default 127.0.0.1 (use 0.0.0.0 in containers).
  std::string host = "127.0.0.1";
  // 0 = pick a free port. Default 0.
  int rpc_port = 0;
  // Holds the job store. Required.
  std::string data_dir;
  // How often TaskManagers heartbeat. Default 1000 ms.
  int64_t heartbeat_interval_ms = 1000;
  // A TaskManager silent this long is lost. Default 5000 ms (Flink: 50 s).
  int64_t heartbeat_timeout_ms = 5000;
};

class JobManager {
 public:
  static absl::StatusOr<std::unique_ptr<JobManager>> Start(const JobManagerOptions& options);
  ~JobManager();

  int port() const { return port_; }
  std::string address() const;
  void Stop();

 private:
  class DispatcherService;
  class ResourceManagerService;
  class GrpcGateway;
  class MainTimers;

  explicit JobManager(JobManagerOptions options);
  absl::Status Init();
  void LoadJobStore();
  // Reads a savepoint's (or retained checkpoint's) metadata and checks it
  // fits the graph.
  absl::StatusOr<proto::CheckpointMetadata> ReadSavepoint(const std::string& uri, const proto::JobGraph& graph);
  // <data-dir>/savepoints, absolute.
  std::string DefaultSavepointDir() const;
  std::unique_ptr<JobMaster> NewJobMaster(const std::string& job_id, const proto::JobGraph& graph,
                                          int64_t submitted_at_ms, std::unique_ptr<CheckpointCoordinator> checkpoints,
                                          int attempt);
  // Removes a TaskManager from the ResourceManager and fails its tasks over.
  void GiveUpTaskManager(const std::string& id, const std::string& why);
  void PersistJob(const std::string& job_id);
  void CheckHeartbeats();
  void OnSlotsChanged();
  // The coordinator of a job with checkpointing on; null if it is off.
  absl::StatusOr<std::unique_ptr<CheckpointCoordinator>> CreateCheckpointCoordinator(const std::string& job_id,
                                                                                      const proto::JobGraph& graph);

  // Main-thread operations (called through main_.Call).
  absl::StatusOr<std::string> Submit(const proto::JobGraph& graph, const std::string& from_savepoint);
  proto::ListJobsResponse List();
  absl::StatusOr<proto::JobStatus> Get(const std::string& job_id);
  absl::Status Cancel(const std::string& job_id);

  JobManagerOptions options_;
  int port_ = 0;
  std::unique_ptr<Executor> main_;
  std::unique_ptr<Executor> rpc_;
  std::unique_ptr<GrpcGateway> gateway_;
  std::unique_ptr<MainTimers> timers_;
  std::unique_ptr<DispatcherService> dispatcher_service_;
  std::unique_ptr<ResourceManagerService> rm_service_;
  std::unique_ptr<grpc::Server> server_;

  WatermarkAlignment alignment_;  // thread-safe

  // Main thread only.
  ResourceManager resources_;
  std::map<std::string, std::unique_ptr<JobMaster>> jobs_;
  bool stopped_ = false;
};

}  // namespace vstream
