#pragma once
// A bounded windowed job over synthetic vitals for recovery tests (chaos,
// savepoints): the input CSV, the job spec, the reference result and the
// reader of the committed output.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {

namespace fs = std::filesystem;

inline constexpr int64_t kT0 = 1'700'000'000'000;
inline constexpr int64_t kMinute = 60'000;
inline constexpr int kPatients = 200;

inline int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

// Row i: patient P<100 + i % 200>, 10 ms of event time after row i - 1.
inline std::string Patient(int64_t i) { return absl::StrCat("P", 100 + i % kPatients); }
inline int64_t Ts(int64_t i) { return kT0 + i * 10; }
inline int64_t Hr(int64_t i) { return 40 + (i * 31 + i / 7) % 140; }

inline std::string VitalsCsv(int64_t rows) {
  std::string csv = "patient_id,ts,hr\n";
  csv.reserve(static_cast<size_t>(rows) * 24);
  for (int64_t i = 0; i < rows; ++i) absl::StrAppend(&csv, Patient(i), ",", Ts(i), ",", Hr(i), "\n");
  return csv;
}

struct Window {
  int64_t readings = 0;
  int64_t hr_sum = 0;
};
using WindowKey = std::pair<std::string, std::string>;  // patient, window start as printed

inline std::map<WindowKey, Window> Reference(int64_t rows) {
  std::map<WindowKey, Window> w;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t start = Ts(i) - Ts(i) % kMinute;
    Window& x = w[{Patient(i), FormatTimestamp(start)}];
    x.readings++;
    x.hr_sum += Hr(i);
  }
  return w;
}

// Every row of the committed output: "patient,window_start,window_end,readings,hr_sum".
inline std::map<WindowKey, std::vector<Window>> ReadOutput(const std::string& dir, std::vector<std::string>* hidden) {
  std::map<WindowKey, std::vector<Window>> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name[0] == '.') {
      hidden->push_back(name);
      continue;
    }
    std::istringstream in(ReadFile(e.path().string()));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string cell;
      while (std::getline(ss, cell, ',')) f.push_back(cell);
      if (f.size() != 5) {
        ADD_FAILURE() << "malformed output row in " << name << ": " << line;
        continue;
      }
      out[{f[0], f[1]}].push_back(Window{std::stoll(f[3]), std::stoll(f[4])});
    }
  }
  return out;
}

// The windowed job over DIR/vitals.csv, checkpointing every 500 ms with
// `checkpointing` (more keys: "mode: exactly_once", "unaligned: true"). The
// source reads at most source_rate records/s; the sink, chained to the
// window, paces the window's input to sink_rate per subtask (backpressure
// on the edge into the window). 0: unlimited.
inline constexpr char kVitalsWindowJob[] = R"yaml(name: chaos
parallelism: 3
checkpointing: {interval: 500ms, $CHECKPOINTING}
sources:
  - name: vitals
    connector: file
    path: $DIR/vitals.csv
    format: csv
    parallelism: 1
    max_rate: $SOURCE_RATE
    schema: {patient_id: string, ts: timestamp, hr: int}
    event_time: {field: ts, max_out_of_orderness: 1s}
operators:
  - name: valid
    type: filter
    input: vitals
    where: "hr > 0"
    partition: rebalance
  - name: per_minute
    type: window
    input: valid
    key_by: [patient_id]
    window: {kind: tumbling, size: 1m}
    aggregates: {readings: "count(*)", hr_sum: "sum(hr)"}
sinks:
  - {name: out, connector: file, input: per_minute, path: $DIR/out, format: csv, max_rate: $SINK_RATE}
)yaml";

inline std::string VitalsWindowJob(const std::string& dir, const std::string& checkpointing, int64_t source_rate,
                                   int64_t sink_rate = 0) {
  return absl::StrReplaceAll(kVitalsWindowJob, {{"$DIR", dir},
                                                {"$CHECKPOINTING", checkpointing},
                                                {"$SOURCE_RATE", absl::StrCat(source_rate)},
                                                {"$SINK_RATE", absl::StrCat(sink_rate)}});
}

// Every window of the reference exactly once with its values, nothing else,
// and no uncommitted (hidden) file left.
inline void ExpectExactOutput(const std::map<WindowKey, Window>& reference,
                              const std::map<WindowKey, std::vector<Window>>& output,
                              const std::vector<std::string>& hidden, const std::string& what) {
  EXPECT_TRUE(hidden.empty()) << what << ": uncommitted files left: " << hidden.size();
  int missing = 0, duplicated = 0, wrong = 0;
  for (const auto& [key, want] : reference) {
    auto it = output.find(key);
    if (it == output.end()) {
      if (++missing <= 3) ADD_FAILURE() << what << ": missing window " << key.first << " " << key.second;
      continue;
    }
    if (it->second.size() != 1) {
      if (++duplicated <= 3) {
        ADD_FAILURE() << what << ": window " << key.first << " " << key.second << " " << it->second.size() << " times";
      }
      continue;
    }
    const Window& got = it->second[0];
    if ((got.readings != want.readings || got.hr_sum != want.hr_sum) && ++wrong <= 3) {
      ADD_FAILURE() << what << ": window " << key.first << " " << key.second << ": " << got.readings
                    << " readings, hr_sum " << got.hr_sum << "; want " << want.readings << ", " << want.hr_sum;
    }
  }
  EXPECT_EQ(output.size(), reference.size()) << what << ": windows that should not exist";
  EXPECT_EQ(missing, 0) << what;
  EXPECT_EQ(duplicated, 0) << what;
  EXPECT_EQ(wrong, 0) << what;
}

}  // namespace vstream::testing
