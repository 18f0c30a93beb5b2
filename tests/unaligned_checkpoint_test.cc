// Unaligned checkpoints, end to end, on a real cluster.
//
// 1. A sink throttled to 2,000 records/s backpressures an unbounded job.
//    Aligned barriers would wait behind every queued buffer (none completes
//    within half a minute: docs/benchmarks.md); unaligned ones overtake the
//    queues, so checkpoints keep completing, each holding in-flight records.
// 2. Exactly-once across a restore that replays in-flight records: a
//    bounded windowed job whose sink throttles its window's input runs with
//    unaligned checkpoints every 500 ms; a TaskManager is killed once a
//    checkpoint with in-flight records has completed, and the committed
//    output must still be every window exactly once.
// 3. The same with `aligned_timeout`: barriers start aligned and turn
//    unaligned where they wait too long.

#include <csignal>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/cluster_client.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"
#include "tests/vitals_windows.h"

namespace vstream::testing {
namespace {

constexpr char kThrottledJob[] = R"yaml(name: unaligned-throttled
parallelism: 2
checkpointing: {interval: 1s, unaligned: true}
sources:
  - name: gen
    connector: generator
    seed: 5
    schema: {patient_id: string, hr: int}
    fields:
      patient_id: {kind: key, cardinality: 10000, prefix: "P"}
      hr: {kind: uniform, min: 30, max: 200}
operators:
  - name: totals
    type: aggregate
    input: gen
    key_by: [patient_id]
    aggregates: {readings: "count(*)", hr_max: "max(hr)"}
sinks:
  - name: slow
    connector: blackhole
    input: totals
    partition: rebalance
    max_rate: 2000
)yaml";


std::string JobId(const CommandResult& r) { return r.out.substr(0, r.out.find('\n')); }

TEST(UnalignedCheckpointTest, ThrottledSinkStillCheckpointsInBoundedTime) {
  TestCluster cluster(2, 2);
  TempDir data("unaligned-throttled");
  WriteFile(data.File("job.yaml"), kThrottledJob);
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string job_id = JobId(r);
  ClusterClient client(cluster.jobmanager_address());
  proto::JobStatus st;
  // Aligned, not one checkpoint completes in 29 s at this rate.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = client.Get(job_id);
        if (s.ok()) st = *s;
        return s.ok() && st.latest_completed_checkpoint() >= 6;
      },
      std::chrono::seconds(60)))
      << "checkpoints did not keep completing under backpressure: " << st.DebugString();
  int with_records = 0;
  for (const proto::CheckpointStatus& c : st.checkpoints()) {
    if (c.state() != proto::CHECKPOINT_COMPLETED) continue;
    EXPECT_TRUE(c.unaligned()) << "checkpoint " << c.checkpoint_id();
    // Bounded: not by the queues ahead of the barriers (tens of seconds
    // at 2,000 records/s), but by a batch and a wait for output room.
    EXPECT_LT(c.duration_ms(), 10'000) << "checkpoint " << c.checkpoint_id();
    if (c.channel_state_bytes() > 0) ++with_records;
  }
  EXPECT_GT(with_records, 0) << "the barriers overtook no records: was the job backpressured?";
  ASSERT_EQ(cluster.Vstream({"cancel", job_id}, std::chrono::seconds(30)).exit_code, 0);
}

// Runs the windowed job with `checkpointing` (after interval: 500ms), kills
// a TaskManager once a checkpoint holding in-flight records completed, and
// checks the output.
void RunKilledWhileBackpressured(const std::string& checkpointing) {
  const int64_t rows = EnvInt("VSTREAM_UNALIGNED_ROWS", 240'000);
  TestCluster cluster(3, 4);
  TempDir data("unaligned-kill");
  WriteFile(data.File("vitals.csv"), VitalsCsv(rows));
  // About 12 s of input at 3 x 7,000 records/s into the windows.
  WriteFile(data.File("job.yaml"), VitalsWindowJob(data.path(), checkpointing, 0, 7000));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string job_id = JobId(r);
  ClusterClient client(cluster.jobmanager_address());
  proto::JobStatus st;
  auto poll = [&] {
    auto s = client.Get(job_id);
    if (s.ok()) st = *s;
    return s.ok();
  };
  auto in_flight_checkpoint = [&] {
    for (const proto::CheckpointStatus& c : st.checkpoints()) {
      if (c.state() == proto::CHECKPOINT_COMPLETED && c.channel_state_bytes() > 0 &&
          c.checkpoint_id() == st.latest_completed_checkpoint()) {
        return true;
      }
    }
    return false;
  };
  ASSERT_TRUE(WaitFor([&] { return poll() && (in_flight_checkpoint() || st.state() != proto::RUNNING); },
                      std::chrono::seconds(60)))
      << st.DebugString();
  ASSERT_EQ(st.state(), proto::RUNNING) << "the job ended before a checkpoint held in-flight records; "
                                        << st.DebugString();
  const int64_t restored_from = st.latest_completed_checkpoint();
  const int attempt = st.attempt();
  // Any TaskManager runs part of it: 3 x 4 slots, and the tasks spread.
  int victim = -1;
  for (int i = 0; i < cluster.num_taskmanagers() && victim < 0; ++i) {
    if (cluster.taskmanager(i).Stderr().find(absl::StrCat("task ", job_id, "/a", attempt, "/")) != std::string::npos) {
      victim = i;
    }
  }
  ASSERT_GE(victim, 0);
  cluster.taskmanager(victim).Kill(SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return poll() && st.attempt() > attempt; }, std::chrono::seconds(60))) << st.DebugString();
  EXPECT_GE(st.restored_checkpoint(), restored_from);
  ASSERT_TRUE(WaitFor([&] { return poll() && (st.state() == proto::FINISHED || st.state() == proto::FAILED); },
                      std::chrono::minutes(3)))
      << st.DebugString();
  ASSERT_EQ(st.state(), proto::FINISHED) << st.message();

  // The restore replayed in-flight records (a surviving TaskManager says so).
  bool replayed = false;
  for (int i = 0; i < cluster.num_taskmanagers(); ++i) {
    if (i != victim && cluster.taskmanager(i).Stderr().find("in-flight buffer(s)") != std::string::npos) replayed = true;
  }
  EXPECT_TRUE(replayed) << "no task replayed in-flight records from checkpoint " << st.restored_checkpoint();
  std::vector<std::string> hidden;
  auto output = ReadOutput(data.File("out"), &hidden);
  ExpectExactOutput(Reference(rows), output, hidden, checkpointing + ", one TaskManager killed");
}

TEST(UnalignedCheckpointTest, ExactOutputAfterRestoringInFlightRecords) {
  RunKilledWhileBackpressured("unaligned: true");
}

TEST(UnalignedCheckpointTest, AlignedTimeoutTurnsUnalignedAndStaysExact) {
  RunKilledWhileBackpressured("aligned_timeout: 100ms");
}

}  // namespace
}  // namespace vstream::testing
