#include "runtime/clinical/news2.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "runtime/tests/shared_data.h"

namespace vstream {
namespace {

std::vector<std::vector<std::string>> ReadCsv(const std::string& relative) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(ReadSharedFile(relative));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    rows.push_back(absl::StrSplit(line, ','));
  }
  return rows;
}

// scoring/news2_boundary_cases.csv: the sub-score at every band edge.
TEST(News2Test, EveryBoundaryCaseScoresAsExpected) {
  REQUIRE_SHARED_DATA();
  const auto rows = ReadCsv("scoring/news2_boundary_cases.csv");
  ASSERT_GE(rows.size(), 60u);
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 5u);
    const std::string& param = r[0];
    const std::string& value = r[1];
    const int want = std::stoi(r[4]);
    int got = -1;
    if (param == "respiration_rate_per_min") got = News2RespirationRate(std::stod(value));
    else if (param == "spo2_percent") got = News2Spo2(std::stod(value), r[2] == "2", r[3] == "1");
    else if (param == "air_or_oxygen") got = News2AirOrOxygen(value == "oxygen");
    else if (param == "systolic_bp_mmhg") got = News2SystolicBp(std::stod(value));
    else if (param == "pulse_per_min") got = News2Pulse(std::stod(value));
    else if (param == "consciousness_acvpu") got = News2Consciousness(*ParseAcvpu(value));
    else if (param == "temperature_c") got = News2Temperature(std::stod(value));
    else ADD_FAILURE() << "unknown parameter " << param;
    EXPECT_EQ(got, want) << param << " = " << value << " (scale " << r[2] << ", oxygen " << r[3] << ")";
  }
}

// hl7v2/authored/scenario_news2_expected.csv: the whole score, band and qSOFA
// of the scenario patients' 9 observation sets.
TEST(News2Test, ScenarioSetsGiveTheExpectedTotalsBandsAndQsofa) {
  REQUIRE_SHARED_DATA();
  const auto rows = ReadCsv("hl7v2/authored/scenario_news2_expected.csv");
  ASSERT_EQ(rows.size(), 9u);
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 26u);
    VitalSigns v;
    v.respiration_rate = std::stod(r[3]);
    v.spo2 = std::stod(r[4]);
    v.spo2_scale2 = r[5] == "2";
    v.on_oxygen = r[6] == "1";
    v.systolic_bp = std::stod(r[7]);
    v.pulse = std::stod(r[8]);
    v.consciousness = ParseAcvpu(r[9]);
    v.temperature = std::stod(r[10]);
    const News2Score s = ScoreNews2(v);
    const std::string set = r[2];
    EXPECT_EQ(s.respiration_rate, std::stoi(r[11])) << set;
    EXPECT_EQ(s.spo2, std::stoi(r[12])) << set;
    EXPECT_EQ(s.air_or_oxygen, std::stoi(r[13])) << set;
    EXPECT_EQ(s.systolic_bp, std::stoi(r[14])) << set;
    EXPECT_EQ(s.pulse, std::stoi(r[15])) << set;
    EXPECT_EQ(s.consciousness, std::stoi(r[16])) << set;
    EXPECT_EQ(s.temperature, std::stoi(r[17])) << set;
    EXPECT_EQ(s.total, std::stoi(r[18])) << set;
    EXPECT_EQ(s.red, r[19] == "1") << set;
    EXPECT_EQ(News2RiskName(s.risk), r[20]) << set;
    EXPECT_EQ(s.missing, 0) << set;
    const QsofaScore q = ScoreQsofa(v);
    EXPECT_EQ(q.respiration_rate, r[21] == "1") << set;
    EXPECT_EQ(q.altered_mentation, r[22] == "1") << set;
    EXPECT_EQ(q.systolic_bp, r[23] == "1") << set;
    EXPECT_EQ(q.total, std::stoi(r[24])) << set;
    EXPECT_EQ(q.positive, r[25] == "1") << set;
  }
}

TEST(News2Test, MissingParametersScoreNothingAndAreCounted) {
  VitalSigns v;
  v.pulse = 135;
  const News2Score s = ScoreNews2(v);
  EXPECT_EQ(s.total, 3);
  EXPECT_TRUE(s.red);
  EXPECT_EQ(s.risk, News2Risk::kLowMedium);
  EXPECT_EQ(s.missing, 6);
  const QsofaScore q = ScoreQsofa(v, 13.0);
  EXPECT_TRUE(q.altered_mentation) << "GCS 13 when there is no ACVPU";
  EXPECT_EQ(q.missing, 2);
  EXPECT_FALSE(q.positive);
}

TEST(News2Test, ValuesAreRoundedAsChartedBeforeBanding) {
  EXPECT_EQ(News2RespirationRate(20.4), 0);
  EXPECT_EQ(News2RespirationRate(20.6), 2);
  EXPECT_EQ(News2Temperature(36.04), 1);
  EXPECT_EQ(News2Temperature(36.06), 0);
  EXPECT_EQ(News2Temperature(38.0), 0);
  EXPECT_EQ(News2Spo2(95.5, false, false), 0);
  EXPECT_FALSE(ParseAcvpu("X").has_value());
  EXPECT_EQ(ParseAcvpu("c"), Acvpu::kConfusion);
}

}  // namespace
}  // namespace vstream
