// The Nexmark queries of bench/workloads/, run on a real cluster (a JobManager
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
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
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

// Rows of `schema` as sorted CSV lines, written by the file sink's writer.
class Lines {
 public:
  explicit Lines(const Schema& schema) : out_(schema.size()) {
    absl::StatusOr<std::unique_ptr<RecordWriter>> writer = CreateRecordWriter("csv", schema);
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (writer.ok()) writer_ = std::move(*writer);
  }
  // The row to fill before Add().
  Row& row() { return out_; }
  void Add() {
    std::string text;
    writer_->Write(out_, &text);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    lines_.push_back(std::move(text));
  }
  std::vector<std::string> Sorted() {
    std::sort(lines_.begin(), lines_.end());
    return lines_;
  }

 private:
  Row out_;
  std::unique_ptr<RecordWriter> writer_;
  std::vector<std::string> lines_;
};

// The reference's rows of `schema`, made by `query` from each event (it
// returns false to skip one), as sorted CSV lines.
std::vector<std::string> Reference(const Schema& schema, const std::function<bool(const Row&, Row*)>& query) {
  Lines lines(schema);
  ForEachEvent([&](const Row& event) {
    if (query(event, &lines.row())) lines.Add();
  });
  return lines.Sorted();
}

// Runs bench/workloads/<query>.yaml on a cluster with a CSV file sink instead
// of the blackhole and checkpoints every 200 ms; returns its sorted lines.
std::vector<std::string> RunQuery(const std::string& query) {
  std::string spec = ReadFile(std::string(VSTREAM_SOURCE_DIR) + "/bench/workloads/" + query + ".yaml");
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

// Runs the query and expects exactly the reference's lines.
void ExpectQueryGives(const std::string& query, const std::vector<std::string>& expected) {
  const std::vector<std::string> got = RunQuery(query);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << query << " differs from the reference";
}

bool IsBid(const Row& e) { return e[kNxEventType].i == static_cast<int64_t>(NexmarkEventType::kBid); }
bool IsAuction(const Row& e) { return e[kNxEventType].i == static_cast<int64_t>(NexmarkEventType::kAuction); }
bool IsPerson(const Row& e) { return e[kNxEventType].i == static_cast<int64_t>(NexmarkEventType::kPerson); }

// The start of the epoch-aligned window of `size` ms that holds time t.
int64_t WindowStart(int64_t t, int64_t size) { return t - ((t % size) + size) % size; }

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
  ExpectQueryGives("q0", expected);
}

TEST(NexmarkTest, Q1ConvertsEveryPriceToEuros) {
  const std::vector<std::string> expected = Reference(BidSchema(FieldType::kDouble), [](const Row& e, Row* out) {
    if (!IsBid(e)) return false;
    CopyBid(e, out);
    (*out)[2].SetDouble(0.908 * static_cast<double>(e[kNxBidPrice].i));
    return true;
  });
  ExpectQueryGives("q1", expected);
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
  ExpectQueryGives("q2", expected);
}

TEST(NexmarkTest, Q3JoinsCategoryTenAuctionsWithTheirWesternSellers) {
  std::map<int64_t, std::tuple<std::string, std::string, std::string>> people;  // id -> name, city, state
  std::vector<std::pair<int64_t, int64_t>> auctions;                            // seller, id
  ForEachEvent([&](const Row& e) {
    if (IsPerson(e)) {
      const std::string& state = e[kNxPersonState].s;
      if (state == "OR" || state == "ID" || state == "CA") {
        people[e[kNxPersonId].i] = {e[kNxPersonName].s, e[kNxPersonCity].s, state};
      }
    } else if (IsAuction(e) && e[kNxAuctionCategory].i == 10) {
      auctions.emplace_back(e[kNxAuctionSeller].i, e[kNxAuctionId].i);
    }
  });
  Lines lines(Schema({{"name", FieldType::kString},
                      {"city", FieldType::kString},
                      {"state", FieldType::kString},
                      {"id", FieldType::kInt}}));
  for (const auto& [seller, id] : auctions) {
    auto it = people.find(seller);
    if (it == people.end()) continue;
    Row& r = lines.row();
    r[0].SetString(std::get<0>(it->second));
    r[1].SetString(std::get<1>(it->second));
    r[2].SetString(std::get<2>(it->second));
    r[3].SetInt(id);
    lines.Add();
  }
  const std::vector<std::string> expected = lines.Sorted();
  ASSERT_GT(expected.size(), 50u);
  ExpectQueryGives("q3", expected);
}

TEST(NexmarkTest, Q4AveragesTheClosingPricesPerCategory) {
  struct Auction {
    int64_t category, opened, expires;
  };
  std::map<int64_t, Auction> auctions;
  std::vector<std::tuple<int64_t, int64_t, int64_t>> bids;  // auction, price, time
  ForEachEvent([&](const Row& e) {
    if (IsAuction(e)) {
      auctions[e[kNxAuctionId].i] = {e[kNxAuctionCategory].i, e[kNxDateTime].i, e[kNxAuctionExpires].i};
    } else if (IsBid(e)) {
      bids.emplace_back(e[kNxBidAuction].i, e[kNxBidPrice].i, e[kNxDateTime].i);
    }
  });
  std::map<int64_t, int64_t> final_price;  // auction -> highest bid while open
  for (const auto& [auction, price, time] : bids) {
    auto it = auctions.find(auction);
    if (it == auctions.end() || time < it->second.opened || time > it->second.expires) continue;
    auto [f, fresh] = final_price.emplace(auction, price);
    if (!fresh) f->second = std::max(f->second, price);
  }
  std::map<int64_t, std::pair<int64_t, int64_t>> per_category;  // sum, count of final prices
  for (const auto& [auction, price] : final_price) {
    auto& [sum, n] = per_category[auctions[auction].category];
    sum += price;
    ++n;
  }
  Lines lines(Schema({{"category", FieldType::kInt}, {"avg_final", FieldType::kDouble}, {"retract", FieldType::kBool}}));
  for (const auto& [category, sum_n] : per_category) {
    lines.row()[0].SetInt(category);
    lines.row()[1].SetDouble(static_cast<double>(sum_n.first) / static_cast<double>(sum_n.second));
    lines.row()[2].SetBool(false);
    lines.Add();
  }
  const std::vector<std::string> expected = lines.Sorted();
  ASSERT_EQ(expected.size(), 5u);  // categories 10 to 14
  // The sink has the changelog: a row ending in ",true" cancels an equal
  // earlier row ending in ",false". What stays is the result.
  const std::vector<std::string> changelog = RunQuery("q4");
  std::map<std::string, int> net;
  size_t retractions = 0;
  for (const std::string& line : changelog) {
    constexpr std::string_view kRetract = ",true";
    if (line.size() > kRetract.size() && line.compare(line.size() - kRetract.size(), kRetract.size(), kRetract) == 0) {
      --net[line.substr(0, line.size() - kRetract.size()) + ",false"];
      ++retractions;
    } else {
      ++net[line];
    }
  }
  std::vector<std::string> got;
  for (const auto& [line, n] : net) {
    EXPECT_GE(n, 0) << line << " was retracted more often than emitted";
    for (int k = 0; k < n; ++k) got.push_back(line);
  }
  EXPECT_GT(retractions, 100u) << "an updating query should have retracted rows";
  EXPECT_EQ(got, expected);
}

TEST(NexmarkTest, Q5FindsTheAuctionsWithTheMostBidsPerSlidingWindow) {
  constexpr int64_t kSize = 10'000, kSlide = 2'000;
  std::map<int64_t, std::map<int64_t, int64_t>> counts;  // window start -> auction -> bids
  ForEachEvent([&](const Row& e) {
    if (!IsBid(e)) return;
    const int64_t t = e[kNxDateTime].i;
    for (int64_t start = WindowStart(t, kSlide); start > t - kSize; start -= kSlide) ++counts[start][e[kNxBidAuction].i];
  });
  Lines lines(Schema({{"auction", FieldType::kInt}, {"num", FieldType::kInt}}));
  for (const auto& [start, per_auction] : counts) {
    int64_t most = 0;
    for (const auto& [auction, n] : per_auction) most = std::max(most, n);
    for (const auto& [auction, n] : per_auction) {
      if (n < most) continue;
      lines.row()[0].SetInt(auction);
      lines.row()[1].SetInt(n);
      lines.Add();
    }
  }
  const std::vector<std::string> expected = lines.Sorted();
  ASSERT_GT(expected.size(), 10u);
  ExpectQueryGives("q5", expected);
}

TEST(NexmarkTest, Q7FindsTheHighestBidsOfEachWindow) {
  constexpr int64_t kSize = 10'000;
  std::map<int64_t, int64_t> max_price;  // window end -> highest price
  std::vector<std::vector<Datum>> bids;
  ForEachEvent([&](const Row& e) {
    if (!IsBid(e)) return;
    const int64_t end = WindowStart(e[kNxDateTime].i, kSize) + kSize;
    int64_t& m = max_price[end];
    m = std::max(m, e[kNxBidPrice].i);
    bids.push_back({e[kNxBidAuction], e[kNxBidPrice], e[kNxBidBidder], e[kNxDateTime], e[kNxBidExtra]});
  });
  Lines lines(Schema({{"auction", FieldType::kInt},
                      {"price", FieldType::kInt},
                      {"bidder", FieldType::kInt},
                      {"date_time", FieldType::kTimestamp},
                      {"extra", FieldType::kString}}));
  // B.dateTime BETWEEN B1.dateTime - 10 s AND B1.dateTime, B.price = B1.maxprice.
  for (const std::vector<Datum>& b : bids) {
    const int64_t t = b[3].i;
    for (auto it = max_price.lower_bound(t); it != max_price.end() && it->first <= t + kSize; ++it) {
      if (it->second != b[1].i) continue;
      for (size_t f = 0; f < b.size(); ++f) lines.row()[f] = b[f];
      lines.Add();
    }
  }
  const std::vector<std::string> expected = lines.Sorted();
  ASSERT_GE(expected.size(), max_price.size());  // at least the highest bid of every window
  ExpectQueryGives("q7", expected);
}

TEST(NexmarkTest, Q8FindsPeopleWhoSellInTheWindowTheyRegistered) {
  constexpr int64_t kSize = 10'000;
  std::set<std::pair<int64_t, int64_t>> selling;  // seller, window start
  std::vector<std::tuple<int64_t, std::string, int64_t>> registered;  // id, name, window start
  ForEachEvent([&](const Row& e) {
    if (IsPerson(e)) {
      registered.emplace_back(e[kNxPersonId].i, e[kNxPersonName].s, WindowStart(e[kNxDateTime].i, kSize));
    } else if (IsAuction(e)) {
      selling.emplace(e[kNxAuctionSeller].i, WindowStart(e[kNxDateTime].i, kSize));
    }
  });
  Lines lines(Schema({{"id", FieldType::kInt}, {"name", FieldType::kString}, {"starttime", FieldType::kTimestamp}}));
  for (const auto& [id, name, start] : registered) {
    if (!selling.contains({id, start})) continue;
    lines.row()[0].SetInt(id);
    lines.row()[1].SetString(name);
    lines.row()[2].SetInt(start);
    lines.Add();
  }
  const std::vector<std::string> expected = lines.Sorted();
  ASSERT_GT(expected.size(), 10u);
  ExpectQueryGives("q8", expected);
}

}  // namespace
}  // namespace vstream
