#include "runtime/clinical/pattern_function.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "runtime/tests/collect_rows.h"
#include "runtime/dead_letter.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/network/buffer.h"
#include "runtime/operators/process_operator.h"
#include "state/state_clock.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1709287200000;  // 2024-03-01T10:00:00Z
constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;
constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

// The time `ms` after kT0, as the output rows print it.
std::string At(int64_t ms) { return FormatTimestamp(kT0 + ms); }

// Output rows by field name.
using Collect = CollectRowsByName;

// One observation row: the fields the function reads, the others null.
struct Obs {
  std::string patient;
  std::string message_id;
  std::string code;
  double value;  // kNoValue: null
  int64_t at;    // ms after kT0
  std::string status = "F";
};

// SpO2 (LOINC 59408-5) and heart rate (8867-4) rows.
Obs Spo2(const std::string& patient, const std::string& message_id, int64_t at, double value) {
  return Obs{patient, message_id, "59408-5", value, at};
}
Obs Hr(const std::string& patient, const std::string& message_id, int64_t at, double value) {
  return Obs{patient, message_id, "8867-4", value, at};
}

// The pattern function, from a registry of its own (the builtins need not
// have it).
absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Make(const ProcessParams::Map& params) {
  ProcessFunctionRegistry registry;
  RegisterPatternFunction(registry);
  return registry.Create("pattern", ProcessParams(params));
}

// A pattern operator over observation rows keyed by patient_id, as a job
// runs it.
class PatternTest : public ::testing::Test {
 protected:
  // With event_time, the input's event time is observed_at (a source's
  // `event_time: {field: observed_at}`); without, it has none and the
  // function reads observed_at itself.
  void Start(const ProcessParams::Map& params, bool event_time = true) {
    const Schema input = Hl7ObservationSchema();
    const int time_index = event_time ? input.IndexOf("observed_at") : -1;
    proto::ProcessSpec spec;
    spec.set_function("pattern");
    spec.add_key_by("patient_id");
    spec.set_time_field_index(time_index);
    for (const auto& [k, v] : params) (*spec.mutable_params())[k] = v;
    auto fn = Make(params);
    ASSERT_TRUE(fn.ok()) << fn.status();
    auto schema = (*fn)->OutputSchema(ProcessInput{input, {input.IndexOf("patient_id")}, time_index});
    ASSERT_TRUE(schema.ok()) << schema.status();
    output_schema_ = schema->schema;
    output_time_index_ = schema->time_index;
    out_ = std::make_unique<Collect>(schema->schema);
    op_ = std::make_unique<ProcessOperator>(counters_, input, schema->schema, spec, std::move(*fn));
    op_->set_output(out_.get());
    op_->set_dead_letter_output(&dead_);
    OperatorContext ctx;
    ctx.job_id = "job";
    ctx.vertex_name = "pattern";
    dir_ = (fs::temp_directory_path() / absl::StrCat("vstream-pattern-", getpid(), "-",
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
    op_.reset();  // closes RocksDB
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void Restart(const ProcessParams::Map& params, bool event_time = true) {
    TearDown();
    out_.reset();
    dead_.rows.clear();
    Start(params, event_time);
  }

  // Pushes `rows`, each in a batch of its own (as the hl7v2 source sends
  // one message per batch), or all in one batch.
  void Push(const std::vector<Obs>& rows, bool one_batch = false) {
    const Schema input = Hl7ObservationSchema();
    const int message_id = input.IndexOf("message_id"), patient = input.IndexOf("patient_id"),
              code = input.IndexOf("code"), value = input.IndexOf("value"), unit = input.IndexOf("unit"),
              status = input.IndexOf("status"), observed_at = input.IndexOf("observed_at"),
              last = input.IndexOf("last_in_message");
    RowBatch batch(input.size());
    for (const Obs& o : rows) {
      Row& r = batch.Append();
      for (Datum& d : r) d.SetNull();
      r[message_id].SetString(o.message_id);
      r[patient].SetString(o.patient);
      r[code].SetString(o.code);
      if (!std::isnan(o.value)) r[value].SetDouble(o.value);
      r[unit].SetString(o.code == "8867-4" ? "/min" : "%");
      r[status].SetString(o.status);
      r[observed_at].SetInt(kT0 + o.at);
      r[last].SetBool(true);
      if (!one_batch) {
        op_->Push(batch);
        batch.Clear();
      }
    }
    if (!batch.empty()) op_->Push(batch);
    ASSERT_TRUE(op_->status().ok()) << op_->status();
  }

  // "patient matched_at first_at count value from_value message_id" of each output row.
  std::vector<std::string> Matches() const {
    std::vector<std::string> got;
    for (auto r : out_->rows) {
      got.push_back(absl::StrCat(r["patient_id"], " ", r["matched_at"], " ", r["first_at"], " ", r["count"], " ",
                                 r["value"], " ", r["from_value"], " ", r["message_id"]));
    }
    return got;
  }
  static std::string Match(const std::string& patient, int64_t matched_at, int64_t first_at, int count, double value,
                           const std::string& from_value, const std::string& message_id) {
    return absl::StrCat(patient, " ", At(matched_at), " ", At(first_at), " ", count, " ", value, " ", from_value, " ",
                        message_id);
  }

  OperatorCounters counters_;
  ManualStateClock clock_{1709300000000};
  std::unique_ptr<Collect> out_;
  Collect dead_{DeadLetterSchema()};
  std::unique_ptr<ProcessOperator> op_;
  Schema output_schema_;
  int output_time_index_ = -1;
  std::string dir_;
};

const ProcessParams::Map kSpo2Below90x3In5m = {{"sign", "spo2"}, {"below", "90"}, {"count", "3"}, {"within", "5m"}};
const ProcessParams::Map kHrRise30In10m = {{"sign", "pulse"}, {"rise", "30"}, {"within", "10m"}};

TEST_F(PatternTest, Spo2BelowNinetyThreeTimesWithinFiveMinutesFiresOnceAtTheThird) {
  Start(kSpo2Below90x3In5m);
  Push({Spo2("p1", "M0", 0, 88),
        Spo2("p1", "M1", 1 * kMin, 90),  // not below 90: neither counts nor breaks the run
        Spo2("p1", "M2", 2 * kMin, 87),
        Spo2("p1", "M3", 4 * kMin, 89),  // the third: fires
        Spo2("p1", "M4", 5 * kMin, 86)});  // consumed the run: one of a new one
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 4 * kMin, 0, 3, 89, "null", "M3")}));
  ASSERT_EQ(out_->rows.size(), 1u);
  EXPECT_EQ(out_->rows[0]["pattern"], "spo2 below 90 x3 in 5m") << "the default name summarizes the params";
  // The output: the key, then the pattern's fields; its event time is matched_at.
  EXPECT_EQ(output_schema_.DebugString(),
            "{patient_id: string, pattern: string, matched_at: timestamp, first_at: timestamp, count: int, "
            "value: double, from_value: double, message_id: string}");
  EXPECT_EQ(output_schema_.field(output_time_index_).name, "matched_at");
}

TEST_F(PatternTest, OnlyTwiceBelowNinetyGivesNothing) {
  Start(kSpo2Below90x3In5m);
  Push({Spo2("p1", "M0", 0, 88), Spo2("p1", "M1", 1 * kMin, 95), Spo2("p1", "M2", 2 * kMin, 87),
        Spo2("p1", "M3", 3 * kMin, 96)});
  op_->PushWatermark(kMaxWatermark);
  EXPECT_EQ(Matches(), std::vector<std::string>{});
}

TEST_F(PatternTest, ThreeSpreadOverMoreThanFiveMinutesGiveNothingButFiveExactlyFires) {
  Start(kSpo2Below90x3In5m);
  Push({Spo2("p1", "M0", 0, 88), Spo2("p1", "M1", 3 * kMin, 87), Spo2("p1", "M2", 5 * kMin + 1 * kSec, 86),
        // "within 5 minutes" includes 5 minutes.
        Spo2("p2", "N0", 0, 88), Spo2("p2", "N1", 3 * kMin, 87), Spo2("p2", "N2", 5 * kMin, 86)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p2", 5 * kMin, 0, 3, 86, "null", "N2")}));
  // p1 goes on: M1, M2 and a third within 5 minutes of M1.
  Push({Spo2("p1", "M3", 7 * kMin, 85)});
  EXPECT_EQ(Matches().back(), Match("p1", 7 * kMin, 3 * kMin, 3, 85, "null", "M3"));
}

TEST_F(PatternTest, HeartRateRisingByMoreThanThirtyWithinTenMinutesFires) {
  Start(kHrRise30In10m);
  Push({Hr("p1", "M0", 0, 70), Hr("p1", "M1", 4 * kMin, 80), Hr("p1", "M2", 9 * kMin, 101)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 9 * kMin, 0, 2, 101, "70", "M2")}));
  EXPECT_EQ(out_->rows[0]["pattern"], "pulse rise 30 in 10m");
}

TEST_F(PatternTest, RisingByThirtyExactlyDoesNotFire) {
  Start(kHrRise30In10m);
  Push({Hr("p1", "M0", 0, 70), Hr("p1", "M1", 5 * kMin, 100)});
  EXPECT_EQ(Matches(), std::vector<std::string>{});
}

TEST_F(PatternTest, RisingOverElevenMinutesDoesNotFireButOverTenDoes) {
  Start(kHrRise30In10m);
  Push({Hr("p1", "M0", 0, 70), Hr("p1", "M1", 11 * kMin, 110),
        // "within 10 minutes" includes 10 minutes.
        Hr("p2", "N0", 0, 70), Hr("p2", "N1", 10 * kMin, 110)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p2", 10 * kMin, 0, 2, 110, "70", "N1")}));
}

TEST_F(PatternTest, FallIsTheMirrorOfRise) {
  Start({{"sign", "systolic_bp"}, {"fall", "40"}, {"within", "30m"}, {"label", "bp drop"}});
  Push({Obs{"p1", "M0", "8480-6", 140, 0}, Obs{"p1", "M1", "8480-6", 120, 10 * kMin},
        Obs{"p1", "M2", "8480-6", 95, 20 * kMin}});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 20 * kMin, 0, 2, 95, "140", "M2")}));
  EXPECT_EQ(out_->rows[0]["pattern"], "bp drop");
}

TEST_F(PatternTest, RowsOfOtherCodesStatusesAndValuesAreIgnored) {
  Start(kSpo2Below90x3In5m);
  Push({Spo2("p1", "M0", 0, 88),
        Hr("p1", "M1", 1 * kMin, 50),                   // another sign
        Obs{"p1", "M2", "8462-4", 60, 1 * kMin},        // diastolic: no sign the function knows
        Obs{"p1", "M3", "59408-5", 0, 2 * kMin, "X"},   // leads off: cannot be obtained
        Obs{"p1", "M4", "59408-5", 70, 2 * kMin, "W"},  // withdrawn
        Spo2("p1", "M5", 3 * kMin, kNoValue)});         // no value
  EXPECT_EQ(Matches(), std::vector<std::string>{});
  // The MDC code of SpO2 (150456) is the same sign.
  Push({Obs{"p1", "M6", "150456", 87, 3 * kMin}, Spo2("p1", "M7", 4 * kMin, 86)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 4 * kMin, 0, 3, 86, "null", "M7")}));
  EXPECT_TRUE(dead_.rows.empty());
}

TEST_F(PatternTest, OutOfOrderRowsTakeTheirPlaceInTime) {
  Start(kSpo2Below90x3In5m);
  // The third to arrive is the earliest but one: the match ends at M4,
  // which arrived first.
  Push({Spo2("p1", "M4", 4 * kMin, 88), Spo2("p1", "M0", 0, 87), Spo2("p1", "M2", 2 * kMin, 86)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 4 * kMin, 0, 3, 88, "null", "M4")}));
  // A late row of the episode that fired: consumed.
  Push({Spo2("p1", "M3", 3 * kMin, 85)});
  EXPECT_EQ(out_->rows.size(), 1u);
  // Beyond the horizon (5 minutes before the newest, 20): too late, ignored.
  Push({Spo2("p1", "M20", 20 * kMin, 84), Spo2("p1", "M14", 14 * kMin, 83), Spo2("p1", "M16", 16 * kMin, 82)});
  EXPECT_EQ(out_->rows.size(), 1u) << "M14 is too late: M16 and M20 are two";
  Push({Spo2("p1", "M17", 17 * kMin, 81)});
  EXPECT_EQ(Matches().back(), Match("p1", 20 * kMin, 16 * kMin, 3, 84, "null", "M20"));

  // A rise whose earlier value arrives after the later one.
  Restart(kHrRise30In10m);
  Push({Hr("p1", "M5", 5 * kMin, 110), Hr("p1", "M2", 2 * kMin, 75)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 5 * kMin, 2 * kMin, 2, 110, "75", "M5")}));
}

TEST_F(PatternTest, AMatchConsumesItsObservationsAndCooldownHoldsOffTheNext) {
  Start(kSpo2Below90x3In5m);
  std::vector<Obs> each_minute;
  for (int m = 1; m <= 21; ++m) each_minute.push_back(Spo2("p1", absl::StrCat("M", m), m * kMin, 85));
  Push(each_minute);
  std::vector<std::string> times;
  for (auto r : out_->rows) times.push_back(r["matched_at"]);
  EXPECT_EQ(times, (std::vector<std::string>{At(3 * kMin), At(6 * kMin), At(9 * kMin), At(12 * kMin), At(15 * kMin),
                                             At(18 * kMin), At(21 * kMin)}));

  ProcessParams::Map cooldown = kSpo2Below90x3In5m;
  cooldown["cooldown"] = "15m";
  Restart(cooldown);
  Push(each_minute);
  times.clear();
  for (auto r : out_->rows) times.push_back(r["matched_at"]);
  EXPECT_EQ(times, (std::vector<std::string>{At(3 * kMin), At(20 * kMin)})) << "re-armed at 3 + 15 minutes";

  // A rise consumes its later value too: 60, 100 fires; 140 does not (100
  // is spent); 175 does, from 140.
  Restart(kHrRise30In10m);
  Push({Hr("p1", "M0", 0, 60), Hr("p1", "M1", 1 * kMin, 100), Hr("p1", "M2", 2 * kMin, 140),
        Hr("p1", "M3", 3 * kMin, 175)});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 1 * kMin, 0, 2, 100, "60", "M1"),
                                                 Match("p1", 3 * kMin, 2 * kMin, 2, 175, "140", "M3")}));
}

TEST_F(PatternTest, TheSameRowsGiveTheSameOutputHoweverBatched) {
  std::vector<Obs> rows;
  for (int i = 0; i < 60; ++i) {
    const std::string patient = absl::StrCat("p", i % 3);
    // Values that dip below 90 now and then, some rows out of order.
    const int64_t at = (i / 3) * kMin + ((i % 7 == 0) ? -90 * kSec : 0);
    rows.push_back(Spo2(patient, absl::StrCat("M", i), at, 84 + (i * 7) % 12));
    rows.push_back(Hr(patient, absl::StrCat("H", i), at, 60 + (i * 13) % 50));
  }
  for (const auto& params : {kSpo2Below90x3In5m, kHrRise30In10m}) {
    Restart(params);
    Push(rows, /*one_batch=*/false);
    const std::vector<std::string> one_per_batch = Matches();
    Restart(params);
    Push(rows, /*one_batch=*/true);
    EXPECT_EQ(Matches(), one_per_batch);
    EXPECT_FALSE(one_per_batch.empty());
  }
}

TEST_F(PatternTest, WithoutEventTimeObservedAtIsTheTimeAndCountOneFiresEachRow) {
  Start({{"sign", "temperature"}, {"above", "38"}}, /*event_time=*/false);
  Push({Obs{"p1", "M0", "8310-5", 38.0, 0}, Obs{"p1", "M1", "8310-5", 38.4, 1 * kMin},
        Obs{"p1", "M2", "8310-5", 38.6, 2 * kMin}});
  EXPECT_EQ(Matches(), (std::vector<std::string>{Match("p1", 1 * kMin, 1 * kMin, 1, 38.4, "null", "M1"),
                                                 Match("p1", 2 * kMin, 2 * kMin, 1, 38.6, "null", "M2")}));
  EXPECT_EQ(out_->rows[0]["pattern"], "temperature above 38");
}

TEST_F(PatternTest, AnObservationWithoutTimeIsADeadLetter) {
  Start(kSpo2Below90x3In5m);
  const Schema input = Hl7ObservationSchema();
  RowBatch batch(input.size());
  Row& r = batch.Append();
  r[input.IndexOf("patient_id")].SetString("p1");
  r[input.IndexOf("code")].SetString("59408-5");
  r[input.IndexOf("value")].SetDouble(85);
  op_->Push(batch);
  ASSERT_TRUE(op_->status().ok()) << op_->status();
  EXPECT_EQ(counters_.dead_letters, 1);
  ASSERT_EQ(dead_.rows.size(), 1u);
  EXPECT_NE(dead_.rows[0]["reason"].find("no time ('observed_at' is null)"), std::string::npos)
      << dead_.rows[0]["reason"];
}

// Each bad params: the error, and the param it is about (where the job-spec
// compiler points).
TEST(PatternParamsTest, BadParamsGiveErrorsNamingTheParam) {
  struct Case {
    ProcessParams::Map params;
    std::string param;    // ParamOfError; empty: none
    std::string message;  // a part of the message
  };
  const std::vector<Case> cases = {
      {{{"below", "90"}}, "sign", "missing required param 'sign'"},
      {{{"sign", "sats"}, {"below", "90"}}, "sign", "param 'sign': 'sats' is no vital sign, expected one of "},
      {{{"sign", "spo2"}}, "", "one of the params 'below', 'above', 'rise' or 'fall'"},
      {{{"sign", "spo2"}, {"below", "90"}, {"rise", "3"}, {"within", "5m"}},
       "rise",
       "param 'rise': conflicts with 'below'"},
      {{{"sign", "spo2"}, {"below", "low"}}, "below", "param 'below': expected a number, got 'low'"},
      {{{"sign", "spo2"}, {"above", "nan"}}, "above", "param 'above': must be a finite number"},
      {{{"sign", "pulse"}, {"rise", "-5"}, {"within", "5m"}}, "rise", "param 'rise': must be >= 0"},
      {{{"sign", "pulse"}, {"rise", "30"}, {"within", "5m"}, {"count", "3"}},
       "count",
       "param 'count': applies to below and above only"},
      {{{"sign", "spo2"}, {"below", "90"}, {"count", "0"}, {"within", "5m"}},
       "count",
       "param 'count': must be between 1 and 100, got 0"},
      {{{"sign", "spo2"}, {"below", "90"}, {"count", "3"}}, "within", "missing required param 'within'"},
      {{{"sign", "pulse"}, {"rise", "30"}}, "within", "missing required param 'within'"},
      {{{"sign", "pulse"}, {"rise", "30"}, {"within", "0s"}}, "within", "param 'within': must be > 0"},
      {{{"sign", "pulse"}, {"rise", "30"}, {"within", "5m"}, {"cooldown", "soon"}},
       "cooldown",
       "param 'cooldown': expected a duration"},
      {{{"sign", "spo2"}, {"below", "90"}, {"label", ""}}, "label", "param 'label': must not be empty"},
      {{{"sign", "spo2"}, {"below", "90"}, {"colour", "red"}}, "colour", "unknown param 'colour'"},
  };
  for (const Case& c : cases) {
    auto fn = Make(c.params);
    ASSERT_FALSE(fn.ok()) << c.message;
    EXPECT_EQ(fn.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(fn.status().message()).find(c.message), std::string::npos) << fn.status();
    EXPECT_EQ(ParamOfError(fn.status()), c.param) << fn.status();
  }
  // heart_rate names the pulse; count 1 needs no window.
  EXPECT_TRUE(Make({{"sign", "heart_rate"}, {"above", "130"}}).ok());
}

TEST(PatternParamsTest, AnInputWithoutObservationFieldsIsAnError) {
  auto fn = Make(kSpo2Below90x3In5m);
  ASSERT_TRUE(fn.ok()) << fn.status();
  const Schema no_value({{"patient_id", FieldType::kString}, {"code", FieldType::kString},
                         {"observed_at", FieldType::kTimestamp}});
  auto out = (*fn)->OutputSchema(ProcessInput{no_value, {0}, 2});
  EXPECT_NE(std::string(out.status().message()).find("the input has no field 'value' (double)"), std::string::npos)
      << out.status();
  const Schema no_time({{"patient_id", FieldType::kString}, {"code", FieldType::kString},
                        {"value", FieldType::kDouble}});
  out = (*fn)->OutputSchema(ProcessInput{no_time, {0}, -1});
  EXPECT_NE(std::string(out.status().message()).find("no event time"), std::string::npos) << out.status();
  const Schema keyed_by_value({{"value", FieldType::kDouble}, {"code", FieldType::kString},
                               {"observed_at", FieldType::kTimestamp}});
  out = (*fn)->OutputSchema(ProcessInput{keyed_by_value, {0}, 2});
  EXPECT_NE(std::string(out.status().message()).find("key field 'value' would clash"), std::string::npos)
      << out.status();
}

}  // namespace
}  // namespace vstream
