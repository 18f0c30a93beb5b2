// A job built with the C++ JobBuilder and submitted with the ClusterClient:
// a generator and a JSON-lines file (with malformed lines routed to a named
// dead-letter stream) are unioned, rebalanced, mapped and aggregated, and
// written as CSV. Checked record for record.

#include <filesystem>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cluster_client.h"
#include "client/job_builder.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> ReadParts(const std::string& dir, bool skip_header) {
  std::vector<std::string> lines;
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << "in-progress file left: " << e.path();
    std::istringstream in(ReadFile(e.path().string()));
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      if (!(first && skip_header)) lines.push_back(line);
      first = false;
    }
  }
  return lines;
}

TEST(BuilderJobTest, UnionRebalanceMapAggregateWithDeadLetterStream) {
  TestCluster cluster(2, 2);
  TempDir data("builder");
  // 300 good JSON lines (ids 5000..5299) and 3 bad ones.
  std::string jsonl;
  for (int i = 0; i < 300; ++i) {
    absl::StrAppend(&jsonl, "{\"id\": ", 5000 + i, ", \"extra\": {\"nested\": [1, 2]}}\n");
    if (i % 100 == 50) absl::StrAppend(&jsonl, "{\"id\": \"not a number\"}\n");
  }
  WriteFile(data.File("more.jsonl"), jsonl);

  Schema schema({{"id", FieldType::kInt}});
  JobBuilder b("builder-job");
  b.SetParallelism(2);
  GeneratorOptions gen;
  gen.count = 5000;
  GeneratorColumn id;
  id.column = "id";
  id.kind = "sequence";
  gen.fields.push_back(id);
  b.GeneratorSource("gen", schema, gen);
  FileSourceOptions file_options;
  file_options.dead_letter = "bad";
  file_options.parallelism = 1;
  b.FileSource("file", data.File("more.jsonl"), "jsonl", schema, file_options);
  b.Union("all", {"gen", "file"});
  VertexOptions rebalance;
  rebalance.partition = Partition::kRebalance;
  b.Map("bucketed", "all", {{"id", "id"}, {"bucket", "id % 10"}}, rebalance);
  b.Aggregate("per_bucket", "bucketed", {"bucket"}, {{"n", "count(*)"}, {"total", "sum(id)"}});
  b.Sink("out", "per_bucket", SinkOptions::File(data.File("out"), "csv"));
  b.Sink("dead", "bad", SinkOptions::File(data.File("dead"), "jsonl"));
  auto graph = b.Build();
  ASSERT_TRUE(graph.ok()) << graph.status();

  ClusterClient client(cluster.jobmanager_address());
  auto job_id = client.Submit(*graph);
  ASSERT_TRUE(job_id.ok()) << job_id.status();
  proto::JobStatus status;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = client.Get(*job_id);
        if (st.ok()) status = *st;
        return st.ok() && (st->state() == proto::FINISHED || st->state() == proto::FAILED);
      },
      std::chrono::seconds(60)));
  ASSERT_EQ(status.state(), proto::FINISHED) << status.DebugString();

  // Expected: ids 0..4999 and 5000..5299, per bucket id % 10.
  std::map<int64_t, std::pair<int64_t, int64_t>> want;
  for (int64_t i = 0; i < 5300; ++i) {
    want[i % 10].first++;
    want[i % 10].second += i;
  }
  std::map<int64_t, std::pair<int64_t, int64_t>> last;
  for (const std::string& line : ReadParts(data.File("out"), /*skip_header=*/true)) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    ASSERT_EQ(f.size(), 3u) << line;
    auto& e = last[std::stoll(f[0])];
    const int64_t n = std::stoll(f[1]);
    if (n > e.first) e = {n, std::stoll(f[2])};
  }
  EXPECT_EQ(last, want);

  std::vector<std::string> dead = ReadParts(data.File("dead"), false);
  ASSERT_EQ(dead.size(), 3u);
  for (const auto& d : dead) {
    EXPECT_NE(d.find("\"source\":\"file\""), std::string::npos) << d;
    EXPECT_NE(d.find("expected int"), std::string::npos) << d;
    EXPECT_NE(d.find("more.jsonl:"), std::string::npos) << d;
  }
  for (const auto& v : status.vertices()) {
    if (v.name() == "file") {
      EXPECT_EQ(v.dead_letters(), 3);
    }
    if (v.name() == "per_bucket") {
      EXPECT_EQ(v.records_in(), 5300);
    }
  }
}

}  // namespace
}  // namespace vstream::testing
