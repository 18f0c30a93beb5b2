// A dead TaskManager is detected by its missing heartbeats and fails the job
// with a clear reason (restarting from checkpoints is issue 4).

#include <csignal>

#include "client/cluster_client.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

constexpr char kJob[] = R"(name: endless
parallelism: 2
sources:
  - name: gen
    connector: generator
    rate: 1000
    schema: {id: int, patient_id: string}
sinks:
  - name: sink
    connector: blackhole
    input: gen
    key_by: [patient_id]
)";

TEST(FailureTest, KilledTaskManagerFailsItsJobWithinTheHeartbeatTimeout) {
  TestCluster cluster(2, 1);
  TempDir data("fail");
  WriteFile(data.File("job.yaml"), kJob);
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  ClusterClient client(cluster.jobmanager_address());
  auto running = [&] {
    auto st = client.Get(job_id);
    if (!st.ok() || st->state() != proto::RUNNING) return false;
    for (const auto& v : st->vertices()) {
      if (v.state() != proto::TASK_RUNNING) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor(running, std::chrono::seconds(30)));

  cluster.taskmanager(1).Kill(SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  proto::JobStatus final_status;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = client.Get(job_id);
        if (st.ok()) final_status = *st;
        return st.ok() && st->state() == proto::FAILED;
      },
      std::chrono::seconds(30)))
      << final_status.DebugString();
  const auto took = std::chrono::steady_clock::now() - killed_at;
  // Detected through the 5 s heartbeat timeout or the broken data stream.
  EXPECT_LT(took, std::chrono::seconds(12));
  EXPECT_FALSE(final_status.message().empty());
  // The surviving TaskManager's slot is free again.
  CommandResult st = cluster.Vstream({"status", job_id}, std::chrono::seconds(30));
  EXPECT_NE(st.out.find("State: FAILED"), std::string::npos) << st.out;
}

}  // namespace
}  // namespace vstream::testing
