// The clinical layer end to end on a real cluster: HL7 v2 files from the
// shared corpus through the hl7v2 file source, with the rows and dead
// letters compared with what the parser gives in this process.

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/tests/shared_data.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kHl7Job[] = R"yaml(name: hl7-files
parallelism: 2
sources:
  - name: hl7
    connector: file
    path: $DIR/in
    format: hl7v2
    dead_letter: bad
operators:
  - name: keys
    type: map
    input: hl7
    select: {message_id: message_id, set_id: set_id, code: code, patient_id: patient_id}
sinks:
  - name: rows
    connector: file
    input: keys
    path: $DIR/rows
    format: csv
  - name: rejected
    connector: file
    input: bad
    path: $DIR/bad
    format: jsonl
)yaml";

const char* const kFiles[] = {
    "authored/scenario_patient1_news2_scale1.hl7", "authored/scenario_patient2_news2_scale2_copd.hl7",
    "authored/pcd01_monitor_stream_patient1.hl7",  "authored/edge_cases.hl7",
    "python-hl7/malformed_batch_nested_BHS.hl7",   "linuxforhealth/sample_unix.hl7",
};

TEST(ClinicalTest, Hl7FilesBecomeObservationRowsAndDeadLetters) {
  REQUIRE_SHARED_DATA();
  TempDir data("hl7-files");
  fs::create_directories(data.File("in"));
  // What this process's parser makes of the same files: the reference.
  std::multiset<std::string> want;
  size_t want_dead = 0;
  Hl7RowExtractor extractor(Hl7Rows::kObservations, {});
  for (const char* file : kFiles) {
    const std::string bytes = ReadSharedFile(absl::StrCat("hl7v2/", file));
    WriteFile(data.File(absl::StrCat("in/", fs::path(file).filename().string())), bytes);
    Hl7Splitter splitter(bytes);
    Hl7Piece piece;
    Hl7Message msg;
    RowBatch rows(extractor.schema().size());
    while (splitter.Next(&piece)) {
      bool skipped = false;
      if (!piece.error.empty() || !msg.Parse(piece.text, piece.line).ok() ||
          !extractor.Append(msg, 0, &rows, &skipped).ok()) {
        ++want_dead;
      }
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string set_id = rows[i][1].is_null ? "" : std::to_string(rows[i][1].i);
      want.insert(absl::StrCat(rows[i][0].s, ",", set_id, ",", rows[i][7].s, ",", rows[i][5].s));
    }
  }
  ASSERT_EQ(want.size(), 45u + 36u + 64u + 9u) << "the corpus files changed?";
  ASSERT_EQ(want_dead, 3u);

  TestCluster cluster(2, 2);
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kHl7Job, {{"$DIR", data.path()}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(2));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> got = ReadOutputLines(data.File("rows"), /*skip_header=*/true);
  EXPECT_EQ(std::multiset<std::string>(got.begin(), got.end()), want);
  const std::vector<std::string> dead = ReadOutputLines(data.File("bad"), /*skip_header=*/false);
  ASSERT_EQ(dead.size(), want_dead);
  std::string all;
  for (const std::string& d : dead) all += d + "\n";
  EXPECT_NE(all.find("malformed_batch_nested_BHS.hl7:1\",\"reason\":\"line 4: BHS inside the batch begun at line 1"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("sample_unix.hl7:1\",\"reason\":\"line 1: the encoding characters (MSH-2)"), std::string::npos)
      << all;
  CommandResult st = cluster.Vstream({"status", r.out.substr(0, r.out.find('\n'))}, std::chrono::seconds(30));
  EXPECT_NE(st.out.find("DEAD"), std::string::npos) << st.out;
}

constexpr char kNews2Job[] = R"yaml(name: bedside-news2
parallelism: 2
checkpointing: {interval: 500ms, mode: exactly_once}
sources:
  - name: hl7
    connector: file
    path: $DIR/in
    format: hl7v2
operators:
  - name: unique
    type: dedup
    input: hl7
    key: [message_id, set_id]
    ttl: 1h
  - name: scores
    type: news2
    input: unique
  - name: sepsis
    type: qsofa
    input: unique
  - name: alerts
    type: alert
    input: scores
    cooldown: 4h
  - name: news2_keys
    type: map
    input: scores
    select: {patient_id: patient_id, message_id: message_id, total: news2_total, band: risk_band}
  - name: qsofa_keys
    type: map
    input: sepsis
    select: {message_id: message_id, total: qsofa_total, positive: qsofa_positive}
sinks:
  - name: news2_out
    connector: file
    input: news2_keys
    path: $DIR/news2
    format: csv
  - name: qsofa_out
    connector: file
    input: qsofa_keys
    path: $DIR/qsofa
    format: csv
  - name: alerts_out
    connector: file
    input: alerts
    path: $DIR/alerts
    format: csv
)yaml";

// The authored scenario's HL7 messages, one file sent twice, through dedup,
// news2 and qsofa on a real cluster, with checkpoints: exactly the expected
// score of every set, once.
TEST(ClinicalTest, ScenarioMessagesScoreExactlyTheExpectedNews2AndQsofa) {
  REQUIRE_SHARED_DATA();
  TempDir data("news2");
  fs::create_directories(data.File("in"));
  for (const char* file : {"scenario_patient1_news2_scale1.hl7", "scenario_patient2_news2_scale2_copd.hl7"}) {
    WriteFile(data.File(absl::StrCat("in/", file)), ReadSharedFile(absl::StrCat("hl7v2/authored/", file)));
  }
  // A sender's resend of the whole first file: dedup drops every message.
  WriteFile(data.File("in/zz_resent.hl7"), ReadSharedFile("hl7v2/authored/scenario_patient1_news2_scale1.hl7"));
  std::multiset<std::string> want_news2, want_qsofa;
  std::istringstream expected(ReadSharedFile("hl7v2/authored/scenario_news2_expected.csv"));
  std::string line;
  std::getline(expected, line);
  while (std::getline(expected, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    ASSERT_EQ(f.size(), 26u) << line;
    want_news2.insert(absl::StrCat(f[0], ",", f[2], ",", f[18], ",", f[20]));
    want_qsofa.insert(absl::StrCat(f[2], ",", f[24], ",", f[25] == "1" ? "true" : "false"));
  }
  ASSERT_EQ(want_news2.size(), 9u);

  TestCluster cluster(2, 2);
  WriteFile(data.File("job.yaml"), absl::StrReplaceAll(kNews2Job, {{"$DIR", data.path()}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml"), "--wait"}, std::chrono::minutes(2));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> news2 = ReadOutputLines(data.File("news2"), /*skip_header=*/true);
  EXPECT_EQ(std::multiset<std::string>(news2.begin(), news2.end()), want_news2);
  const std::vector<std::string> qsofa = ReadOutputLines(data.File("qsofa"), /*skip_header=*/true);
  EXPECT_EQ(std::multiset<std::string>(qsofa.begin(), qsofa.end()), want_qsofa);
  // Alerts: patient 1 reaches low-medium, then rises to medium and high;
  // patient 2 reaches medium once. Each id is 16 hex digits, all distinct.
  std::multiset<std::string> alerts;
  std::set<std::string> ids;
  for (const std::string& row : ReadOutputLines(data.File("alerts"), /*skip_header=*/true)) {
    const std::vector<std::string> f = absl::StrSplit(row, ',');
    ASSERT_EQ(f.size(), 7u) << row;  // patient_id, alert_id, alert_at, message_id, level, previous_level, reason
    EXPECT_EQ(f[1].size(), 16u) << row;
    EXPECT_EQ(f[1].find_first_not_of("0123456789abcdef"), std::string::npos) << row;
    ids.insert(f[1]);
    alerts.insert(absl::StrCat(f[0], ",", f[3], ",", f[4], ",", f[5], ",", f[6]));
  }
  EXPECT_EQ(alerts, (std::multiset<std::string>{
                        "NEWS2-0001,EHR-0001003,low-medium,,reached low-medium",
                        "NEWS2-0001,EHR-0001004,medium,low-medium,rose from low-medium to medium",
                        "NEWS2-0001,EHR-0001005,high,medium,rose from medium to high",
                        "NEWS2-0002,EHR-0002003,medium,,reached medium",
                    }));
  EXPECT_EQ(ids.size(), alerts.size());
}

}  // namespace
}  // namespace vstream::testing
