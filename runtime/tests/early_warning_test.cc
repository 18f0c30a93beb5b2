#include "runtime/clinical/early_warning_function.h"

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "runtime/tests/collect_rows.h"
#include "runtime/clinical/news2.h"
#include "runtime/formats/fhir.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/formats/json_value.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/operators/process_operator.h"
#include "runtime/tests/shared_data.h"
#include "state/state_clock.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

// Output rows by field name.
using Collect = CollectRowsByName;

// When the test's messages were received: after all of them.
constexpr int64_t kReceived = 1709337600000;  // 2024-03-02T00:00:00Z

// A news2 or qsofa operator over observation rows keyed by patient_id.
class EarlyWarningTest : public ::testing::Test {
 protected:
  void Start(const std::string& function, std::map<std::string, std::string> params = {},
             const std::vector<std::string>& key_by = {"patient_id"}) {
    proto::ProcessSpec spec;
    spec.set_function(function);
    std::vector<int> key_fields;
    for (const std::string& k : key_by) {
      spec.add_key_by(k);
      key_fields.push_back(Hl7ObservationSchema().IndexOf(k));
    }
    spec.set_time_field_index(-1);
    for (const auto& [k, v] : params) (*spec.mutable_params())[k] = v;
    ProcessParams p(ProcessParams::Map(params.begin(), params.end()));
    auto fn = ProcessFunctionRegistry::Global().Create(function, p);
    ASSERT_TRUE(fn.ok()) << fn.status();
    ProcessInput input{Hl7ObservationSchema(), key_fields, -1};
    auto schema = (*fn)->OutputSchema(input);
    ASSERT_TRUE(schema.ok()) << schema.status();
    out_ = std::make_unique<Collect>(schema->schema);
    op_ = std::make_unique<ProcessOperator>(counters_, Hl7ObservationSchema(), schema->schema, spec, std::move(*fn));
    op_->set_output(out_.get());
    OperatorContext ctx;
    ctx.job_id = "job";
    ctx.vertex_name = function;
    dir_ = (fs::temp_directory_path() / absl::StrCat("vstream-ews-", getpid(), "-",
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    ctx.state_dir = dir_ + "/state";
    ctx.data_dir = dir_ + "/data";
    ctx.clock = &clock_;
    absl::Status s = op_->Open(ctx);
    ASSERT_TRUE(s.ok()) << s;
  }
  void TearDown() override {
    op_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Pushes all messages of `bytes` in one batch.
  void PushAllInOneBatch(std::string_view bytes) {
    Hl7RowExtractor extractor(Hl7Rows::kObservations, {});
    Hl7Splitter splitter(bytes);
    Hl7Piece piece;
    Hl7Message msg;
    RowBatch batch(extractor.schema().size());
    while (splitter.Next(&piece)) {
      ASSERT_TRUE(msg.Parse(piece.text, piece.line).ok());
      bool skipped = false;
      ASSERT_TRUE(extractor.Append(msg, kReceived, &batch, &skipped).ok());
    }
    op_->Push(batch);
  }

  // Pushes each message of `bytes` as one batch (as the hl7v2 source does),
  // or every `split`-th row into a batch of its own.
  void PushMessages(std::string_view bytes, size_t split = 0) {
    Hl7RowExtractor extractor(Hl7Rows::kObservations, {});
    Hl7Splitter splitter(bytes);
    Hl7Piece piece;
    Hl7Message msg;
    while (splitter.Next(&piece)) {
      ASSERT_TRUE(piece.error.empty()) << piece.error;
      ASSERT_TRUE(msg.Parse(piece.text, piece.line).ok());
      RowBatch batch(extractor.schema().size());
      bool skipped = false;
      ASSERT_TRUE(extractor.Append(msg, kReceived, &batch, &skipped).ok());
      if (batch.empty()) continue;
      if (split == 0 || batch.size() <= split) {
        op_->Push(batch);
        continue;
      }
      RowBatch first(batch.width()), rest(batch.width());
      for (size_t i = 0; i < batch.size(); ++i) (i < split ? first : rest).Append() = batch[i];
      op_->Push(first);
      op_->Push(rest);
    }
  }

  OperatorCounters counters_;
  ManualStateClock clock_{1709300000000};
  std::unique_ptr<Collect> out_;
  std::unique_ptr<ProcessOperator> op_;
  std::string dir_;
};

std::vector<std::vector<std::string>> ExpectedSets() {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(ReadSharedFile("hl7v2/authored/scenario_news2_expected.csv"));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) rows.push_back(absl::StrSplit(line, ','));
  }
  return rows;
}

std::string Bool(const std::string& one_or_zero) { return one_or_zero == "1" ? "true" : "false"; }

// The authored scenario, from its HL7 messages: every observation set gives
// exactly the expected sub-scores, total, red score and risk band.
TEST_F(EarlyWarningTest, News2OfTheScenarioMessagesIsExactlyTheExpectedAnswer) {
  REQUIRE_SHARED_DATA();
  Start("news2");
  PushMessages(ReadSharedFile("hl7v2/authored/scenario_patient1_news2_scale1.hl7"));
  PushMessages(ReadSharedFile("hl7v2/authored/scenario_patient2_news2_scale2_copd.hl7"));
  const auto want = ExpectedSets();
  ASSERT_EQ(want.size(), 9u);
  ASSERT_EQ(out_->rows.size(), 9u) << "one row per observation set";
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& w = want[i];
    auto& got = out_->rows[i];
    SCOPED_TRACE(w[2]);
    EXPECT_EQ(got["patient_id"], w[0]);
    EXPECT_EQ(got["message_id"], w[2]);
    EXPECT_EQ(got["observed_at"], absl::StrCat(w[1].substr(0, 19), ".000Z"));
    EXPECT_EQ(got["spo2_scale"], w[5]);
    EXPECT_EQ(got["rr_score"], w[11]);
    EXPECT_EQ(got["spo2_score"], w[12]);
    EXPECT_EQ(got["air_o2_score"], w[13]);
    EXPECT_EQ(got["sbp_score"], w[14]);
    EXPECT_EQ(got["hr_score"], w[15]);
    EXPECT_EQ(got["consciousness_score"], w[16]);
    EXPECT_EQ(got["temp_score"], w[17]);
    EXPECT_EQ(got["news2_total"], w[18]);
    EXPECT_EQ(got["red_score"], Bool(w[19]));
    EXPECT_EQ(got["risk_band"], w[20]);
    EXPECT_EQ(got["missing"], "0");
  }
}

TEST_F(EarlyWarningTest, QsofaOfTheScenarioMessagesIsExactlyTheExpectedAnswer) {
  REQUIRE_SHARED_DATA();
  Start("qsofa");
  PushMessages(ReadSharedFile("hl7v2/authored/scenario_patient1_news2_scale1.hl7"));
  PushMessages(ReadSharedFile("hl7v2/authored/scenario_patient2_news2_scale2_copd.hl7"));
  const auto want = ExpectedSets();
  ASSERT_EQ(out_->rows.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i][2]);
    auto& got = out_->rows[i];
    EXPECT_EQ(got["rr_ge_22"], Bool(want[i][21]));
    EXPECT_EQ(got["altered_mentation"], Bool(want[i][22]));
    EXPECT_EQ(got["sbp_le_100"], Bool(want[i][23]));
    EXPECT_EQ(got["qsofa_total"], want[i][24]);
    EXPECT_EQ(got["qsofa_positive"], Bool(want[i][25]));
  }
}

TEST_F(EarlyWarningTest, AMessageSplitAcrossBatchesStillGivesOneRow) {
  REQUIRE_SHARED_DATA();
  Start("news2");
  PushMessages(ReadSharedFile("hl7v2/authored/scenario_patient1_news2_scale1.hl7"), /*split=*/4);
  ASSERT_EQ(out_->rows.size(), 5u) << "scored at each message's last row (last_in_message), not per batch";
  EXPECT_EQ(out_->rows[0]["news2_total"], "0");
  EXPECT_EQ(out_->rows[4]["news2_total"], "16");
}

TEST_F(EarlyWarningTest, ManyMessagesInOneBatchGiveOneRowEach) {
  REQUIRE_SHARED_DATA();
  Start("news2");
  PushAllInOneBatch(ReadSharedFile("hl7v2/authored/scenario_patient1_news2_scale1.hl7"));
  ASSERT_EQ(out_->rows.size(), 5u);
  EXPECT_EQ(out_->rows[1]["news2_total"], "4");
  EXPECT_EQ(out_->rows[4]["news2_total"], "16");
}

// The bedside-monitor stream: MDC codes, a temperature in Fahrenheit, a
// leads-off message (status X) that must not score, late messages that
// must not replace newer values.
TEST_F(EarlyWarningTest, MonitorStreamUsesMdcCodesAndIgnoresLeadsOff) {
  REQUIRE_SHARED_DATA();
  Start("news2", {{"max_age", "2h"}});
  PushMessages(ReadSharedFile("hl7v2/authored/pcd01_monitor_stream_patient1.hl7"));
  std::map<std::string, std::map<std::string, std::string>> by_id;
  for (auto& r : out_->rows) by_id[r["message_id"]] = r;
  EXPECT_EQ(by_id.count("MON-0001508"), 0u) << "the leads-off message has no usable vital sign";
  ASSERT_EQ(by_id.count("MON-0001509"), 1u);
  EXPECT_EQ(by_id["MON-0001509"]["temp_score"], "1") << "101.1 F = 38.4 C";
  ASSERT_EQ(by_id.count("MON-0001501"), 1u);
  EXPECT_EQ(by_id["MON-0001501"]["hr_score"], "1") << "101/min";
  EXPECT_EQ(by_id["MON-0001501"]["rr_score"], "2") << "22/min";
  EXPECT_EQ(by_id["MON-0001501"]["missing"], "3") << "no oxygen, consciousness or temperature yet";
}

// The monitor stream resends MON-0001504 (same MSH-10) and repeats
// MON-0001507's content under a new id (MON-9000507).
TEST_F(EarlyWarningTest, DedupDropsResendsByIdAndByContentWithinTheTtl) {
  REQUIRE_SHARED_DATA();
  const std::string stream = ReadSharedFile("hl7v2/authored/pcd01_monitor_stream_patient1.hl7");
  Start("dedup", {{"ttl", "1h"}, {"key", "message_id,set_id"}});
  PushMessages(stream);
  std::map<std::string, int> rows_per_message;
  for (auto& r : out_->rows) ++rows_per_message[r["message_id"]];
  EXPECT_EQ(out_->rows.size(), 64u - 4u) << "MON-0001504's resend (4 OBX) dropped";
  EXPECT_EQ(rows_per_message["MON-9000507"], rows_per_message["MON-0001507"]) << "a new id is no repeat";

  TearDown();
  Start("dedup", {{"ttl", "1h"}, {"key", "patient_id, code, observed_at, device"}});
  PushMessages(stream);
  std::map<std::string, int> by_content_id;
  for (auto& r : out_->rows) ++by_content_id[r["message_id"]];
  EXPECT_EQ(by_content_id.count("MON-9000507"), 0u) << "same patient, code, time and device as MON-0001507";
  EXPECT_EQ(by_content_id["MON-0001507"], rows_per_message["MON-0001507"]);

  // Beyond the ttl a key is new again.
  const size_t before = out_->rows.size();
  clock_.Advance(3'600'001);
  PushMessages(stream);
  EXPECT_GT(out_->rows.size(), before);
}

// Runs process function `function` over rows of {patient_id, message_id,
// ts (event time), risk_band}, one batch per row, and returns its output.
std::vector<std::map<std::string, std::string>> RunAlerts(
    const std::map<std::string, std::string>& params,
    const std::vector<std::tuple<std::string, std::string, int64_t, std::string>>& rows) {
  const Schema in({{"patient_id", FieldType::kString},
                   {"message_id", FieldType::kString},
                   {"ts", FieldType::kTimestamp},
                   {"risk_band", FieldType::kString}});
  proto::ProcessSpec spec;
  spec.set_function("alert");
  spec.add_key_by("patient_id");
  spec.set_time_field_index(2);
  for (const auto& [k, v] : params) (*spec.mutable_params())[k] = v;
  auto fn = ProcessFunctionRegistry::Global().Create("alert", ProcessParams(ProcessParams::Map(params.begin(), params.end())));
  EXPECT_TRUE(fn.ok()) << fn.status();
  if (!fn.ok()) return {};
  auto schema = (*fn)->OutputSchema(ProcessInput{in, {0}, 2});
  EXPECT_TRUE(schema.ok()) << schema.status();
  if (!schema.ok()) return {};
  OperatorCounters counters;
  Collect out(schema->schema);
  ProcessOperator op(counters, in, schema->schema, spec, std::move(*fn));
  op.set_output(&out);
  const std::string dir = (fs::temp_directory_path() / absl::StrCat("vstream-alert-", getpid())).string();
  fs::remove_all(dir);
  OperatorContext ctx;
  ctx.job_id = "job";
  ctx.vertex_name = "alerts";
  ctx.state_dir = dir + "/state";
  ctx.data_dir = dir + "/data";
  EXPECT_TRUE(op.Open(ctx).ok());
  for (const auto& [patient, message, ts, band] : rows) {
    RowBatch batch(in.size());
    Row& r = batch.Append();
    r[0].SetString(patient);
    r[1].SetString(message);
    r[2].SetInt(ts);
    r[3].SetString(band);
    op.Push(batch);
  }
  op.Finish();
  fs::remove_all(dir);
  return out.rows;
}

TEST(AlertFunctionTest, EscalatesSuppressesCoolsDownAndResets) {
  constexpr int64_t kMin = 60'000;
  const auto alerts = RunAlerts({{"cooldown", "30m"}}, {
                                                           {"p1", "m1", 0, "low"},
                                                           {"p1", "m2", 1 * kMin, "medium"},   // reached
                                                           {"p1", "m3", 2 * kMin, "medium"},   // suppressed
                                                           {"p1", "m4", 3 * kMin, "low-medium"},  // suppressed
                                                           {"p1", "m5", 4 * kMin, "high"},     // rose
                                                           {"p1", "m6", 20 * kMin, "high"},    // suppressed
                                                           {"p1", "m7", 35 * kMin, "high"},    // cooled down
                                                           {"p1", "m8", 36 * kMin, "low"},     // reset
                                                           {"p1", "m9", 37 * kMin, "low-medium"},  // reached
                                                           {"p2", "n1", 5 * kMin, "high"},     // another key
                                                       });
  std::vector<std::string> got;
  for (auto r : alerts) got.push_back(absl::StrCat(r["patient_id"], " ", r["message_id"], " ", r["reason"]));
  EXPECT_EQ(got, (std::vector<std::string>{"p1 m2 reached medium", "p1 m5 rose from medium to high",
                                           "p1 m7 still high after 31m", "p1 m9 reached low-medium",
                                           "p2 n1 reached high"}));
  // The ids depend on the inputs only.
  const auto again = RunAlerts({{"cooldown", "30m"}}, {{"p1", "m1", 0, "low"}, {"p1", "m2", 1 * kMin, "medium"}});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].at("alert_id"), alerts[0].at("alert_id"));
  EXPECT_NE(alerts[0].at("alert_id"), alerts[1].at("alert_id"));
  EXPECT_EQ(alerts[1].at("previous_level"), "medium");
  EXPECT_EQ(alerts[0].at("previous_level"), "null");
  // detail: a field's value before the reason.
  const auto detailed = RunAlerts({{"detail", "message_id"}}, {{"p1", "m2", 1 * kMin, "medium"}});
  ASSERT_EQ(detailed.size(), 1u);
  EXPECT_EQ(detailed[0].at("reason"), "m2; reached medium");
}

TEST_F(EarlyWarningTest, AnObservationFarAfterItsArrivalIsADeadLetter) {
  Start("news2");
  // The fixture has no dead-letter stream: the counter says it was one, and
  // the next score shows the value neither counted nor held its slot.
  const std::string good =
      "MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||P1\rOBX|1|NM|8867-4^HR^LN||135|/min|||||F|||20240301100000\r";
  const std::string typo =
      "MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M2|P|2.5\rPID|1||P1\rOBX|1|NM|8867-4^HR^LN||60|/min|||||F|||20420301100000\r";
  PushMessages(good);
  PushMessages(typo);
  PushMessages(good);
  EXPECT_EQ(counters_.dead_letters, 1);
  ASSERT_EQ(out_->rows.size(), 2u);
  EXPECT_EQ(out_->rows[1]["hr_score"], "3") << "the 2042 value neither scored nor held the slot";
  EXPECT_EQ(out_->rows[1]["missing"], "6");
}

TEST(VitalSignTest, ClassifiesCodesAndConvertsValues) {
  Datum num, text, null_text;
  num.SetDouble(98.6);
  auto v = ClassifyVitalSign("8310-5", num, null_text, "[degF]");
  EXPECT_EQ(v.sign, VitalSign::kTemperature);
  EXPECT_NEAR(v.value, 37.0, 1e-9);
  num.SetDouble(2);
  EXPECT_EQ(ClassifyVitalSign("3151-8", num, null_text, "L/min").value, 1);
  num.SetDouble(21);
  EXPECT_EQ(ClassifyVitalSign("3150-0", num, null_text, "%").value, 0);
  text.SetString("450847001");
  Datum none;
  v = ClassifyVitalSign("80288-4", none, text, "");
  EXPECT_EQ(v.sign, VitalSign::kConsciousness);
  EXPECT_EQ(v.value, static_cast<double>(Acvpu::kPain));
  text.SetString("drowsy");
  EXPECT_EQ(ClassifyVitalSign("80288-4", none, text, "").sign, VitalSign::kNone);
  EXPECT_EQ(ClassifyVitalSign("8462-4", num, null_text, "").sign, VitalSign::kNone) << "diastolic: not scored";
  EXPECT_EQ(ClassifyVitalSign("8867-4", none, null_text, "").sign, VitalSign::kNone) << "no value";
}

TEST_F(EarlyWarningTest, News2OfTheFhirBundleIsTheScoreTheBundleStates) {
  REQUIRE_SHARED_DATA();
  // The authored transaction bundle: patient 1's vital signs of sets 1 and
  // 5, each set followed by the NEWS2 Observation that states its total.
  const std::string bytes = ReadSharedFile("fhir-r4/authored/news2_scenario_patient1_transaction_bundle.json");
  JsonValue bundle;
  ASSERT_TRUE(ParseJson(bytes, &bundle).ok());
  std::vector<std::pair<std::string, std::string>> stated;  // effective time, total
  for (const JsonValue& e : bundle.Find("entry")->items) {
    const JsonValue& r = *e.Find("resource");
    const JsonValue* total = r.Find("valueInteger");
    if (total != nullptr) stated.emplace_back(r.String("effectiveDateTime"), total->text);
  }
  ASSERT_EQ(stated.size(), 2u);

  Start("news2");
  FhirRowExtractor extractor;
  RowBatch batch(extractor.schema().size());
  int skipped = 0;
  ASSERT_TRUE(extractor.Append(bundle, kReceived, &batch, &skipped).ok());
  EXPECT_EQ(skipped, 2);  // the Patient and the Encounter
  op_->Push(batch);
  ASSERT_EQ(out_->rows.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out_->rows[i]["patient_id"], "NEWS2-0001");
    EXPECT_EQ(out_->rows[i]["observed_at"].substr(0, 19), stated[i].first.substr(0, 19));
    EXPECT_EQ(out_->rows[i]["news2_total"], stated[i].second) << "set at " << stated[i].first;
  }
  EXPECT_EQ(out_->rows[0]["message_id"], "urn:uuid:s1-rr");
  EXPECT_EQ(out_->rows[1]["risk_band"], "high");
}

}  // namespace
}  // namespace vstream
