#include "client/job_builder.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/job_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/dead_letter.h"

namespace vstream {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

VertexOptions Parallel(int parallelism) {
  VertexOptions o;
  o.parallelism = parallelism;
  return o;
}
VertexOptions Partitioned(Partition partition, int parallelism = 0) {
  VertexOptions o = Parallel(parallelism);
  o.partition = partition;
  return o;
}
VertexOptions WithKeyBy(VertexOptions o, std::vector<std::string> key_by) {
  o.key_by = std::move(key_by);
  return o;
}
VertexOptions KeyBy(std::vector<std::string> key_by) { return WithKeyBy({}, std::move(key_by)); }
SinkOptions WithPath(SinkOptions o, std::string path) {
  o.path = std::move(path);
  return o;
}
FileSourceOptions SourceParallelism(int parallelism) {
  FileSourceOptions o;
  o.parallelism = parallelism;
  return o;
}
FileSourceOptions DeadLetter(std::string stream) {
  FileSourceOptions o;
  o.dead_letter = std::move(stream);
  return o;
}
GeneratorOptions Count(int64_t count) {
  GeneratorOptions o;
  o.count = count;
  return o;
}

const Schema& VitalsSchema() {
  static const Schema* schema = new Schema({{"patient_id", FieldType::kString},
                                            {"ts", FieldType::kTimestamp},
                                            {"hr", FieldType::kInt},
                                            {"spo2", FieldType::kInt},
                                            {"rr", FieldType::kInt}});
  return *schema;
}

class JobBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("job_builder_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    vitals_ = (dir_ / "vitals.csv").string();
    std::ofstream(vitals_) << "patient_id,ts,hr,spo2,rr\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string vitals_;
};

TEST_F(JobBuilderTest, BuildsTheSameGraphAsTheYamlSpec) {
  JobBuilder b("vitals-running-totals");
  b.SetParallelism(2);
  StreamRef vitals = b.FileSource("vitals", vitals_, "csv", VitalsSchema());
  StreamRef valid = b.Filter("valid", vitals, "hr > 0 AND spo2 BETWEEN 50 AND 100");
  StreamRef flagged = b.Map(
      "flagged", valid,
      {{"patient_id", "patient_id"}, {"ts", "ts"}, {"hr", "hr"}, {"tachycardic", "hr > 100"}});
  StreamRef totals =
      b.Aggregate("totals", flagged, {"patient_id"},
                  {{"readings", "count(*)"},
                   {"hr_max", "max(hr)"},
                   {"tachy_readings", "sum(CASE WHEN tachycardic THEN 1 ELSE 0 END)"}});
  b.Sink("out", totals, SinkOptions::File("/data/out/totals", "jsonl"));
  absl::StatusOr<proto::JobGraph> built = b.Build();
  ASSERT_TRUE(built.ok()) << built.status();

  const std::string yaml = absl::StrCat(R"yaml(name: vitals-running-totals
parallelism: 2
sources:
  - name: vitals
    connector: file
    path: )yaml",
                                        vitals_, R"yaml(
    format: csv
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
    type: aggregate
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
    path: /data/out/totals
    format: jsonl
)yaml");
  absl::StatusOr<proto::JobGraph> compiled = CompileJobSpec(yaml, "job.yaml", dir_.string());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_EQ(built->DebugString(), compiled->DebugString());
  EXPECT_EQ(built->vertices_size(), 5);
}

TEST_F(JobBuilderTest, StreamsCanBeNamedByString) {
  JobBuilder b("j");
  b.FileSource("vitals", vitals_, "csv", VitalsSchema());
  b.Filter("valid", "vitals", "hr > 0");
  b.Sink("out", "valid", SinkOptions::Stdout());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->edges_size(), 2);
  EXPECT_EQ(graph->vertices(2).op().sink().format(), "jsonl");
  EXPECT_TRUE(b.HasStream("valid"));
  EXPECT_FALSE(b.HasStream("out"));  // sinks have no output stream
}

TEST_F(JobBuilderTest, EdgesFollowParallelismPartitionAndKeyBy) {
  JobBuilder b("j");
  b.SetParallelism(2);
  b.FileSource("vitals", vitals_, "csv", VitalsSchema(), SourceParallelism(1));
  b.Filter("same", "vitals", "hr > 0", Parallel(1));                  // forward
  b.Filter("wider", "same", "hr > 0");                                // rebalance
  b.Filter("keyed", "wider", "hr > 0", KeyBy({"hr", "patient_id"}));  // hash
  b.Filter("everywhere", "keyed", "hr > 0", Partitioned(Partition::kBroadcast));
  b.Sink("out", "everywhere", SinkOptions::Blackhole(), Partitioned(Partition::kRebalance, 2));
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->edges_size(), 5);
  EXPECT_EQ(graph->edges(0).partitioning(), proto::FORWARD);
  EXPECT_EQ(graph->edges(1).partitioning(), proto::REBALANCE);
  EXPECT_EQ(graph->edges(2).partitioning(), proto::HASH);
  EXPECT_THAT(graph->edges(2).key_fields(), ElementsAre(2, 0));
  EXPECT_EQ(graph->edges(3).partitioning(), proto::BROADCAST);
  EXPECT_EQ(graph->edges(4).partitioning(), proto::REBALANCE);
  EXPECT_EQ(graph->vertices(0).parallelism(), 1);
  EXPECT_EQ(graph->vertices(2).parallelism(), 2);
}

TEST_F(JobBuilderTest, JobSettingsMayComeAfterTheVertices) {
  JobBuilder b("j");
  b.FileSource("vitals", vitals_, "csv", VitalsSchema());
  b.Sink("out", "vitals", SinkOptions::Stdout(), Parallel(3));
  b.SetParallelism(3);
  b.SetMaxParallelism(16);
  b.SetBufferTimeoutMs(0);
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->vertices(0).parallelism(), 3);
  EXPECT_EQ(graph->vertices(0).max_parallelism(), 16);
  EXPECT_EQ(graph->max_parallelism(), 16);
  EXPECT_EQ(graph->buffer_timeout_ms(), 0);
  EXPECT_EQ(graph->edges(0).partitioning(), proto::FORWARD);
}

TEST_F(JobBuilderTest, UnionAndDeadLetterStreams) {
  JobBuilder b("j");
  b.FileSource("a", vitals_, "csv", VitalsSchema(), DeadLetter("a_bad"));
  b.FileSource("b", vitals_, "jsonl", VitalsSchema(), DeadLetter("b_bad"));
  b.Union("all", {"a", "b"});
  b.Union("bad", {"a_bad", "b_bad"}, KeyBy({"source"}));
  b.Sink("out", "all", SinkOptions::Stdout("csv"));
  b.Sink("bad_out", "bad", SinkOptions::Stdout());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->vertices_size(), 6);
  EXPECT_EQ(Schema::FromProto(graph->vertices(3).output_schema()).DebugString(),
            DeadLetterSchema().DebugString());
  ASSERT_EQ(graph->edges_size(), 6);
  // all <- a, b
  EXPECT_EQ(graph->edges(0).source(), 0);
  EXPECT_EQ(graph->edges(1).source(), 1);
  EXPECT_EQ(graph->edges(0).side_output(), "");
  // bad <- a.dead_letter, b.dead_letter, hashed on "source"
  EXPECT_EQ(graph->edges(2).source(), 0);
  EXPECT_EQ(graph->edges(2).target(), 3);
  EXPECT_EQ(graph->edges(2).side_output(), "dead_letter");
  EXPECT_EQ(graph->edges(2).partitioning(), proto::HASH);
  EXPECT_THAT(graph->edges(2).key_fields(), ElementsAre(0));
  EXPECT_EQ(graph->edges(3).source(), 1);
  EXPECT_EQ(graph->edges(3).side_output(), "dead_letter");
}

TEST_F(JobBuilderTest, AggregateOutputTypes) {
  JobBuilder b("j");
  b.GeneratorSource("g",
                    Schema({{"k", FieldType::kString},
                            {"i", FieldType::kInt},
                            {"d", FieldType::kDouble},
                            {"t", FieldType::kTimestamp}}),
                    Count(10));
  b.Aggregate("agg", "g", {"k"},
              {{"n", "count(*)"},
               {"nd", "COUNT(d)"},
               {"si", "sum(i)"},
               {"sd", "sum(d)"},
               {"mi", "min(i)"},
               {"mt", "max(t)"},
               {"ms", "max(k)"},
               {"ai", "avg(i)"}});
  b.Sink("out", "agg", SinkOptions::Blackhole());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(Schema::FromProto(graph->vertices(1).output_schema()).DebugString(),
            "{k: string, n: int, nd: int, si: int, sd: double, mi: int, mt: timestamp, "
            "ms: string, ai: double}");
  EXPECT_EQ(graph->vertices(1).op().aggregate().aggregates(1).func(), "count");
  EXPECT_EQ(graph->vertices(1).op().aggregate().aggregates(1).arg(), "d");
}

TEST_F(JobBuilderTest, GeneratorColumnsAreValidated) {
  const Schema schema(
      {{"id", FieldType::kInt}, {"ok", FieldType::kBool}, {"s", FieldType::kString}});
  struct Case {
    GeneratorColumn column;
    std::string fragment;
  };
  auto column = [](std::string name, std::string kind) {
    GeneratorColumn c;
    c.column = std::move(name);
    c.kind = std::move(kind);
    return c;
  };
  std::vector<Case> cases = {
      {column("nope", "uniform"), "no such column"},
      {column("ok", "key"), "kind key does not apply to a bool column"},
      {column("id", "zipf"), "unknown kind 'zipf'"},
      {column("id", "uniform"), "min 5 is greater than max 1"},
      {column("id", "uniform"), "'prefix' does not apply to kind uniform"},
      {column("s", "key"), "cardinality must be at least 1"},
      {column("id", "constant"), "kind constant needs a value"},
      {column("id", "constant"), "value 'x1' is not a valid int"},
  };
  cases[3].column.min = 5;
  cases[3].column.max = 1;
  cases[4].column.prefix = "x";
  cases[5].column.cardinality = 0;
  cases[7].column.value = "x1";
  for (const Case& c : cases) {
    JobBuilder b("j");
    GeneratorOptions options;
    options.fields = {c.column};
    b.GeneratorSource("g", schema, options);
    ASSERT_NE(b.error(), nullptr) << c.fragment;
    EXPECT_THAT(b.error()->status.message(), HasSubstr(c.fragment));
    EXPECT_EQ(b.error()->vertex, "g");
    EXPECT_EQ(b.error()->field, "fields");
    EXPECT_EQ(b.error()->index, 0);
  }
  JobBuilder ok("j");
  GeneratorOptions options;
  options.fields = {column("ok", "constant"), column("s", "sequence")};
  options.fields[0].value = "true";
  options.fields[1].prefix = "p-";
  ok.GeneratorSource("g", schema, options);
  ok.Sink("out", "g", SinkOptions::Blackhole());
  absl::StatusOr<proto::JobGraph> graph = ok.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::SourceSpec& src = graph->vertices(0).op().source();
  EXPECT_EQ(src.generator_fields(0).kind(), "uniform");
  EXPECT_EQ(src.generator_fields(0).max(), 999);
  EXPECT_EQ(src.generator_fields(1).value(), "true");
  EXPECT_EQ(src.generator_fields(2).prefix(), "p-");
}

TEST_F(JobBuilderTest, ExpressionErrorsCarryFieldIndexAndOffset) {
  JobBuilder b("j");
  b.FileSource("vitals", vitals_, "csv", VitalsSchema());
  b.Map("m", "vitals", {{"hr", "hr"}, {"x", "hr + nope"}});
  const BuildError* e = b.error();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->vertex, "m");
  EXPECT_EQ(e->field, "select");
  EXPECT_EQ(e->index, 1);
  EXPECT_EQ(e->expr_offset, 5u);
  EXPECT_THAT(e->status.message(), HasSubstr("map 'm': in select 'x'"));

  JobBuilder f("j");
  f.FileSource("vitals", vitals_, "csv", VitalsSchema());
  f.Filter("valid", "vitals", "hr");
  ASSERT_NE(f.error(), nullptr);
  EXPECT_EQ(f.error()->field, "where");
  EXPECT_EQ(f.error()->expr_offset, 0u);
  EXPECT_EQ(f.error()->status.message(),
            "filter 'valid': where must be a bool expression, got int");

  JobBuilder a("j");
  a.FileSource("vitals", vitals_, "csv", VitalsSchema());
  a.Aggregate("agg", "vitals", {"patient_id"}, {{"n", "count(*)"}, {"x", "avg( patient_id)"}});
  ASSERT_NE(a.error(), nullptr);
  EXPECT_EQ(a.error()->field, "aggregates");
  EXPECT_EQ(a.error()->index, 1);
  EXPECT_EQ(a.error()->expr_offset, 5u);  // the argument, after the space
  EXPECT_THAT(a.error()->status.message(), HasSubstr("avg needs an int or double argument"));
}

TEST_F(JobBuilderTest, ErrorsAreStickyAndReturnedByBuild) {
  JobBuilder b("j");
  b.FileSource("vitals", vitals_, "csv", VitalsSchema());
  StreamRef bad = b.Filter("valid", "vitalz", "hr > 0");
  EXPECT_TRUE(bad.name.empty());
  b.Filter("later", "vitals", "this is not checked");
  b.Sink("out", "vitals", SinkOptions::Stdout());
  ASSERT_NE(b.error(), nullptr);
  EXPECT_EQ(b.error()->vertex, "valid");
  EXPECT_EQ(b.error()->field, "input");
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status(), b.status());
  EXPECT_EQ(graph.status().message(),
            "filter 'valid': unknown input stream 'vitalz', known streams: vitals");
}

TEST_F(JobBuilderTest, GraphLevelErrors) {
  {
    JobBuilder b("j");
    b.FileSource("vitals", vitals_, "csv", VitalsSchema());
    b.Filter("valid", "vitals", "hr > 0", Partitioned(Partition::kForward, 3));
    b.Sink("out", "valid", SinkOptions::Stdout());
    absl::StatusOr<proto::JobGraph> graph = b.Build();
    ASSERT_FALSE(graph.ok());
    EXPECT_THAT(graph.status().message(),
                HasSubstr("partition forward needs equal parallelism, but input 'vitals' has 1 "
                          "subtasks and 'valid' has 3"));
    EXPECT_EQ(b.error()->vertex, "valid");
    EXPECT_EQ(b.error()->field, "partition");
  }
  {
    JobBuilder b("j");
    b.FileSource("vitals", vitals_, "csv", VitalsSchema());
    absl::StatusOr<proto::JobGraph> graph = b.Build();
    EXPECT_THAT(graph.status().message(), HasSubstr("job 'j' has no sink"));
  }
  {
    JobBuilder b("j");
    b.SetMaxParallelism(4);
    b.FileSource("vitals", vitals_, "csv", VitalsSchema());
    b.Sink("out", "vitals", SinkOptions::Stdout(), Parallel(8));
    absl::StatusOr<proto::JobGraph> graph = b.Build();
    EXPECT_THAT(graph.status().message(),
                HasSubstr("sink 'out': parallelism 8 exceeds max_parallelism 4"));
  }
  {
    JobBuilder b("bad name");
    EXPECT_THAT(b.status().message(), HasSubstr("invalid job name 'bad name'"));
  }
}

TEST_F(JobBuilderTest, CallLevelErrors) {
  auto error_of = [&](auto&& define) {
    JobBuilder b("j");
    b.FileSource("vitals", vitals_, "csv", VitalsSchema());
    define(b);
    return b.error() == nullptr ? std::string("(no error)")
                                : std::string(b.error()->status.message());
  };
  EXPECT_THAT(error_of([](JobBuilder& b) { b.Filter("vitals", "vitals", "hr > 0"); }),
              HasSubstr("duplicate name 'vitals': already used by source 'vitals'"));
  EXPECT_THAT(error_of([](JobBuilder& b) { b.Filter("a/b", "vitals", "hr > 0"); }),
              HasSubstr("invalid name 'a/b'"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Filter("f", "vitals", "hr > 0",
                         WithKeyBy(Partitioned(Partition::kForward), {"hr"}));
              }),
              HasSubstr("partition forward conflicts with key_by"));
  EXPECT_THAT(error_of([](JobBuilder& b) { b.Filter("f", "vitals", "hr > 0", KeyBy({"x"})); }),
              HasSubstr("unknown key_by field 'x', the input has {patient_id: string"));
  EXPECT_THAT(error_of([](JobBuilder& b) { b.Union("u", {"vitals"}); }),
              HasSubstr("inputs must list at least two streams"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Union("u", {"vitals", "vitals"});
              }),
              HasSubstr("inputs lists 'vitals' twice"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Map("m", "vitals", {{"hr", "hr"}});
                b.Union("u", {"vitals", "m"});
              }),
              HasSubstr("'m' has 1 fields, 'vitals' has 5"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Map("m", "vitals",
                      {{"patient_id", "patient_id"},
                       {"x", "ts"},
                       {"hr", "hr"},
                       {"spo2", "spo2"},
                       {"rr", "rr"}});
                b.Union("u", {"vitals", "m"});
              }),
              HasSubstr("field 2 is 'x' in 'm' but 'ts' in 'vitals'"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Aggregate("a", "vitals", {}, {{"n", "count(*)"}});
              }),
              HasSubstr("key_by must list the fields that identify a key"));
  EXPECT_THAT(
      error_of([](JobBuilder& b) {
        b.Aggregate("a", "vitals", {"hr"}, {{"n", "count(*)"}}, Partitioned(Partition::kRebalance));
      }),
      HasSubstr("an aggregate is always hash-partitioned"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Aggregate("a", "vitals", {"hr"}, {{"n", "max(hr > 1)"}});
              }),
              HasSubstr("max needs an int, double, string or timestamp argument, got bool"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Aggregate("a", "vitals", {"hr"}, {{"n", "median(hr)"}});
              }),
              HasSubstr("unknown aggregate function 'median'"));
  EXPECT_THAT(error_of([](JobBuilder& b) { b.Sink("s", "vitals", SinkOptions::File("")); }),
              HasSubstr("connector file needs a path"));
  EXPECT_THAT(
      error_of([](JobBuilder& b) { b.Sink("s", "vitals", WithPath(SinkOptions::Stdout(), "x")); }),
      HasSubstr("path applies only to connector file"));
  EXPECT_THAT(error_of([](JobBuilder& b) { b.Sink("s", "valid", SinkOptions::Stdout()); }),
              HasSubstr("unknown input stream 'valid'"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.Sink("s", "vitals", SinkOptions::Stdout());
                b.Filter("f", "s", "hr > 0");
              }),
              HasSubstr("filter 'f': input 's' is sink 's', which has no output stream"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.FileSource("more", "/no/such/file.csv", "csv", VitalsSchema());
              }),
              HasSubstr("input file '/no/such/file.csv' does not exist"));
  EXPECT_THAT(error_of([](JobBuilder& b) {
                b.GeneratorSource("g", Schema({{"a", FieldType::kInt}, {"a", FieldType::kInt}}));
              }),
              HasSubstr("schema lists field 'a' twice"));
}

TEST(ParsePartitionTest, KnownNames) {
  EXPECT_EQ(*ParsePartition("forward"), Partition::kForward);
  EXPECT_EQ(*ParsePartition("rebalance"), Partition::kRebalance);
  EXPECT_EQ(*ParsePartition("broadcast"), Partition::kBroadcast);
  EXPECT_THAT(ParsePartition("hash").status().message(), HasSubstr("unknown partition 'hash'"));
}

}  // namespace
}  // namespace vstream
