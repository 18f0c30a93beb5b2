// Savepoints and rescaling from them, end to end: a windowed job stopped
// with `vstream stop` at parallelism 2 and resumed on a new cluster (new
// JobManager and TaskManagers, new data dirs) with `vstream submit
// --from-savepoint PATH --parallelism N` gives, for N = 3 and N = 1, exactly
// the results of an uninterrupted run. `vstream savepoint` leaves the job
// running.

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/cluster_client.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"
#include "tests/vitals_windows.h"

namespace vstream::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kRows = 400'000;
constexpr int64_t kSeconds = 10;

// A file:// URI's path.
std::string LocalPath(const std::string& uri) { return uri.rfind("file://", 0) == 0 ? uri.substr(7) : uri; }

bool Running(const proto::JobStatus& st) {
  if (st.state() != proto::RUNNING) return false;
  for (const auto& v : st.vertices()) {
    if (v.state() != proto::TASK_RUNNING) return false;
  }
  return true;
}

proto::JobStatus AwaitEnd(ClusterClient& client, const std::string& job_id) {
  proto::JobStatus st;
  WaitFor(
      [&] {
        auto s = client.Get(job_id);
        if (s.ok()) st = *s;
        return s.ok() && (st.state() == proto::FINISHED || st.state() == proto::FAILED ||
                          st.state() == proto::CANCELED);
      },
      std::chrono::minutes(3));
  return st;
}

void StopAndResumeAt(int parallelism) {
  TempDir data("savepoint");
  WriteFile(data.File("vitals.csv"), VitalsCsv(kRows));
  WriteFile(data.File("job.yaml"), VitalsWindowJob(data.path(), "mode: exactly_once", kRows / kSeconds));
  // parallelism 3 in the spec; the first run replaces it with 2.
  std::string path;
  {
    TestCluster cluster(2, 2);
    CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--parallelism", "2"}, std::chrono::seconds(30));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const std::string job_id = r.out.substr(0, r.out.find('\n'));
    ClusterClient client(cluster.jobmanager_address());
    proto::JobStatus st;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto s = client.Get(job_id);
          if (s.ok()) st = *s;
          return s.ok() && Running(st) && st.latest_completed_checkpoint() >= 2;
        },
        std::chrono::seconds(60)))
        << st.DebugString();
    // A savepoint leaves the job running.
    CommandResult sp = cluster.Vstream({"savepoint", job_id, "--dir", data.File("savepoints")}, std::chrono::minutes(2));
    ASSERT_EQ(sp.exit_code, 0) << sp.err;
    EXPECT_TRUE(std::filesystem::exists(LocalPath(sp.out.substr(0, sp.out.find('\n'))) + "/_metadata")) << sp.out;
    ASSERT_TRUE(client.Get(job_id).ok());
    EXPECT_EQ(client.Get(job_id)->state(), proto::RUNNING);

    CommandResult stop = cluster.Vstream({"stop", job_id, "--dir", data.File("savepoints")}, std::chrono::minutes(2));
    ASSERT_EQ(stop.exit_code, 0) << stop.err;
    path = stop.out.substr(0, stop.out.find('\n'));
    st = AwaitEnd(client, job_id);
    ASSERT_EQ(st.state(), proto::FINISHED) << st.DebugString();
    EXPECT_NE(st.message().find("stopped with savepoint"), std::string::npos) << st.message();
    int64_t read = 0;
    for (const auto& v : st.vertices()) {
      if (v.name() == "vitals") read = v.records_out();
    }
    EXPECT_LT(read, kRows) << "the job should stop before its input ends";
  }
  ASSERT_TRUE(std::filesystem::exists(LocalPath(path) + "/_metadata")) << path;

  // A new cluster: nothing of the first one remains but the savepoint and
  // the sink's directory.
  TestCluster cluster(2, 2);
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--from-savepoint", path, "--parallelism",
                                     std::to_string(parallelism), "--wait"},
                                    std::chrono::minutes(3));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<std::string> hidden;
  ExpectExactOutput(Reference(kRows), ReadOutput(data.File("out"), &hidden), hidden,
                    absl::StrCat("stopped at parallelism 2, resumed at ", parallelism));
}

TEST(SavepointTest, StopAtParallelism2ResumeAt3GivesTheUninterruptedResult) { StopAndResumeAt(3); }

TEST(SavepointTest, StopAtParallelism2ResumeAt1GivesTheUninterruptedResult) { StopAndResumeAt(1); }

TEST(SavepointTest, ErrorsNameWhatIsWrong) {
  TestCluster cluster(1, 1);
  CommandResult r = cluster.Vstream({"savepoint", "nosuchjob"}, std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no job with id nosuchjob"), std::string::npos) << r.err;
  TempDir data("savepoint-errors");
  WriteFile(data.File("vitals.csv"), VitalsCsv(10));
  WriteFile(data.File("job.yaml"), VitalsWindowJob(data.path(), "mode: exactly_once", 100));
  r = cluster.Vstream({"submit", data.File("job.yaml"), "--from-savepoint", data.File("nothing-here")},
                      std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no savepoint at"), std::string::npos) << r.err;
  r = cluster.Vstream({"submit", data.File("job.yaml"), "--parallelism", "zero"}, std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--parallelism must be a whole number"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vstream::testing
