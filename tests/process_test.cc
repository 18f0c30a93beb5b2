// Keyed process functions end to end, on real clusters: the built-in
// no_data_alert over an out-of-order input, compared with a reference
// computed here; and a user function in a custom TaskManager
// (examples/custom_taskmanager), which the stock TaskManager refuses.

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTimeout = 30'000;  // no_data_alert's timeout: 30s
constexpr int kPatients = 200;

struct Reading {
  std::string patient;
  int64_t ts;  // < 0: no event time (an empty CSV field)
  int64_t hr;
};

// A reading every 100 ms, patients in turn (each every 20 s), every reading
// up to 4 s out of order (the bound is 5 s, so none is late). Each patient
// goes silent for a minute in every 7 (so some gaps exceed the timeout and
// most do not); every 10,000th reading has no time.
std::vector<Reading> MakeReadings(int rows) {
  std::mt19937_64 rng(23);
  std::vector<Reading> v;
  v.reserve(rows);
  for (int i = 0; i < rows; ++i) {
    const int p = i % kPatients;
    const int64_t base = kT0 + int64_t{i} * 100;
    if ((base / 60'000 + p) % 7 == 0) continue;  // the patient is silent this minute
    Reading r;
    r.patient = absl::StrCat("P", 1000 + p);
    r.ts = i % 10'000 == 9'999 ? -1 : base - static_cast<int64_t>(rng() % 4000);
    r.hr = 50 + static_cast<int64_t>(rng() % 100);
    v.push_back(r);
  }
  return v;
}

std::string ReadingsCsv(const std::vector<Reading>& v) {
  std::string csv = "patient_id,ts,hr\n";
  for (const auto& r : v) {
    absl::StrAppend(&csv, r.patient, ",", r.ts >= 0 ? absl::StrCat(r.ts) : "", ",", r.hr, "\n");
  }
  return csv;
}

// The CSV rows of every part file in `dir`, headers skipped.
std::vector<std::string> ReadLines(const std::string& dir) { return ReadOutputLines(dir, /*skip_header=*/true); }

// What no_data_alert must say: for each patient, in time order, an alert
// after every reading followed by a gap longer than the timeout, and after
// its last reading (at the end of the input, event time ends).
std::multiset<std::string> ExpectedAlerts(const std::vector<Reading>& readings) {
  std::map<std::string, std::vector<int64_t>> times;
  for (const auto& r : readings) {
    if (r.ts >= 0) times[r.patient].push_back(r.ts);
  }
  std::multiset<std::string> want;
  auto alert = [&](const std::string& p, int64_t last) {
    want.insert(absl::StrCat(p, ",", FormatTimestamp(last), ",", FormatTimestamp(last + kTimeout), ",no_data"));
  };
  for (auto& [p, ts] : times) {
    std::sort(ts.begin(), ts.end());
    for (size_t i = 0; i + 1 < ts.size(); ++i) {
      if (ts[i + 1] - ts[i] > kTimeout) alert(p, ts[i]);
    }
    alert(p, ts.back());
  }
  return want;
}

constexpr char kAlertJob[] = R"yaml(name: no-data
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: $DIR/vitals.csv
    format: csv
    parallelism: 1
    schema: {patient_id: string, ts: timestamp, hr: int}
    event_time: {field: ts, max_out_of_orderness: 5s}
operators:
  - name: silent
    type: process
    input: vitals
    key_by: [patient_id]
    function: no_data_alert
    params: {timeout: 30s, wall_clock_timeout: 1h}
    state_ttl: 1h
    dead_letter: no_time
sinks:
  - {name: alerts, connector: file, input: silent, path: $DIR/alerts, format: csv}
  - {name: rejected, connector: file, input: no_time, path: $DIR/rejected, format: csv}
)yaml";

TEST(ProcessTest, NoDataAlertMatchesTheReference) {
  TestCluster cluster(2, 2);
  TempDir data("no-data");
  const std::vector<Reading> readings = MakeReadings(300'000);
  WriteFile(data.File("vitals.csv"), ReadingsCsv(readings));
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kAlertJob, {{"$DIR", data.path()}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(5));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  const std::multiset<std::string> want = ExpectedAlerts(readings);
  // Enough gaps to mean something: more than one alert per patient.
  ASSERT_GT(want.size(), 4u * kPatients);
  const std::vector<std::string> lines = ReadLines(data.File("alerts"));
  const std::multiset<std::string> got(lines.begin(), lines.end());
  EXPECT_EQ(got.size(), want.size());
  std::vector<std::string> missing, extra;
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
  EXPECT_TRUE(missing.empty()) << missing.size() << " alerts missing, e.g. " << missing.front();
  EXPECT_TRUE(extra.empty()) << extra.size() << " unexpected alerts, e.g. " << extra.front();

  // The readings without a time are the function's dead letters.
  size_t no_time = 0;
  for (const auto& x : readings) no_time += x.ts < 0;
  ASSERT_GT(no_time, 0u);
  const std::vector<std::string> rejected = ReadLines(data.File("rejected"));
  EXPECT_EQ(rejected.size(), no_time);
  for (const std::string& line : rejected) {
    EXPECT_NE(line.find("silent,no_data_alert,no_data_alert: the record has no event time,"), std::string::npos)
        << line;
  }
}

constexpr char kFirstReadingJob[] = R"yaml(name: admission
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: $DIR/vitals.csv
    format: csv
    parallelism: 1
    schema: {patient_id: string, ts: timestamp, hr: int}
operators:
  - name: first
    type: process
    input: vitals
    key_by: [patient_id]
    function: first_reading
    output_schema: {patient_id: string, ts: timestamp, hr: int}
sinks:
  - {name: out, connector: file, input: first, path: $DIR/first, format: csv}
)yaml";

TEST(ProcessTest, CustomTaskManagerRunsAUserFunctionTheStockOneRefuses) {
  TempDir data("first-reading");
  std::vector<Reading> readings = MakeReadings(20'000);
  WriteFile(data.File("vitals.csv"), ReadingsCsv(readings));
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kFirstReadingJob, {{"$DIR", data.path()}}));
  {
    TestCluster cluster(2, 2, "vstream-example-taskmanager");
    CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(2));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  // One row per patient: its first line in the file (one source subtask
  // keeps each patient's order).
  std::set<std::string> want;
  std::set<std::string> seen;
  for (const auto& x : readings) {
    if (!seen.insert(x.patient).second) continue;
    want.insert(absl::StrCat(x.patient, ",", x.ts >= 0 ? FormatTimestamp(x.ts) : "", ",", x.hr));
  }
  const std::vector<std::string> lines = ReadLines(data.File("first"));
  EXPECT_EQ(lines.size(), static_cast<size_t>(kPatients));
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()), want);

  // The stock TaskManager does not have the function: the job fails, saying so.
  TestCluster stock(1, 2);
  CommandResult r = stock.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(2));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("process function 'first_reading' is not registered in this TaskManager"),
            std::string::npos)
      << r.out << r.err;
}

}  // namespace
}  // namespace vstream::testing
