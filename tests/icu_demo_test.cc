// The ICU early-warning demo (examples/icu-early-warning.yaml) on a real
// cluster, bounded: it must finish with alerts that explain themselves and
// 5-minute statistics, and no process may write a patient identifier to its
// logs or report one in the job's metrics (issue 5: "no patient identifiers
// in logs or metrics").

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

// Lines of `text` that contain a generated patient id (they all start with
// SIMPT-) or a generated device id (MON-), except those that are records a
// sink wrote on purpose (JSON objects, from the console sink).
std::vector<std::string> LinesWithIds(const std::string& text) {
  std::vector<std::string> found;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.front() == '{') continue;  // the console sink's output
    if (line.find("SIMPT-") != std::string::npos || line.find("MON-0") != std::string::npos) found.push_back(line);
  }
  return found;
}

TEST(IcuDemoTest, FinishesWithExplainedAlertsAndNoPatientIdInAnyLog) {
  const std::string spec = ReadFile(std::string(VSTREAM_SOURCE_DIR) + "/examples/icu-early-warning.yaml");
  ASSERT_NE(spec.find("    speed: 60"), std::string::npos) << "the demo changed; update this test";
  TempDir data("icu-demo");
  // Bounded and as fast as possible: 40 simulated minutes of 200 patients.
  const std::string bounded = std::regex_replace(spec, std::regex("    speed: 60[^\n]*\n"), "    count: 8000\n");
  WriteFile(data.File("icu.yaml"), bounded);

  TestCluster cluster(2, 2);
  CommandResult r = cluster.Vstream({"submit", data.File("icu.yaml"), "--wait"}, std::chrono::minutes(4));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  CommandResult status = cluster.Vstream({"status", job_id}, std::chrono::seconds(30));
  ASSERT_EQ(status.exit_code, 0) << status.err;

  // Alerts, each with an id and a reason; statistics per patient and sign.
  const std::vector<std::string> alerts = ReadOutputLines(data.File("out/alerts"), false);
  ASSERT_FALSE(alerts.empty()) << "200 patients over 40 simulated minutes at 3 episodes a day: some must alert";
  std::set<std::string> kinds, ids;
  const std::regex alert_re(R"re("patient_id":"(SIMPT-[0-9]+)","alert":"([^"]+)","reason":"([^"]+)","alert_id":"([0-9a-f]{16})")re");
  for (const std::string& a : alerts) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(a, m, alert_re)) << a;
    kinds.insert(m[2].str().substr(0, 5));
    ids.insert(m[4]);
  }
  EXPECT_EQ(ids.size(), alerts.size()) << "alert ids are unique";
  EXPECT_TRUE(kinds.count("NEWS2")) << "no NEWS2 alert";
  const std::vector<std::string> stats = ReadOutputLines(data.File("out/vitals_5min"), false);
  EXPECT_GT(stats.size(), 200u * 7) << "a 5-minute window per patient and vital sign";

  // The ids are in the output, so the search below can find them.
  ASSERT_NE(alerts.front().find("SIMPT-"), std::string::npos);
  // No log line and no metric names a patient.
  std::vector<std::pair<std::string, std::string>> texts = {
      {"jobmanager stderr", cluster.jobmanager().Stderr()},
      {"jobmanager stdout", cluster.jobmanager().Stdout()},
      {"vstream submit", r.out + r.err},
      {"vstream status (metrics)", status.out + status.err},
  };
  for (int i = 0; i < cluster.num_taskmanagers(); ++i) {
    texts.emplace_back(absl::StrCat("taskmanager ", i, " stderr"), cluster.taskmanager(i).Stderr());
    texts.emplace_back(absl::StrCat("taskmanager ", i, " stdout"), cluster.taskmanager(i).Stdout());
  }
  for (const auto& [what, text] : texts) {
    ASSERT_FALSE(text.empty() && what.find("stderr") != std::string::npos) << what << " is empty: nothing was checked";
    const std::vector<std::string> lines = LinesWithIds(text);
    EXPECT_TRUE(lines.empty()) << what << " names a patient: " << lines.front();
  }
}

}  // namespace
}  // namespace vstream::testing
