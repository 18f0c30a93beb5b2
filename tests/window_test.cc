// Event time end to end: tumbling, sliding and session windows over an
// out-of-order input of 1,000,000 rows, and an interval join, on a real
// cluster, compared with reference computations done here in plain C++.

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/cluster_client.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kMinute = 60'000;

struct Vital {
  std::string patient;
  int64_t ts;
  int64_t hr;
  int64_t spo2;
  bool late;  // injected beyond the out-of-orderness bound
};

// Rows come in runs of 50 per patient (5 s of event time), so a patient's
// sessions are separated by long gaps; each row is up to 4 s out of order
// (the bound is 5 s); every 50,000th row is a copy 10 minutes in the past.
std::vector<Vital> MakeVitals(int rows) {
  std::mt19937_64 rng(11);
  std::vector<Vital> v;
  v.reserve(rows + rows / 50'000);
  for (int i = 0; i < rows; ++i) {
    Vital x;
    x.patient = absl::StrCat("P", 100 + (i / 50) % 200);
    x.ts = kT0 + int64_t{i} * 100 - static_cast<int64_t>(rng() % 4000);
    x.hr = 40 + static_cast<int64_t>(rng() % 140);
    x.spo2 = 80 + static_cast<int64_t>(rng() % 21);
    x.late = false;
    v.push_back(x);
    if (i % 50'000 == 49'999) {
      Vital late = x;
      late.ts -= 10 * kMinute;
      late.hr = 200 + i % 7;  // recognizable
      late.late = true;
      v.push_back(late);
    }
  }
  return v;
}

std::string VitalsCsv(const std::vector<Vital>& v) {
  std::string csv = "patient_id,ts,hr,spo2\n";
  for (const auto& x : v) absl::StrAppend(&csv, x.patient, ",", x.ts, ",", x.hr, ",", x.spo2, "\n");
  return csv;
}

struct Agg {
  int64_t count = 0;
  double hr_sum = 0;
  int64_t hr_max = INT64_MIN;
  int64_t spo2_min = INT64_MAX;
  void Add(const Vital& x) {
    ++count;
    hr_sum += static_cast<double>(x.hr);
    hr_max = std::max(hr_max, x.hr);
    spo2_min = std::min(spo2_min, x.spo2);
  }
};

using WindowKey = std::tuple<std::string, int64_t, int64_t>;  // patient, start, end
using Windows = std::map<WindowKey, Agg>;

Windows Tumbling(const std::vector<Vital>& v, int64_t size, bool with_late) {
  Windows w;
  for (const auto& x : v) {
    if (x.late && !with_late) continue;
    const int64_t start = x.ts - ((x.ts % size) + size) % size;
    w[{x.patient, start, start + size}].Add(x);
  }
  return w;
}

Windows Sliding(const std::vector<Vital>& v, int64_t size, int64_t slide) {
  Windows w;
  for (const auto& x : v) {
    if (x.late) continue;
    const int64_t last = x.ts - ((x.ts % slide) + slide) % slide;
    for (int64_t start = last; start > x.ts - size; start -= slide) w[{x.patient, start, start + size}].Add(x);
  }
  return w;
}

Windows Sessions(const std::vector<Vital>& v, int64_t gap) {
  std::map<std::string, std::vector<const Vital*>> by_patient;
  for (const auto& x : v) {
    if (!x.late) by_patient[x.patient].push_back(&x);
  }
  Windows w;
  for (auto& [p, xs] : by_patient) {
    std::stable_sort(xs.begin(), xs.end(), [](const Vital* a, const Vital* b) { return a->ts < b->ts; });
    size_t i = 0;
    while (i < xs.size()) {
      Agg agg;
      const int64_t start = xs[i]->ts;
      int64_t end = start + gap;
      size_t j = i;
      while (j < xs.size() && xs[j]->ts <= end) {  // Flink: touching windows merge
        end = std::max(end, xs[j]->ts + gap);
        agg.Add(*xs[j]);
        ++j;
      }
      w[{p, start, end}] = agg;
      i = j;
    }
  }
  return w;
}

// The CSV rows of every part file in `dir`, headers skipped.
std::vector<std::string> ReadLines(const std::string& dir) { return ReadOutputLines(dir, /*skip_header=*/true); }

// CSV rows "patient,window_start,window_end,readings,hr_avg,hr_max,spo2_min";
// the last row of each window wins (corrections come later in the file).
std::map<WindowKey, std::vector<std::string>> ParseWindows(const std::string& dir, int* rows) {
  std::map<WindowKey, std::vector<std::string>> out;
  *rows = 0;
  for (const std::string& line : ReadLines(dir)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    EXPECT_EQ(f.size(), 7u) << line;
    if (f.size() != 7) continue;
    int64_t start = 0, end = 0;
    EXPECT_TRUE(ParseTimestamp(f[1], &start)) << line;
    EXPECT_TRUE(ParseTimestamp(f[2], &end)) << line;
    out[{f[0], start, end}] = {f[3], f[4], f[5], f[6]};
    ++*rows;
  }
  return out;
}

void ExpectWindows(const std::string& what, const Windows& want, const std::string& dir, bool one_row_each) {
  int rows = 0;
  auto got = ParseWindows(dir, &rows);
  EXPECT_EQ(got.size(), want.size()) << what;
  if (one_row_each) {
    EXPECT_EQ(rows, static_cast<int>(want.size())) << what << ": one result per window";
  }
  int mismatches = 0;
  for (const auto& [key, agg] : want) {
    auto it = got.find(key);
    if (it == got.end()) {
      if (++mismatches <= 5) ADD_FAILURE() << what << ": missing window " << std::get<0>(key) << " " << std::get<1>(key);
      continue;
    }
    const auto& f = it->second;
    const double avg = agg.hr_sum / static_cast<double>(agg.count);
    const bool ok = std::stoll(f[0]) == agg.count && std::abs(std::stod(f[1]) - avg) <= 1e-9 * std::abs(avg) &&
                    std::stoll(f[2]) == agg.hr_max && std::stoll(f[3]) == agg.spo2_min;
    if (!ok && ++mismatches <= 5) {
      ADD_FAILURE() << what << ": window " << std::get<0>(key) << " " << std::get<1>(key) << " got " << f[0] << ","
                    << f[1] << "," << f[2] << "," << f[3] << " want " << agg.count << "," << avg << "," << agg.hr_max
                    << "," << agg.spo2_min;
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

constexpr char kWindowJob[] = R"yaml(name: windows
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: $DIR/vitals.csv
    format: csv
    parallelism: 1
    schema: {patient_id: string, ts: timestamp, hr: int, spo2: int}
    # A watermark after every batch: which records are late then depends on
    # the input only, not on how fast the file is read.
    event_time: {field: ts, max_out_of_orderness: 5s, watermark_interval: 0s}
operators:
  - name: tumbling
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: tumbling, size: 1m}
    allowed_lateness: 0s
    late_output: tumbling_late
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)", hr_max: "max(hr)", spo2_min: "min(spo2)"}
  - name: sliding
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: sliding, size: 5m, slide: 1m}
    late_output: sliding_late
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)", hr_max: "max(hr)", spo2_min: "min(spo2)"}
  - name: session
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: session, gap: 2m}
    late_output: session_late
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)", hr_max: "max(hr)", spo2_min: "min(spo2)"}
  - name: lenient
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: tumbling, size: 1m}
    allowed_lateness: 15m
    late_output: lenient_late
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)", hr_max: "max(hr)", spo2_min: "min(spo2)"}
sinks:
  - {name: out_tumbling, connector: file, input: tumbling, path: $DIR/tumbling, format: csv}
  - {name: out_sliding, connector: file, input: sliding, path: $DIR/sliding, format: csv}
  - {name: out_session, connector: file, input: session, path: $DIR/session, format: csv}
  - {name: out_lenient, connector: file, input: lenient, path: $DIR/lenient, format: csv}
  - {name: late_tumbling, connector: file, input: tumbling_late, path: $DIR/tumbling_late, format: csv}
  - {name: late_sliding, connector: file, input: sliding_late, path: $DIR/sliding_late, format: csv}
  - {name: late_session, connector: file, input: session_late, path: $DIR/session_late, format: csv}
  - {name: late_lenient, connector: file, input: lenient_late, path: $DIR/lenient_late, format: csv}
)yaml";

TEST(WindowTest, WindowsOverOutOfOrderInputMatchTheReference) {
  TestCluster cluster(2, 2);
  TempDir data("windows");
  const std::vector<Vital> vitals = MakeVitals(1'000'000);
  WriteFile(data.File("vitals.csv"), VitalsCsv(vitals));
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kWindowJob, {{"$DIR", data.path()}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(10));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  ExpectWindows("tumbling", Tumbling(vitals, kMinute, false), data.File("tumbling"), true);
  ExpectWindows("sliding", Sliding(vitals, 5 * kMinute, kMinute), data.File("sliding"), true);
  ExpectWindows("session", Sessions(vitals, 2 * kMinute), data.File("session"), true);
  // Within the allowed lateness the late records update their windows:
  // the last row of each window counts them.
  ExpectWindows("lenient", Tumbling(vitals, kMinute, true), data.File("lenient"), false);

  // Exactly the injected records are late, for each window kind.
  std::multiset<std::string> want_late;
  for (const auto& x : vitals) {
    if (x.late) want_late.insert(absl::StrCat(x.patient, ",", FormatTimestamp(x.ts), ",", x.hr, ",", x.spo2));
  }
  ASSERT_EQ(want_late.size(), 20u);
  for (const char* dir : {"tumbling_late", "sliding_late", "session_late"}) {
    auto lines = ReadLines(data.File(dir));
    EXPECT_EQ(std::multiset<std::string>(lines.begin(), lines.end()), want_late) << dir;
  }
  EXPECT_TRUE(ReadLines(data.File("lenient_late")).empty());
  CommandResult st = cluster.Vstream({"status", r.out.substr(0, r.out.find('\n'))}, std::chrono::seconds(30));
  EXPECT_NE(st.out.find("LATE"), std::string::npos) << st.out;
}

// A tumbling window over 6,000 keys fires 3,000 windows per subtask at
// each watermark, in slices (WindowOperator::kFireSlice) between which the
// task takes input, and with a watermark after every batch more watermarks
// come while a fire is under way. Every window still comes out once, with
// every one of its records, and none is late.
constexpr char kManyKeysJob[] = R"yaml(name: many-keys
parallelism: 2
sources:
  - name: readings
    connector: file
    path: $DIR/readings.csv
    format: csv
    parallelism: 1
    schema: {key: string, ts: timestamp}
    event_time: {field: ts, max_out_of_orderness: 0s, watermark_interval: 0s}
operators:
  - name: counts
    type: window
    input: readings
    key_by: [key]
    window: {kind: tumbling, size: 1m}
    late_output: counts_late
    aggregates: {n: "count(*)"}
sinks:
  - {name: out, connector: file, input: counts, path: $DIR/counts, format: csv}
  - {name: late, connector: file, input: counts_late, path: $DIR/late, format: csv}
)yaml";

TEST(WindowTest, ManyWindowsDueAtOnceFireOnceEachInSlices) {
  constexpr int kKeys = 6000;
  constexpr int kWindows = 5;
  constexpr int kPerWindow = 3;  // readings per key and window
  TestCluster cluster(2, 2);
  TempDir data("many-keys");
  // Time order: each window's readings, key after key, 10 ms apart.
  std::string csv = "key,ts\n";
  for (int w = 0; w < kWindows; ++w) {
    for (int r = 0; r < kPerWindow; ++r) {
      for (int k = 0; k < kKeys; ++k) {
        const int64_t ts = w * kMinute + (int64_t{r} * kKeys + k) * 3;
        absl::StrAppend(&csv, "K", k, ",", FormatTimestamp(ts), "\n");
      }
    }
  }
  WriteFile(data.File("readings.csv"), csv);
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kManyKeysJob, {{"$DIR", data.path()}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(10));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, int> windows;  // "key,start" -> rows
  int wrong_counts = 0;
  for (const std::string& line : ReadLines(data.File("counts"))) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    ASSERT_EQ(f.size(), 4u) << line;
    ++windows[f[0] + "," + f[1]];
    if (f[3] != std::to_string(kPerWindow) && ++wrong_counts <= 5) ADD_FAILURE() << "count " << line;
  }
  EXPECT_EQ(windows.size(), size_t{kKeys} * kWindows);
  int repeated = 0;
  for (const auto& [w, n] : windows) repeated += n != 1;
  EXPECT_EQ(repeated, 0) << "windows that came out more than once";
  EXPECT_TRUE(ReadLines(data.File("late")).empty());
}

// A union of two branches of one task (two filters over one source) runs
// in that task (`vstream plan`), and the window behind it gets every record
// of both branches, each window once, none late.
constexpr char kUnionJob[] = R"yaml(name: branches
parallelism: 1
sources:
  - name: readings
    connector: file
    path: $DIR/readings.csv
    format: csv
    schema: {key: string, ts: timestamp, v: int}
    event_time: {field: ts, max_out_of_orderness: 0s, watermark_interval: 0s}
operators:
  - {name: even, type: filter, input: readings, where: "v % 2 = 0"}
  - {name: thirds, type: filter, input: readings, where: "v % 3 = 0"}
  - {name: both, type: union, inputs: [even, thirds]}
  - name: counts
    type: window
    input: both
    key_by: [key]
    window: {kind: tumbling, size: 1m}
    late_output: counts_late
    aggregates: {n: "count(*)"}
sinks:
  - {name: out, connector: file, input: counts, path: $DIR/counts, format: csv}
  - {name: late, connector: file, input: counts_late, path: $DIR/late, format: csv}
)yaml";

TEST(WindowTest, AUnionOfBranchesOfOneTaskRunsInItAndLosesNothing) {
  constexpr int kKeys = 10;
  constexpr int kRows = 30'000;  // 5 minutes, 10 ms apart
  TestCluster cluster(1, 2);
  TempDir data("union-branches");
  std::string csv = "key,ts,v\n";
  std::map<std::string, int> expected;  // "key,start" -> rows of both branches
  for (int i = 0; i < kRows; ++i) {
    const int64_t ts = int64_t{i} * 10;
    const std::string key = absl::StrCat("K", i % kKeys);
    absl::StrAppend(&csv, key, ",", FormatTimestamp(ts), ",", i, "\n");
    expected[absl::StrCat(key, ",", FormatTimestamp(ts / kMinute * kMinute))] += (i % 2 == 0) + (i % 3 == 0);
  }
  WriteFile(data.File("readings.csv"), csv);
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kUnionJob, {{"$DIR", data.path()}}));
  CommandResult plan = cluster.Vstream({"plan", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("readings, even, thirds, both\n"), std::string::npos) << plan.out;
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(5));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, int> got;
  for (const std::string& line : ReadLines(data.File("counts"))) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    ASSERT_EQ(f.size(), 4u) << line;
    const std::string window = f[0] + "," + f[1];
    EXPECT_EQ(got.count(window), 0u) << "window came out twice: " << line;
    got[window] = std::stoi(f[3]);
  }
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(ReadLines(data.File("late")).empty());
}

constexpr char kJoinJob[] = R"yaml(name: join
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: $DIR/vitals.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, hr: int, spo2: int}
    event_time: {field: ts, max_out_of_orderness: 5s}
  - name: labs
    connector: file
    path: $DIR/labs.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, lactate: double}
    event_time: {field: ts, max_out_of_orderness: 5s}
operators:
  - name: vitals_with_labs
    type: interval_join
    left: vitals
    right: labs
    key_by: [patient_id]
    between: [-30m, 0s]
sinks:
  - {name: out, connector: file, input: vitals_with_labs, path: $DIR/joined, format: csv}
)yaml";

TEST(WindowTest, IntervalJoinMatchesTheReference) {
  TestCluster cluster(2, 2);
  TempDir data("join");
  std::vector<Vital> vitals = MakeVitals(100'000);
  vitals.erase(std::remove_if(vitals.begin(), vitals.end(), [](const Vital& v) { return v.late; }), vitals.end());
  WriteFile(data.File("vitals.csv"), VitalsCsv(vitals));
  // A lab result per patient every ~7 minutes over the same span.
  std::mt19937_64 rng(5);
  std::string labs = "patient_id,ts,lactate\n";
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> labs_by_patient;
  for (int64_t t = kT0 - 40 * kMinute; t < kT0 + 100'000 * 100; t += 2'100) {
    const std::string p = absl::StrCat("P", 100 + rng() % 200);
    const std::string lactate = absl::StrCat(rng() % 50, ".5");
    absl::StrAppend(&labs, p, ",", t, ",", lactate, "\n");
    labs_by_patient[p].push_back({t, lactate});
  }
  WriteFile(data.File("labs.csv"), labs);
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kJoinJob, {{"$DIR", data.path()}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(5));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  std::multiset<std::string> want;
  for (const auto& v : vitals) {
    for (const auto& [t, lactate] : labs_by_patient[v.patient]) {
      if (t >= v.ts - 30 * kMinute && t <= v.ts) {
        want.insert(absl::StrCat(v.patient, ",", FormatTimestamp(v.ts), ",", v.hr, ",", v.spo2, ",", v.patient, ",",
                                 FormatTimestamp(t), ",", lactate));
      }
    }
  }
  ASSERT_GT(want.size(), 50'000u);
  auto lines = ReadLines(data.File("joined"));
  std::multiset<std::string> got(lines.begin(), lines.end());
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "joined rows differ from the reference";
}

// Watermark alignment: a generator that could make 400,000 rows in well
// under a second shares an alignment group with one paced to 2,000 rows/s,
// both with 1 ms of event time per row. The fast one may run at most
// max_drift (1 s: 1,000 rows) plus a report's worth ahead of the slow one
// until the slow one ends; then it runs free, and every row arrives.
TEST(WatermarkAlignmentTest, AFastSourceWaitsForTheSlowOneInItsGroup) {
  TestCluster cluster(1, 4);  // one TaskManager: both counts come in the same heartbeat
  TempDir data("alignment");
  WriteFile(data.File("job.yaml"), R"(name: aligned
parallelism: 1
sources:
  - name: fast
    connector: generator
    count: 400000
    schema: {ts: timestamp, v: int}
    fields: {ts: {kind: sequence, min: 1700000000000}}
    event_time: {field: ts, alignment: {group: feeds, max_drift: 1s, update_interval: 50ms}}
  - name: slow
    connector: generator
    count: 8000
    rate: 2000
    schema: {ts: timestamp, v: int}
    fields: {ts: {kind: sequence, min: 1700000000000}}
    event_time: {field: ts, alignment: {group: feeds, max_drift: 1s, update_interval: 50ms}}
operators:
  - {name: both, type: union, inputs: [fast, slow]}
sinks:
  - {name: out, connector: blackhole, input: both}
)");
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  ClusterClient client(cluster.jobmanager_address());
  int64_t samples = 0;  // while the slow source runs
  int64_t max_ahead = INT64_MIN;
  proto::JobState state = proto::JOB_STATE_UNSPECIFIED;
  int64_t sunk = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = client.Get(job_id);
        if (!st.ok()) return false;
        int64_t fast = 0, slow = 0;
        for (const auto& v : st->vertices()) {
          if (v.name() == "fast") fast = v.records_out();
          if (v.name() == "slow") slow = v.records_out();
          if (v.name() == "out") sunk = v.records_in();
        }
        // From 1 s in (both sources have reported) until near the end.
        if (slow >= 2000 && slow < 7000) {
          ++samples;
          max_ahead = std::max(max_ahead, fast - slow);
        }
        state = st->state();
        return state == proto::FINISHED || state == proto::FAILED || state == proto::CANCELED;
      },
      std::chrono::seconds(60)));
  ASSERT_EQ(state, proto::FINISHED);
  EXPECT_EQ(sunk, 408000) << "every row of both sources";
  ASSERT_GT(samples, 0) << "no progress report while the slow source ran";
  // 1,000 rows of drift, up to 100 more in a report interval, one batch of
  // 1,024 past the bound, and a report's slack: far below the 400,000
  // unaligned.
  EXPECT_LT(max_ahead, 4000) << samples << " samples";
  EXPECT_NE(cluster.taskmanager(0).Stderr().find("for watermark alignment (group 'feeds'"), std::string::npos);
}

// At the start the group's bound is not known until every subtask has read
// its first record and the next report has gone round (update_interval: 3 s
// here). Meanwhile each source reads up to max_drift past its own first
// watermark: two sources of 20,000 rows (20 s of event time, under the
// 100 s drift) read to the end without standing still for a report. (They
// stopped after their first batch until the next report, about 3 s.)
TEST(WatermarkAlignmentTest, SourcesReadWithinTheDriftOfTheirStartBeforeTheGroupIsKnown) {
  TestCluster cluster(1, 4);
  TempDir data("alignment-start");
  WriteFile(data.File("job.yaml"), R"(name: aligned-start
parallelism: 1
sources:
  - name: a
    connector: generator
    count: 20000
    schema: {ts: timestamp, v: int}
    fields: {ts: {kind: sequence, min: 1700000000000}}
    event_time: {field: ts, alignment: {group: feeds, max_drift: 100s, update_interval: 3s}}
  - name: b
    connector: generator
    count: 20000
    schema: {ts: timestamp, v: int}
    fields: {ts: {kind: sequence, min: 1700000000000}}
    event_time: {field: ts, alignment: {group: feeds, max_drift: 100s, update_interval: 3s}}
operators:
  - {name: both, type: union, inputs: [a, b]}
sinks:
  - {name: out, connector: blackhole, input: both}
)");
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = cluster.taskmanager(0).Stderr();
  int sources = 0;
  for (size_t at = log.find(" ms for watermark alignment"); at != std::string::npos;
       at = log.find(" ms for watermark alignment", at + 1)) {
    const size_t start = log.rfind("paused ", at) + 7;
    const int64_t paused_ms = std::stoll(log.substr(start, at - start));
    EXPECT_LT(paused_ms, 1000) << "a source stood still for a report: " << log.substr(start - 7, at - start + 40);
    ++sources;
  }
  EXPECT_EQ(sources, 2) << log;
}

}  // namespace
}  // namespace vstream::testing
