#include "client/cluster_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/latency_histogram.h"
#include "common/time_util.h"
#include "grpcpp/grpcpp.h"

namespace vstream {

namespace {
void SetDeadline(grpc::ClientContext* ctx, int seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

std::string CheckpointStateName(proto::CheckpointState state) {
  std::string n = proto::CheckpointState_Name(state);
  return n.rfind("CHECKPOINT_", 0) == 0 ? n.substr(11) : n;
}

// The CHECKPOINTS table under the vertices.
void AppendCheckpoints(const proto::JobStatus& st, std::string* out) {
  absl::StrAppend(out, "\nCHECKPOINTS  latest completed: ",
                  st.latest_completed_checkpoint() > 0 ? absl::StrCat(st.latest_completed_checkpoint()) : "none",
                  "  storage: ", st.checkpoint_storage().empty() ? "-" : st.checkpoint_storage(), "\n");
  if (st.checkpoints_size() == 0) {
    absl::StrAppend(out, "(none triggered yet)\n");
    return;
  }
  // SYNC and ASYNC: the longest synchronous part (on a task thread) and
  // upload of any task, as Flink's checkpoint details show them.
  absl::StrAppend(out, absl::StrFormat("%8s  %-11s  %9s  %10s  %9s  %8s  %8s  %10s  %s\n", "ID", "STATE", "DURATION",
                                       "SIZE", "ALIGNMENT", "SYNC", "ASYNC", "IN-FLIGHT", "REASON"));
  for (const auto& c : st.checkpoints()) {
    std::string reason = c.failure();
    if (c.state() == proto::CHECKPOINT_IN_PROGRESS) {
      reason = absl::StrCat(c.acknowledged(), " of ", c.tasks(), " tasks done");
    }
    // IN-FLIGHT: the records an unaligned checkpoint holds; "-": aligned.
    absl::StrAppend(out, absl::StrFormat("%8d  %-11s  %9s  %10s  %9s  %8s  %8s  %10s", c.checkpoint_id(),
                                         CheckpointStateName(c.state()), FormatMillis(c.duration_ms()),
                                         FormatBytes(c.bytes()), FormatMillis(c.alignment_ms()),
                                         FormatMillis(c.sync_ms()), FormatMillis(c.async_ms()),
                                         c.unaligned() ? FormatBytes(c.channel_state_bytes()) : "-"),
                    reason.empty() ? "" : "  ", reason, "\n");
  }
}
}  // namespace

ClusterClient::ClusterClient(std::string address) : address_(std::move(address)) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  stub_ = proto::Dispatcher::NewStub(
      grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
}

absl::Status ClusterClient::Convert(const grpc::Status& s) const {
  if (s.ok()) return absl::OkStatus();
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::UnavailableError(absl::StrCat(
          "cannot reach the JobManager at ", address_, " (", s.error_message(),
          "); is it running? Set the address with --jobmanager HOST:PORT or VSTREAM_JOBMANAGER"));
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(s.error_message());
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(s.error_message());
    case grpc::StatusCode::FAILED_PRECONDITION:
      return absl::FailedPreconditionError(s.error_message());
    default:
      return absl::InternalError(absl::StrCat("JobManager at ", address_, ": ", s.error_message()));
  }
}

absl::StatusOr<std::string> ClusterClient::Submit(const proto::JobGraph& graph, const std::string& from_savepoint) {
  proto::SubmitJobRequest req;
  *req.mutable_graph() = graph;
  req.set_from_savepoint(from_savepoint);
  proto::SubmitJobResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10);
  grpc::Status s = stub_->SubmitJob(&ctx, req, &resp);
  if (!s.ok()) return Convert(s);
  return resp.job_id();
}

absl::StatusOr<proto::SavepointResponse> ClusterClient::Savepoint(const std::string& job_id,
                                                                 const std::string& target_dir, bool stop) {
  proto::SavepointRequest req;
  req.set_job_id(job_id);
  req.set_target_dir(target_dir);
  req.set_stop(stop);
  proto::SavepointResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 15 * 60);  // a checkpoint's default timeout is 10 min
  grpc::Status s = stub_->TriggerSavepoint(&ctx, req, &resp);
  if (!s.ok()) return Convert(s);
  return resp;
}

absl::StatusOr<proto::JobStatus> ClusterClient::Get(const std::string& job_id) {
  proto::JobIdRequest req;
  req.set_job_id(job_id);
  proto::JobStatus resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 5);
  grpc::Status s = stub_->GetJob(&ctx, req, &resp);
  if (!s.ok()) return Convert(s);
  return resp;
}

absl::StatusOr<proto::ListJobsResponse> ClusterClient::List() {
  proto::ListJobsRequest req;
  proto::ListJobsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 5);
  grpc::Status s = stub_->ListJobs(&ctx, req, &resp);
  if (!s.ok()) return Convert(s);
  return resp;
}

absl::Status ClusterClient::Cancel(const std::string& job_id) {
  proto::JobIdRequest req;
  req.set_job_id(job_id);
  proto::CancelJobResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 5);
  return Convert(stub_->CancelJob(&ctx, req, &resp));
}

std::string FormatCount(int64_t n) {
  std::string digits = absl::StrCat(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return n < 0 ? "-" + out : out;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

std::string FormatMillis(int64_t ms) {
  if (ms < 1000) return absl::StrCat(ms, " ms");
  return absl::StrFormat("%.1f s", static_cast<double>(ms) / 1000);
}

std::string JobStateName(proto::JobState state) { return proto::JobState_Name(state); }

std::string TaskStateName(proto::TaskState state) {
  std::string n = proto::TaskState_Name(state);
  return n.rfind("TASK_", 0) == 0 ? n.substr(5) : n;
}

std::string FormatJobStatus(const proto::JobStatus& st) {
  std::string out = absl::StrCat("Job ", st.job_id(), " (", st.name(), ")\n");
  const int64_t end = st.ended_at_ms() > 0 ? st.ended_at_ms() : NowMillis();
  absl::StrAppend(&out, "State: ", JobStateName(st.state()),
                  absl::StrFormat("  (%.1f s since submission)", (end - st.submitted_at_ms()) / 1000.0), "\n");
  if (!st.message().empty()) absl::StrAppend(&out, "Info:  ", st.message(), "\n");
  if (st.restarts() > 0) {
    absl::StrAppend(&out, "Restarts: ", st.restarts(), " (attempt ", st.attempt(), ")",
                    st.restored_checkpoint() > 0 ? absl::StrCat(", restored checkpoint ", st.restored_checkpoint())
                                                 : std::string(),
                    "\n");
    if (!st.last_failure().empty()) absl::StrAppend(&out, "Last failure: ", st.last_failure(), "\n");
  }
  if (!st.started_from().empty()) absl::StrAppend(&out, "Started from savepoint: ", st.started_from(), "\n");
  size_t name_w = 6;
  for (const auto& v : st.vertices()) name_w = std::max(name_w, v.name().size());
  absl::StrAppend(&out, absl::StrFormat("\n%-*s  %11s  %-9s  %14s  %14s  %12s  %12s\n", static_cast<int>(name_w),
                                        "VERTEX", "PARALLELISM", "STATE", "RECORDS IN", "RECORDS OUT",
                                        "DEAD LETTERS", "LATE"));
  for (const auto& v : st.vertices()) {
    absl::StrAppend(&out, absl::StrFormat("%-*s  %11d  %-9s  %14s  %14s  %12s  %12s\n", static_cast<int>(name_w),
                                          v.name(), v.parallelism(), TaskStateName(v.state()),
                                          FormatCount(v.records_in()), FormatCount(v.records_out()),
                                          FormatCount(v.dead_letters()), FormatCount(v.late_records())));
  }
  bool latency_header = false;
  for (const auto& v : st.vertices()) {
    if (v.latency_markers() == 0) continue;
    if (!latency_header) {
      latency_header = true;
      absl::StrAppend(&out,
                      absl::StrFormat("\nLATENCY (source to sink, latency markers)\n%-*s  %10s  %10s  %10s  %10s  %10s  %s\n",
                                      static_cast<int>(name_w), "SINK", "MARKERS", "P50 MS", "P99 MS", "P99.9 MS",
                                      "MAX MS", "P99 WITHIN MS"));
    }
    // Each quantile is its bucket's midpoint; the p99's bucket says how far
    // off it may be (does a p99 of 9.984 meet a 10 ms target? Its bucket
    // is 9.728-10.239).
    const auto [p99_low, p99_high] = latency_buckets::BucketBounds(v.latency_p99_us());
    absl::StrAppend(&out, absl::StrFormat("%-*s  %10s  %10.3f  %10.3f  %10.3f  %10.3f  %.3f-%.3f\n",
                                          static_cast<int>(name_w), v.name(), FormatCount(v.latency_markers()),
                                          v.latency_p50_us() / 1000.0, v.latency_p99_us() / 1000.0,
                                          v.latency_p999_us() / 1000.0, v.latency_max_us() / 1000.0,
                                          p99_low / 1000.0, p99_high / 1000.0));
  }
  if (st.checkpoints_size() > 0 || !st.checkpoint_storage().empty()) AppendCheckpoints(st, &out);
  return out;
}

}  // namespace vstream
