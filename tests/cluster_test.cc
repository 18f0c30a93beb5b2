// End-to-end: the issue's example job on a real cluster (a JobManager and 2
// TaskManagers as separate processes), through the real CLI, checked record
// for record against counts computed independently from the input.

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/cluster_client.h"
#include "common/cpu_set.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

namespace fs = std::filesystem;

struct Expected {
  int64_t readings = 0;
  int64_t hr_max = -1;
  int64_t tachy = 0;
};

struct Input {
  std::map<std::string, Expected> per_patient;
  int64_t malformed = 0;
};

// Writes vitals.csv: `rows` rows over `patients` patients, with rows the
// filter drops and a few malformed ones, and computes the expected totals.
Input WriteVitals(const std::string& path, int rows, int patients) {
  Input in;
  std::mt19937_64 rng(42);
  std::string csv = "patient_id,ts,hr,spo2,rr\n";
  csv.reserve(static_cast<size_t>(rows) * 40);
  const int64_t t0 = 1'700'000'000'000;
  for (int i = 0; i < rows; ++i) {
    const std::string patient = absl::StrCat("P", 10000 + static_cast<int>(rng() % patients));
    const int64_t hr = static_cast<int64_t>(rng() % 181);      // 0..180; 0 is dropped
    const int64_t spo2 = 40 + static_cast<int64_t>(rng() % 61);  // 40..100; < 50 dropped
    const int64_t rr = 8 + static_cast<int64_t>(rng() % 20);
    const int64_t ts = t0 + i * 250;
    if (i % 100'003 == 7) {  // malformed: a word where a number belongs
      absl::StrAppend(&csv, patient, ",", ts, ",fast,", spo2, ",", rr, "\n");
      ++in.malformed;
      continue;
    }
    // Half the timestamps as epoch millis, half as ISO-8601.
    const std::string ts_text = (i % 2) ? absl::StrCat(ts) : FormatTimestamp(ts);
    absl::StrAppend(&csv, patient, ",", ts_text, ",", hr, ",", spo2, ",", rr, "\n");
    if (hr > 0 && spo2 >= 50 && spo2 <= 100) {
      Expected& e = in.per_patient[patient];
      ++e.readings;
      e.hr_max = std::max(e.hr_max, hr);
      e.tachy += hr > 100 ? 1 : 0;
    }
  }
  WriteFile(path, csv);
  return in;
}

std::string ExampleJob(const std::string& input, const std::string& output) {
  std::string job = ReadFile(std::string(VSTREAM_SOURCE_DIR) + "/examples/vitals-running-totals.yaml");
  return absl::StrReplaceAll(job, {{"/data/vitals.csv", input}, {"/data/out/totals", output}});
}

// Field `name` of a flat JSON object line, as text.
std::string JsonField(const std::string& line, const std::string& name) {
  const std::string key = "\"" + name + "\":";
  auto at = line.find(key);
  if (at == std::string::npos) return "";
  auto start = at + key.size();
  if (line[start] == '"') {
    auto end = line.find('"', start + 1);
    return line.substr(start + 1, end - start - 1);
  }
  auto end = line.find_first_of(",}", start);
  return line.substr(start, end - start);
}

// The last output row of every patient, from the final part files.
std::map<std::string, Expected> ReadTotals(const std::string& dir, int* part_files, bool* in_progress) {
  std::map<std::string, Expected> last;
  *part_files = 0;
  *in_progress = false;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name[0] == '.') {
      *in_progress = true;
      continue;
    }
    ++*part_files;
    std::istringstream lines(ReadFile(entry.path().string()));
    std::string line;
    while (std::getline(lines, line)) {
      Expected& e = last[JsonField(line, "patient_id")];
      const int64_t readings = std::stoll(JsonField(line, "readings"));
      EXPECT_EQ(readings, e.readings + 1) << "rows of a patient must count up by one: " << line;
      e.readings = readings;
      e.hr_max = std::stoll(JsonField(line, "hr_max"));
      e.tachy = std::stoll(JsonField(line, "tachy_readings"));
    }
  }
  return last;
}

void ExpectTotals(const Input& in, const std::string& out_dir) {
  int part_files = 0;
  bool in_progress = false;
  auto totals = ReadTotals(out_dir, &part_files, &in_progress);
  EXPECT_EQ(part_files, 2) << "one part file per sink subtask";
  EXPECT_FALSE(in_progress) << "a finished job leaves no in-progress files";
  ASSERT_EQ(totals.size(), in.per_patient.size());
  for (const auto& [patient, want] : in.per_patient) {
    auto it = totals.find(patient);
    ASSERT_NE(it, totals.end()) << patient;
    EXPECT_EQ(it->second.readings, want.readings) << patient;
    EXPECT_EQ(it->second.hr_max, want.hr_max) << patient;
    EXPECT_EQ(it->second.tachy, want.tachy) << patient;
  }
}

int64_t DeadLettersIn(const std::string& root) {
  int64_t lines = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().string().find("dead-letter") == std::string::npos || !entry.is_regular_file()) continue;
    std::string content = ReadFile(entry.path().string());
    for (absl::string_view sv : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
      const std::string line(sv);
      EXPECT_NE(line.find("expected int"), std::string::npos) << line;
      EXPECT_NE(line.find("vitals.csv:"), std::string::npos) << "names the file and line: " << line;
      ++lines;
    }
  }
  return lines;
}

TEST(ClusterTest, ExampleJobOnTwoTaskManagersMatchesIndependentCount) {
  TestCluster cluster(2, 2);
  TempDir data("data");
  const Input in = WriteVitals(data.File("vitals.csv"), 1'000'000, 1000);
  ASSERT_EQ(in.per_patient.size(), 1000u);
  WriteFile(data.File("job.yaml"), ExampleJob(data.File("vitals.csv"), data.File("out")));

  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(5));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(job_id.size(), 32u) << r.out;
  EXPECT_NE(r.err.find("FINISHED"), std::string::npos) << r.err;
  ExpectTotals(in, data.File("out"));

  // Human-readable status: every vertex with its parallelism, state and counts.
  CommandResult st = cluster.Vstream({"status", job_id}, std::chrono::seconds(30));
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("State: FINISHED"), std::string::npos) << st.out;
  for (const char* v : {"vitals", "valid", "flagged", "totals", "out"}) {
    EXPECT_NE(st.out.find(v), std::string::npos) << v << "\n" << st.out;
  }
  int64_t valid_rows = 0;
  for (const auto& [p, e] : in.per_patient) valid_rows += e.readings;
  EXPECT_NE(st.out.find(FormatCount(valid_rows)), std::string::npos) << "records into totals\n" << st.out;

  // Malformed rows were counted and kept with their reason, not dropped.
  EXPECT_EQ(DeadLettersIn(cluster.dir()), in.malformed);
  EXPECT_NE(st.out.find(absl::StrCat(in.malformed)), std::string::npos) << st.out;

  CommandResult jobs = cluster.Vstream({"jobs"}, std::chrono::seconds(30));
  EXPECT_NE(jobs.out.find(job_id), std::string::npos);
}

// A TaskManager started with `--FLAG VALUE` exits at once, with exit code 2
// and `says` on stderr.
void ExpectTaskManagerRefuses(TestCluster& cluster, const std::string& flag, const std::string& value,
                              const std::string& says) {
  CommandResult bad = RunCommand({BinPath("vstream-taskmanager"), "--jobmanager", cluster.jobmanager_address(),
                                  "--data-dir", cluster.dir() + "/refused", "--" + flag, value},
                                 cluster.dir(), std::chrono::seconds(30));
  EXPECT_EQ(bad.exit_code, 2) << "--" << flag << " '" << value << "': " << bad.err;
  EXPECT_NE(bad.err.find(says), std::string::npos) << "--" << flag << " '" << value << "': " << bad.err;
}

// --cpuset: every thread of the TaskManager (tasks, network, RocksDB, gRPC)
// runs on the CPU given, and the job's result is the same; a malformed set
// or a CPU the process may not use is refused at start with exit code 2.
TEST(ClusterTest, ATaskManagerWithACpusetRunsEveryThreadThereAndRefusesABadOne) {
  const std::vector<int> allowed = AllowedCpus();
  ASSERT_FALSE(allowed.empty());
  const std::string cpu = std::to_string(allowed.back());
  TestCluster cluster(0, 1);
  std::unique_ptr<Subprocess> tm = cluster.StartTaskManagerWith("pinned", {"--slots", "4", "--cpuset", cpu});
  ASSERT_TRUE(Registered(*tm)) << tm->Stderr();
  EXPECT_NE(tm->Stderr().find("confined to CPUs " + cpu + " (cpuset)"), std::string::npos) << tm->Stderr();

  TempDir data("data");
  const Input in = WriteVitals(data.File("vitals.csv"), 50'000, 100);
  WriteFile(data.File("job.yaml"), ExampleJob(data.File("vitals.csv"), data.File("out")));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(2));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectTotals(in, data.File("out"));

  // Threads of the finished job may be exiting meanwhile: one gone (its
  // status unreadable) is skipped.
  int threads = 0;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(tm->pid()) + "/task")) {
    const std::string status = ReadFile(task.path().string() + "/status");
    if (status.empty()) continue;
    const auto at = status.find("Cpus_allowed_list:");
    ASSERT_NE(at, std::string::npos) << status;
    const auto end = status.find('\n', at);
    EXPECT_EQ(std::string(absl::StripAsciiWhitespace(status.substr(at + 18, end - at - 18))), cpu)
        << task.path() << ": " << ReadFile(task.path().string() + "/comm");
    ++threads;
  }
  EXPECT_GT(threads, 3);  // network, RocksDB, gRPC, main at least

  for (const auto& [cpuset, says] : std::vector<std::pair<std::string, std::string>>{
           {"1-0", "range '1-0' ends before it starts"},
           {"x", "'x' is not a CPU number or range"},
           {"", "cpuset '': empty"},
           {std::to_string(allowed.back() + 1), "is not one this process may use"}}) {
    ExpectTaskManagerRefuses(cluster, "cpuset", cpuset, says);
  }
}

// By default a TaskManager uploads snapshots on a thread at nice 19, so
// that uploads take the CPU its tasks leave; the copies a task may wait for
// run on a thread of the tasks' priority. `--background-priority normal`
// keeps every thread at the tasks' priority; anything else is refused.
TEST(ClusterTest, ATaskManagerUploadsSnapshotsAtLowPriorityUnlessToldNot) {
  const int base = getpriority(PRIO_PROCESS, 0);  // the test may run under `nice`
  TestCluster cluster(0, 1);
  std::unique_ptr<Subprocess> low = cluster.StartTaskManagerWith("low", {});
  std::unique_ptr<Subprocess> normal = cluster.StartTaskManagerWith("normal", {"--background-priority", "normal"});
  for (Subprocess* tm : {low.get(), normal.get()}) ASSERT_TRUE(Registered(*tm)) << tm->Stderr();
  EXPECT_TRUE(WaitFor([&] { return NiceOfThreads(low->pid(), "snapshot-uploa") == std::vector<int>{19}; },
                      std::chrono::seconds(10)))
      << "the upload thread of the default TaskManager is not at nice 19";
  // Each thread names itself when it starts.
  EXPECT_TRUE(WaitFor([&] { return NiceOfThreads(low->pid(), "snapshot-copie") == std::vector<int>{base}; },
                      std::chrono::seconds(10)));
  EXPECT_NE(low->Stderr().find("checkpoint uploads and RocksDB compactions at nice 19"), std::string::npos)
      << low->Stderr();
  EXPECT_EQ(normal->Stderr().find("at nice 19"), std::string::npos) << normal->Stderr();
  EXPECT_TRUE(WaitFor([&] { return NiceOfThreads(normal->pid(), "snapshot-uploa") == std::vector<int>{base}; },
                      std::chrono::seconds(10)));
  EXPECT_TRUE(WaitFor([&] { return NiceOfThreads(normal->pid(), "snapshot-copie") == std::vector<int>{base}; },
                      std::chrono::seconds(10)));

  for (const std::string value : {"high", ""}) {
    ExpectTaskManagerRefuses(cluster, "background-priority", value,
                             "--background-priority: expected low or normal, got '" + value + "'");
  }
}

// By default every thread of a TaskManager runs under SCHED_BATCH (a thread
// that wakes does not preempt the one working): the policy is set before
// any thread starts, so the threads started later -- the network thread,
// gRPC's, the heartbeat's, and a job's tasks once deployed -- inherit it.
// `--scheduling normal` leaves them under the policy the process started
// with (this test's); anything else is refused.
TEST(ClusterTest, ATaskManagerRunsItsThreadsUnderBatchSchedulingUnlessToldNot) {
  const int base = sched_getscheduler(0);  // the test may run under `chrt`
  TestCluster cluster(0, 1);
  std::unique_ptr<Subprocess> batch = cluster.StartTaskManagerWith("batch", {});
  std::unique_ptr<Subprocess> normal = cluster.StartTaskManagerWith("normal", {"--scheduling", "normal"});
  for (Subprocess* tm : {batch.get(), normal.get()}) ASSERT_TRUE(Registered(*tm)) << tm->Stderr();
  for (const auto& [tm, policy] : {std::pair{batch.get(), SCHED_BATCH}, std::pair{normal.get(), base}}) {
    // Each thread names itself when it starts.
    EXPECT_TRUE(WaitFor([&] { return SchedulingPolicyOfThreads(tm->pid(), "network") == std::vector<int>{policy}; },
                        std::chrono::seconds(10)))
        << "the network thread";
    const std::vector<int> all = SchedulingPolicyOfThreads(tm->pid(), "");
    EXPECT_GT(all.size(), 3u);
    EXPECT_EQ(std::count(all.begin(), all.end(), policy), static_cast<std::ptrdiff_t>(all.size()))
        << "every thread";
  }
  EXPECT_NE(batch->Stderr().find("threads under SCHED_BATCH (--scheduling batch)"), std::string::npos)
      << batch->Stderr();
  EXPECT_EQ(normal->Stderr().find("SCHED_BATCH"), std::string::npos) << normal->Stderr();

  for (const std::string value : {"fifo", ""}) {
    ExpectTaskManagerRefuses(cluster, "scheduling", value,
                             "--scheduling: expected batch or normal, got '" + value + "'");
  }
}

// By default a TaskManager puts its heap on transparent huge pages where the
// kernel has them: it re-executes itself (the same process) with glibc's
// tunables set, and says so. `--huge-pages off` keeps 4 KiB pages; anything
// else is refused.
TEST(ClusterTest, ATaskManagerPutsItsHeapOnHugePagesUnlessToldNot) {
  // glibc (2.36) rewrites GLIBC_TUNABLES in place as it reads it: the
  // environment /proc shows then holds its first tunable only, which is
  // ours only when there were none before.
  if (const char* t = std::getenv("GLIBC_TUNABLES"); t != nullptr) {
    GTEST_SKIP() << "GLIBC_TUNABLES is set for every process here: " << t;
  }
  const std::string thp = ReadFile("/sys/kernel/mm/transparent_hugepage/enabled");
  const bool machine_has_them = thp.find("[always]") != std::string::npos || thp.find("[madvise]") != std::string::npos;
  TestCluster cluster(0, 1);
  std::unique_ptr<Subprocess> on = cluster.StartTaskManagerWith("on", {});
  std::unique_ptr<Subprocess> off = cluster.StartTaskManagerWith("off", {"--huge-pages", "off"});
  for (Subprocess* tm : {on.get(), off.get()}) ASSERT_TRUE(Registered(*tm)) << tm->Stderr();
  // The environment the process image was started with, NUL-separated.
  auto environment = [](const Subprocess& tm) { return ReadFile("/proc/" + std::to_string(tm.pid()) + "/environ"); };
  if (machine_has_them) {
    EXPECT_NE(on->Stderr().find("heap on transparent huge pages (GLIBC_TUNABLES glibc.malloc.hugetlb=1:"
                               "glibc.malloc.top_pad=67108864)"),
              std::string::npos)
        << on->Stderr();
    EXPECT_NE(environment(*on).find("GLIBC_TUNABLES=glibc.malloc.hugetlb=1"), std::string::npos);
  } else {
    EXPECT_NE(on->Stderr().find("heap on 4 KiB pages: "), std::string::npos) << thp << on->Stderr();
  }
  EXPECT_NE(off->Stderr().find("heap on 4 KiB pages (--huge-pages off)"), std::string::npos) << off->Stderr();
  EXPECT_EQ(environment(*off).find("glibc.malloc.hugetlb"), std::string::npos);

  ExpectTaskManagerRefuses(cluster, "huge-pages", "yes", "--huge-pages: expected on or off, got 'yes'");
}

// Latency markers cross the network (a key_by edge between the TaskManagers)
// with the records, and the sink's status reports how many arrived and their
// age. No speed is asserted: that is bench/run's business.
TEST(ClusterTest, LatencyMarkersReachTheSinkAndStatusReportsTheirAge) {
  TestCluster cluster(2, 2);
  TempDir data("data");
  WriteFile(data.File("job.yaml"), R"yaml(name: latency
parallelism: 2
latency_markers: 10ms
sources:
  - name: gen
    connector: generator
    count: 200000
    rate: 100000
    schema: {patient_id: string, ts: timestamp, hr: int}
    fields:
      patient_id: {kind: key, cardinality: 1000, prefix: "P"}
      ts: {kind: sequence, min: 1700000000000}
    event_time: {field: ts}
operators:
  - {name: counts, type: window, input: gen, key_by: [patient_id], window: {kind: tumbling, size: 1s},
     aggregates: {n: "count(*)"}}
sinks:
  - {name: drop, connector: blackhole, input: counts}
)yaml");
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(2));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  CommandResult st = cluster.Vstream({"status", job_id}, std::chrono::seconds(30));
  ASSERT_EQ(st.exit_code, 0) << st.err;
  const size_t header = st.out.find("LATENCY (source to sink, latency markers)");
  ASSERT_NE(header, std::string::npos) << st.out;
  // The sink's row: name, markers, p50, p99, p99.9, max (ms), and the bucket
  // the p99 lies in ("LOW-HIGH" ms).
  const size_t row = st.out.find("\ndrop ", header);
  ASSERT_NE(row, std::string::npos) << st.out;
  std::vector<std::string> cols = absl::StrSplit(st.out.substr(row + 1, st.out.find('\n', row + 1) - row - 1), ' ',
                                                 absl::SkipEmpty());
  ASSERT_EQ(cols.size(), 7u) << st.out;
  // About 2 s of producing at one marker per 10 ms per source subtask.
  EXPECT_GE(std::stoll(absl::StrReplaceAll(cols[1], {{",", ""}})), 50) << st.out;
  const double p50 = std::stod(cols[2]), p99 = std::stod(cols[3]), p999 = std::stod(cols[4]), max = std::stod(cols[5]);
  EXPECT_GT(p50, 0) << st.out;
  EXPECT_LE(p50, p99);
  EXPECT_LE(p99, p999);
  EXPECT_LE(p999, max);
  const std::vector<std::string> within = absl::StrSplit(cols[6], '-');
  ASSERT_EQ(within.size(), 2u) << st.out;
  const double low = std::stod(within[0]), high = std::stod(within[1]);
  EXPECT_LE(low, p99) << st.out;
  EXPECT_GE(high, p99) << st.out;
  EXPECT_LE(high - low, p99 / 16 + 0.001) << st.out;  // 16 buckets per power of two
  // Sources and the window are not sinks: no latency rows for them.
  EXPECT_EQ(st.out.find("\ncounts ", header), std::string::npos) << st.out;
}

TEST(ClusterTest, LocalModeGivesTheSameResult) {
  TempDir data("local");
  const Input in = WriteVitals(data.File("vitals.csv"), 1'000'000, 1000);
  WriteFile(data.File("job.yaml"), ExampleJob(data.File("vitals.csv"), data.File("out")));
  CommandResult r = RunCommand({BinPath("vstream"), "local", data.File("job.yaml"), "--taskmanagers", "2"},
                               data.path(), std::chrono::minutes(5));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectTotals(in, data.File("out"));
}

}  // namespace
}  // namespace vstream::testing
