// The Nexmark queries of bench/nexmark/, run on a real cluster (a JobManager
// and 2 TaskManagers as processes, parallelism 2, exactly-once checkpoints
// every 200 ms) into file sinks, against a reference computed here: the same
// events made by NexmarkSource in this process at parallelism 1, the query
// evaluated in plain C++ (not with the engine's operators or expressions),
// and written by the same CSV writer as the sink. The output must be equal
// as multisets (the sink's order depends on the subtasks).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "runtime/formats/record_format.h"
#include "runtime/operators/nexmark_source.h"
#include "tests/test_cluster.h"

namespace vstream {
namespace {

using testing::CommandResult;
using testing::ReadFile;
using testing::ReadOutputLines;
using testing::TempDir;
using testing::TestCluster;
using testing::WriteFile;

constexpr int64_t kEvents = 200'000;

// Hands every row pushed to it to a function.
class VisitingOutput : public Output {
 public:
  explicit VisitingOutput(std::function<void(const Row&)> visit) : visit_(std::move(visit)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) visit_(batch[i]);
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}

 private:
  std::function<void(const Row&)> visit_;
};

// Every event of the query's source (the defaults, kEvents of them), in
// event order.
void ForEachEvent(const std::function<void(const Row&)>& visit) {
  NexmarkOptions options;
  options.count = kEvents;
  OperatorCounters counters;
  NexmarkSource source(counters, NexmarkSchema(), proto::SourceSpec(), options);
  VisitingOutput out(visit);
  source.set_output(&out);
  OperatorContext ctx;
  ctx.job_id = "reference";
  ctx.vertex_name = "events";
  ctx.subtask_index = 0;
  ctx.parallelism = 1;
  ASSERT_TRUE(source.Open(ctx).ok());
  while (source.Produce() != SourceStatus::kEnd) {
  }
  ASSERT_TRUE(source.status().ok()) << source.status();
}

// The reference's rows of `schema`, made by `query` from each event (it
// returns false to skip one), as sorted CSV lines.
std::vector<std::string> Reference(const Schema& schema, const std::function<bool(const Row&, Row*)>& query) {
  absl::StatusOr<std::unique_ptr<RecordWriter>> writer = CreateRecordWriter("csv", schema);
  EXPECT_TRUE(writer.ok()) << writer.status();
  std::vector<std::string> lines;
  Row out(schema.size());
  std::string text;
  ForEachEvent([&](const Row& event) {
    if (!query(event, &out)) return;
    text.clear();
    (*writer)->Write(out, &text);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    lines.push_back(text);
  });
  std::sort(lines.begin(), lines.end());
  return lines;
}

// Runs bench/nexmark/<query>.yaml on a cluster with a CSV file sink instead
// of the blackhole and checkpoints every 200 ms; returns its sorted lines.
std::vector<std::string> RunQuery(const std::string& query) {
  std::string spec = ReadFile(std::string(VSTREAM_SOURCE_DIR) + "/bench/nexmark/" + query + ".yaml");
  EXPECT_NE(spec.find("connector: blackhole"), std::string::npos) << query << ": no blackhole sink to replace";
  TempDir dir("nexmark-" + query);
  spec = absl::StrReplaceAll(spec, {{"count: COUNT", "count: " + std::to_string(kEvents)},
                                    {"connector: blackhole",
                                     "connector: file\n    format: csv\n    path: " + dir.File("out")},
                                    {"parallelism: 2\n", "parallelism: 2\ncheckpointing: {interval: 200ms}\n"}});
  WriteFile(dir.File("job.yaml"), spec);
  TestCluster cluster(2, 2);
  CommandResult r = cluster.Vstream({"submit", dir.File("job.yaml"), "--wait"}, std::chrono::minutes(5));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<std::string> lines = ReadOutputLines(dir.File("out"), /*skip_header=*/true);
  std::sort(lines.begin(), lines.end());
  return lines;
}

bool IsBid(const Row& e) { return e[kNxEventType].i == static_cast<int64_t>(NexmarkEventType::kBid); }

// The fields of q0 and q1: auction, bidder, price, date_time, extra.
Schema BidSchema(FieldType price) {
  return Schema({{"auction", FieldType::kInt},
                 {"bidder", FieldType::kInt},
                 {"price", price},
                 {"date_time", FieldType::kTimestamp},
                 {"extra", FieldType::kString}});
}

void CopyBid(const Row& e, Row* out) {
  (*out)[0].SetInt(e[kNxBidAuction].i);
  (*out)[1].SetInt(e[kNxBidBidder].i);
  (*out)[3].SetInt(e[kNxBidDateTime].i);
  (*out)[4].SetString(e[kNxBidExtra].s);
}

TEST(NexmarkTest, Q0PassesEveryBidThrough) {
  const std::vector<std::string> expected = Reference(BidSchema(FieldType::kInt), [](const Row& e, Row* out) {
    if (!IsBid(e)) return false;
    CopyBid(e, out);
    (*out)[2].SetInt(e[kNxBidPrice].i);
    return true;
  });
  ASSERT_EQ(expected.size(), size_t{kEvents / 50 * 46});  // 46 bids in every 50 events
  const std::vector<std::string> got = RunQuery("q0");
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "q0 differs from the reference";
}

TEST(NexmarkTest, Q1ConvertsEveryPriceToEuros) {
  const std::vector<std::string> expected = Reference(BidSchema(FieldType::kDouble), [](const Row& e, Row* out) {
    if (!IsBid(e)) return false;
    CopyBid(e, out);
    (*out)[2].SetDouble(0.908 * static_cast<double>(e[kNxBidPrice].i));
    return true;
  });
  const std::vector<std::string> got = RunQuery("q1");
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "q1 differs from the reference";
}

TEST(NexmarkTest, Q2SelectsTheBidsOfEvery123rdAuction) {
  const Schema schema({{"auction", FieldType::kInt}, {"price", FieldType::kInt}});
  const std::vector<std::string> expected = Reference(schema, [](const Row& e, Row* out) {
    if (!IsBid(e) || e[kNxBidAuction].i % 123 != 0) return false;
    (*out)[0].SetInt(e[kNxBidAuction].i);
    (*out)[1].SetInt(e[kNxBidPrice].i);
    return true;
  });
  ASSERT_GT(expected.size(), 100u);  // the test must see some
  const std::vector<std::string> got = RunQuery("q2");
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "q2 differs from the reference";
}

}  // namespace
}  // namespace vstream
