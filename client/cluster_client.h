#pragma once
// The gRPC client of the JobManager's Dispatcher, used by the CLI and tests.
// Every error names the JobManager's address and what went wrong.
//
// Thread-safe (gRPC stubs are).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/client.grpc.pb.h"

namespace vstream {

class ClusterClient {
 public:
  explicit ClusterClient(std::string address);

  const std::string& address() const { return address_; }
  // from_savepoint: a savepoint directory URI to start from; empty: none.
  absl::StatusOr<std::string> Submit(const proto::JobGraph& graph, const std::string& from_savepoint = "");
  // Takes a savepoint (and with `stop`, stops the job); waits until it is
  // complete. Returns its directory URI and checkpoint id.
  absl::StatusOr<proto::SavepointResponse> Savepoint(const std::string& job_id, const std::string& target_dir,
                                                     bool stop);
  absl::StatusOr<proto::JobStatus> Get(const std::string& job_id);
  absl::StatusOr<proto::ListJobsResponse> List();
  absl::Status Cancel(const std::string& job_id);

 private:
  absl::Status Convert(const grpc::Status& s) const;

  std::string address_;
  std::unique_ptr<proto::Dispatcher::Stub> stub_;
};

// "1.2 M", "12,345": counts for humans.
std::string FormatCount(int64_t n);
// "512 B", "1.5 KiB", "12.3 MiB": sizes for humans.
std::string FormatBytes(int64_t bytes);
// "850 ms", "1.2 s": durations for humans.
std::string FormatMillis(int64_t ms);
// A multi-line, human-readable job status (the `vstream status` output):
// the job, its vertices and, if checkpointing is on, a CHECKPOINTS table of
// the most recent checkpoints.
std::string FormatJobStatus(const proto::JobStatus& status);
// "RUNNING", "FINISHED", ... without the proto prefix.
std::string JobStateName(proto::JobState state);
std::string TaskStateName(proto::TaskState state);

}  // namespace vstream
