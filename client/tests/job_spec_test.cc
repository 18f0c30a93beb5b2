#include "client/job_spec.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/dead_letter.h"
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

  std::filesystem::path dir_;
  std::string vitals_;
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
  EXPECT_EQ(Schema::FromProto(agg.input_schema()).DebugString(), flagged.DebugString());
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
              "max_parallelism, buffer_timeout, sources, operators, sinks");
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

}  // namespace
}  // namespace vstream
