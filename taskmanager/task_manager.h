#pragma once
// The TaskManager process: registers its slots with the JobManager's
// ResourceManager and heartbeats; runs deployed tasks, each on its own
// thread (TaskExecutor service); serves its result partitions to remote
// consumers (DataExchange service).
//
// Threads: gRPC's server threads (Deploy/Cancel/OpenChannel), one
// registration + heartbeat thread, one watermark-alignment reporter, one
// thread per task. Shared state (the
// task table) sits behind mu_.
//
// Shutdown order: stop heartbeats and the alignment reporter, cancel tasks,
// stop the server.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/executor.h"
#include "grpcpp/grpcpp.h"
#include "proto/control.grpc.pb.h"
#include "runtime/network/channel_cache.h"
#include "runtime/network/data_exchange_service.h"
#include "runtime/network/result_partition.h"
#include "runtime/stream_task.h"
#include "runtime/aligned_source_registry.h"

namespace vstream {

struct TaskManagerOptions {
  // host:port of the JobManager. Required.
  std::string jobmanager_address;
  // Address to bind and to advertise to the JobManager and other
  // TaskManagers. Default 127.0.0.1.
  std::string host = "127.0.0.1";
  // 0 = pick a free port. Default 0.
  int rpc_port = 0;
  // Task slots. Default 1.
  int slots = 1;
  // Holds RocksDB state, dead letters and the stable resource id. Required.
  std::string data_dir;
  // Buffers per remote input channel (credits). Default 8.
  int receive_credits = 8;
  // Buffers queued per subpartition before the producer blocks. Default 8.
  int send_queue_buffers = 8;
  // Memory for keyed state, shared by every RocksDB instance of this
  // TaskManager: block cache, write buffers and write-back caches. Default 256 MiB.
  int64_t state_memory_bytes = int64_t{256} << 20;
  // The whole process (Flink's taskmanager.memory.process.size): state
  // memory plus at least kFrameworkMemoryBytes for everything else (code,
  // network buffers, threads, records in flight). Resident memory above it
  // is logged as a warning. 0: no budget. Default 640 MiB.
  int64_t memory_bytes = int64_t{640} << 20;
  static constexpr int64_t kFrameworkMemoryBytes = int64_t{96} << 20;
  // Checkpoint uploads and RocksDB compactions at nice 19 (kBackgroundNice),
  // so that they take the CPU the tasks leave, not the tasks' share of it:
  // `--background-priority low`. Flushes (which a snapshot waits for) and
  // the copies a task may wait for stay at the tasks' priority. Default true.
  bool low_priority_background = true;
};

class TaskManager {
 public:
  static absl::StatusOr<std::unique_ptr<TaskManager>> Start(const TaskManagerOptions& options);
  ~TaskManager();

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // Highest resident memory seen by the heartbeat thread, in bytes.
  int64_t peak_resident_bytes() const { return peak_resident_.load(std::memory_order_relaxed); }
  // Cancels all tasks and stops serving. Idempotent.
  void Stop();
  // Blocks until Stop() is called.
  void Wait();
  bool registered() const { return registered_; }

 private:
  class ExecutorService;
  class Responder;
  struct Task;

  explicit TaskManager(TaskManagerOptions options);
  absl::Status Init();
  void HeartbeatLoop();
  // Reports the aligned sources' watermarks every update interval
  // (runtime/aligned_source_registry.h).
  void AlignmentLoop();
  // Warns once each time resident memory goes above options_.memory_bytes.
  void CheckMemory();
  void Deploy(const proto::TaskDeploymentDescriptor& tdd);
  void CancelTask(const std::string& task_id);
  // Cancels every task and waits for their threads (then forgets them).
  void CancelAllAndWait();
  // Destroys ended tasks and deletes their local state.
  void ForgetTasks(std::vector<std::unique_ptr<Task>> done);
  // Runs fn on the task's StreamTask if it is running; false if not.
  bool WithStreamTask(const std::string& task_id, const std::function<void(StreamTask&)>& fn);
  void RunTask(Task* task);
  void Report(Task* task);
  proto::TaskReport MakeReport(Task* task);

  TaskManagerOptions options_;
  std::string resource_id_;
  std::string address_;
  int port_ = 0;
  PartitionManager partitions_;
  ChannelCache channels_;
  std::shared_ptr<StateResources> state_resources_;  // shared with every task's backends
  std::unique_ptr<DataExchangeService> data_service_;
  std::unique_ptr<ExecutorService> executor_service_;
  // Before server_: its completion queue outlives the server.
  std::unique_ptr<NetworkThread> network_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<proto::ResourceManager::Stub> jobmanager_;
  std::unique_ptr<Responder> checkpoint_responder_;  // RPCs to the JobManager
  // Uploads snapshots while tasks go on; stopped before the responder goes.
  std::unique_ptr<Executor> snapshot_uploads_;
  std::unique_ptr<Executor> snapshot_copies_;  // stopped before snapshot_uploads_, to which it posts

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Task>> tasks_;
  std::string task_manager_id_;
  std::atomic<bool> registered_{false};
  std::atomic<int64_t> peak_resident_{0};
  bool over_memory_ = false;  // heartbeat thread only
  bool stopping_ = false;
  std::thread heartbeat_thread_;
  AlignedSourceRegistry aligned_sources_;
  std::thread alignment_thread_;
};

}  // namespace vstream
