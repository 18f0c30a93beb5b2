#include "client/job_spec.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/operators/nexmark_source.h"
#include "runtime/dead_letter.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/types.h"

namespace vstream {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The example of the job-spec documentation, verbatim.
constexpr char kExampleSpec[] = R"yaml(name: vitals-running-totals
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: /data/vitals.csv            # absolute, or relative to the job file
    format: csv                       # header row names the columns
    schema: {patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int}
operators:
  - name: valid
    type: filter
    input: vitals
    where: "hr > 0 AND spo2 BETWEEN 50 AND 100"
  - name: flagged
    type: map
    input: valid
    select:
      patient_id: patient_id
      ts: ts
      hr: hr
      tachycardic: "hr > 100"
  - name: totals
    type: aggregate                   # keyed running aggregate: one updated row per input
    input: flagged
    key_by: [patient_id]
    aggregates:
      readings: "count(*)"
      hr_max: "max(hr)"
      tachy_readings: "sum(CASE WHEN tachycardic THEN 1 ELSE 0 END)"
sinks:
  - name: out
    connector: file
    input: totals
    path: /data/out/totals            # a directory of part files
    format: jsonl
)yaml";

// A small valid spec; the error tests each change one line of it. Line
// numbers are in the comments on the right.
constexpr char kBaseSpec[] = R"yaml(name: j
sources:
  - name: vitals
    connector: file
    path: vitals.csv
    format: csv
    schema: {patient_id: string, hr: int, spo2: int}
operators:
  - name: valid
    type: filter
    input: vitals
    where: "hr > 0"
sinks:
  - name: out
    connector: stdout
    input: valid
)yaml";
//  1 name: j
//  2 sources:
//  3   - name: vitals
//  4     connector: file
//  5     path: vitals.csv
//  6     format: csv
//  7     schema: {patient_id: string, hr: int, spo2: int}
//  8 operators:
//  9   - name: valid
// 10     type: filter
// 11     input: vitals
// 12     where: "hr > 0"
// 13 sinks:
// 14   - name: out
// 15     connector: stdout
// 16     input: valid

// The event-time examples of the job-spec documentation, verbatim, with
// the sources and sinks around them.
constexpr char kEventTimeSpec[] = R"yaml(name: icu-windows
sources:
  - name: vitals
    connector: file
    path: /data/vitals.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int}
    event_time: {field: ts, max_out_of_orderness: 5s}      # optional idle_timeout: 30s
  - name: labs
    connector: file
    path: /data/labs.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, test: string, value: double}
    event_time: {field: ts, max_out_of_orderness: 1m, idle_timeout: 30s, watermark_interval: 200ms}
  - name: wards
    connector: file
    path: /data/wards.csv
    format: csv
    schema: {patient_id: string, ward: string}
operators:
  - name: per_minute
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: tumbling, size: 1m}          # also {kind: sliding, size: 5m, slide: 1m}, {kind: session, gap: 2m}
    allowed_lateness: 0s
    late_output: vitals_late                    # a stream name that sinks may use as input
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)", spo2_min: "min(spo2)", hr_p95: "percentile(hr, 0.95)"}
  - name: vitals_with_labs
    type: interval_join
    left: vitals
    right: labs
    key_by: [patient_id]
    between: [-30m, 0s]                         # right.ts within [left.ts - 30m, left.ts]
  - name: vitals_with_ward
    type: broadcast_join
    input: vitals
    broadcast: wards
    key_by: [patient_id]
sinks:
  - {name: minutes, connector: stdout, input: per_minute}
  - {name: late, connector: file, input: vitals_late, path: /data/out/late}
  - {name: joined, connector: stdout, input: vitals_with_labs}
  - {name: enriched, connector: stdout, input: vitals_with_ward}
)yaml";

// A small valid spec with event time, a window and an interval join; the
// error tests each change one line of it.
constexpr char kWindowSpec[] = R"yaml(name: w
sources:
  - name: vitals
    connector: file
    path: vitals.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, hr: int}
    event_time: {field: ts, max_out_of_orderness: 5s}
  - name: labs
    connector: file
    path: labs.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, value: double}
    event_time: {field: ts}
operators:
  - name: per_minute
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: tumbling, size: 1m}
    allowed_lateness: 0s
    late_output: vitals_late
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)"}
  - name: joined
    type: interval_join
    left: vitals
    right: labs
    key_by: [patient_id]
    between: [-30m, 0s]
sinks:
  - {name: out, connector: stdout, input: per_minute}
  - {name: late, connector: stdout, input: vitals_late}
  - {name: j, connector: stdout, input: joined}
)yaml";
//  1 name: w
//  2 sources:
//  3   - name: vitals
//  4     connector: file
//  5     path: vitals.csv
//  6     format: csv
//  7     schema: {patient_id: string, ts: timestamp, hr: int}
//  8     event_time: {field: ts, max_out_of_orderness: 5s}
//  9   - name: labs
// 10     connector: file
// 11     path: labs.csv
// 12     format: csv
// 13     schema: {patient_id: string, ts: timestamp, value: double}
// 14     event_time: {field: ts}
// 15 operators:
// 16   - name: per_minute
// 17     type: window
// 18     input: vitals
// 19     key_by: [patient_id]
// 20     window: {kind: tumbling, size: 1m}
// 21     allowed_lateness: 0s
// 22     late_output: vitals_late
// 23     aggregates: {readings: "count(*)", hr_avg: "avg(hr)"}
// 24   - name: joined
// 25     type: interval_join
// 26     left: vitals
// 27     right: labs
// 28     key_by: [patient_id]
// 29     between: [-30m, 0s]
// 30 sinks:
// 31   - {name: out, connector: stdout, input: per_minute}
// 32   - {name: late, connector: stdout, input: vitals_late}
// 33   - {name: j, connector: stdout, input: joined}

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  size_t pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << "'" << from << "' is not in the spec";
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

class JobSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("job_spec_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    vitals_ = (dir_ / "vitals.csv").string();
    std::ofstream(vitals_) << "patient_id,ts,hr,spo2,rr\np1,2024-01-02T03:04:05Z,80,97,14\n";
    labs_ = (dir_ / "labs.csv").string();
    std::ofstream(labs_) << "patient_id,ts,test,value\np1,2024-01-02T03:00:00Z,lactate,1.5\n";
    wards_ = (dir_ / "wards.csv").string();
    std::ofstream(wards_) << "patient_id,ward\np1,icu-2\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  absl::StatusOr<proto::JobGraph> Compile(std::string_view yaml) {
    return CompileJobSpec(yaml, "job.yaml", dir_.string());
  }

  // Expects the spec to fail with "job.yaml:LINE:COL: ..." containing `fragment`.
  void ExpectError(std::string_view yaml, int line, int column, std::string_view fragment) {
    absl::StatusOr<proto::JobGraph> graph = Compile(yaml);
    ASSERT_FALSE(graph.ok()) << "compiled:\n" << yaml;
    EXPECT_EQ(graph.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(graph.status().message());
    EXPECT_THAT(message, StartsWith(absl::StrCat("job.yaml:", line, ":", column, ": ")));
    EXPECT_THAT(message, HasSubstr(fragment));
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
  }

  // kEventTimeSpec with the paths of this test's files.
  std::string EventTimeSpec() const {
    std::string spec = Replace(kEventTimeSpec, "/data/vitals.csv", vitals_);
    spec = Replace(spec, "/data/labs.csv", labs_);
    return Replace(spec, "/data/wards.csv", wards_);
  }

  std::filesystem::path dir_;
  std::string vitals_;
  std::string labs_;
  std::string wards_;
};

TEST_F(JobSpecTest, ExampleCompilesToVerticesEdgesAndSchemas) {
  const std::string spec = Replace(kExampleSpec, "/data/vitals.csv", vitals_);
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();

  EXPECT_EQ(graph->name(), "vitals-running-totals");
  EXPECT_EQ(graph->max_parallelism(), 128);
  EXPECT_EQ(graph->buffer_timeout_ms(), 5);
  ASSERT_EQ(graph->vertices_size(), 5);
  const std::vector<std::string> names = {"vitals", "valid", "flagged", "totals", "out"};
  for (int i = 0; i < 5; ++i) {
    const proto::JobVertex& v = graph->vertices(i);
    EXPECT_EQ(v.id(), i);
    EXPECT_EQ(v.name(), names[i]);
    EXPECT_EQ(v.parallelism(), 2);
    EXPECT_EQ(v.max_parallelism(), 128);
  }

  const Schema vitals({{"patient_id", FieldType::kString},
                       {"ts", FieldType::kTimestamp},
                       {"hr", FieldType::kInt},
                       {"spo2", FieldType::kInt},
                       {"rr", FieldType::kInt}});
  const Schema flagged({{"patient_id", FieldType::kString},
                        {"ts", FieldType::kTimestamp},
                        {"hr", FieldType::kInt},
                        {"tachycardic", FieldType::kBool}});
  const Schema totals({{"patient_id", FieldType::kString},
                       {"readings", FieldType::kInt},
                       {"hr_max", FieldType::kInt},
                       {"tachy_readings", FieldType::kInt}});

  const proto::JobVertex& source = graph->vertices(0);
  ASSERT_TRUE(source.op().has_source());
  EXPECT_EQ(source.op().source().connector(), "file");
  EXPECT_EQ(source.op().source().path(), vitals_);
  EXPECT_EQ(source.op().source().format(), "csv");
  EXPECT_EQ(source.op().source().dead_letter(), "");
  EXPECT_EQ(source.input_schema().fields_size(), 0);
  EXPECT_EQ(Schema::FromProto(source.output_schema()).DebugString(), vitals.DebugString());

  const proto::JobVertex& valid = graph->vertices(1);
  ASSERT_TRUE(valid.op().has_filter());
  EXPECT_EQ(valid.op().filter().where(), "hr > 0 AND spo2 BETWEEN 50 AND 100");
  EXPECT_EQ(Schema::FromProto(valid.input_schema()).DebugString(), vitals.DebugString());
  EXPECT_EQ(Schema::FromProto(valid.output_schema()).DebugString(), vitals.DebugString());

  const proto::JobVertex& map = graph->vertices(2);
  ASSERT_TRUE(map.op().has_map());
  ASSERT_EQ(map.op().map().select_size(), 4);
  EXPECT_EQ(map.op().map().select(3).name(), "tachycardic");
  EXPECT_EQ(map.op().map().select(3).expr(), "hr > 100");
  EXPECT_EQ(Schema::FromProto(map.output_schema()).DebugString(), flagged.DebugString());

  const proto::JobVertex& agg = graph->vertices(3);
  ASSERT_TRUE(agg.op().has_aggregate());
  ASSERT_EQ(agg.op().aggregate().key_by_size(), 1);
  EXPECT_EQ(agg.op().aggregate().key_by(0), "patient_id");
  ASSERT_EQ(agg.op().aggregate().aggregates_size(), 3);
  EXPECT_EQ(agg.op().aggregate().aggregates(0).name(), "readings");
  EXPECT_EQ(agg.op().aggregate().aggregates(0).func(), "count");
  EXPECT_EQ(agg.op().aggregate().aggregates(0).arg(), "");
  EXPECT_EQ(agg.op().aggregate().aggregates(1).func(), "max");
  EXPECT_EQ(agg.op().aggregate().aggregates(1).arg(), "hr");
  EXPECT_EQ(agg.op().aggregate().aggregates(2).func(), "sum");
  EXPECT_EQ(agg.op().aggregate().aggregates(2).arg(), "CASE WHEN tachycardic THEN 1 ELSE 0 END");
  // It reads patient_id, hr and tachycardic of `flagged`, all its hash edge carries.
  EXPECT_EQ(Schema::FromProto(agg.input_schema()).DebugString(),
            Schema({{"patient_id", FieldType::kString}, {"hr", FieldType::kInt}, {"tachycardic", FieldType::kBool}})
                .DebugString());
  EXPECT_EQ(Schema::FromProto(agg.output_schema()).DebugString(), totals.DebugString());

  const proto::JobVertex& sink = graph->vertices(4);
  ASSERT_TRUE(sink.op().has_sink());
  EXPECT_EQ(sink.op().sink().connector(), "file");
  EXPECT_EQ(sink.op().sink().path(), "/data/out/totals");
  EXPECT_EQ(sink.op().sink().format(), "jsonl");
  EXPECT_EQ(Schema::FromProto(sink.input_schema()).DebugString(), totals.DebugString());
  EXPECT_EQ(sink.output_schema().fields_size(), 0);

  ASSERT_EQ(graph->edges_size(), 4);
  const proto::Partitioning expected[] = {proto::FORWARD, proto::FORWARD, proto::HASH,
                                          proto::FORWARD};
  for (int i = 0; i < 4; ++i) {
    const proto::JobEdge& e = graph->edges(i);
    EXPECT_EQ(e.source(), i);
    EXPECT_EQ(e.target(), i + 1);
    EXPECT_EQ(e.partitioning(), expected[i]) << "edge " << i;
    EXPECT_EQ(e.side_output(), "");
  }
  EXPECT_THAT(graph->edges(2).key_fields(), ::testing::ElementsAre(0));
  EXPECT_THAT(graph->edges(2).projection(), ::testing::ElementsAre(0, 2, 3));
  for (int i : {0, 1, 3}) EXPECT_EQ(graph->edges(i).projection_size(), 0) << "edge " << i;
}

TEST_F(JobSpecTest, CompileJobSpecFileResolvesPathsAgainstTheFile) {
  const std::string path = (dir_ / "job.yaml").string();
  std::ofstream(path) << Replace(kBaseSpec, "connector: stdout", "connector: file\n    path: out");
  absl::StatusOr<proto::JobGraph> graph = CompileJobSpecFile(path);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().path(), vitals_);
  EXPECT_EQ(graph->vertices(2).op().sink().path(), (dir_ / "out").string());

  absl::StatusOr<proto::JobGraph> missing = CompileJobSpecFile((dir_ / "nope.yaml").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobSpecTest, JobSettingsParallelismAndPartitioning) {
  std::string spec = Replace(kBaseSpec, "name: j\n",
                             "name: j\nparallelism: 3\nmax_parallelism: 64\nbuffer_timeout: 2s\n");
  spec = Replace(spec, "    input: vitals\n",
                 "    input: vitals\n    parallelism: 4\n    key_by: patient_id\n");
  spec = Replace(spec, "    input: valid\n", "    input: valid\n    partition: broadcast\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->max_parallelism(), 64);
  EXPECT_EQ(graph->buffer_timeout_ms(), 2000);
  EXPECT_EQ(graph->vertices(0).parallelism(), 3);
  EXPECT_EQ(graph->vertices(1).parallelism(), 4);
  EXPECT_EQ(graph->vertices(2).parallelism(), 3);
  EXPECT_EQ(graph->vertices(1).max_parallelism(), 64);
  ASSERT_EQ(graph->edges_size(), 2);
  EXPECT_EQ(graph->edges(0).partitioning(), proto::HASH);
  EXPECT_THAT(graph->edges(0).key_fields(), ::testing::ElementsAre(0));
  EXPECT_EQ(graph->edges(1).partitioning(), proto::BROADCAST);

  // Unequal parallelism without a partition: rebalance.
  spec = Replace(kBaseSpec, "    input: valid\n", "    input: valid\n    parallelism: 2\n");
  graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->edges(1).partitioning(), proto::REBALANCE);

  for (auto [text, ms] : std::vector<std::pair<std::string, int64_t>>{
           {"250", 250}, {"7ms", 7}, {"1s", 1000}, {"2m", 120000}, {"1h", 3600000}}) {
    graph = Compile(Replace(kBaseSpec, "name: j\n", "name: j\nbuffer_timeout: " + text + "\n"));
    ASSERT_TRUE(graph.ok()) << graph.status();
    EXPECT_EQ(graph->buffer_timeout_ms(), ms) << text;
  }

  // Latency markers: off unless asked for.
  EXPECT_EQ(graph->latency_marker_interval_ms(), 0);
  graph = Compile(Replace(kBaseSpec, "name: j\n", "name: j\nlatency_markers: 100ms\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->latency_marker_interval_ms(), 100);
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nlatency_markers: often\n"), 2, 18,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'latency_markers', got 'often'");
}

TEST_F(JobSpecTest, DeadLetterStreamIsASideOutput) {
  std::string spec = Replace(kBaseSpec, "    format: csv\n",
                             "    format: csv\n    dead_letter: bad_rows\n    max_rate: 100\n");
  spec +=
      "  - name: bad\n    connector: file\n    input: bad_rows\n    path: bad\n    format: csv\n";
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().dead_letter(), "bad_rows");
  EXPECT_EQ(graph->vertices(0).op().source().max_rate(), 100);
  ASSERT_EQ(graph->vertices_size(), 4);
  const proto::JobVertex& bad = graph->vertices(3);
  EXPECT_EQ(Schema::FromProto(bad.input_schema()).DebugString(), DeadLetterSchema().DebugString());
  ASSERT_EQ(graph->edges_size(), 3);
  const proto::JobEdge& e = graph->edges(2);
  EXPECT_EQ(e.source(), 0);
  EXPECT_EQ(e.target(), 3);
  EXPECT_EQ(e.side_output(), kDeadLetterOutput);
  EXPECT_EQ(e.partitioning(), proto::FORWARD);
}

constexpr char kHl7Spec[] = R"yaml(name: h
sources:
  - name: hl7
    connector: file
    path: in.hl7
    format: hl7v2
    rows: admissions
    timezone: "+01:00"
    dead_letter: bad
sinks:
  - name: out
    connector: stdout
    input: hl7
)yaml";

TEST_F(JobSpecTest, Hl7SourceHasTheFixedSchemaOfItsRows) {
  std::ofstream(dir_ / "in.hl7") << "MSH|^~\\&|A\r";
  absl::StatusOr<proto::JobGraph> graph = Compile(kHl7Spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& src = graph->vertices(0);
  EXPECT_EQ(src.op().source().format(), "hl7v2");
  EXPECT_EQ(src.op().source().hl7_rows(), "admissions");
  EXPECT_EQ(src.op().source().hl7_default_offset_minutes(), 60);
  EXPECT_EQ(Schema::FromProto(src.output_schema()).DebugString(), Hl7AdmissionSchema().DebugString());
  graph = Compile(Replace(Replace(kHl7Spec, "    rows: admissions\n", ""), "\"+01:00\"", "UTC"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(Schema::FromProto(graph->vertices(0).output_schema()).DebugString(),
            Hl7ObservationSchema().DebugString());
  EXPECT_EQ(graph->vertices(0).op().source().hl7_default_offset_minutes(), 0);

  ExpectError(Replace(kHl7Spec, "rows: admissions", "rows: obx"), 7, 11, "unknown rows 'obx'");
  ExpectError(Replace(kHl7Spec, "\"+01:00\"", "CET"), 8, 15, "expected a UTC offset for 'timezone'");
  ExpectError(Replace(kHl7Spec, "\"+01:00\"", "\"+15:00\""), 8, 15, "expected a UTC offset");
  ExpectError(Replace(kHl7Spec, "    dead_letter: bad\n", "    schema: {a: int}\n"), 9, 5,
              "unknown field 'schema' in source 'hl7', expected one of name, connector, path, format, rows, "
              "timezone, event_time, max_rate, dead_letter, parallelism (format hl7v2 makes rows of a fixed "
              "schema: docs/job-spec.md)");
}

constexpr char kNexmarkSpec[] = R"yaml(name: q0
sources:
  - name: events
    connector: nexmark
    count: 1000
    rate: 500
    seed: 9
    event_rate: 1000
    base_time: 2024-01-01T00:00:00Z
    hot_auction_ratio: 3
    avg_bid_byte_size: 150
    event_time: {field: date_time}
sinks:
  - name: out
    connector: blackhole
    input: events
)yaml";

TEST_F(JobSpecTest, NexmarkSourceHasTheFixedSchemaAndItsOptions) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kNexmarkSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::SourceSpec& src = graph->vertices(0).op().source();
  EXPECT_EQ(src.connector(), "nexmark");
  EXPECT_EQ(src.count(), 1000);
  EXPECT_EQ(src.rate(), 500);
  EXPECT_EQ(src.seed(), 9u);
  EXPECT_EQ(src.nexmark().event_rate(), 1000);
  EXPECT_EQ(src.nexmark().base_time_ms(), 1704067200000);
  EXPECT_EQ(src.nexmark().hot_auction_ratio(), 3);
  EXPECT_EQ(src.nexmark().hot_bidders_ratio(), 4);  // the reference's default
  EXPECT_EQ(src.nexmark().avg_bid_byte_size(), 150);
  EXPECT_EQ(src.nexmark().num_in_flight_auctions(), 100);
  EXPECT_EQ(src.event_time().field_index(), kNxDateTime);
  EXPECT_EQ(Schema::FromProto(graph->vertices(0).output_schema()).DebugString(), NexmarkSchema().DebugString());
  EXPECT_EQ(src.reads_size(), 0);  // the sink reads every field

  ExpectError(Replace(kNexmarkSpec, "event_rate: 1000", "event_rate: 0"), 8, 17, "event_rate must lie in");
  ExpectError(Replace(kNexmarkSpec, "hot_auction_ratio: 3", "hot_auction_ratio: 0"), 10, 24, "hot_auction_ratio");
  ExpectError(Replace(kNexmarkSpec, "2024-01-01T00:00:00Z", "soon"), 9, 16, "expected a timestamp");
  ExpectError(Replace(kNexmarkSpec, "count: 1000", "count: -5"), 5, 12, "count must be >= 0");
  ExpectError(Replace(kNexmarkSpec, "    seed: 9\n", "    schema: {a: int}\n"), 7, 5,
              "unknown field 'schema' in source 'events'");
}

// Projection pushdown: a filter reads its where and passes on what its
// readers read; a map reads its select; a window its key, time and
// arguments.
constexpr char kPushdownSpec[] = R"yaml(name: pushdown
parallelism: 2
sources:
  - name: events
    connector: nexmark
    count: 1000
    event_time: {field: date_time}
operators:
  - name: people
    type: filter
    input: events
    where: "event_type = 0 AND person_state = 'OR'"
  - name: person
    type: map
    input: people
    select: {id: person_id, name: person_name}
  - name: bids
    type: filter
    input: events
    where: "event_type = 2"
  - name: big
    type: filter
    input: bids
    where: "bid_price > 1000"
  - name: counts
    type: window
    input: big
    key_by: [bid_auction]
    window: {kind: tumbling, size: 10s}
    aggregates: {num: "count(*)"}
sinks:
  - name: people_out
    connector: blackhole
    input: person
  - name: counts_out
    connector: blackhole
    input: counts
)yaml";

TEST_F(JobSpecTest, ANexmarkSourceMakesOnlyTheFieldsTheJobReads) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kPushdownSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_THAT(graph->vertices(0).op().source().reads(),
              ::testing::ElementsAre(kNxEventType, kNxPersonId, kNxPersonName, kNxPersonState, kNxBidAuction, kNxBidPrice,
                          kNxDateTime));

  // Without a where on date_time it is still made: it is the event time.
  graph = Compile(Replace(kPushdownSpec, "    event_time: {field: date_time}\n", ""));
  ASSERT_FALSE(graph.ok());  // the window needs event time
  graph = Compile(Replace(Replace(kPushdownSpec, "    aggregates:", "    time: processing\n    aggregates:"),
                          "    event_time: {field: date_time}\n", ""));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_THAT(graph->vertices(0).op().source().reads(),
              ::testing::ElementsAre(kNxEventType, kNxPersonId, kNxPersonName, kNxPersonState, kNxBidAuction, kNxBidPrice));

  // A sink of the filter reads its rows whole.
  graph = Compile(Replace(kPushdownSpec, "    input: person\n", "    input: people\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().reads_size(), 0);

  graph = Compile(Replace(kPushdownSpec, "parallelism: 2\n", "parallelism: 2\nprojection_pushdown: false\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().reads_size(), 0);
  ExpectError(Replace(kPushdownSpec, "parallelism: 2\n", "parallelism: 2\nprojection_pushdown: yes\n"), 3, 22,
              "expected true or false for 'projection_pushdown'");
}

constexpr char kMllpSpec[] = R"yaml(name: bedside-news2
parallelism: 2
sources:
  - name: hl7
    connector: mllp
    port: 2575
    format: hl7v2
    max_message_bytes: 65536
    dead_letter: bad
sinks:
  - name: out
    connector: stdout
    input: hl7
)yaml";

// Issue 5's example, exactly as written there.
constexpr char kBedsideNews2[] = R"yaml(name: bedside-news2
parallelism: 2
checkpointing: {interval: 1s, mode: exactly_once}
sources:
  - name: hl7
    connector: mllp
    port: 2575
    format: hl7v2          # one row per OBX: message_id, set_id (OBX-1), patient_id, code, value, unit, status, observed_at, ...
operators:
  - name: unique
    type: dedup
    input: hl7
    key: [message_id, set_id]
    ttl: 1h
  - name: scores
    type: news2
    input: unique          # one row per observation set (message): message_id, patient_id, observed_at, sub-scores, news2_total, red_score, risk_band
sinks:
  - name: out
    connector: file
    input: scores
    path: /data/out/scores
    format: jsonl
)yaml";

TEST_F(JobSpecTest, TheBedsideNews2ExampleCompilesAsWritten) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kBedsideNews2);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->vertices_size(), 4);
  EXPECT_EQ(graph->vertices(0).op().source().connector(), "mllp");
  EXPECT_EQ(graph->vertices(0).op().source().port(), 2575);
  EXPECT_EQ(graph->vertices(1).op().process().function(), "dedup");
  EXPECT_EQ(graph->vertices(2).op().process().function(), "news2");
  const Schema scores = Schema::FromProto(graph->vertices(2).output_schema());
  for (const char* field : {"message_id", "patient_id", "observed_at", "news2_total", "red_score", "risk_band"}) {
    EXPECT_GE(scores.IndexOf(field), 0) << field;
  }
  EXPECT_EQ(graph->vertices(3).op().sink().path(), "/data/out/scores");
  // The dedup is partitioned per patient and passes its records on as they
  // are: news2, per patient too, reads it without an exchange (chained).
  ASSERT_EQ(graph->edges_size(), 3);
  EXPECT_EQ(graph->edges(0).partitioning(), proto::HASH);
  EXPECT_EQ(graph->edges(1).partitioning(), proto::FORWARD);
  EXPECT_EQ(graph->edges(1).target(), 2);
}

TEST_F(JobSpecTest, MllpSourceListensOnAPortAndMakesHl7Rows) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kMllpSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& src = graph->vertices(0);
  EXPECT_EQ(src.op().source().connector(), "mllp");
  EXPECT_EQ(src.op().source().port(), 2575);
  EXPECT_EQ(src.op().source().max_message_bytes(), 65536);
  EXPECT_EQ(src.op().source().dead_letter(), "bad");
  EXPECT_EQ(Schema::FromProto(src.output_schema()).DebugString(), Hl7ObservationSchema().DebugString());
  ExpectError(Replace(kMllpSpec, "port: 2575", "port: 70000"), 6, 11, "port must lie in 0..65535");
  ExpectError(Replace(kMllpSpec, "    port: 2575\n", ""), 4, 5, "missing required field 'port'");
  ExpectError(Replace(kMllpSpec, "format: hl7v2", "format: csv"), 7, 13, "an mllp source reads format hl7v2");
  ExpectError(Replace(kMllpSpec, "max_message_bytes: 65536", "max_message_bytes: 0"), 8, 24,
              "max_message_bytes must lie in 1..67108864 (64 MiB), got 0");
  ExpectError(Replace(kMllpSpec, "    dead_letter: bad\n", "    path: /x\n"), 9, 5, "unknown field 'path'");
}

constexpr char kClinicalSpec[] = R"yaml(name: icu
sources:
  - name: fhir
    connector: file
    path: in.ndjson
    format: fhir
operators:
  - name: scores
    type: news2
    input: fhir
  - name: desaturation
    type: pattern
    input: fhir
    sign: spo2
    below: 90
    count: 3
    within: 5m
  - name: deid
    type: pseudonymize
    input: scores
    fields: [patient_id]
    key_env: VSTREAM_TEST_KEY
  - name: risk
    type: score_model
    input: scores
    model: $MODEL
    threshold: 0.3
sinks:
  - name: out
    connector: file
    input: scores
    path: out
    format: fhir
)yaml";

TEST_F(JobSpecTest, FhirPatternPseudonymizeAndScoreModelCompile) {
  std::ofstream(dir_ / "in.ndjson") << "{}\n";
  const std::string model = std::string(VSTREAM_SOURCE_DIR) + "/examples/models/deterioration_logreg.yaml";
  const std::string spec = Replace(kClinicalSpec, "$MODEL", model);
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().format(), "fhir");
  EXPECT_EQ(Schema::FromProto(graph->vertices(0).output_schema()).DebugString(),
            Hl7ObservationSchema().DebugString());
  std::map<std::string, const proto::JobVertex*> by_name;
  for (const auto& v : graph->vertices()) by_name[v.name()] = &v;
  EXPECT_EQ(by_name["desaturation"]->op().process().function(), "pattern");
  EXPECT_EQ(by_name["deid"]->op().process().params().at("key_env"), "VSTREAM_TEST_KEY");
  EXPECT_EQ(by_name["risk"]->op().process().params().at("model"), model);
  EXPECT_EQ(by_name["risk"]->op().process().params().at("fingerprint").size(), 16u);
  EXPECT_GE(Schema::FromProto(by_name["risk"]->output_schema()).IndexOf("deterioration_risk"), 0);

  ExpectError(Replace(spec, "    format: fhir\n", "    format: fhir\n    rows: observations\n"), 7, 5,
              "unknown field 'rows'");
  ExpectError(Replace(spec, "    count: 3\n", "    count: 3\n    above: 100\n"), 17, 12,
              "'above' conflicts with 'below'");
  ExpectError(Replace(spec, "    key_env: VSTREAM_TEST_KEY\n", "    key: secret\n"), 22, 5,
              "the key itself is never in a job spec");
  ExpectError(Replace(spec, model, "/no/such/model.yaml"), 26, 12, "/no/such/model.yaml");
  ExpectError(Replace(spec, "threshold: 0.3", "threshold: 3"), 27, 16, "threshold must be between 0 and 1");
  ExpectError(Replace(spec, "    input: scores\n    path: out", "    input: fhir\n    path: out"), 33, 13,
              "format fhir writes the rows of a news2 or qsofa operator");
}

TEST_F(JobSpecTest, News2AndQsofaAreProcessFunctionsPerPatient) {
  std::ofstream(dir_ / "in.hl7") << "MSH|^~\\&|A\r";
  const std::string spec = Replace(kHl7Spec, R"yaml(sinks:
  - name: out
    connector: stdout
    input: hl7
)yaml",
                                   R"yaml(operators:
  - name: scores
    type: news2
    input: hl7
    max_age: 30m
  - name: sepsis
    type: qsofa
    input: hl7
sinks:
  - name: out
    connector: stdout
    input: scores
  - name: out2
    connector: stdout
    input: sepsis
)yaml");
  absl::StatusOr<proto::JobGraph> graph = Compile(Replace(spec, "    rows: admissions\n", ""));
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& news2 = graph->vertices(1);
  EXPECT_EQ(news2.op().process().function(), "news2");
  ASSERT_EQ(news2.op().process().key_by_size(), 1);
  EXPECT_EQ(news2.op().process().key_by(0), "patient_id");
  EXPECT_EQ(news2.op().process().params().at("max_age"), "30m");
  const Schema out = Schema::FromProto(news2.output_schema());
  EXPECT_EQ(out.field(0).name, "patient_id");
  EXPECT_GE(out.IndexOf("news2_total"), 0);
  EXPECT_GE(out.IndexOf("risk_band"), 0);
  EXPECT_GE(Schema::FromProto(graph->vertices(2).output_schema()).IndexOf("qsofa_positive"), 0);

  ExpectError(Replace(Replace(spec, "    rows: admissions\n", ""), "max_age: 30m", "max_age: soon"), 13, 14,
              "max_age");
  // Admission rows have no vital signs.
  ExpectError(spec, 11, 5, "the input has no field 'code'");
}

TEST_F(JobSpecTest, DedupDropsRepeatsByKeyWithinATtl) {
  std::ofstream(dir_ / "in.hl7") << "MSH|^~\\&|A\r";
  const std::string spec = Replace(Replace(kHl7Spec, "    rows: admissions\n", ""), R"yaml(sinks:
  - name: out
    connector: stdout
    input: hl7
)yaml",
                                   R"yaml(operators:
  - name: unique
    type: dedup
    input: hl7
    key: [message_id, set_id]
    ttl: 1h
sinks:
  - name: out
    connector: stdout
    input: unique
)yaml");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::ProcessSpec& p = graph->vertices(1).op().process();
  EXPECT_EQ(p.function(), "dedup");
  ASSERT_EQ(p.key_by_size(), 1);
  EXPECT_EQ(p.key_by(0), "patient_id") << "partitioned per patient, to keep each patient's order";
  EXPECT_EQ(p.params().at("key"), "message_id,set_id");
  EXPECT_EQ(p.params().at("ttl"), "1h");
  EXPECT_EQ(Schema::FromProto(graph->vertices(1).output_schema()).DebugString(),
            Hl7ObservationSchema().DebugString());
  ExpectError(Replace(spec, "    ttl: 1h\n", ""), 10, 5, "missing required field 'ttl'");
  ExpectError(Replace(spec, "ttl: 1h", "ttl: 0s"), 14, 10, "ttl must be longer than 0");
  ExpectError(Replace(spec, "key: [message_id, set_id]", "key: [msh10]"), 10, 5,
              "param 'key': the input has no field 'msh10'");
  graph = Compile(Replace(spec, "    ttl: 1h\n", "    ttl: 1h\n    key_by: [message_id]\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(1).op().process().key_by(0), "message_id");
}

TEST_F(JobSpecTest, GeneratorSourceFillsDefaultsPerColumn) {
  const std::string spec = R"yaml(name: gen
sources:
  - name: g
    connector: generator
    schema: {id: int, ts: timestamp, hr: int, temp: double, name: string, ok: bool}
    count: 1000
    rate: 500
    seed: 7
    fields:
      id: {kind: sequence, min: 10}
      hr: {kind: uniform, min: 40, max: 180}
      name: {kind: key, cardinality: 5, prefix: p}
sinks:
  - {name: out, connector: blackhole, input: g, max_rate: 2000}
)yaml";
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::SourceSpec& src = graph->vertices(0).op().source();
  EXPECT_EQ(src.connector(), "generator");
  EXPECT_EQ(src.count(), 1000);
  EXPECT_EQ(src.rate(), 500);
  EXPECT_EQ(src.seed(), 7u);
  ASSERT_EQ(src.generator_fields_size(), 6);
  auto field = [&](int i) { return src.generator_fields(i); };
  EXPECT_EQ(field(0).name(), "id");
  EXPECT_EQ(field(0).kind(), "sequence");
  EXPECT_EQ(field(0).min(), 10);
  EXPECT_EQ(field(1).kind(), "sequence");  // timestamp default
  EXPECT_EQ(field(2).kind(), "uniform");
  EXPECT_EQ(field(2).min(), 40);
  EXPECT_EQ(field(2).max(), 180);
  EXPECT_EQ(field(3).kind(), "uniform");  // double default
  EXPECT_EQ(field(3).max(), 1000);
  EXPECT_EQ(field(4).kind(), "key");
  EXPECT_EQ(field(4).cardinality(), 5);
  EXPECT_EQ(field(4).prefix(), "p");
  EXPECT_EQ(field(5).kind(), "uniform");  // bool default
  EXPECT_EQ(field(5).max(), 1);
  EXPECT_EQ(graph->vertices(1).op().sink().connector(), "blackhole");
  EXPECT_EQ(graph->vertices(1).op().sink().max_rate(), 2000);

  // Without count the generator is unbounded.
  graph = Compile(Replace(spec, "    count: 1000\n", ""));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().count(), -1);
}

TEST_F(JobSpecTest, UnionOfIdenticalSchemasHasOneEdgePerInput) {
  std::string spec = Replace(kBaseSpec, "sinks:\n",
                             "  - {name: high, type: filter, input: vitals, where: hr > 100}\n"
                             "  - {name: both, type: union, inputs: [valid, high]}\n"
                             "sinks:\n");
  spec = Replace(spec, "    input: valid\n", "    input: both\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->vertices_size(), 5);
  EXPECT_TRUE(graph->vertices(3).op().has_union_());
  EXPECT_EQ(graph->vertices(3).input_schema().fields_size(), 3);
  ASSERT_EQ(graph->edges_size(), 5);
  EXPECT_EQ(graph->edges(2).source(), 1);
  EXPECT_EQ(graph->edges(2).target(), 3);
  EXPECT_EQ(graph->edges(3).source(), 2);
  EXPECT_EQ(graph->edges(3).target(), 3);
}

// ---- errors: each points at FILE:LINE:COL of the offending node ------------

TEST_F(JobSpecTest, BaseSpecCompiles) { ASSERT_TRUE(Compile(kBaseSpec).ok()); }

TEST_F(JobSpecTest, YamlSyntaxError) {
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\n  bad: 1\n"), 2, 6, "invalid YAML");
  ExpectError(Replace(kBaseSpec, "  - name: vitals\n", "  - name: [vitals\n"), 4, 14,
              "invalid YAML: end of sequence flow not found");
  ExpectError("name: t\nsources:\n  - name: [unclosed\n", 4, 1, "invalid YAML");
}

TEST_F(JobSpecTest, EmptyOrNonMappingSpec) {
  ExpectError("", 1, 1, "the job spec is empty");
  ExpectError("- a\n- b\n", 1, 1, "expected a mapping with name, sources and sinks");
}

TEST_F(JobSpecTest, UnknownTopLevelField) {
  ExpectError(Replace(kBaseSpec, "operators:", "operator:"), 8, 1,
              "unknown top-level field 'operator', expected one of name, parallelism, "
              "max_parallelism, buffer_timeout, latency_markers, checkpointing, restart, sources, operators, sinks");
}

TEST_F(JobSpecTest, UnknownOperatorField) {
  ExpectError(Replace(kBaseSpec, "    where:", "    wher:"), 12, 5,
              "unknown field 'wher' in operator 'valid', expected one of name, type, input, "
              "where, parallelism, partition, key_by");
}

TEST_F(JobSpecTest, RepeatedField) {
  ExpectError(Replace(kBaseSpec, "    input: vitals\n", "    input: vitals\n    input: vitals\n"),
              12, 5, "field 'input' appears twice in operator 'valid'");
}

TEST_F(JobSpecTest, UnknownOperatorType) {
  ExpectError(Replace(kBaseSpec, "type: filter", "type: fliter"), 10, 11,
              "unknown operator type 'fliter', expected one of filter, map, union, aggregate");
}

TEST_F(JobSpecTest, UnknownInputStreamListsKnownOnes) {
  ExpectError(Replace(kBaseSpec, "input: vitals", "input: vitalz"), 11, 12,
              "unknown input stream 'vitalz', known streams: vitals");
  ExpectError(Replace(kBaseSpec, "    input: valid\n", "    input: nothing\n"), 16, 12,
              "unknown input stream 'nothing', known streams: vitals, valid");
}

TEST_F(JobSpecTest, ForwardReferencesAndSinksAsInputs) {
  ExpectError(Replace(Replace(kBaseSpec, "input: vitals", "input: later"), "sinks:\n",
                      "  - {name: later, type: filter, input: vitals, where: hr > 1}\nsinks:\n"),
              11, 12, "operator 'valid': input 'later' is defined later in operators");
  ExpectError(Replace(kBaseSpec, "input: vitals", "input: valid"), 11, 12,
              "operator 'valid' cannot read its own output");
  ExpectError(Replace(kBaseSpec, "input: vitals", "input: out"), 11, 12,
              "input 'out' is a sink, which has no output stream");
}

TEST_F(JobSpecTest, DuplicateNames) {
  ExpectError(Replace(kBaseSpec, "name: valid", "name: vitals"), 9, 11,
              "duplicate name 'vitals': already used by source 'vitals'");
  ExpectError(Replace(kBaseSpec, "name: out", "name: valid"), 14, 11,
              "duplicate name 'valid': already used by filter 'valid'");
  ExpectError(Replace(kBaseSpec, "    format: csv\n", "    format: csv\n    dead_letter: valid\n"),
              10, 11, "already used by the dead_letter stream of source 'vitals'");
  ExpectError(Replace(kBaseSpec, "    format: csv\n", "    format: csv\n    dead_letter: vitals\n"),
              7, 18, "the dead_letter stream needs a name of its own");
}

TEST_F(JobSpecTest, FilterMustBeBool) {
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where: \"hr + 1\""), 12, 13,
              "where must be a bool expression, got int");
}

TEST_F(JobSpecTest, ExpressionErrorsPointInsideTheExpression) {
  // Quoted: the column of the quote, +1, + the offset of 'sp02' (11).
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where: \"hr > 0 AND sp02 > 1\""), 12,
              13 + 11, "sp02");
  // Plain.
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where: hr > 0 AND sp02 > 1"), 12, 12 + 11,
              "sp02");
  // Single-quoted with an escaped quote before the error: '' is one byte.
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where: 'patient_id = ''x'' AND sp02 > 1'"),
              12, 13 + 23, "sp02");
  // A block scalar: line and column of the second line.
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where: |\n      hr > 0\n      AND sp02 > 1"),
              14, 11, "sp02");
}

TEST_F(JobSpecTest, AggregateErrors) {
  const std::string agg = Replace(kBaseSpec, "sinks:\n",
                                  "  - name: totals\n"          // 13
                                  "    type: aggregate\n"       // 14
                                  "    input: valid\n"          // 15
                                  "    key_by: [patient_id]\n"  // 16
                                  "    aggregates:\n"           // 17
                                  "      n: count(*)\n"         // 18
                                  "      top: \"max(hr)\"\n"    // 19
                                  "sinks:\n");
  ASSERT_TRUE(Compile(agg).ok()) << Compile(agg).status();
  ExpectError(Replace(agg, "    key_by: [patient_id]\n", ""), 13, 5,
              "missing required field 'key_by' in operator 'totals'");
  ExpectError(Replace(agg, "key_by: [patient_id]", "key_by: [patient_id, pid]"), 16, 26,
              "unknown key_by field 'pid'");
  // max(hx): the argument starts at offset 4.
  ExpectError(Replace(agg, "\"max(hr)\"", "\"max(hx)\""), 19, 13 + 4, "hx");
  ExpectError(Replace(agg, "\"max(hr)\"", "\"sum(patient_id)\""), 19, 13 + 4,
              "sum needs an int or double argument, got string");
  ExpectError(Replace(agg, "      n: count(*)\n", "      patient_id: count(*)\n"), 18, 7,
              "output field 'patient_id' is defined twice");
  ExpectError(Replace(agg, "    input: valid\n", "    input: valid\n    partition: rebalance\n"),
              16, 5, "unknown field 'partition' in operator 'totals'");
}

TEST_F(JobSpecTest, AggregateChangelogAndRetractions) {
  const std::string spec = Replace(kBaseSpec, "sinks:\n",
                                   "  - name: totals\n"             // 13
                                   "    type: aggregate\n"          // 14
                                   "    input: valid\n"             // 15
                                   "    key_by: [patient_id]\n"     // 16
                                   "    aggregates:\n"              // 17
                                   "      n: count(*)\n"            // 18
                                   "      top: \"max(hr)\"\n"       // 19
                                   "    changelog: true\n"          // 20
                                   "  - name: overall\n"            // 21
                                   "    type: aggregate\n"          // 22
                                   "    input: totals\n"            // 23
                                   "    key_by: [n]\n"              // 24
                                   "    aggregates:\n"              // 25
                                   "      people: count(*)\n"       // 26
                                   "      avg_top: avg(top)\n"      // 27
                                   "    retract_field: retract\n"   // 28
                                   "sinks:\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex* totals = nullptr;
  const proto::JobVertex* overall = nullptr;
  for (const proto::JobVertex& v : graph->vertices()) {
    if (v.name() == "totals") totals = &v;
    if (v.name() == "overall") overall = &v;
  }
  ASSERT_TRUE(totals != nullptr && overall != nullptr);
  EXPECT_TRUE(totals->op().aggregate().changelog());
  EXPECT_EQ(Schema::FromProto(totals->output_schema()).DebugString(),
            "{patient_id: string, n: int, top: int, retract: bool}");
  EXPECT_EQ(overall->op().aggregate().retract_field(), "retract");
  EXPECT_FALSE(overall->op().aggregate().changelog());
  EXPECT_EQ(Schema::FromProto(overall->output_schema()).DebugString(), "{n: int, people: int, avg_top: double}");

  ExpectError(Replace(spec, "retract_field: retract", "retract_field: top"), 28, 20,
              "aggregate 'overall': retract_field 'top' is not a bool field, expected a bool field of");
  ExpectError(Replace(spec, "retract_field: retract", "retract_field: gone"), 28, 20,
              "retract_field 'gone' is not a field of the input");
  ExpectError(Replace(spec, "avg_top: avg(top)", "avg_top: max(top)"), 27, 16,
              "in aggregate 'avg_top': max cannot take a retracted row back out; with retract_field use "
              "count, sum or avg");
  ExpectError(Replace(spec, "      n: count(*)\n", "      retract: count(*)\n"), 20, 16,
              "changelog adds the output field 'retract'");
  ExpectError(Replace(spec, "changelog: true", "changelog: often"), 20, 16, "changelog");
  ExpectError(Replace(spec, "    changelog: true\n", "    changelog: true\n    state_ttl: 1h\n"), 21, 16,
              "aggregate 'totals': state_ttl cannot be combined with changelog");
  ExpectError(Replace(spec, "key_by: [n]", "key_by: [n, retract]"), 28, 20,
              "retract_field 'retract' is also a key_by field");
}

TEST_F(JobSpecTest, UnknownConnectorAndFormat) {
  ExpectError(Replace(kBaseSpec, "connector: file", "connector: kafka"), 4, 16,
              "unknown connector 'kafka' for source 'vitals', expected one of file, generator");
  ExpectError(Replace(kBaseSpec, "format: csv", "format: xml"), 6, 13,
              "unknown format 'xml', expected one of csv, jsonl");
  ExpectError(
      Replace(kBaseSpec, "connector: stdout", "connector: printer"), 15, 16,
      "unknown connector 'printer' for sink 'out', expected one of file, stdout, blackhole");
  ExpectError(Replace(kBaseSpec, "    input: valid\n", "    input: valid\n    format: xml\n"), 17,
              13, "unknown format 'xml', expected one of jsonl, csv");
}

TEST_F(JobSpecTest, MissingRequiredFields) {
  ExpectError(Replace(kBaseSpec, "    input: vitals\n", ""), 9, 5,
              "missing required field 'input' in operator 'valid'");
  ExpectError(Replace(kBaseSpec, "    where: \"hr > 0\"\n", ""), 9, 5,
              "missing required field 'where' in operator 'valid'");
  ExpectError(Replace(kBaseSpec, "    format: csv\n", ""), 3, 5,
              "missing required field 'format' in source 'vitals'");
  ExpectError(Replace(kBaseSpec, "name: j\n", ""), 1, 1, "missing required field 'name'");
  ExpectError(Replace(kBaseSpec, "    type: filter\n", ""), 9, 5,
              "missing required field 'type' in operator 'valid'");
}

TEST_F(JobSpecTest, MissingInputFile) {
  ExpectError(Replace(kBaseSpec, "path: vitals.csv", "path: nope.csv"), 5, 11,
              absl::StrCat("input file '", (dir_ / "nope.csv").string(), "' does not exist"));
}

TEST_F(JobSpecTest, BadSchemaType) {
  ExpectError(Replace(kBaseSpec, "hr: int,", "hr: integr,"), 7, 38,
              "schema field 'hr': unknown type 'integr', expected one of int, double, string, "
              "bool, timestamp");
}

TEST_F(JobSpecTest, BadValues) {
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nbuffer_timeout: 5 parsecs\n"), 2, 17,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'buffer_timeout'");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nparallelism: two\n"), 2, 14,
              "expected an integer for 'parallelism', got 'two'");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nparallelism: 200\n"), 2, 14,
              "parallelism must be in 1..128");
  ExpectError(Replace(kBaseSpec, "    input: vitals\n", "    input: vitals\n    partition: hash\n"),
              12, 16, "unknown partition 'hash'");
  ExpectError(Replace(kBaseSpec, "sinks:\n  - name: out\n    connector: stdout\n    input: valid\n",
                      "sinks: out\n"),
              13, 8, "expected a list of sinks for 'sinks', got 'out'");
}

TEST_F(JobSpecTest, WrongShapes) {
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where:"), 12, 5,
              "expected a string for 'where', got nothing");
  ExpectError(Replace(kBaseSpec, "where: \"hr > 0\"", "where: [hr]"), 12, 12,
              "expected a string for 'where', got a list");
  ExpectError(
      Replace(kBaseSpec,
              "  - name: valid\n    type: filter\n    input: vitals\n    where: \"hr > 0\"\n",
              "  - valid\n"),
      9, 5, "expected a mapping for operator #1, got 'valid'");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nname: k\n"), 2, 1,
              "field 'name' appears twice in the job spec");
  ExpectError(
      Replace(kBaseSpec, "    where: \"hr > 0\"\n", "    where: \"hr > 0\"\n    key_by: {a: 1}\n"),
      13, 13, "expected a list of names for 'key_by', got a mapping");
}

TEST_F(JobSpecTest, ForwardPartitionNeedsEqualParallelism) {
  ExpectError(Replace(kBaseSpec, "    input: vitals\n",
                      "    input: vitals\n    partition: forward\n    parallelism: 3\n"),
              12, 16, "partition forward needs equal parallelism");
}

TEST_F(JobSpecTest, UnionSchemasMustMatch) {
  std::string spec = Replace(kBaseSpec, "sinks:\n",
                             "  - name: m\n"                                                 // 13
                             "    type: map\n"                                               // 14
                             "    input: vitals\n"                                           // 15
                             "    select: {patient_id: patient_id, hr: hr, spo2: hr > 1}\n"  // 16
                             "  - name: both\n"                                              // 17
                             "    type: union\n"                                             // 18
                             "    inputs: [valid, m]\n"                                      // 19
                             "sinks:\n");
  ExpectError(spec, 19, 21, "field 'spo2' is bool in 'm' but int in 'valid'");
}

TEST_F(JobSpecTest, GeneratorKindMustFitType) {
  const std::string spec = R"yaml(name: gen
sources:
  - name: g
    connector: generator
    schema: {id: int, ok: bool}
    fields:
      ok: {kind: key}
sinks:
  - {name: out, connector: blackhole, input: g}
)yaml";
  ExpectError(spec, 7, 7,
              "kind key does not apply to a bool column, expected one of uniform, constant");
  ExpectError(Replace(spec, "{kind: key}", "{kinds: key}"), 7, 12,
              "unknown field 'kinds' in generator field 'ok'");
}

// ---- event time, windows and joins -----------------------------------------

std::string SchemaOf(const proto::Schema& schema) {
  return Schema::FromProto(schema).DebugString();
}

TEST_F(JobSpecTest, EventTimeExampleCompilesToVerticesEdgesAndSchemas) {
  absl::StatusOr<proto::JobGraph> graph = Compile(EventTimeSpec());
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->vertices_size(), 10);
  const std::vector<std::string> names = {
      "vitals",           "labs",    "wards", "per_minute", "vitals_with_labs",
      "vitals_with_ward", "minutes", "late",  "joined",     "enriched"};
  const std::vector<int> time_index = {1, 1, -1, 2, 1, 1, -1, -1, -1, -1};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(graph->vertices(i).name(), names[i]);
    EXPECT_EQ(graph->vertices(i).output_time_index(), time_index[i]) << names[i];
  }
  const std::string vitals = "{patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int}";
  const std::string labs = "{patient_id: string, ts: timestamp, test: string, value: double}";

  // Sources.
  const proto::SourceSpec& vs = graph->vertices(0).op().source();
  ASSERT_TRUE(vs.has_event_time());
  EXPECT_EQ(vs.event_time().field(), "ts");
  EXPECT_EQ(vs.event_time().field_index(), 1);
  EXPECT_EQ(vs.event_time().max_out_of_orderness_ms(), 5000);
  EXPECT_EQ(vs.event_time().idle_timeout_ms(), 0);
  EXPECT_EQ(vs.event_time().watermark_interval_ms(), 5) << "the default";
  const proto::SourceSpec& ls = graph->vertices(1).op().source();
  EXPECT_EQ(ls.event_time().max_out_of_orderness_ms(), 60000);
  EXPECT_EQ(ls.event_time().idle_timeout_ms(), 30000);
  EXPECT_EQ(ls.event_time().watermark_interval_ms(), 200);
  EXPECT_FALSE(graph->vertices(2).op().source().has_event_time());

  // The window.
  const proto::JobVertex& window = graph->vertices(3);
  ASSERT_TRUE(window.op().has_window());
  const proto::WindowSpec& w = window.op().window();
  EXPECT_THAT(w.key_by(), ::testing::ElementsAre("patient_id"));
  EXPECT_EQ(w.kind(), "tumbling");
  EXPECT_EQ(w.size_ms(), 60000);
  EXPECT_EQ(w.slide_ms(), 0);
  EXPECT_EQ(w.gap_ms(), 0);
  EXPECT_EQ(w.allowed_lateness_ms(), 0);
  EXPECT_EQ(w.late_output(), "vitals_late");
  EXPECT_FALSE(w.processing_time());
  EXPECT_EQ(w.time_field_index(), 1);
  ASSERT_EQ(w.aggregates_size(), 4);
  EXPECT_EQ(w.aggregates(0).name(), "readings");
  EXPECT_EQ(w.aggregates(0).func(), "count");
  EXPECT_EQ(w.aggregates(1).func(), "avg");
  EXPECT_EQ(w.aggregates(2).func(), "min");
  EXPECT_EQ(w.aggregates(2).arg(), "spo2");
  EXPECT_EQ(w.aggregates(3).name(), "hr_p95");
  EXPECT_EQ(w.aggregates(3).func(), "percentile");
  EXPECT_EQ(w.aggregates(3).arg(), "hr");
  EXPECT_DOUBLE_EQ(w.aggregates(3).param(), 0.95);
  EXPECT_EQ(SchemaOf(window.input_schema()), vitals);
  EXPECT_EQ(SchemaOf(window.output_schema()),
            "{patient_id: string, window_start: timestamp, window_end: timestamp, readings: int, "
            "hr_avg: double, spo2_min: int, hr_p95: double}");

  // The interval join.
  const proto::JobVertex& ij = graph->vertices(4);
  ASSERT_TRUE(ij.op().has_interval_join());
  const proto::IntervalJoinSpec& j = ij.op().interval_join();
  EXPECT_THAT(j.left_key(), ::testing::ElementsAre("patient_id"));
  EXPECT_THAT(j.right_key(), ::testing::ElementsAre("patient_id"));
  EXPECT_EQ(j.lower_ms(), -30 * 60 * 1000);
  EXPECT_EQ(j.upper_ms(), 0);
  EXPECT_EQ(j.left_time_index(), 1);
  EXPECT_EQ(j.right_time_index(), 1);
  EXPECT_EQ(SchemaOf(ij.input_schema()), vitals);
  EXPECT_EQ(SchemaOf(ij.second_input_schema()), labs);
  EXPECT_EQ(SchemaOf(ij.output_schema()),
            "{patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int, "
            "labs_patient_id: string, labs_ts: timestamp, test: string, value: double}");

  // The broadcast join.
  const proto::JobVertex& bj = graph->vertices(5);
  ASSERT_TRUE(bj.op().has_broadcast_join());
  EXPECT_THAT(bj.op().broadcast_join().main_key(), ::testing::ElementsAre("patient_id"));
  EXPECT_THAT(bj.op().broadcast_join().broadcast_key(), ::testing::ElementsAre("patient_id"));
  EXPECT_EQ(SchemaOf(bj.second_input_schema()), "{patient_id: string, ward: string}");
  EXPECT_EQ(SchemaOf(bj.output_schema()),
            "{patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int, ward: string}");

  // The late records' sink reads the window's input schema.
  EXPECT_EQ(SchemaOf(graph->vertices(7).input_schema()), vitals);

  struct ExpectedEdge {
    int source, target;
    proto::Partitioning partitioning;
    std::vector<int> key_fields;
    std::string side_output;
    int target_input;
  };
  const std::vector<ExpectedEdge> expected = {
      {0, 3, proto::HASH, {0}, "", 0},      // vitals -> per_minute
      {0, 4, proto::HASH, {0}, "", 0},      // vitals -> vitals_with_labs (left)
      {1, 4, proto::HASH, {0}, "", 1},      // labs -> vitals_with_labs (right)
      {0, 5, proto::FORWARD, {}, "", 0},    // vitals -> vitals_with_ward (main)
      {2, 5, proto::BROADCAST, {}, "", 1},  // wards -> vitals_with_ward (broadcast)
      {3, 6, proto::FORWARD, {}, "", 0},    // per_minute -> minutes
      {3, 7, proto::FORWARD, {}, "late", 0}, {4, 8, proto::FORWARD, {}, "", 0},
      {5, 9, proto::FORWARD, {}, "", 0},
  };
  ASSERT_EQ(graph->edges_size(), static_cast<int>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    const proto::JobEdge& e = graph->edges(static_cast<int>(i));
    const ExpectedEdge& x = expected[i];
    EXPECT_EQ(e.source(), x.source) << "edge " << i;
    EXPECT_EQ(e.target(), x.target) << "edge " << i;
    EXPECT_EQ(e.partitioning(), x.partitioning) << "edge " << i;
    EXPECT_EQ(std::vector<int>(e.key_fields().begin(), e.key_fields().end()), x.key_fields)
        << "edge " << i;
    EXPECT_EQ(e.side_output(), x.side_output) << "edge " << i;
    EXPECT_EQ(e.target_input(), x.target_input) << "edge " << i;
  }
}

TEST_F(JobSpecTest, SlidingAndSessionWindows) {
  const std::string tumbling = "{kind: tumbling, size: 1m}";
  absl::StatusOr<proto::JobGraph> graph =
      Compile(Replace(EventTimeSpec(), tumbling, "{kind: sliding, size: 5m, slide: 1m}"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(3).op().window().kind(), "sliding");
  EXPECT_EQ(graph->vertices(3).op().window().size_ms(), 300000);
  EXPECT_EQ(graph->vertices(3).op().window().slide_ms(), 60000);

  // A slide need not divide the size.
  graph = Compile(Replace(EventTimeSpec(), tumbling, "{kind: sliding, size: 5m, slide: 2m}"));
  ASSERT_TRUE(graph.ok()) << graph.status();

  graph = Compile(Replace(EventTimeSpec(), tumbling, "{kind: session, gap: 2m}"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(3).op().window().kind(), "session");
  EXPECT_EQ(graph->vertices(3).op().window().gap_ms(), 120000);
  EXPECT_EQ(graph->vertices(3).op().window().size_ms(), 0);
}

TEST_F(JobSpecTest, ProcessingTimeWindowNeedsNoEventTime) {
  std::string spec = Replace(kBaseSpec, "sinks:\n",
                             "  - name: counts\n"
                             "    type: window\n"
                             "    input: valid\n"
                             "    key_by: patient_id\n"
                             "    window: {kind: tumbling, size: 10s}\n"
                             "    time: processing\n"
                             "    aggregates: {n: count(*), first_hr: first(hr), "
                             "hr_sd: stddev(hr)}\n"
                             "    parallelism: 3\n"
                             "sinks:\n");
  spec = Replace(spec, "    connector: stdout\n    input: valid\n",
                 "    connector: stdout\n    input: counts\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& w = graph->vertices(2);
  EXPECT_TRUE(w.op().window().processing_time());
  EXPECT_EQ(w.op().window().time_field_index(), -1);
  EXPECT_EQ(w.parallelism(), 3);
  EXPECT_EQ(w.output_time_index(), 2);  // window_end
  EXPECT_EQ(SchemaOf(w.output_schema()),
            "{patient_id: string, window_start: timestamp, window_end: timestamp, n: int, "
            "first_hr: int, hr_sd: double}");
  EXPECT_EQ(graph->vertices(0).output_time_index(), -1);
  EXPECT_EQ(graph->vertices(1).output_time_index(), -1);
  EXPECT_EQ(graph->edges(1).partitioning(), proto::HASH);
}

TEST_F(JobSpecTest, EventTimeFollowsFiltersMapsAndUnions) {
  const std::string spec = absl::StrCat(R"yaml(name: t
sources:
  - name: a
    connector: generator
    count: 10
    schema: {k: string, ts: timestamp, v: int}
    event_time: {field: ts, idle_timeout: 1m}
  - name: b
    connector: file
    path: )yaml",
                                        vitals_, R"yaml(
    format: csv
    schema: {k: string, ts: timestamp, v: int}
    event_time: {field: ts}
    dead_letter: b_bad
operators:
  - {name: f, type: filter, input: a, where: v > 1}
  - {name: moved, type: map, input: f, select: {v: v, t: " `ts` ", k: k}}
  - {name: computed, type: map, input: f, select: {k: k, ts: ts + 1}}
  - {name: u, type: union, inputs: [a, b]}
  - {name: running, type: aggregate, input: u, key_by: k, aggregates: {n: count(*), l: last(v)}}
  - name: w
    type: window
    input: moved
    key_by: k
    window: {kind: session, gap: 5s}
    allowed_lateness: 1m
    late_output: too_late
    aggregates: {n: count(*)}
  - {name: late_v, type: filter, input: too_late, where: v > 0}
sinks:
  - {name: o1, connector: blackhole, input: computed}
  - {name: o2, connector: blackhole, input: running}
  - {name: o3, connector: blackhole, input: w}
  - {name: o4, connector: blackhole, input: late_v}
  - {name: o5, connector: blackhole, input: b_bad}
)yaml");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  std::map<std::string, int> time;
  for (const proto::JobVertex& v : graph->vertices()) time[v.name()] = v.output_time_index();
  EXPECT_EQ(time["a"], 1);
  EXPECT_EQ(time["b"], 1);
  EXPECT_EQ(time["f"], 1);
  EXPECT_EQ(time["moved"], 1);      // " `ts` " is the field itself, now second
  EXPECT_EQ(time["computed"], -1);  // ts + 1 is not
  EXPECT_EQ(time["u"], 1);
  EXPECT_EQ(time["running"], -1);
  EXPECT_EQ(time["w"], 2);
  EXPECT_EQ(time["late_v"], 1);  // the late stream has the window's input schema and time
  EXPECT_EQ(time["o1"], -1);
  const proto::SourceSpec& a = graph->vertices(0).op().source();
  EXPECT_EQ(a.event_time().idle_timeout_ms(), 60000);
  const proto::JobVertex& w = graph->vertices(7);
  EXPECT_EQ(w.op().window().allowed_lateness_ms(), 60000);
  EXPECT_EQ(w.op().window().time_field_index(), 1);
  EXPECT_EQ(SchemaOf(graph->vertices(8).input_schema()), "{v: int, t: timestamp, k: string}");
  EXPECT_EQ(SchemaOf(graph->vertices(6).output_schema()), "{k: string, n: int, l: int}");
}

TEST_F(JobSpecTest, IntervalJoinWithLeftAndRightKeys) {
  std::string spec = Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                             "    left_key: [patient_id, ts]\n    right_key: [patient_id, ts]\n"
                             "    between");
  spec = Replace(spec, "between: [-30m, 0s]", "between: [-1h, 90s]");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& j = graph->vertices(3);
  EXPECT_THAT(j.op().interval_join().left_key(), ::testing::ElementsAre("patient_id", "ts"));
  EXPECT_EQ(j.op().interval_join().lower_ms(), -3600000);
  EXPECT_EQ(j.op().interval_join().upper_ms(), 90000);
  EXPECT_EQ(SchemaOf(j.output_schema()),
            "{patient_id: string, ts: timestamp, hr: int, labs_patient_id: string, "
            "labs_ts: timestamp, value: double}");
  // Edges hash each side on its own key fields.
  EXPECT_EQ(graph->edges(1).target_input(), 0);
  EXPECT_THAT(graph->edges(1).key_fields(), ::testing::ElementsAre(0, 1));
  EXPECT_EQ(graph->edges(2).target_input(), 1);
  EXPECT_THAT(graph->edges(2).key_fields(), ::testing::ElementsAre(0, 1));
}

TEST_F(JobSpecTest, BroadcastJoinKeysAndPartition) {
  std::string spec = absl::StrCat(R"yaml(name: b
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: )yaml",
                                  vitals_, R"yaml(
    format: csv
    schema: {patient_id: string, ts: timestamp, hr: int}
  - name: wards
    connector: file
    path: )yaml",
                                  wards_, R"yaml(
    format: csv
    schema: {pid: string, ward: string, hr: int}
    parallelism: 1
operators:
  - name: enriched
    type: broadcast_join
    input: vitals
    broadcast: wards
    main_key: [patient_id]
    broadcast_key: [pid]
    partition: rebalance
sinks:
  - {name: out, connector: stdout, input: enriched}
)yaml");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& j = graph->vertices(2);
  EXPECT_EQ(SchemaOf(j.output_schema()),
            "{patient_id: string, ts: timestamp, hr: int, ward: string, wards_hr: int}");
  EXPECT_EQ(j.output_time_index(), -1);
  ASSERT_EQ(graph->edges_size(), 3);
  EXPECT_EQ(graph->edges(0).partitioning(), proto::REBALANCE);
  EXPECT_EQ(graph->edges(0).target_input(), 0);
  EXPECT_EQ(graph->edges(1).partitioning(), proto::BROADCAST);
  EXPECT_EQ(graph->edges(1).target_input(), 1);
}

TEST_F(JobSpecTest, WindowSpecCompiles) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kWindowSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
}

TEST_F(JobSpecTest, EventTimeErrors) {
  ExpectError(Replace(kWindowSpec, "{field: ts, max", "{field: tz, max"), 8, 25,
              "source 'vitals': event_time field 'tz' is not in the schema {patient_id: string, "
              "ts: timestamp, hr: int}");
  ExpectError(Replace(kWindowSpec, "{field: ts, max", "{field: hr, max"), 8, 25,
              "source 'vitals': event_time field 'hr' must be a timestamp, got int");
  ExpectError(Replace(kWindowSpec, "{field: ts, max_out_of_orderness: 5s}", "ts"), 8, 17,
              "expected a mapping for event_time of source 'vitals', got 'ts'");
  ExpectError(Replace(kWindowSpec, "max_out_of_orderness: 5s", "max_delay: 5s"), 8, 29,
              "unknown field 'max_delay' in event_time of source 'vitals', expected one of "
              "field, max_out_of_orderness, idle_timeout, watermark_interval, alignment");
  ExpectError(Replace(kWindowSpec, "max_out_of_orderness: 5s", "max_out_of_orderness: -5s"), 8, 51,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'max_out_of_orderness'");
  ExpectError(
      Replace(kWindowSpec, "{field: ts, max_out_of_orderness: 5s}", "{max_out_of_orderness: 5s}"),
      8, 17, "missing required field 'field' in event_time of source 'vitals'");
}

TEST_F(JobSpecTest, WatermarkAlignment) {
  const std::string aligned = Replace(kWindowSpec, "{field: ts, max_out_of_orderness: 5s}",
                                      "{field: ts, max_out_of_orderness: 5s, alignment: {group: feeds, max_drift: 30s}}");
  absl::StatusOr<proto::JobGraph> graph = Compile(aligned);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::EventTimeSpec& et = graph->vertices(0).op().source().event_time();
  EXPECT_EQ(et.alignment_group(), "feeds");
  EXPECT_EQ(et.alignment_max_drift_ms(), 30000);
  EXPECT_EQ(et.alignment_update_interval_ms(), 100) << "the default";
  graph = Compile(Replace(aligned, "max_drift: 30s}", "max_drift: 30s, update_interval: 20ms}"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().event_time().alignment_update_interval_ms(), 20);
  graph = Compile(kWindowSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).op().source().event_time().alignment_group(), "") << "off by default";

  ExpectError(Replace(aligned, ", max_drift: 30s}", "}"), 8, 66,
              "alignment in event_time of source 'vitals' needs max_drift");
  ExpectError(Replace(aligned, "max_drift: 30s", "max_drift: 0s"), 8, 92, "max_drift must be above 0");
  ExpectError(Replace(aligned, "max_drift: 30s", "max_drift: 30s, update_interval: 0s"), 8, 114,
              "update_interval must be above 0");
  ExpectError(Replace(aligned, "group: feeds, ", ""), 8, 66,
              "missing required field 'group' in alignment in event_time of source 'vitals'");
  ExpectError(Replace(aligned, "max_drift: 30s", "drift: 30s"), 8, 81,
              "unknown field 'drift' in alignment in event_time of source 'vitals', expected one of group, "
              "max_drift, update_interval");
}

TEST_F(JobSpecTest, WindowErrors) {
  ExpectError(Replace(kWindowSpec, "    event_time: {field: ts, max_out_of_orderness: 5s}\n",
                      "    max_rate: 0\n"),
              18, 12,
              "window 'per_minute' needs event time, but its input 'vitals' has none: declare "
              "event_time on its source, or set time: processing");
  ExpectError(Replace(kWindowSpec, "size: 1m}", "size: 0s}"), 20, 36,
              "window 'per_minute': a tumbling window needs a size > 0, got 0s");
  ExpectError(Replace(kWindowSpec, "kind: tumbling", "kind: hopping"), 20, 20,
              "unknown window kind 'hopping', expected one of tumbling, sliding, session");
  ExpectError(
      Replace(kWindowSpec, "{kind: tumbling, size: 1m}", "{kind: sliding, size: 1m, slide: 2m}"),
      20, 46, "window 'per_minute': slide 2m must not exceed size 1m");
  ExpectError(Replace(kWindowSpec, "{kind: tumbling, size: 1m}", "{kind: sliding, size: 1m}"), 20,
              13, "missing required field 'slide' in a sliding window");
  ExpectError(Replace(kWindowSpec, "{kind: tumbling, size: 1m}", "{kind: session, size: 1m}"), 20,
              29, "unknown field 'size' in a session window, expected one of kind, gap");
  ExpectError(Replace(kWindowSpec, "{kind: tumbling, size: 1m}", "{kind: session, gap: 0s}"), 20,
              34, "window 'per_minute': a session window needs a gap > 0, got 0s");
  ExpectError(Replace(kWindowSpec, "{kind: tumbling, size: 1m}", "1m"), 20, 13,
              "expected a mapping for the window of operator 'per_minute', got '1m'");
  ExpectError(
      Replace(kWindowSpec, "    window: {kind: tumbling, size: 1m}\n", "    parallelism: 2\n"), 16,
      5, "missing required field 'window' in operator 'per_minute'");
  ExpectError(Replace(kWindowSpec, "allowed_lateness: 0s", "time: sometimes"), 21, 11,
              "unknown time 'sometimes', expected one of event, processing");
  ExpectError(Replace(Replace(kWindowSpec, "late_output: vitals_late", "time: processing"),
                      "allowed_lateness: 0s", "allowed_lateness: 1m"),
              21, 23,
              "window 'per_minute': allowed_lateness applies only to time: event; nothing is late "
              "in processing time");
  ExpectError(Replace(kWindowSpec, "allowed_lateness: 0s", "time: processing"), 22, 18,
              "window 'per_minute': late_output applies only to time: event");
  ExpectError(Replace(kWindowSpec, "late_output: vitals_late", "late_output: labs"), 22, 18,
              "duplicate name 'labs': already used by source 'labs'");
  ExpectError(Replace(kWindowSpec, "late_output: vitals_late", "late_output: per_minute"), 22, 18,
              "window 'per_minute': the late_output stream needs a name of its own");
  ExpectError(Replace(kWindowSpec, "late_output: vitals_late", "late_output: [a]"), 22, 18,
              "expected a string for 'late_output', got a list");
  ExpectError(Replace(kWindowSpec, "{readings: \"count(*)\"", "{window_end: \"count(*)\""), 23, 18,
              "window 'per_minute': output field 'window_end' is defined twice (a window's output "
              "is its key fields, window_start, window_end, then its aggregates)");
  ExpectError(Replace(kWindowSpec, "\"avg(hr)\"", "\"percentile(hr, 2)\""), 23, 48 + 16,
              "window 'per_minute': in aggregate 'hr_avg': percentile's quantile must be in (0, "
              "1], got 2");
  ExpectError(Replace(kWindowSpec, "\"avg(hr)\"", "\"stddev(patient_id)\""), 23, 48 + 8,
              "stddev needs an int or double argument, got string");
  ExpectError(Replace(kWindowSpec, "\"avg(hr)\"", "\"max(hr, 1)\""), 23, 48 + 7,
              "max takes one argument");
  ExpectError(
      Replace(kWindowSpec, "    aggregates: {readings: \"count(*)\", hr_avg: \"avg(hr)\"}\n",
              "    aggregates: {}\n"),
      23, 17, "window 'per_minute': aggregates names no aggregate");
  ExpectError(Replace(kWindowSpec, "key_by: [patient_id]\n    window", "key_by: [pid]\n    window"),
              19, 14, "window 'per_minute': unknown key_by field 'pid'");
  ExpectError(Replace(kWindowSpec, "    input: vitals\n    key_by",
                      "    input: vitals\n    partition: forward\n    key_by"),
              19, 5, "unknown field 'partition' in operator 'per_minute'");
  ExpectError(
      Replace(kWindowSpec, "    input: vitals\n    key_by", "    inputs: [vitals]\n    key_by"), 18,
      5, "unknown field 'inputs' in operator 'per_minute'");
}

TEST_F(JobSpecTest, LateOutputIsAStreamLikeAnyOther) {
  // Read before it is defined.
  std::string spec = Replace(kWindowSpec, "operators:\n",
                             "operators:\n  - {name: early, type: filter, input: vitals_late, "
                             "where: hr > 0}\n");
  ExpectError(spec, 16, 40, "operator 'early': input 'vitals_late' is defined later in operators");
  // Read by its own window.
  ExpectError(Replace(kWindowSpec, "input: vitals\n    key_by", "input: vitals_late\n    key_by"),
              18, 12, "operator 'per_minute' cannot read its own late_output");
  // A later operator reads it.
  spec = Replace(kWindowSpec, "sinks:\n",
                 "  - {name: lv, type: filter, input: vitals_late, where: hr > 0}\nsinks:\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(4).name(), "lv");
  EXPECT_EQ(graph->vertices(4).output_time_index(), 1);
  EXPECT_EQ(graph->edges(3).source(), 2);
  EXPECT_EQ(graph->edges(3).side_output(), "late");
}

TEST_F(JobSpecTest, IntervalJoinErrors) {
  ExpectError(Replace(kWindowSpec, "    event_time: {field: ts}\n", "    max_rate: 0\n"), 27, 12,
              "interval_join 'joined' needs event time on both inputs, but its right input 'labs' "
              "has none: declare event_time on its source");
  ExpectError(Replace(kWindowSpec, "between: [-30m, 0s]", "between: [0s, -30m]"), 29, 14,
              "interval_join 'joined': between's lower bound 0s is greater than its upper bound "
              "-30m");
  ExpectError(Replace(kWindowSpec, "between: [-30m, 0s]", "between: [-30m]"), 29, 14,
              "expected [lower, upper] for 'between', two durations such as [-30m, 0s], got a list "
              "of 1");
  ExpectError(Replace(kWindowSpec, "between: [-30m, 0s]", "between: 30m"), 29, 14,
              "expected [lower, upper] for 'between'");
  ExpectError(Replace(kWindowSpec, "between: [-30m, 0s]", "between: [-30m, soon]"), 29, 21,
              "expected a duration such as -30m, 0s, 5ms, 1s, 2m or 1h for 'between', got 'soon'");
  ExpectError(Replace(kWindowSpec, "    between: [-30m, 0s]\n", "    parallelism: 1\n"), 24, 5,
              "missing required field 'between' in operator 'joined'");
  ExpectError(
      Replace(kWindowSpec, "ts: timestamp, hr: int}", "ts: timestamp, hr: int, labs_ts: int}"), 27,
      12,
      "interval_join 'joined': the right field 'ts' is renamed 'labs_ts' because the left "
      "input has a 'ts', but that name is taken too");
  ExpectError(Replace(kWindowSpec, "schema: {patient_id: string, ts: timestamp, value",
                      "schema: {patient_id: int, ts: timestamp, value"),
              28, 14,
              "interval_join 'joined': key field 'patient_id' is int in 'labs' but 'patient_id' "
              "is string in 'vitals'; keys must have the same types");
  ExpectError(Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                      "    left_key: [patient_id, hr]\n    right_key: [patient_id]\n    between"),
              29, 16, "interval_join 'joined': left_key has 2 fields but right_key has 1");
  ExpectError(Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                      "    left_key: [patient_id]\n    right_key: [value]\n    between"),
              29, 17,
              "key field 'value' is double in 'labs' but 'patient_id' is string in 'vitals'");
  ExpectError(Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                      "    left_key: [patient_id]\n    right_key: [pid]\n    between"),
              29, 17, "unknown key field 'pid' in the right input 'labs'");
  ExpectError(Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                      "    key_by: [patient_id]\n    left_key: [patient_id]\n    between"),
              29, 15,
              "interval_join 'joined': set either key_by or left_key and right_key, not both");
  ExpectError(Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                      "    left_key: [patient_id]\n    between"),
              28, 15, "interval_join 'joined': left_key needs right_key");
  ExpectError(Replace(kWindowSpec, "    key_by: [patient_id]\n    between",
                      "    parallelism: 1\n    between"),
              24, 5, "interval_join 'joined': needs key_by, or left_key and right_key");
  ExpectError(Replace(kWindowSpec, "right: labs", "right: lab"), 27, 12,
              "interval_join 'joined': unknown input stream 'lab', known streams: vitals, labs, "
              "per_minute, vitals_late");
  ExpectError(Replace(kWindowSpec, "    right: labs\n", "    input: labs\n"), 27, 5,
              "unknown field 'input' in operator 'joined', expected one of name, type, left, "
              "right, key_by, left_key, right_key, between, parallelism");
}

TEST_F(JobSpecTest, BroadcastJoinErrors) {
  const std::string base = Replace(kWindowSpec, "sinks:\n",
                                   "  - name: bj\n"              // 30
                                   "    type: broadcast_join\n"  // 31
                                   "    input: vitals\n"         // 32
                                   "    broadcast: labs\n"       // 33
                                   "    key_by: [patient_id]\n"  // 34
                                   "sinks:\n");
  ASSERT_TRUE(Compile(base).ok()) << Compile(base).status();
  ExpectError(Replace(base, "broadcast: labs", "broadcast: lab"), 33, 16,
              "broadcast_join 'bj': unknown input stream 'lab'");
  ExpectError(Replace(base, "    key_by: [patient_id]\nsinks",
                      "    main_key: [hr]\n"
                      "    broadcast_key: [patient_id]\n"
                      "sinks"),
              35, 21,
              "broadcast_join 'bj': key field 'patient_id' is string in 'labs' but 'hr' is int "
              "in 'vitals'");
  ExpectError(Replace(base, "    key_by: [patient_id]\nsinks",
                      "    key_by: [patient_id]\n"
                      "    partition: forward\n"
                      "    parallelism: 2\nsinks"),
              35, 16, "partition forward needs equal parallelism");
  ExpectError(Replace(base, "    broadcast: labs\n", "    right: labs\n"), 33, 5,
              "unknown field 'right' in operator 'bj'");
}

TEST_F(JobSpecTest, UnionInputsMustAgreeOnEventTime) {
  const std::string spec =
      Replace(kWindowSpec, "operators:\n",
              "  - name: more\n"                                            // 15
              "    connector: generator\n"                                  // 16
              "    schema: {patient_id: string, ts: timestamp, hr: int}\n"  // 17
              "operators:\n"                                                // 18
              "  - {name: u, type: union, inputs: [vitals, more]}\n");      // 19
  ExpectError(spec, 19, 45,
              "union 'u': inputs must agree on event time, but 'more' has none and 'vitals' has "
              "event time 'ts'");
}

TEST_F(JobSpecTest, NewOperatorTypesAreListed) {
  ExpectError(Replace(kBaseSpec, "type: filter", "type: join"), 10, 11,
              "unknown operator type 'join', expected one of filter, map, union, aggregate, "
              "window, interval_join, broadcast_join, process");
}

TEST_F(JobSpecTest, RunningAggregateTakesTheNewFunctions) {
  const std::string spec =
      Replace(kBaseSpec, "sinks:\n",
              "  - name: totals\n"
              "    type: aggregate\n"
              "    input: valid\n"
              "    key_by: [patient_id]\n"
              "    aggregates: {f: first(hr), l: last(patient_id), sd: stddev(spo2), "
              "p: \"percentile(hr, 0.5)\"}\n"
              "sinks:\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& agg = graph->vertices(2);
  EXPECT_EQ(SchemaOf(agg.output_schema()),
            "{patient_id: string, f: int, l: string, sd: double, p: double}");
  EXPECT_DOUBLE_EQ(agg.op().aggregate().aggregates(3).param(), 0.5);
  EXPECT_EQ(agg.output_time_index(), -1);
}

// kWindowSpec with a process operator (lines 30-37) and sinks for its
// output and dead letters.
std::string ProcessSpec() {
  std::string spec = Replace(kWindowSpec, "sinks:\n",
                             "  - name: silent\n"                                    // 30
                             "    type: process\n"                                   // 31
                             "    input: vitals\n"                                   // 32
                             "    key_by: [patient_id]\n"                            // 33
                             "    function: no_data_alert\n"                         // 34
                             "    params: {timeout: 5m, wall_clock_timeout: 10m}\n"  // 35
                             "    state_ttl: 1h\n"                                   // 36
                             "    dead_letter: silent_bad\n"                         // 37
                             "sinks:\n");                                            // 38
  return Replace(spec, "  - {name: j, connector: stdout, input: joined}\n",
                 "  - {name: j, connector: stdout, input: joined}\n"
                 "  - {name: alerts, connector: stdout, input: silent}\n"
                 "  - {name: bad, connector: stdout, input: silent_bad}\n");
}

TEST_F(JobSpecTest, ProcessCompilesToAKeyedVertexWithTheFunctionsSchema) {
  absl::StatusOr<proto::JobGraph> graph = Compile(ProcessSpec());
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& v = graph->vertices(4);
  ASSERT_EQ(v.name(), "silent");
  ASSERT_TRUE(v.op().has_process());
  const proto::ProcessSpec& p = v.op().process();
  EXPECT_EQ(p.function(), "no_data_alert");
  EXPECT_EQ(p.params().size(), 2u);
  EXPECT_EQ(p.params().at("timeout"), "5m");
  EXPECT_EQ(p.params().at("wall_clock_timeout"), "10m");
  EXPECT_EQ(p.key_by_size(), 1);
  EXPECT_EQ(p.state_ttl_ms(), 3'600'000);
  EXPECT_EQ(p.time_field_index(), 1);
  EXPECT_FALSE(p.declared_output_schema());
  EXPECT_EQ(SchemaOf(v.output_schema()),
            "{patient_id: string, last_ts: timestamp, alert_ts: timestamp, kind: string}");
  EXPECT_EQ(v.output_time_index(), 2);  // alert_ts
  bool keyed_input = false, dead_letters = false;
  for (const proto::JobEdge& e : graph->edges()) {
    if (e.target() == v.id()) {
      keyed_input =
          e.partitioning() == proto::HASH && e.key_fields_size() == 1 && e.key_fields(0) == 0;
    }
    if (e.source() == v.id() && e.side_output() == kDeadLetterOutput) dead_letters = true;
  }
  EXPECT_TRUE(keyed_input) << "the input is hash-partitioned on key_by";
  EXPECT_TRUE(dead_letters) << "dead_letter is a side output of the process vertex";
}

TEST_F(JobSpecTest, ProcessOfAFunctionOnlyACustomTaskManagerKnowsDeclaresItsOutput) {
  std::string spec = Replace(ProcessSpec(), "function: no_data_alert", "function: first_reading");
  spec = Replace(spec, "    params: {timeout: 5m, wall_clock_timeout: 10m}\n",
                 "    output_schema: {patient_id: string, ts: timestamp, hr: int}\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& v = graph->vertices(4);
  EXPECT_EQ(v.op().process().function(), "first_reading");
  EXPECT_TRUE(v.op().process().declared_output_schema());
  EXPECT_EQ(SchemaOf(v.output_schema()), "{patient_id: string, ts: timestamp, hr: int}");
  EXPECT_EQ(v.output_time_index(), -1) << "a declared schema has no event time";
}

TEST_F(JobSpecTest, ProcessErrors) {
  const std::string base = ProcessSpec();
  ExpectError(Replace(base, "function: no_data_alert", "function: no_data"), 34, 15,
              "process 'silent': unknown process function 'no_data', expected one of alert, dedup, news2, no_data_alert, pattern, pseudonymize, qsofa, score_model "
              "(or declare output_schema for a function of a custom TaskManager)");
  ExpectError(Replace(base, "{timeout: 5m,", "{timeout: soon,"), 35, 23,
              "process 'silent': function 'no_data_alert': param 'timeout': expected a duration "
              "such as 5ms, 1s, 2m or 1h, got 'soon'");
  ExpectError(Replace(base, "{timeout: 5m,", "{timeout: 5m, colour: red,"), 35, 35,
              "process 'silent': function 'no_data_alert': unknown param 'colour', expected one of "
              "timeout, wall_clock_timeout");
  ExpectError(Replace(base, "{timeout: 5m, ", "{"), 35, 13,
              "process 'silent': function 'no_data_alert': missing required param 'timeout'");
  ExpectError(Replace(base, "    params: {timeout: 5m, wall_clock_timeout: 10m}\n", ""), 30, 5,
              "process 'silent': function 'no_data_alert': missing required param 'timeout'");
  ExpectError(Replace(base, "{timeout: 5m,", "{timeout: [5m],"), 35, 23,
              "expected a value for param 'timeout', got a list");
  ExpectError(Replace(base, "params: {timeout: 5m, wall_clock_timeout: 10m}", "params: 5m"), 35, 13,
              "expected a mapping for the params of operator 'silent', got '5m'");
  ExpectError(Replace(kBaseSpec, "sinks:\n",
                      "  - name: silent\n"             // 13
                      "    type: process\n"            // 14
                      "    input: valid\n"             // 15
                      "    key_by: [patient_id]\n"     // 16
                      "    function: no_data_alert\n"  // 17
                      "    params: {timeout: 5m}\n"    // 18
                      "sinks:\n"),
              17, 15,
              "process 'silent': function 'no_data_alert': the input has no event time: declare "
              "event_time on its source");
  ExpectError(Replace(base, "state_ttl: 1h", "state_ttl: soon"), 36, 16,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'state_ttl', got 'soon'");
  ExpectError(
      Replace(base, "    state_ttl: 1h\n", "    output_schema: {patient_id: string, n: int}\n"), 36,
      20,
      "process 'silent': output_schema {patient_id: string, n: int} differs from "
      "{patient_id: string, last_ts: timestamp, alert_ts: timestamp, kind: string}, what "
      "function 'no_data_alert' produces");
  ExpectError(Replace(base, "    function: no_data_alert\n", ""), 30, 5,
              "missing required field 'function' in operator 'silent'");
  ExpectError(Replace(base, "    key_by: [patient_id]\n    function", "    function"), 30, 5,
              "missing required field 'key_by' in operator 'silent'");
  ExpectError(
      Replace(base, "    key_by: [patient_id]\n    function", "    key_by: [pid]\n    function"),
      33, 14, "process 'silent': unknown key_by field 'pid'");
  ExpectError(Replace(base, "dead_letter: silent_bad", "dead_letter: labs"), 37, 18,
              "duplicate name 'labs': already used by source 'labs'");
  ExpectError(Replace(base, "    state_ttl: 1h\n", "    partition: forward\n"), 36, 5,
              "unknown field 'partition' in operator 'silent', expected one of name, type, input, "
              "key_by, function, params, output_schema, state_ttl, dead_letter, parallelism");
}

TEST_F(JobSpecTest, StateTtlOfARunningAggregate) {
  const std::string agg = Replace(kBaseSpec, "sinks:\n",
                                  "  - name: totals\n"               // 13
                                  "    type: aggregate\n"            // 14
                                  "    input: valid\n"               // 15
                                  "    key_by: [patient_id]\n"       // 16
                                  "    aggregates: {n: count(*)}\n"  // 17
                                  "    state_ttl: 30m\n"             // 18
                                  "sinks:\n");
  absl::StatusOr<proto::JobGraph> graph = Compile(agg);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(2).op().aggregate().state_ttl_ms(), 30 * 60 * 1000);
  graph = Compile(Replace(agg, "    state_ttl: 30m\n", ""));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(2).op().aggregate().state_ttl_ms(), 0) << "kept forever by default";
  ExpectError(Replace(agg, "state_ttl: 30m", "state_ttl: -30m"), 18, 16,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'state_ttl', got '-30m'");
  ExpectError(Replace(agg, "state_ttl: 30m", "state_ttl: [30m]"), 18, 16,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'state_ttl', got a list");
  // Windows keep state only until they fire: no state_ttl.
  ExpectError(Replace(kWindowSpec, "allowed_lateness: 0s", "state_ttl: 1h"), 21, 5,
              "unknown field 'state_ttl' in operator 'per_minute'");
}

// ---- checkpointing -----------------------------------------------------------

// kBaseSpec with every checkpointing setting; line numbers on the right.
std::string CheckpointingSpec() {
  return Replace(kBaseSpec, "name: j\n",
                 "name: j\n"                         // 1
                 "checkpointing:\n"                  // 2
                 "  interval: 1s\n"                  // 3
                 "  mode: at_least_once\n"           // 4
                 "  timeout: 60s\n"                  // 5
                 "  max_concurrent: 2\n"             // 6
                 "  min_pause: 500ms\n"              // 7
                 "  retained: 5\n"                   // 8
                 "  storage: file:///data/ckpt/\n");  // 9
}

TEST_F(JobSpecTest, CheckpointingIsOffWithoutTheKeyAndTakesFlinksDefaults) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kBaseSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::CheckpointingSpec& c = graph->checkpointing();
  EXPECT_EQ(c.interval_ms(), 0);
  EXPECT_EQ(c.mode(), proto::EXACTLY_ONCE);
  EXPECT_EQ(c.timeout_ms(), 10 * 60 * 1000);
  EXPECT_EQ(c.max_concurrent(), 1);
  EXPECT_EQ(c.min_pause_ms(), 0);
  EXPECT_EQ(c.retained(), 3);
  EXPECT_EQ(c.storage(), "");

  graph = Compile(Replace(kBaseSpec, "name: j\n", "name: j\ncheckpointing: {interval: 10s}\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->checkpointing().interval_ms(), 10'000);
  EXPECT_EQ(graph->checkpointing().timeout_ms(), 10 * 60 * 1000);
  EXPECT_EQ(graph->checkpointing().retained(), 3);
}

TEST_F(JobSpecTest, CheckpointingSettingsCompileToTheGraph) {
  absl::StatusOr<proto::JobGraph> graph = Compile(CheckpointingSpec());
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::CheckpointingSpec& c = graph->checkpointing();
  EXPECT_EQ(c.interval_ms(), 1000);
  EXPECT_EQ(c.mode(), proto::AT_LEAST_ONCE);
  EXPECT_EQ(c.timeout_ms(), 60'000);
  EXPECT_EQ(c.max_concurrent(), 2);
  EXPECT_EQ(c.min_pause_ms(), 500);
  EXPECT_EQ(c.retained(), 5);
  EXPECT_EQ(c.storage(), "file:///data/ckpt");

  graph = Compile(Replace(CheckpointingSpec(), "file:///data/ckpt/", "/data/./ckpt"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->checkpointing().storage(), "file:///data/ckpt")
      << "an absolute path is a file:// URI";
  graph = Compile(Replace(CheckpointingSpec(), "mode: at_least_once", "mode: exactly_once"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->checkpointing().mode(), proto::EXACTLY_ONCE);
  graph = Compile(Replace(CheckpointingSpec(), "interval: 1s", "interval: 0s"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->checkpointing().interval_ms(), 0) << "0: off";
}

TEST_F(JobSpecTest, CheckpointingErrors) {
  const std::string spec = CheckpointingSpec();
  ExpectError(Replace(spec, "mode: at_least_once", "mode: fast"), 4, 9,
              "unknown checkpointing mode 'fast', expected one of exactly_once, at_least_once");
  ExpectError(Replace(spec, "interval: 1s", "interval: -1s"), 3, 13,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'interval', got '-1s'");
  ExpectError(Replace(spec, "min_pause: 500ms", "min_pause: -5s"), 7, 14,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'min_pause', got '-5s'");
  ExpectError(Replace(spec, "timeout: 60s", "timeout: soon"), 5, 12,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'timeout', got 'soon'");
  ExpectError(Replace(spec, "interval: 1s", "interval: 5ms"), 3, 13,
              "job 'j': checkpointing interval must be at least 10ms, got 5ms");
  ExpectError(Replace(spec, "timeout: 60s", "timeout: 0s"), 5, 12,
              "job 'j': checkpointing timeout must be > 0, got 0s");
  ExpectError(Replace(spec, "max_concurrent: 2", "max_concurrent: 0"), 6, 19,
              "job 'j': checkpointing max_concurrent must be at least 1, got 0");
  ExpectError(Replace(spec, "max_concurrent: 2", "max_concurrent: two"), 6, 19,
              "expected an integer for 'max_concurrent', got 'two'");
  ExpectError(Replace(spec, "retained: 5", "retained: -1"), 8, 13,
              "job 'j': checkpointing retained must be at least 1, got -1");
  ExpectError(Replace(spec, "file:///data/ckpt/", "s3://bucket/ckpt"), 9, 12,
              "job 'j': checkpointing storage must be file:///ABSOLUTE/DIR or an absolute path, "
              "got 's3://bucket/ckpt'");
  ExpectError(Replace(spec, "file:///data/ckpt/", "ckpt"), 9, 12,
              "storage must be file:///ABSOLUTE/DIR or an absolute path, got 'ckpt'");
  ExpectError(Replace(spec, "file:///data/ckpt/", "file://data/ckpt"), 9, 12,
              "storage must be file:///ABSOLUTE/DIR or an absolute path, got 'file://data/ckpt'");
  ExpectError(Replace(spec, "  interval: 1s", "  every: 1s"), 3, 3,
              "unknown field 'every' in checkpointing, expected one of interval, mode, timeout, "
              "max_concurrent, min_pause, retained, storage, unaligned, aligned_timeout");
  ExpectError(Replace(spec, "  interval: 1s\n", ""), 3, 3,
              "missing required field 'interval' in checkpointing");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\ncheckpointing: 1s\n"), 2, 16,
              "expected a mapping for checkpointing, got '1s'");
}

TEST_F(JobSpecTest, UnalignedCheckpointsAndTheAlignedTimeout) {
  // CheckpointingSpec() in exactly_once with one checkpoint at a time; the
  // new key goes on line 9, its value at column 14 (unaligned) or 20.
  const std::string spec = Replace(Replace(CheckpointingSpec(), "mode: at_least_once", "mode: exactly_once"),
                                   "max_concurrent: 2", "max_concurrent: 1");
  auto with = [&](const std::string& base, const std::string& line) {
    return Replace(base, "  retained: 5\n", "  " + line + "\n  retained: 5\n");
  };
  absl::StatusOr<proto::JobGraph> graph = Compile(spec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_FALSE(graph->checkpointing().unaligned()) << "aligned by default, as in Flink";
  EXPECT_EQ(graph->checkpointing().aligned_timeout_ms(), 0);
  graph = Compile(with(spec, "unaligned: true"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_TRUE(graph->checkpointing().unaligned());
  graph = Compile(with(spec, "aligned_timeout: 2s"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_FALSE(graph->checkpointing().unaligned());
  EXPECT_EQ(graph->checkpointing().aligned_timeout_ms(), 2000);

  ExpectError(with(spec, "unaligned: yes"), 8, 14, "expected true or false for 'unaligned', got 'yes'");
  ExpectError(with(spec, "aligned_timeout: -1s"), 8, 20,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'aligned_timeout', got '-1s'");
  ExpectError(with(Replace(spec, "mode: exactly_once", "mode: at_least_once"), "unaligned: true"), 8, 14,
              "job 'j': checkpointing unaligned needs mode exactly_once (at_least_once never holds records "
              "back, so there is nothing to overtake)");
  ExpectError(with(Replace(spec, "max_concurrent: 1", "max_concurrent: 2"), "aligned_timeout: 1s"), 6, 19,
              "job 'j': checkpointing max_concurrent must be 1 with unaligned checkpoints (an unaligned barrier "
              "would overtake the one before it), got 2");
}

// ---- restart -----------------------------------------------------------------

// kBaseSpec with every exponential_backoff setting; line numbers on the right.
std::string RestartSpec() {
  return Replace(kBaseSpec, "name: j\n",
                 "name: j\n"                          // 1
                 "restart:\n"                         // 2
                 "  strategy: exponential_backoff\n"  // 3
                 "  initial_backoff: 200ms\n"         // 4
                 "  max_backoff: 1m\n"                // 5
                 "  multiplier: 1.5\n"                // 6
                 "  reset_after: 30s\n"               // 7
                 "  max_attempts: 10\n");             // 8
}

TEST_F(JobSpecTest, RestartIsTheDefaultStrategyWithoutTheKey) {
  absl::StatusOr<proto::JobGraph> graph = Compile(kBaseSpec);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->restart().strategy(), proto::RESTART_DEFAULT)
      << "the JobManager picks: exponential_backoff with checkpointing, else none";
  EXPECT_EQ(graph->restart().SerializeAsString(), "") << "no settings either";
}

TEST_F(JobSpecTest, RestartStrategiesCompileWithTheirFields) {
  absl::StatusOr<proto::JobGraph> graph =
      Compile(Replace(kBaseSpec, "name: j\n", "name: j\nrestart: {strategy: none}\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->restart().strategy(), proto::RESTART_NONE);

  graph = Compile(
      Replace(kBaseSpec, "name: j\n", "name: j\nrestart: {strategy: fixed_delay, attempts: 5, delay: 2s}\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->restart().strategy(), proto::RESTART_FIXED_DELAY);
  EXPECT_EQ(graph->restart().attempts(), 5);
  EXPECT_EQ(graph->restart().delay_ms(), 2000);

  graph = Compile(Replace(kBaseSpec, "name: j\n", "name: j\nrestart: {strategy: fixed_delay}\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->restart().attempts(), 0) << "0: the JobManager's default";
  EXPECT_EQ(graph->restart().delay_ms(), 0);

  graph = Compile(RestartSpec());
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::RestartSpec& r = graph->restart();
  EXPECT_EQ(r.strategy(), proto::RESTART_EXPONENTIAL_BACKOFF);
  EXPECT_EQ(r.initial_backoff_ms(), 200);
  EXPECT_EQ(r.max_backoff_ms(), 60'000);
  EXPECT_EQ(r.multiplier(), 1.5);
  EXPECT_EQ(r.reset_after_ms(), 30'000);
  EXPECT_EQ(r.max_attempts(), 10);

  graph = Compile(Replace(kBaseSpec, "name: j\n",
                          "name: j\nrestart: {strategy: failure_rate, max_failures: 4, interval: 5m, delay: 10s}\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->restart().strategy(), proto::RESTART_FAILURE_RATE);
  EXPECT_EQ(graph->restart().max_failures(), 4);
  EXPECT_EQ(graph->restart().failure_interval_ms(), 300'000);
  EXPECT_EQ(graph->restart().delay_ms(), 10'000);

  // Beside checkpointing, in any order.
  graph = Compile(Replace(kBaseSpec, "name: j\n",
                          "name: j\nrestart: {strategy: fixed_delay}\ncheckpointing: {interval: 1s}\n"));
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->restart().strategy(), proto::RESTART_FIXED_DELAY);
  EXPECT_EQ(graph->checkpointing().interval_ms(), 1000);
}

TEST_F(JobSpecTest, RestartErrors) {
  const std::string spec = RestartSpec();
  ExpectError(Replace(spec, "strategy: exponential_backoff", "strategy: always"), 3, 13,
              "unknown restart strategy 'always', expected one of none, fixed_delay, exponential_backoff, "
              "failure_rate");
  // A field of another strategy is unknown for this one.
  ExpectError(Replace(spec, "  max_attempts: 10", "  attempts: 10"), 8, 3,
              "unknown field 'attempts' in restart, expected one of strategy, initial_backoff, max_backoff, "
              "multiplier, reset_after, max_attempts");
  ExpectError(Replace(spec, "  max_attempts: 10", "  backoff: 10s"), 8, 3,
              "unknown field 'backoff' in restart, expected one of strategy, initial_backoff, max_backoff, "
              "multiplier, reset_after, max_attempts");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nrestart:\n  strategy: none\n  attempts: 3\n"), 4, 3,
              "unknown field 'attempts' in restart, expected one of strategy");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nrestart:\n  strategy: fixed_delay\n  interval: 1m\n"), 4, 3,
              "unknown field 'interval' in restart, expected one of strategy, attempts, delay");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nrestart:\n  strategy: failure_rate\n  attempts: 3\n"), 4, 3,
              "unknown field 'attempts' in restart, expected one of strategy, max_failures, interval, delay");
  ExpectError(Replace(spec, "multiplier: 1.5", "multiplier: 0.5"), 6, 15,
              "restart multiplier must be at least 1, got 0.5");
  ExpectError(Replace(spec, "multiplier: 1.5", "multiplier: fast"), 6, 15,
              "expected a number for 'multiplier', got 'fast'");
  ExpectError(Replace(spec, "max_backoff: 1m", "max_backoff: 100ms"), 5, 16,
              "restart max_backoff (100 ms) is below initial_backoff (200 ms)");
  ExpectError(Replace(spec, "max_attempts: 10", "max_attempts: 0"), 8, 17,
              "restart max_attempts must be at least 1, got 0");
  ExpectError(Replace(spec, "reset_after: 30s", "reset_after: soon"), 7, 16,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'reset_after', got 'soon'");
  ExpectError(Replace(spec, "initial_backoff: 200ms", "initial_backoff: -1s"), 4, 20,
              "expected a duration such as 5ms, 1s, 2m or 1h for 'initial_backoff', got '-1s'");
  ExpectError(Replace(spec, "  strategy: exponential_backoff\n", ""), 3, 3,
              "missing required field 'strategy' in restart");
  ExpectError(Replace(kBaseSpec, "name: j\n", "name: j\nrestart: none\n"), 2, 10,
              "expected a mapping for restart, got 'none'");
}

}  // namespace
}  // namespace vstream
