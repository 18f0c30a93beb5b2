#include "runtime/operators/patient_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/clinical/early_warning_function.h"
#include "runtime/clinical/news2.h"
#include "runtime/formats/hl7v2_rows.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "state/state_clock.h"

namespace vstream {
namespace {

// 2024-03-01T00:00:00Z
constexpr int64_t kStart = 1709251200000;

std::string RowText(const Row& row) {
  static const Schema schema = Hl7ObservationSchema();
  std::string line;
  for (size_t f = 0; f < schema.size(); ++f) {
    if (f) line += ",";
    line += DatumToString(row[f], schema.field(f).type);
  }
  return line;
}

// Keeps a copy of every row pushed to it.
class RowsOutput : public Output {
 public:
  void Push(RowBatch& batch) override {
    ++batches;
    for (size_t i = 0; i < batch.size(); ++i) rows.push_back(batch[i]);
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}
  void PushLatencyMarker(int64_t created_us) override { markers.push_back(created_us); }
  std::vector<std::string> Texts() const {
    std::vector<std::string> out;
    for (const Row& r : rows) out.push_back(RowText(r));
    return out;
  }
  std::vector<Row> rows;
  std::vector<int64_t> markers;
  int batches = 0;
};

// One observation set as the tests read it back: its rows, in order.
struct Set {
  std::string message_id;
  std::string patient_id;
  int64_t observed_at = 0;
  int64_t received_at = 0;
  std::vector<const Row*> rows;
};

// Splits rows into sets at last_in_message.
std::vector<Set> SetsOf(const std::vector<Row>& rows) {
  std::vector<Set> sets;
  bool open = false;
  for (const Row& r : rows) {
    if (!open) {
      sets.emplace_back();
      sets.back().message_id = r[kObsMessageId].s;
      sets.back().patient_id = r[kObsPatientId].s;
      sets.back().observed_at = r[kObsObservedAt].i;
      sets.back().received_at = r[kObsReceivedAt].i;
      open = true;
    }
    EXPECT_EQ(r[kObsMessageId].s, sets.back().message_id) << "a set's rows must be contiguous";
    sets.back().rows.push_back(&r);
    if (r[kObsLastInMessage].i != 0) open = false;
  }
  EXPECT_FALSE(open) << "the last set has no last_in_message row";
  return sets;
}

PatientOptions Ward(int64_t patients, int64_t count) {
  PatientOptions o;
  o.patients = patients;
  o.count = count;
  o.seed = 7;
  o.start_ms = kStart;
  return o;
}

OperatorContext Context(int subtask, int parallelism, const StateClock* clock = nullptr) {
  OperatorContext ctx;
  ctx.job_id = "job";
  ctx.vertex_name = "ward";
  ctx.subtask_index = subtask;
  ctx.parallelism = parallelism;
  ctx.clock = clock;
  return ctx;
}

// Everything one subtask of a bounded source emits.
std::vector<Row> RunSource(const PatientOptions& options, int subtask = 0, int parallelism = 1,
                           const StateClock* clock = nullptr) {
  OperatorCounters counters;
  PatientSource src(counters, Hl7ObservationSchema(), proto::SourceSpec(), options);
  RowsOutput out;
  src.set_output(&out);
  const absl::Status opened = src.Open(Context(subtask, parallelism, clock));
  EXPECT_TRUE(opened.ok()) << opened;
  if (!opened.ok()) return {};
  for (int calls = 0; src.Produce() != SourceStatus::kEnd; ++calls) {
    if (calls > 1'000'000) {
      ADD_FAILURE() << "the source does not end";
      break;
    }
  }
  EXPECT_TRUE(src.status().ok()) << src.status();
  EXPECT_EQ(counters.records_out.load(), static_cast<int64_t>(out.rows.size()));
  return std::move(out.rows);
}

std::vector<std::string> Texts(const std::vector<Row>& rows) {
  std::vector<std::string> out;
  for (const Row& r : rows) out.push_back(RowText(r));
  return out;
}

// ---------------------------------------------------------------- options

TEST(PatientOptionsTest, DefaultsAreValidAndEachBadValueIsNamed) {
  EXPECT_TRUE(PatientOptions().Validate().ok());
  struct Case {
    void (*set)(PatientOptions&);
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](PatientOptions& o) { o.patients = 0; }, "patients must lie in 1..100000000, got 0"},
      {[](PatientOptions& o) { o.patients = 100'000'001; }, "patients must lie in"},
      {[](PatientOptions& o) { o.interval_ms = 500; }, "interval must lie in 1s..1d"},
      {[](PatientOptions& o) { o.interval_ms = 86'400'001; }, "interval must lie in 1s..1d"},
      {[](PatientOptions& o) { o.count = -2; }, "count must be >= 0, or -1 for an unbounded source, got -2"},
      {[](PatientOptions& o) { o.speed = -1; }, "speed must lie in 0..1000000"},
      {[](PatientOptions& o) { o.speed = std::nan(""); }, "speed must lie in"},
      {[](PatientOptions& o) { o.start_ms = -1; }, "start must lie in 1970-01-01 .. 9999-12-31"},
      {[](PatientOptions& o) { o.deterioration_rate = 13; }, "deterioration_rate must lie in 0..12"},
      {[](PatientOptions& o) { o.sepsis_fraction = 1.5; }, "sepsis_fraction must lie in 0..1, got 1.5"},
      {[](PatientOptions& o) { o.missing = -0.1; }, "missing must lie in 0..1"},
      {[](PatientOptions& o) { o.duplicates = 2; }, "duplicates must lie in 0..1, got 2"},
      {[](PatientOptions& o) { o.late = 0.6; }, "late must lie in 0..0.5"},
  };
  for (const Case& c : cases) {
    PatientOptions o;
    c.set(o);
    const absl::Status s = o.Validate();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.message << ": " << s;
    EXPECT_NE(s.message().find(c.message), absl::string_view::npos) << s;
  }
}

TEST(PatientOptionsTest, FormatsHaveNames) {
  for (PatientFormat f : {PatientFormat::kRows, PatientFormat::kHl7v2, PatientFormat::kFhir}) {
    const absl::StatusOr<PatientFormat> parsed = ParsePatientFormat(PatientFormatName(f));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, f);
  }
  const absl::StatusOr<PatientFormat> bad = ParsePatientFormat("csv");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_EQ(bad.status().message(), "format must be rows, hl7v2 or fhir, got 'csv'");
}

TEST(PatientSourceTest, OpenRejectsBadOptionsAndAnotherSchema) {
  OperatorCounters counters;
  PatientOptions bad = Ward(10, 10);
  bad.late = 0.7;
  PatientSource a(counters, Hl7ObservationSchema(), proto::SourceSpec(), bad);
  const absl::Status s = a.Open(Context(0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message().substr(0, 43), "source 'ward' (patients): late must lie in ") << s;

  PatientSource b(counters, Schema({{"hr", FieldType::kInt}}), proto::SourceSpec(), Ward(10, 10));
  const absl::Status t = b.Open(Context(0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(t));
  EXPECT_NE(t.message().find("a patients source has the schema {message_id: string"), absl::string_view::npos) << t;
}

// ---------------------------------------------------------------- rows

TEST(PatientSourceTest, EachSetIsOneRowPerVitalSignOfItsPatient) {
  PatientOptions o = Ward(10, 40);
  o.deterioration_rate = 0;
  const std::vector<Row> rows = RunSource(o);
  ASSERT_EQ(rows.size(), 40u * 8);
  const std::vector<Set> sets = SetsOf(rows);
  ASSERT_EQ(sets.size(), 40u);
  const std::vector<std::string> codes = {"8867-4", "9279-1", "59408-5", "8480-6",
                                          "8462-4", "8310-5", "3151-8",  "80288-4"};
  const std::vector<std::string> units = {"/min", "/min", "%", "mm[Hg]", "mm[Hg]", "Cel", "L/min", ""};
  for (size_t n = 0; n < sets.size(); ++n) {
    const Set& set = sets[n];
    EXPECT_EQ(set.message_id, "SIM7-" + std::to_string(n));
    char patient[16];
    std::snprintf(patient, sizeof(patient), "%06zu", n % 10);
    EXPECT_EQ(set.patient_id, std::string("SIMPT-") + patient);
    // Patient n % 10 at tick n / 10; the ten patients spread over the minute.
    EXPECT_EQ(set.observed_at, kStart + static_cast<int64_t>(n / 10) * 60'000 + static_cast<int64_t>(n % 10) * 6'000);
    EXPECT_GE(set.received_at - set.observed_at, 300);
    EXPECT_LE(set.received_at - set.observed_at, 2000);
    ASSERT_EQ(set.rows.size(), 8u);
    for (size_t i = 0; i < 8; ++i) {
      const Row& r = *set.rows[i];
      EXPECT_EQ(r[kObsSetId].i, static_cast<int64_t>(i + 1));
      EXPECT_TRUE(r[kObsSubId].is_null);
      EXPECT_EQ(r[kObsMessageType].s, "ORU^R01");
      EXPECT_EQ(r[kObsSendingFacility].s, "SIM");
      EXPECT_EQ(r[kObsPatientAuthority].s, "VSTREAM-SIM");
      EXPECT_EQ(r[kObsCode].s, codes[i]);
      EXPECT_EQ(r[kObsCodeSystem].s, "LN");
      EXPECT_FALSE(r[kObsCodeText].is_null);
      EXPECT_EQ(r[kObsStatus].s, "F");
      EXPECT_EQ(r[kObsObservedAt].i, set.observed_at);
      EXPECT_EQ(r[kObsReceivedAt].i, set.received_at);
      EXPECT_EQ(r[kObsDevice].s, "MON-" + std::string(patient));
      EXPECT_EQ(r[kObsLastInMessage].i, i == 7 ? 1 : 0);
      if (i == 7) {
        EXPECT_EQ(r[kObsValueType].s, "CWE");
        EXPECT_TRUE(r[kObsValue].is_null);
        EXPECT_EQ(r[kObsValueText].s, "248234008");  // alert: no episodes here
        EXPECT_TRUE(r[kObsUnit].is_null);
      } else {
        EXPECT_EQ(r[kObsValueType].s, "NM");
        EXPECT_EQ(r[kObsUnit].s, units[i]);
        ASSERT_FALSE(r[kObsValue].is_null);
        // The text is the number as the monitor reports it.
        EXPECT_EQ(std::stod(r[kObsValueText].s), r[kObsValue].d);
        const double tenths = r[kObsValue].d * (i == 5 ? 10 : 1);
        EXPECT_EQ(tenths, std::round(tenths)) << r[kObsValueText].s;
      }
    }
    EXPECT_EQ(set.rows[6]->at(kObsValue).d, 0) << "on room air";
  }
}

TEST(PatientSourceTest, TwoRunsAreEqualAndSeedsDiffer) {
  PatientOptions o = Ward(30, 600);
  o.deterioration_rate = 6;
  o.missing = 0.1;
  o.duplicates = 0.1;
  o.late = 0.2;
  const std::vector<std::string> a = Texts(RunSource(o));
  EXPECT_EQ(a, Texts(RunSource(o)));
  o.seed = 8;
  const std::vector<std::string> b = Texts(RunSource(o));
  EXPECT_NE(a, b);
}

TEST(PatientSourceTest, OutputDoesNotDependOnParallelism) {
  PatientOptions o = Ward(10, 1000);  // 10 patients over 3 subtasks: each patient's sets on all three
  o.deterioration_rate = 3;
  o.missing = 0.1;
  o.duplicates = 0.1;
  o.late = 0.3;
  std::vector<std::string> one = Texts(RunSource(o));
  std::vector<std::string> three;
  for (int i = 0; i < 3; ++i) {
    const std::vector<std::string> part = Texts(RunSource(o, i, 3));
    EXPECT_FALSE(part.empty());
    three.insert(three.end(), part.begin(), part.end());
  }
  std::sort(one.begin(), one.end());
  std::sort(three.begin(), three.end());
  EXPECT_EQ(one, three);
}

// A source stopped after `batches` batches and restored from its snapshot
// emits, with what came before, exactly what one run emits. `clocks`: the
// clock of the whole run, of the stopped one and of the restored one
// (different times: a restore must not take the start from the clock).
void ExpectResumesExactly(const PatientOptions& o, int subtask, int parallelism, int batches,
                          const StateClock* clocks[3]) {
  std::vector<Row> whole = RunSource(o, subtask, parallelism, clocks[0]);
  std::vector<Row> resumed;
  std::string position;
  {
    OperatorCounters counters;
    PatientSource src(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
    RowsOutput out;
    src.set_output(&out);
    ASSERT_TRUE(src.Open(Context(subtask, parallelism, clocks[1])).ok());
    for (int b = 0; b < batches; ++b) ASSERT_NE(src.Produce(), SourceStatus::kEnd);
    position = src.SnapshotOperatorState(1);
    resumed = std::move(out.rows);
  }
  ASSERT_LT(resumed.size(), whole.size()) << "the test must stop the source midway";
  OperatorCounters counters;
  PatientSource src(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
  RowsOutput out;
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(subtask, parallelism, clocks[2])).ok());
  const absl::Status restored = src.RestoreOperatorState(position);
  ASSERT_TRUE(restored.ok()) << restored;
  while (src.Produce() != SourceStatus::kEnd) {
  }
  resumed.insert(resumed.end(), out.rows.begin(), out.rows.end());
  EXPECT_EQ(Texts(resumed), Texts(whole)) << "restored from '" << position << "'";
}

TEST(PatientSourceTest, ResumesExactlyWhereTheSnapshotWas) {
  const ManualStateClock first(kStart + 123'456), later(kStart + 86'400'000);
  const StateClock* same[3] = {&first, &first, &first};
  PatientOptions o = Ward(40, 4000);
  o.deterioration_rate = 4;
  o.missing = 0.05;
  o.duplicates = 0.05;
  o.late = 0.2;
  for (PatientFormat f : {PatientFormat::kRows, PatientFormat::kHl7v2, PatientFormat::kFhir}) {
    SCOPED_TRACE(std::string(PatientFormatName(f)));
    o.format = f;
    ExpectResumesExactly(o, 0, 1, 3, same);
    ExpectResumesExactly(o, 1, 2, 2, same);
  }
  // Start from the clock: the position keeps it, so a restore at another
  // time replays the same sets.
  o.format = PatientFormat::kRows;
  o.start_ms = 0;
  const StateClock* moved[3] = {&first, &first, &later};
  ExpectResumesExactly(o, 2, 3, 2, moved);
}

TEST(PatientSourceTest, RestoreRejectsForeignPositions) {
  OperatorCounters counters;
  PatientOptions o = Ward(10, 100);
  PatientSource src(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
  RowsOutput out;
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 2)).ok());
  EXPECT_EQ(src.SnapshotOperatorState(1), "patients next=0 start=1709251200000");
  for (const char* bad : {"", "generator next=4", "patients next=x start=1", "patients next=4",
                          "patients next=4 start=", "patients next=-2 start=1"}) {
    const absl::Status s = src.RestoreOperatorState(bad);
    EXPECT_TRUE(absl::IsDataLoss(s)) << bad << ": " << s;
    EXPECT_NE(s.message().find("is not 'patients next=N start=MS'"), absl::string_view::npos) << s;
  }
  const absl::Status odd = src.RestoreOperatorState("patients next=5 start=1709251200000");
  EXPECT_TRUE(absl::IsDataLoss(odd));
  EXPECT_NE(odd.message().find("restoring at another parallelism?"), absl::string_view::npos) << odd;
  const absl::Status moved = src.RestoreOperatorState("patients next=4 start=1709337600000");
  EXPECT_TRUE(absl::IsFailedPrecondition(moved));
  EXPECT_NE(moved.message().find("simulated from start 2024-03-02T00:00:00.000Z, and the job now says "
                                 "2024-03-01T00:00:00.000Z"),
            absl::string_view::npos)
      << moved;
  EXPECT_TRUE(src.RestoreOperatorState("patients next=4 start=1709251200000").ok());
  EXPECT_EQ(src.SnapshotOperatorState(2), "patients next=4 start=1709251200000");
}

TEST(PatientSourceTest, UnboundedSourceKeepsGoingInBatches) {
  PatientOptions o = Ward(5, -1);
  OperatorCounters counters;
  PatientSource src(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
  RowsOutput out;
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1)).ok());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
  EXPECT_EQ(out.batches, 20);
  // Each call ends once its batch is full (RowBatch::capacity), not after
  // a set or a few.
  ASSERT_GE(out.rows.size(), 20 * RowBatch::CapacityFor(Hl7ObservationSchema().size()));
  const std::vector<Set> sets = SetsOf(out.rows);
  ASSERT_GE(sets.size(), 20u * 10);
  for (size_t n = 0; n < sets.size(); ++n) EXPECT_EQ(sets[n].message_id, "SIM7-" + std::to_string(n));
}

// ---------------------------------------------------------------- formats

TEST(PatientSourceTest, Hl7v2AndFhirGiveTheRowsOfTheRowsFormat) {
  PatientOptions o = Ward(25, 600);
  o.deterioration_rate = 8;  // confusion, oxygen and fever
  o.missing = 0.1;
  o.duplicates = 0.1;
  o.late = 0.2;
  const std::vector<Row> rows = RunSource(o);
  o.format = PatientFormat::kHl7v2;
  const std::vector<Row> hl7 = RunSource(o);
  o.format = PatientFormat::kFhir;
  const std::vector<Row> fhir = RunSource(o);
  ASSERT_GT(rows.size(), 600u * 6);
  EXPECT_EQ(Texts(hl7), Texts(rows));

  // FHIR says some things otherwise: the document type, no sending
  // facility, its own value types, no text for a Quantity.
  ASSERT_EQ(fhir.size(), rows.size());
  std::set<std::string> levels;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const Row& f = fhir[i];
    const bool coded = r[kObsCode].s == "80288-4";
    EXPECT_EQ(f[kObsMessageType].s, "Bundle");
    EXPECT_TRUE(f[kObsSendingFacility].is_null);
    EXPECT_EQ(f[kObsValueType].s, coded ? "CodeableConcept" : "Quantity");
    if (coded) {
      EXPECT_EQ(f[kObsValueText].s, r[kObsValueText].s);
      levels.insert(r[kObsValueText].s);
    } else {
      EXPECT_TRUE(f[kObsValueText].is_null);
    }
    Row same = f;
    for (int k : {kObsMessageType, kObsSendingFacility, kObsValueType, kObsValueText}) same[k] = r[k];
    EXPECT_EQ(RowText(same), RowText(r));
  }
  EXPECT_TRUE(levels.count("248234008") && levels.count("130987000")) << "alert and new confusion";
}

// ---------------------------------------------------------------- faults

TEST(PatientSourceTest, FaultsHappenAtTheirConfiguredRates) {
  PatientOptions o = Ward(50, 20000);
  o.missing = 0.05;
  o.duplicates = 0.03;
  o.late = 0.1;
  const std::vector<Row> rows = RunSource(o);
  const std::vector<Set> sets = SetsOf(rows);
  std::map<std::string, int> copies;
  for (const Set& s : sets) ++copies[s.message_id];
  ASSERT_EQ(copies.size(), 20000u) << "every set of the bounded count, late ones too";
  int twice = 0;
  for (const auto& [id, n] : copies) {
    EXPECT_LE(n, 2) << id;
    twice += n == 2;
  }
  EXPECT_NEAR(twice / 20000.0, 0.03, 0.006);

  int64_t values = 0, late = 0;
  std::map<std::string, const Set*> previous;  // per patient, the last set delivered
  std::set<std::string> seen;
  for (const Set& s : sets) {
    if (!seen.insert(s.message_id).second) {  // the duplicate: same rows, received later
      EXPECT_EQ(s.received_at, previous[s.patient_id]->received_at + PatientSource::kResendDelayMs);
      continue;
    }
    values += static_cast<int64_t>(s.rows.size());
    const Set*& before = previous[s.patient_id];
    if (before != nullptr && s.observed_at < before->observed_at) {
      ++late;
      // One interval late, right after the patient's next set.
      EXPECT_EQ(before->observed_at - s.observed_at, 60'000);
      EXPECT_GE(s.received_at - s.observed_at, 60'000 + 300);
    }
    before = &s;
  }
  EXPECT_NEAR(1 - values / (20000.0 * 8), 0.05, 0.005);
  EXPECT_NEAR(late / 20000.0, 0.1, 0.01);
}

// ---------------------------------------------------------------- physiology

// Scores each set as the news2 and qsofa functions would.
class ScoringOutput : public Output {
 public:
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      const Row& r = batch[i];
      const VitalSignValue v = ClassifyVitalSign(r[kObsCode].s, r[kObsValue], r[kObsValueText],
                                                 r[kObsUnit].is_null ? std::string_view() : std::string_view(r[kObsUnit].s));
      switch (v.sign) {
        case VitalSign::kRespirationRate: vitals_.respiration_rate = v.value; break;
        case VitalSign::kSpo2: vitals_.spo2 = v.value; break;
        case VitalSign::kOxygen: vitals_.on_oxygen = v.value != 0; break;
        case VitalSign::kSystolicBp: vitals_.systolic_bp = v.value; break;
        case VitalSign::kPulse: vitals_.pulse = v.value; break;
        case VitalSign::kConsciousness: vitals_.consciousness = static_cast<Acvpu>(static_cast<int>(v.value)); break;
        case VitalSign::kTemperature: vitals_.temperature = v.value; break;
        default:  // the diastolic pressure: sent, but no part of NEWS2
          if (r[kObsCode].s != "8462-4") ADD_FAILURE() << "not a vital sign: " << r[kObsCode].s;
      }
      if (r[kObsLastInMessage].i == 0) continue;
      const News2Score news2 = ScoreNews2(vitals_);
      EXPECT_EQ(news2.missing, 0);
      ++sets;
      ++news2_at[std::min(news2.total, 20)];
      qsofa_positive += ScoreQsofa(vitals_).positive;
      on_oxygen += *vitals_.on_oxygen;
      confused += *vitals_.consciousness != Acvpu::kAlert;
      febrile += *vitals_.temperature >= 38.5;
      if (*vitals_.on_oxygen) rr_on_oxygen += *vitals_.respiration_rate;
      // Heart rate against respiratory rate, for their correlation.
      const double x = *vitals_.pulse, y = *vitals_.respiration_rate;
      sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
      vitals_ = VitalSigns();
    }
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}

  double Share(int lo, int hi = 20) const {
    int64_t n = 0;
    for (int s = lo; s <= hi; ++s) n += news2_at[s];
    return static_cast<double>(n) / static_cast<double>(sets);
  }
  double HeartRespiratoryCorrelation() const {
    const double n = static_cast<double>(sets);
    return (sxy / n - sx / n * sy / n) / std::sqrt((sxx / n - sx / n * sx / n) * (syy / n - sy / n * sy / n));
  }

  int64_t sets = 0;
  int64_t news2_at[21] = {};
  int64_t qsofa_positive = 0, on_oxygen = 0, confused = 0, febrile = 0;
  double rr_on_oxygen = 0;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;

 private:
  VitalSigns vitals_;
};

std::unique_ptr<ScoringOutput> Score(const PatientOptions& o) {
  auto out = std::make_unique<ScoringOutput>();
  OperatorCounters counters;
  PatientSource src(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
  src.set_output(out.get());
  EXPECT_TRUE(src.Open(Context(0, 1)).ok());
  while (src.Produce() != SourceStatus::kEnd) {
  }
  return out;
}

// 50 patients for two simulated days, a set every 5 minutes.
PatientOptions TwoDays() {
  PatientOptions o = Ward(50, 50 * 2 * 288);
  o.seed = 11;
  o.interval_ms = 5 * 60'000;
  return o;
}

TEST(PatientSourceTest, HealthyPatientsScoreLow) {
  PatientOptions o = TwoDays();
  o.deterioration_rate = 0;
  const auto s = Score(o);
  ASSERT_EQ(s->sets, o.count);
  EXPECT_GE(s->Share(0, 2), 0.97);
  EXPECT_LT(s->Share(5), 0.001);
  EXPECT_EQ(s->on_oxygen, 0);
  EXPECT_EQ(s->confused, 0);
  // The stress factor moves heart rate and respiratory rate together.
  EXPECT_GT(s->HeartRespiratoryCorrelation(), 0.1);
}

TEST(PatientSourceTest, DeteriorationEpisodesRaiseTheScore) {
  PatientOptions o = TwoDays();
  o.deterioration_rate = 6;
  const auto mixed = Score(o);
  EXPECT_GE(mixed->Share(5), 0.2);
  EXPECT_GE(mixed->Share(7), 0.1);
  EXPECT_GT(mixed->news2_at[0] + mixed->news2_at[1], 0) << "patients recover";

  // Sepsis: fever, qSOFA positive, confusion; no oxygen.
  o.sepsis_fraction = 1;
  const auto sepsis = Score(o);
  EXPECT_EQ(sepsis->on_oxygen, 0);
  EXPECT_GT(sepsis->qsofa_positive, sepsis->sets / 20);
  EXPECT_GT(sepsis->febrile, sepsis->sets / 10);
  EXPECT_GT(sepsis->confused, 0);
  EXPECT_GT(sepsis->HeartRespiratoryCorrelation(), 0.5);

  // Respiratory failure: on oxygen and breathing fast; no fever.
  o.sepsis_fraction = 0;
  const auto respiratory = Score(o);
  EXPECT_GT(respiratory->on_oxygen, respiratory->sets / 5);
  EXPECT_GT(respiratory->rr_on_oxygen / static_cast<double>(respiratory->on_oxygen), 21);
  EXPECT_LT(respiratory->febrile, respiratory->sets / 100);
}

// ---------------------------------------------------------------- pacing

TEST(PatientSourceTest, PacedSourceEmitsNoSetBeforeItIsDue) {
  // 10 patients, a set each per simulated minute, 60 simulated minutes per
  // second: a set every 6 simulated seconds, every 100 ms of the clock.
  ManualStateClock clock(kStart + 5'000'000);
  PatientOptions o = Ward(10, -1);
  o.speed = 60;
  OperatorCounters counters;
  auto src = std::make_unique<PatientSource>(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
  RowsOutput out;
  src->set_output(&out);
  ASSERT_TRUE(src->Open(Context(0, 1, &clock)).ok());
  auto sets = [&] { return SetsOf(out.rows).size(); };
  ASSERT_EQ(src->Produce(), SourceStatus::kMoreAvailable);
  EXPECT_EQ(sets(), 1u) << "set 0 is due at once";
  ASSERT_EQ(src->Produce(), SourceStatus::kMoreAvailable);
  EXPECT_EQ(sets(), 1u) << "set 1 is due 100 ms later";
  clock.Advance(99);
  src->Produce();
  EXPECT_EQ(sets(), 1u);
  clock.Advance(1);
  src->Produce();
  EXPECT_EQ(sets(), 2u);
  clock.Advance(250);  // 350 ms: sets 2 and 3
  // A latency marker scheduled for 150 ms (the wall clock is 1 s at 350
  // ms), after set 1 went out, goes with the next sets, dated to when the
  // first of them, set 2, was due, 150 ms before (as a rate-limited source's
  // marker does); the next is 0.5 to 1.5 s later, not yet.
  src->set_latency_marker_interval(1'000'000);
  src->ArmLatencyMarker(800'000);
  src->ArmLatencyMarker(1'000'000);
  src->Produce();
  EXPECT_EQ(sets(), 4u);
  src->SendLatencyMarker();
  EXPECT_EQ(out.markers, std::vector<int64_t>{1'000'000 - 150'000});
  clock.Advance(10'000);  // 10.35 s: sets up to 103
  while (sets() < 104) ASSERT_EQ(src->Produce(), SourceStatus::kMoreAvailable);
  src->Produce();
  EXPECT_EQ(sets(), 104u);
  for (const Set& s : SetsOf(out.rows)) EXPECT_LE(s.observed_at - kStart, 10'350 * 60);

  // A restore resumes at the pace from the restored set, without catching
  // up on the time the job was down.
  const std::string position = src->SnapshotOperatorState(1);
  clock.Advance(3'600'000);
  out.rows.clear();
  src = std::make_unique<PatientSource>(counters, Hl7ObservationSchema(), proto::SourceSpec(), o);
  src->set_output(&out);
  ASSERT_TRUE(src->Open(Context(0, 1, &clock)).ok());
  ASSERT_TRUE(src->RestoreOperatorState(position).ok());
  src->Produce();
  src->Produce();
  ASSERT_EQ(sets(), 1u);
  EXPECT_EQ(out.rows[0][kObsMessageId].s, "SIM7-104");
  clock.Advance(100);
  src->Produce();
  EXPECT_EQ(sets(), 2u);
}

// A source on the real clock (no ctx.clock), with its output.
struct RealTimeWard {
  explicit RealTimeWard(const PatientOptions& options)
      : src(counters, Hl7ObservationSchema(), proto::SourceSpec(), options) {
    src.set_output(&out);
  }
  OperatorCounters counters;
  PatientSource src;
  RowsOutput out;
};

TEST(PatientSourceTest, RealTimePacingFollowsTheWallClock) {
  // One patient, a set per simulated minute at 600x: one every 100 ms.
  PatientOptions o = Ward(1, 4);
  o.speed = 600;
  RealTimeWard w(o);
  ASSERT_TRUE(w.src.Open(Context(0, 1)).ok());
  const auto begin = std::chrono::steady_clock::now();
  const auto deadline = begin + std::chrono::seconds(30);
  while (w.src.Produce() != SourceStatus::kEnd) ASSERT_LT(std::chrono::steady_clock::now(), deadline);
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(SetsOf(w.out.rows).size(), 4u);
  EXPECT_GE(elapsed, std::chrono::milliseconds(300)) << "set 3 is due 300 ms after set 0";
}

TEST(PatientSourceTest, PacedSourceBehindMakesTheRestAtOnce) {
  // 1,000 patients at 60x: a set every millisecond of the clock, 8 rows
  // each (no value left out). With the flush deadline far ahead, the source
  // waits for kPaceStepSlots sets, then makes what fits in its batch; the
  // sets still due then go in the next call, without waiting for
  // kPaceStepSlots more (or the deadline): waiting, a source whose pace
  // needs more than a batch per flush period falls behind by up to
  // kPaceStepSlots sets.
  // full() is checked before each set, so the last set may overfill it.
  const size_t sets_per_batch = RowBatch::CapacityFor(Hl7ObservationSchema().size()) / 8 + 1;
  ASSERT_LT(sets_per_batch, static_cast<size_t>(PatientSource::kPaceStepSlots) / 2)
      << "the test needs a batch that holds fewer than half of kPaceStepSlots sets";
  PatientOptions o = Ward(1000, -1);
  o.speed = 60;
  RealTimeWard w(o);
  ASSERT_TRUE(w.src.Open(Context(0, 1)).ok());
  const auto begin = std::chrono::steady_clock::now();
  w.src.set_flush_deadline_ns(
      std::chrono::duration_cast<std::chrono::nanoseconds>((begin + std::chrono::hours(1)).time_since_epoch()).count());
  // The first sets come once kPaceStepSlots are due (set 63, at 63 ms).
  while (w.out.rows.empty()) {
    ASSERT_EQ(w.src.Produce(), SourceStatus::kMoreAvailable);
    ASSERT_LT(std::chrono::steady_clock::now(), begin + std::chrono::seconds(30));
  }
  const size_t first = SetsOf(w.out.rows).size();
  ASSERT_GE(first, 2u);
  EXPECT_LE(first, sets_per_batch) << "one batch";
  // At least kPaceStepSlots - first sets are due now: the next call makes
  // a batch of them at once.
  ASSERT_EQ(w.src.Produce(), SourceStatus::kMoreAvailable);
  EXPECT_GE(SetsOf(w.out.rows).size(), 2 * first) << "a source behind its pace makes a batch of the sets due at once";
}

// ---------------------------------------------------------------- logs

TEST(PatientSourceTest, LogsCountsButNoPatientIdentifier) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  PatientOptions o = Ward(12, 500);
  o.duplicates = 0.1;
  o.format = PatientFormat::kHl7v2;
  const std::vector<Row> rows = RunSource(o);
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
  EXPECT_NE(log.str().find("simulating 12 patients"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("simulated 500 observation sets of 12 patients"), std::string::npos) << log.str();
  EXPECT_EQ(log.str().find("SIMPT-"), std::string::npos) << log.str();
  EXPECT_EQ(log.str().find("MON-"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace vstream
