#include "client/job_builder.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

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

// Partitioned streams: an aggregate's output (its key fields first) is
// already at the subtask its key's hash picks, so a consumer keyed by the
// same fields at the same parallelism reads it over a FORWARD edge (chained);
// any other key, order or parallelism is a hash exchange. A filter passes the
// partitioning on.
TEST_F(JobBuilderTest, AStreamPartitionedByAKeyIsReadByTheSameKeyWithoutAnExchange) {
  JobBuilder b("j");
  b.SetParallelism(2);
  b.FileSource("vitals", vitals_, "csv", VitalsSchema());
  b.Aggregate("per_patient", "vitals", {"patient_id", "hr"}, {{"n", "count(*)"}});       // 0: hash
  b.Aggregate("same_key", "per_patient", {"patient_id", "hr"}, {{"m", "max(n)"}});       // 1: forward
  b.Aggregate("key_reordered", "per_patient", {"hr", "patient_id"}, {{"m", "max(n)"}});  // 2: hash
  b.Aggregate("key_part", "per_patient", {"patient_id"}, {{"m", "max(n)"}});             // 3: hash
  b.Aggregate("wider", "per_patient", {"patient_id", "hr"}, {{"m", "max(n)"}}, Parallel(3));  // 4: hash
  b.Filter("kept", "per_patient", "n > 1");                                              // 5: forward
  b.Aggregate("after_filter", "kept", {"patient_id", "hr"}, {{"m", "max(n)"}});          // 6: forward
  b.Aggregate("again", "same_key", {"patient_id", "hr"}, {{"c", "count(*)"}});           // 7: forward
  b.Sink("out", "again", SinkOptions::Blackhole());                                      // 8: forward
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->edges_size(), 9);
  const proto::Partitioning expected[] = {proto::HASH, proto::FORWARD, proto::HASH,    proto::HASH,   proto::HASH,
                                          proto::FORWARD, proto::FORWARD, proto::FORWARD, proto::FORWARD};
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(graph->edges(i).partitioning(), expected[i]) << "edge " << i << " to "
                                                           << graph->vertices(graph->edges(i).target()).name();
  }
  EXPECT_TRUE(graph->edges(1).key_fields().empty());
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

// ---- event time, windows and joins -----------------------------------------

EventTime TimeField(std::string field, int64_t max_out_of_orderness_ms = 0) {
  EventTime t;
  t.field = std::move(field);
  t.max_out_of_orderness_ms = max_out_of_orderness_ms;
  return t;
}
FileSourceOptions WithEventTime(EventTime t) {
  FileSourceOptions o;
  o.event_time = std::move(t);
  return o;
}
std::string SchemaOf(const proto::Schema& schema) {
  return Schema::FromProto(schema).DebugString();
}

// The first edge into the vertex `name` of `graph`.
const proto::JobEdge& EdgeTo(const proto::JobGraph& graph, std::string_view name) {
  for (const proto::JobEdge& e : graph.edges()) {
    if (graph.vertices(e.target()).name() == name) return e;
  }
  ADD_FAILURE() << "no edge to " << name;
  return graph.edges(0);
}

const proto::JobVertex& VertexNamed(const proto::JobGraph& graph, std::string_view name) {
  for (const proto::JobVertex& v : graph.vertices()) {
    if (v.name() == name) return v;
  }
  ADD_FAILURE() << "no vertex " << name;
  return graph.vertices(0);
}

TEST_F(JobBuilderTest, AHashEdgeCarriesOnlyTheFieldsItsWindowOrAggregateReads) {
  JobBuilder b("j");
  b.SetParallelism(2);
  StreamRef vitals = b.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  // patient_id (key), ts (time), hr: not spo2 or rr.
  b.Window("hr_max", vitals, WindowOptions::Tumbling({"patient_id"}, 60000, {{"hr_max", "max(hr)"}}));
  // Late records go whole to late_output: every field.
  WindowOptions late = WindowOptions::Tumbling({"patient_id"}, 60000, {{"n", "count(*)"}});
  late.late_output = "late";
  b.Window("with_late", vitals, late);
  // An argument's fields, not the time: rr, spo2, patient_id.
  b.Aggregate("ratio", vitals, {"patient_id"}, {{"r", "sum(rr * 100 / spo2)"}});
  // Reads every field: nothing to leave out.
  b.Aggregate("all", vitals, {"patient_id"}, {{"n", "count(ts)"}, {"s", "sum(hr + spo2 + rr)"}});
  // Partitioned by its key already: a forward edge, chained, unprojected.
  b.Aggregate("again", "ratio", {"patient_id"}, {{"m", "max(r)"}});
  for (const char* out : {"hr_max", "with_late", "all", "again", "late"}) {
    b.Sink(absl::StrCat(out, "_out"), out, SinkOptions::Blackhole());
  }
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  auto edge_to = [&](std::string_view name) -> const proto::JobEdge& { return EdgeTo(*graph, name); };
  const proto::JobVertex& hr_max = graph->vertices(1);
  EXPECT_THAT(edge_to("hr_max").projection(), ::testing::ElementsAre(0, 1, 2));
  EXPECT_EQ(SchemaOf(hr_max.input_schema()), "{patient_id: string, ts: timestamp, hr: int}");
  EXPECT_EQ(hr_max.op().window().time_field_index(), 1);
  EXPECT_THAT(edge_to("hr_max").key_fields(), ::testing::ElementsAre(0));  // of the source's output

  EXPECT_EQ(edge_to("with_late").projection_size(), 0);
  EXPECT_EQ(SchemaOf(graph->vertices(2).input_schema()), VitalsSchema().DebugString());

  EXPECT_THAT(edge_to("ratio").projection(), ::testing::ElementsAre(0, 3, 4));
  EXPECT_EQ(SchemaOf(graph->vertices(3).input_schema()), "{patient_id: string, spo2: int, rr: int}");

  EXPECT_EQ(edge_to("all").projection_size(), 0);
  EXPECT_EQ(edge_to("again").partitioning(), proto::FORWARD);
  EXPECT_EQ(edge_to("again").projection_size(), 0);
  EXPECT_EQ(SchemaOf(graph->vertices(5).input_schema()), SchemaOf(graph->vertices(3).output_schema()));
}

// Partitioned streams: a key that starts with the fields its input is
// partitioned by, and has more, is grouped (key group, subtask) by those
// alone whatever the parallelism: at its input's it is chained, at another
// hash-exchanged on them; its output is partitioned by them in turn. A key
// that does not start with them is exchanged on the whole key.
TEST_F(JobBuilderTest, AKeyStartingWithItsInputsPartitioningIsGroupedByItAndChained) {
  JobBuilder b("j");
  b.SetParallelism(2);
  b.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  // Output: patient_id, window_start, window_end, n.
  b.Window("per_minute", "vitals", WindowOptions::Tumbling({"patient_id"}, 60000, {{"n", "count(*)"}}));
  b.Aggregate("per_window", "per_minute", {"patient_id", "window_start"}, {{"m", "max(n)"}});
  b.Aggregate("again", "per_window", {"patient_id", "window_start"}, {{"c", "count(*)"}});
  b.Aggregate("reordered", "per_minute", {"window_start", "patient_id"}, {{"m", "max(n)"}});
  b.Aggregate("wider", "per_minute", {"patient_id", "window_start"}, {{"m", "max(n)"}}, Parallel(3));
  // A union of streams partitioned alike, read forward, is partitioned so.
  b.Aggregate("per_window_min", "per_minute", {"patient_id", "window_start"}, {{"m", "min(n)"}});
  b.Union("both", {"per_window", "per_window_min"});
  b.Aggregate("after_union", "both", {"patient_id", "window_start"}, {{"c", "count(*)"}});
  b.Union("both_wide", {"per_window", "per_window_min"}, Parallel(3));
  b.Aggregate("after_wide_union", "both_wide", {"patient_id", "window_start"}, {{"c", "count(*)"}}, Parallel(3));
  for (const char* out : {"again", "reordered", "wider", "after_union", "after_wide_union"}) {
    b.Sink(absl::StrCat(out, "_out"), out, SinkOptions::Blackhole());
  }
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  auto vertex = [&](std::string_view name) -> const proto::JobVertex& { return VertexNamed(*graph, name); };
  auto edge_to = [&](std::string_view name) -> const proto::JobEdge& { return EdgeTo(*graph, name); };
  EXPECT_EQ(vertex("per_minute").key_group_fields(), 0);
  for (const char* grouped : {"per_window", "again"}) {
    EXPECT_EQ(edge_to(grouped).partitioning(), proto::FORWARD) << grouped;
    EXPECT_EQ(vertex(grouped).key_group_fields(), 1) << grouped;
  }
  EXPECT_EQ(edge_to("reordered").partitioning(), proto::HASH);
  EXPECT_THAT(edge_to("reordered").key_fields(), ::testing::ElementsAre(1, 0));
  EXPECT_EQ(vertex("reordered").key_group_fields(), 0);
  EXPECT_EQ(edge_to("wider").partitioning(), proto::HASH);
  EXPECT_THAT(edge_to("wider").key_fields(), ::testing::ElementsAre(0));  // patient_id alone
  EXPECT_EQ(vertex("wider").key_group_fields(), 1);
  EXPECT_THAT(edge_to("wider").projection(), ::testing::ElementsAre(0, 1, 3));  // still the whole key and n
  EXPECT_EQ(edge_to("after_union").partitioning(), proto::FORWARD);
  EXPECT_EQ(vertex("after_union").key_group_fields(), 1);
  EXPECT_EQ(edge_to("both_wide").partitioning(), proto::REBALANCE);
  EXPECT_EQ(edge_to("after_wide_union").partitioning(), proto::HASH);  // the union is not partitioned
  EXPECT_THAT(edge_to("after_wide_union").key_fields(), ::testing::ElementsAre(0));
  EXPECT_EQ(vertex("after_wide_union").key_group_fields(), 1);
}

// An interval join's output is partitioned by its key both as the left
// fields and as the right ones (equal values); a filter passes that on.
TEST_F(JobBuilderTest, AJoinsOutputIsPartitionedByEitherSidesKey) {
  JobBuilder b("j");
  b.SetParallelism(2);
  b.FileSource("a", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  b.FileSource("c", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  // Output: the five fields of a, then c_patient_id, c_ts, c_hr, c_spo2, c_rr.
  b.IntervalJoin("joined", "a", "c", IntervalJoinOptions::On({"patient_id"}, -1000, 0));
  b.Filter("kept", "joined", "hr > c_hr");
  b.Aggregate("per_left_key", "kept", {"patient_id"}, {{"n", "count(*)"}});
  b.Aggregate("per_right_key", "kept", {"c_patient_id", "c_hr"}, {{"n", "count(*)"}});
  b.Aggregate("per_other_key", "kept", {"hr", "c_patient_id"}, {{"n", "count(*)"}});
  for (const char* out : {"per_left_key", "per_right_key", "per_other_key"}) {
    b.Sink(absl::StrCat(out, "_out"), out, SinkOptions::Blackhole());
  }
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(EdgeTo(*graph, "joined").partitioning(), proto::HASH);
  EXPECT_EQ(EdgeTo(*graph, "kept").partitioning(), proto::FORWARD);
  EXPECT_EQ(EdgeTo(*graph, "per_left_key").partitioning(), proto::FORWARD);
  EXPECT_EQ(VertexNamed(*graph, "per_left_key").key_group_fields(), 0);
  EXPECT_EQ(EdgeTo(*graph, "per_right_key").partitioning(), proto::FORWARD);
  EXPECT_EQ(VertexNamed(*graph, "per_right_key").key_group_fields(), 1);
  EXPECT_EQ(EdgeTo(*graph, "per_other_key").partitioning(), proto::HASH);
  EXPECT_EQ(VertexNamed(*graph, "per_other_key").key_group_fields(), 0);
}

TEST_F(JobBuilderTest, BuildsTheSameEventTimeGraphAsTheYamlSpec) {
  const std::string labs = (dir_ / "labs.csv").string();
  const std::string wards = (dir_ / "wards.csv").string();
  std::ofstream(labs) << "patient_id,ts,test,value\n";
  std::ofstream(wards) << "patient_id,ward\n";

  JobBuilder b("icu");
  StreamRef vitals =
      b.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts", 5000)));
  FileSourceOptions labs_options = WithEventTime(TimeField("ts", 60000));
  labs_options.event_time->idle_timeout_ms = 30000;
  StreamRef lab_stream = b.FileSource("labs", labs, "csv",
                                      Schema({{"patient_id", FieldType::kString},
                                              {"ts", FieldType::kTimestamp},
                                              {"test", FieldType::kString},
                                              {"value", FieldType::kDouble}}),
                                      labs_options);
  StreamRef ward_stream =
      b.FileSource("wards", wards, "csv",
                   Schema({{"patient_id", FieldType::kString}, {"ward", FieldType::kString}}));
  WindowOptions window = WindowOptions::Tumbling({"patient_id"}, 60000,
                                                 {{"readings", "count(*)"},
                                                  {"hr_avg", "avg(hr)"},
                                                  {"spo2_min", "min(spo2)"},
                                                  {"hr_p95", "percentile(hr, 0.95)"}});
  window.late_output = "vitals_late";
  StreamRef per_minute = b.Window("per_minute", vitals, window);
  StreamRef joined = b.IntervalJoin("vitals_with_labs", vitals, lab_stream,
                                    IntervalJoinOptions::On({"patient_id"}, -30 * 60000, 0));
  StreamRef enriched = b.BroadcastJoin("vitals_with_ward", vitals, ward_stream,
                                       BroadcastJoinOptions::On({"patient_id"}));
  b.Sink("minutes", per_minute, SinkOptions::Stdout());
  b.Sink("late", "vitals_late", SinkOptions::File("/data/out/late"));
  b.Sink("joined", joined, SinkOptions::Stdout());
  b.Sink("enriched", enriched, SinkOptions::Stdout());
  absl::StatusOr<proto::JobGraph> built = b.Build();
  ASSERT_TRUE(built.ok()) << built.status();

  const std::string yaml = absl::StrCat(R"yaml(name: icu
sources:
  - name: vitals
    connector: file
    path: )yaml",
                                        vitals_, R"yaml(
    format: csv
    schema: {patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int}
    event_time: {field: ts, max_out_of_orderness: 5s}
  - name: labs
    connector: file
    path: labs.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, test: string, value: double}
    event_time: {field: ts, max_out_of_orderness: 1m, idle_timeout: 30s}
  - name: wards
    connector: file
    path: wards.csv
    format: csv
    schema: {patient_id: string, ward: string}
operators:
  - name: per_minute
    type: window
    input: vitals
    key_by: [patient_id]
    window: {kind: tumbling, size: 1m}
    allowed_lateness: 0s
    late_output: vitals_late
    aggregates: {readings: "count(*)", hr_avg: "avg(hr)", spo2_min: "min(spo2)", hr_p95: "percentile(hr, 0.95)"}
  - name: vitals_with_labs
    type: interval_join
    left: vitals
    right: labs
    key_by: [patient_id]
    between: [-30m, 0s]
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
)yaml");
  absl::StatusOr<proto::JobGraph> compiled = CompileJobSpec(yaml, "job.yaml", dir_.string());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_EQ(built->DebugString(), compiled->DebugString());
  ASSERT_EQ(built->vertices_size(), 10);
  // -1 is written out; a time field at index 0 would be indistinguishable
  // from "unset" otherwise.
  EXPECT_THAT(built->vertices(2).DebugString(), HasSubstr("output_time_index: -1"));
  EXPECT_THAT(built->vertices(6).DebugString(), HasSubstr("output_time_index: -1"));
}

TEST_F(JobBuilderTest, WindowAggregateTypesFollowTheAccumulatorRules) {
  const Schema schema({{"k", FieldType::kString},
                       {"t", FieldType::kTimestamp},
                       {"i", FieldType::kInt},
                       {"d", FieldType::kDouble},
                       {"b", FieldType::kBool}});
  GeneratorOptions gen = Count(10);
  gen.event_time = TimeField("t");
  JobBuilder b("j");
  b.GeneratorSource("g", schema, gen);
  b.Window("w", "g",
           WindowOptions::Sliding({"k", "b"}, 10000, 3000,
                                  {{"n", "count(b)"},
                                   {"si", "sum(i)"},
                                   {"sd", "sum(d)"},
                                   {"mi", "min(t)"},
                                   {"mx", "max(k)"},
                                   {"f", "first(b)"},
                                   {"l", "last(d)"},
                                   {"a", "avg(i)"},
                                   {"sdv", "stddev(d)"},
                                   {"p", "PERCENTILE(i * 2, 0.5)"}}));
  b.Sink("out", "w", SinkOptions::Blackhole());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& w = graph->vertices(1);
  EXPECT_EQ(SchemaOf(w.output_schema()),
            "{k: string, b: bool, window_start: timestamp, window_end: timestamp, n: int, si: int, "
            "sd: double, mi: timestamp, mx: string, f: bool, l: double, a: double, sdv: double, "
            "p: double}");
  EXPECT_EQ(w.output_time_index(), 3);
  EXPECT_EQ(w.op().window().aggregates(9).func(), "percentile");
  EXPECT_EQ(w.op().window().aggregates(9).arg(), "i * 2");
  EXPECT_DOUBLE_EQ(w.op().window().aggregates(9).param(), 0.5);
  EXPECT_EQ(w.op().window().aggregates(0).param(), 0);
  EXPECT_THAT(graph->edges(0).key_fields(), ElementsAre(0, 4));

  struct Case {
    std::string call;
    std::string message;
  };
  const std::vector<Case> bad = {
      {"sum(k)", "sum needs an int or double argument, got string"},
      {"min(b)", "min needs an int, double, string or timestamp argument, got bool"},
      {"avg(t)", "avg needs an int or double argument, got timestamp"},
      {"stddev(k)", "stddev needs an int or double argument, got string"},
      {"percentile(b, 0.5)", "percentile needs an int or double argument, got bool"},
      {"percentile(i, 1.01)", "percentile's quantile must be in (0, 1], got 1.01"},
      {"median(i)", "unknown aggregate function 'median'"},
  };
  for (const Case& c : bad) {
    JobBuilder e("j");
    e.GeneratorSource("g", schema, gen);
    e.Window("w", "g", WindowOptions::Tumbling({"k"}, 1000, {{"n", "count(*)"}, {"x", c.call}}));
    ASSERT_NE(e.error(), nullptr) << c.call;
    EXPECT_THAT(e.error()->status.message(), HasSubstr(c.message));
    EXPECT_EQ(e.error()->field, "aggregates");
    EXPECT_EQ(e.error()->index, 1);
  }
}

TEST_F(JobBuilderTest, ErrorsOfTheNewCallsNameTheirSpecKeys) {
  struct Case {
    std::function<void(JobBuilder&)> define;
    std::string field;
    std::string subfield;
    int index;
    std::string message;
  };
  auto window = [](std::function<void(WindowOptions&)> change) {
    return [change](JobBuilder& b) {
      WindowOptions w = WindowOptions::Tumbling({"patient_id"}, 60000, {{"n", "count(*)"}});
      change(w);
      b.Window("w", "timed", w);
    };
  };
  auto join = [](std::function<void(IntervalJoinOptions&)> change) {
    return [change](JobBuilder& b) {
      IntervalJoinOptions j = IntervalJoinOptions::On({"patient_id"}, -1000, 0);
      change(j);
      b.IntervalJoin("j", "timed", "timed2", j);
    };
  };
  const std::vector<Case> cases = {
      {[&](JobBuilder& b) {
         b.FileSource("s", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("hr")));
       },
       "event_time", "field", -1, "source 's': event_time field 'hr' must be a timestamp, got int"},
      {[&](JobBuilder& b) {
         b.FileSource("s", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts", -1)));
       },
       "event_time", "max_out_of_orderness", -1, "max_out_of_orderness must be >= 0, got -1ms"},
      {[&](JobBuilder& b) {
         GeneratorOptions g;
         g.event_time = TimeField("");
         b.GeneratorSource("s", VitalsSchema(), g);
       },
       "event_time", "field", -1, "event_time needs the field that holds the event time"},
      {window([](WindowOptions& w) { w.size_ms = 0; }), "window", "size", -1,
       "window 'w': a tumbling window needs a size > 0, got 0s"},
      {window([](WindowOptions& w) { w.gap_ms = 5; }), "window", "gap", -1,
       "window 'w': gap does not apply to a tumbling window"},
      {window([](WindowOptions& w) {
         w.kind = WindowKind::kSliding;
         w.slide_ms = -1;
       }),
       "window", "slide", -1, "window 'w': a sliding window needs a slide > 0, got -1ms"},
      {window([](WindowOptions& w) { w.kind = WindowKind::kSession; }), "window", "size", -1,
       "window 'w': size does not apply to a session window"},
      {window([](WindowOptions& w) {
         w.kind = WindowKind::kSession;
         w.size_ms = 0;
       }),
       "window", "gap", -1, "window 'w': a session window needs a gap > 0, got 0s"},
      {window([](WindowOptions& w) { w.allowed_lateness_ms = -5; }), "allowed_lateness", "", -1,
       "allowed_lateness must be >= 0, got -5ms"},
      {window([](WindowOptions& w) {
         w.time = WindowTime::kProcessing;
         w.late_output = "late";
       }),
       "late_output", "", -1, "late_output applies only to time: event"},
      {window([](WindowOptions& w) { w.late_output = "timed"; }), "late_output", "", -1,
       "duplicate name 'timed': already used by source 'timed'"},
      {window([](WindowOptions& w) { w.key_by = {}; }), "key_by", "", -1,
       "key_by must list the fields that identify a key"},
      {window([](WindowOptions& w) {
         w.aggregates = {{"window_start", "count(*)"}};
       }),
       "aggregates", "", 0, "output field 'window_start' is defined twice"},
      {window([](WindowOptions& w) {
         w.aggregates = {{"patient_id", "count(*)"}};
       }),
       "aggregates", "", 0, "output field 'patient_id' is defined twice"},
      {[](JobBuilder& b) {
         b.Map("m", "timed", {{"window_end", "ts"}, {"hr", "hr"}});
         b.Window("w", "m", WindowOptions::Tumbling({"window_end"}, 1000, {{"n", "count(*)"}}));
       },
       "key_by", "", 0, "key field 'window_end' would clash with the window's own field"},
      {[](JobBuilder& b) {
         b.Window("w", "plain", WindowOptions::Tumbling({"patient_id"}, 1000, {{"n", "count(*)"}}));
       },
       "input", "", -1,
       "window 'w' needs event time, but its input 'plain' has none: declare event_time on its "
       "source, or set time: processing"},
      {[](JobBuilder& b) {
         b.Window("w", "timed", WindowOptions::Tumbling({"patient_id"}, 1000, {{"n", "count(*)"}}),
                  Partitioned(Partition::kRebalance));
       },
       "partition", "", -1, "a window is always hash-partitioned on its key_by"},
      {join([](IntervalJoinOptions& j) { j.lower_ms = 1; }), "between", "", -1,
       "between's lower bound 1ms is greater than its upper bound 0s"},
      {join([](IntervalJoinOptions& j) {
         j.key_by = {"patient_id", "nope"};
       }),
       "key_by", "", 1, "unknown key field 'nope' in the left input 'timed'"},
      {join([](IntervalJoinOptions& j) {
         j.key_by = {};
         j.right_key = {"patient_id"};
       }),
       "right_key", "", -1, "right_key needs left_key"},
      {[](JobBuilder& b) {
         b.IntervalJoin("j", "plain", "timed", IntervalJoinOptions::On({"patient_id"}, 0, 0));
       },
       "left", "", -1, "its left input 'plain' has none"},
      {[](JobBuilder& b) {
         b.IntervalJoin("j", "timed", "nope", IntervalJoinOptions::On({"patient_id"}, 0, 0));
       },
       "right", "", -1, "unknown input stream 'nope'"},
      {[](JobBuilder& b) {
         b.IntervalJoin("j", "timed", "timed2", IntervalJoinOptions::On({"patient_id"}, 0, 0),
                        KeyBy({"hr"}));
       },
       "partition", "", -1, "an interval_join is always hash-partitioned on its keys"},
      {[](JobBuilder& b) {
         b.BroadcastJoin("bj", "timed", "nope", BroadcastJoinOptions::On({"hr"}));
       },
       "broadcast", "", -1, "broadcast_join 'bj': unknown input stream 'nope'"},
      {[](JobBuilder& b) {
         BroadcastJoinOptions j;
         j.main_key = {"hr"};
         j.broadcast_key = {"ts"};
         b.BroadcastJoin("bj", "timed", "plain", j);
       },
       "broadcast_key", "", 0, "key field 'ts' is timestamp in 'plain' but 'hr' is int in 'timed'"},
      {[](JobBuilder& b) { b.BroadcastJoin("bj", "timed", "plain", BroadcastJoinOptions()); },
       "key_by", "", -1, "needs key_by, or main_key and broadcast_key"},
      {[](JobBuilder& b) {
         b.Union("u", {"timed", "plain"});
       },
       "inputs", "", 1,
       "inputs must agree on event time, but 'plain' has none and 'timed' has event time 'ts'"},
  };
  for (const Case& c : cases) {
    JobBuilder b("j");
    b.FileSource("timed", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
    b.FileSource("timed2", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
    b.FileSource("plain", vitals_, "csv", VitalsSchema());
    ASSERT_EQ(b.error(), nullptr);
    c.define(b);
    ASSERT_NE(b.error(), nullptr) << c.message;
    EXPECT_THAT(std::string(b.error()->status.message()), HasSubstr(c.message));
    EXPECT_EQ(b.error()->field, c.field) << c.message;
    EXPECT_EQ(b.error()->subfield, c.subfield) << c.message;
    EXPECT_EQ(b.error()->index, c.index) << c.message;
  }
}

TEST_F(JobBuilderTest, SelfJoinRenamesEveryRightField) {
  JobBuilder b("j");
  b.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  b.IntervalJoin("pairs", "vitals", "vitals", IntervalJoinOptions::On({"patient_id"}, 1, 60000));
  b.Sink("out", "pairs", SinkOptions::Blackhole());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(SchemaOf(graph->vertices(1).output_schema()),
            "{patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int, "
            "vitals_patient_id: string, vitals_ts: timestamp, vitals_hr: int, vitals_spo2: int, "
            "vitals_rr: int}");
  ASSERT_EQ(graph->edges_size(), 3);
  EXPECT_EQ(graph->edges(0).target_input(), 0);
  EXPECT_EQ(graph->edges(1).target_input(), 1);
  EXPECT_EQ(graph->edges(1).source(), 0);
}

TEST_F(JobBuilderTest, BroadcastJoinMainInputTakesTheUsualOptions) {
  JobBuilder b("j");
  b.SetParallelism(2);
  b.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  b.GeneratorSource("limits",
                    Schema({{"patient_id", FieldType::kString}, {"hr_max", FieldType::kInt}}),
                    Count(5));
  VertexOptions main = KeyBy({"hr"});
  main.parallelism = 3;
  b.BroadcastJoin("checked", "vitals", "limits", BroadcastJoinOptions::On({"patient_id"}), main);
  b.Sink("out", "checked", SinkOptions::Blackhole());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& j = graph->vertices(2);
  EXPECT_EQ(j.parallelism(), 3);
  EXPECT_EQ(j.output_time_index(), 1);
  EXPECT_EQ(SchemaOf(j.output_schema()),
            "{patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int, hr_max: int}");
  EXPECT_EQ(graph->edges(0).partitioning(), proto::HASH);
  EXPECT_THAT(graph->edges(0).key_fields(), ElementsAre(2));
  EXPECT_EQ(graph->edges(1).partitioning(), proto::BROADCAST);
  EXPECT_EQ(graph->edges(1).target_input(), 1);
}

TEST(ParseWindowTest, KindsAndTimes) {
  EXPECT_EQ(*ParseWindowKind("tumbling"), WindowKind::kTumbling);
  EXPECT_EQ(*ParseWindowKind("sliding"), WindowKind::kSliding);
  EXPECT_EQ(*ParseWindowKind("session"), WindowKind::kSession);
  EXPECT_THAT(ParseWindowKind("hop").status().message(), HasSubstr("unknown window kind 'hop'"));
  EXPECT_EQ(*ParseWindowTime("event"), WindowTime::kEvent);
  EXPECT_EQ(*ParseWindowTime("processing"), WindowTime::kProcessing);
  EXPECT_THAT(ParseWindowTime("wall").status().message(), HasSubstr("unknown time 'wall'"));
}

TEST_F(JobBuilderTest, ProcessAndStateTtl) {
  JobBuilder b("alerts");
  StreamRef vitals =
      b.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts", 5000)));
  ProcessOptions alert =
      ProcessOptions::Function("no_data_alert", {"patient_id"}, {{"timeout", "5m"}});
  alert.state_ttl_ms = 3'600'000;
  alert.dead_letter = "rejected";
  StreamRef alerts = b.Process("silent", vitals, alert, Parallel(2));
  AggregateOptions totals = AggregateOptions::On({"patient_id"}, {{"n", "count(*)"}});
  totals.state_ttl_ms = 60'000;
  StreamRef counts = b.Aggregate("counts", vitals, totals);
  b.Sink("a", alerts, SinkOptions::Stdout());
  b.Sink("r", "rejected", SinkOptions::Stdout());
  b.Sink("c", counts, SinkOptions::Stdout());
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  const proto::JobVertex& p = graph->vertices(1);
  EXPECT_EQ(p.parallelism(), 2);
  EXPECT_EQ(p.op().process().function(), "no_data_alert");
  EXPECT_EQ(p.op().process().state_ttl_ms(), 3'600'000);
  EXPECT_EQ(Schema::FromProto(p.output_schema()).DebugString(),
            "{patient_id: string, last_ts: timestamp, alert_ts: timestamp, kind: string}");
  EXPECT_EQ(graph->vertices(2).op().aggregate().state_ttl_ms(), 60'000);

  // Errors name their spec keys; a param error names the param.
  JobBuilder bad("bad");
  bad.FileSource("vitals", vitals_, "csv", VitalsSchema(), WithEventTime(TimeField("ts")));
  bad.Process("silent", "vitals",
              ProcessOptions::Function("no_data_alert", {"patient_id"}, {{"timeout", "0s"}}));
  ASSERT_NE(bad.error(), nullptr);
  EXPECT_EQ(bad.error()->field, "params");
  EXPECT_EQ(bad.error()->subfield, "timeout");
  EXPECT_EQ(bad.status().message(),
            "process 'silent': function 'no_data_alert': param 'timeout': must be > 0");
  JobBuilder ttl("ttl");
  ttl.FileSource("vitals", vitals_, "csv", VitalsSchema());
  AggregateOptions negative = AggregateOptions::On({"patient_id"}, {{"n", "count(*)"}});
  negative.state_ttl_ms = -1;
  ttl.Aggregate("counts", "vitals", negative);
  ASSERT_NE(ttl.error(), nullptr);
  EXPECT_EQ(ttl.error()->field, "state_ttl");
  EXPECT_EQ(ttl.status().message(),
            "aggregate 'counts': state_ttl must be >= 0 (0 = kept forever), got -1ms");
}

TEST_F(JobBuilderTest, CheckpointingGoesToTheGraph) {
  JobBuilder b("ckpt");
  StreamRef src = b.GeneratorSource("gen", VitalsSchema(), Count(10));
  b.Sink("out", src, SinkOptions::Stdout());
  CheckpointingOptions c;
  c.interval_ms = 2000;
  c.mode = CheckpointingMode::kAtLeastOnce;
  c.retained = 1;
  c.storage = "/shared/ckpt/";
  b.SetCheckpointing(c);
  absl::StatusOr<proto::JobGraph> graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->checkpointing().interval_ms(), 2000);
  EXPECT_EQ(graph->checkpointing().mode(), proto::AT_LEAST_ONCE);
  EXPECT_EQ(graph->checkpointing().timeout_ms(), 10 * 60 * 1000);
  EXPECT_EQ(graph->checkpointing().max_concurrent(), 1);
  EXPECT_EQ(graph->checkpointing().retained(), 1);
  EXPECT_EQ(graph->checkpointing().storage(), "file:///shared/ckpt");
}

TEST_F(JobBuilderTest, CheckpointingErrorsNameTheSetting) {
  auto build = [](const CheckpointingOptions& c) {
    auto b = std::make_unique<JobBuilder>("ckpt");
    StreamRef src = b->GeneratorSource("gen", VitalsSchema(), Count(10));
    b->Sink("out", src, SinkOptions::Stdout());
    b->SetCheckpointing(c);
    EXPECT_FALSE(b->Build().ok());
    return b;
  };
  CheckpointingOptions c;
  c.interval_ms = 1000;
  c.max_concurrent = 0;
  auto b = build(c);
  ASSERT_NE(b->error(), nullptr);
  EXPECT_EQ(b->error()->vertex, "");
  EXPECT_EQ(b->error()->field, "checkpointing");
  EXPECT_EQ(b->error()->subfield, "max_concurrent");
  EXPECT_THAT(std::string(b->error()->status.message()),
              HasSubstr("job 'ckpt': checkpointing max_concurrent must be at least 1, got 0"));

  c.max_concurrent = 1;
  c.interval_ms = -1000;
  b = build(c);
  EXPECT_EQ(b->error()->subfield, "interval");
  EXPECT_THAT(std::string(b->error()->status.message()), HasSubstr("must be >= 0 (0 = no checkpoints), got -1s"));

  c.interval_ms = 0;  // off, but the other settings are still checked
  c.min_pause_ms = -1;
  b = build(c);
  EXPECT_EQ(b->error()->subfield, "min_pause");
}

}  // namespace
}  // namespace vstream
