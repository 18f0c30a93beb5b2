#include "runtime/operators/nexmark_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/time_util.h"
#include "gtest/gtest.h"
#include "state/state_clock.h"

namespace vstream {
namespace {

// 2024-03-01T00:00:00Z
constexpr int64_t kBase = 1709251200000;

std::string RowText(const Row& row) {
  static const Schema schema = NexmarkSchema();
  std::string line;
  for (size_t f = 0; f < schema.size(); ++f) {
    if (f) line += "|";
    line += DatumToString(row[f], schema.field(f).type);
  }
  return line;
}

// Hands every row pushed to it to a function, in order; keeps the batch
// sizes and the watermarks.
class VisitingOutput : public Output {
 public:
  explicit VisitingOutput(std::function<void(const Row&)> visit) : visit_(std::move(visit)) {}
  void Push(RowBatch& batch) override {
    batch_sizes.push_back(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) visit_(batch[i]);
  }
  void Finish() override {}
  void PushWatermark(int64_t watermark) override { watermarks.push_back(watermark); }

  std::vector<size_t> batch_sizes;
  std::vector<int64_t> watermarks;

 private:
  std::function<void(const Row&)> visit_;
};

// Keeps every row pushed to it as text.
class TextOutput : public VisitingOutput {
 public:
  TextOutput() : VisitingOutput([this](const Row& r) { texts.push_back(RowText(r)); }) {}
  std::vector<std::string> texts;
};

NexmarkOptions Events(int64_t count) {
  NexmarkOptions o;
  o.count = count;
  o.seed = 7;
  o.base_time_ms = kBase;
  return o;
}

OperatorContext Context(int subtask, int parallelism, const StateClock* clock = nullptr) {
  OperatorContext ctx;
  ctx.job_id = "job";
  ctx.vertex_name = "nexmark";
  ctx.subtask_index = subtask;
  ctx.parallelism = parallelism;
  ctx.clock = clock;
  return ctx;
}

// Runs one subtask of a bounded source to its end into `out`.
void Drive(const NexmarkOptions& options, Output* out, int subtask = 0, int parallelism = 1,
           const proto::SourceSpec& spec = {}) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), spec, options);
  src.set_output(out);
  const absl::Status opened = src.Open(Context(subtask, parallelism));
  ASSERT_TRUE(opened.ok()) << opened;
  for (int calls = 0; src.Produce() != SourceStatus::kEnd; ++calls) {
    ASSERT_LT(calls, 1'000'000) << "the source does not end";
  }
  EXPECT_TRUE(src.status().ok()) << src.status();
}

// Every row of one subtask of a bounded source, as text.
std::vector<std::string> Texts(const NexmarkOptions& options, int subtask = 0, int parallelism = 1) {
  TextOutput out;
  Drive(options, &out, subtask, parallelism);
  return std::move(out.texts);
}

// Calls visit(n, row) for every event of a bounded source at parallelism 1.
void Visit(const NexmarkOptions& options, const std::function<void(int64_t, const Row&)>& visit) {
  int64_t n = 0;
  VisitingOutput out([&](const Row& r) { visit(n++, r); });
  Drive(options, &out);
  EXPECT_EQ(n, options.count);
}

// The fields of each kind of event.
constexpr int kFirstField[] = {kNxPersonId, kNxAuctionId, kNxBidAuction};
constexpr int kLastField[] = {kNxPersonExtra, kNxAuctionExtra, kNxBidExtra};

// The reference's last base-0 person and auction ids at event n, written out
// independently of the source.
int64_t LastPerson(int64_t n) { return n / 50; }
int64_t LastAuction(int64_t n) {
  const int64_t epoch = n / 50, offset = n % 50;
  if (offset == 0) return 3 * epoch - 1;
  if (offset <= 3) return 3 * epoch + offset - 1;
  return 3 * epoch + 2;
}

// Java's Math.abs(Integer.reverse(k)).
int64_t JavaAbsReverse(int64_t k) {
  uint32_t r = 0;
  for (int bit = 0; bit < 32; ++bit) {
    if ((static_cast<uint32_t>(k) >> bit) & 1) r |= 1u << (31 - bit);
  }
  const int64_t v = static_cast<int32_t>(r);
  return v == INT32_MIN ? v : std::abs(v);
}

bool IsWords(const std::string& s, size_t max_length) {
  if (s.size() > max_length) return false;
  if (!s.empty() && (s.front() == ' ' || s.back() == ' ')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || (c >= 'a' && c <= 'z'); });
}

bool IsLetters(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// The event's size as the reference counts it (8 bytes per id, number or
// time it counts, the strings' lengths).
int64_t ReferenceSize(const Row& r) {
  switch (r[kNxEventType].i) {
    case 0:
      return static_cast<int64_t>(8 + r[kNxPersonName].s.size() + r[kNxPersonEmail].s.size() +
                                  r[kNxPersonCreditCard].s.size() + r[kNxPersonCity].s.size() +
                                  r[kNxPersonState].s.size() + r[kNxPersonExtra].s.size());
    case 1:
      return static_cast<int64_t>(8 + r[kNxAuctionItemName].s.size() + r[kNxAuctionDescription].s.size() + 5 * 8 +
                                  r[kNxAuctionExtra].s.size());
    default: return static_cast<int64_t>(4 * 8 + r[kNxBidExtra].s.size());
  }
}

// ---------------------------------------------------------------- options

TEST(NexmarkOptionsTest, DefaultsAreTheReferences) {
  const NexmarkOptions o;
  EXPECT_TRUE(o.Validate().ok());
  EXPECT_EQ(o.count, -1);
  EXPECT_EQ(o.event_rate, 10'000);
  EXPECT_EQ(o.base_time_ms, 1436918400000);  // 2015-07-15T00:00:00Z
  EXPECT_EQ(o.num_active_people, 1000);
  EXPECT_EQ(o.num_in_flight_auctions, 100);
  EXPECT_EQ(o.hot_auction_ratio, 2);
  EXPECT_EQ(o.hot_sellers_ratio, 4);
  EXPECT_EQ(o.hot_bidders_ratio, 4);
  EXPECT_EQ(o.avg_person_byte_size, 200);
  EXPECT_EQ(o.avg_auction_byte_size, 500);
  EXPECT_EQ(o.avg_bid_byte_size, 100);
}

TEST(NexmarkOptionsTest, EachBadValueIsNamed) {
  struct Case {
    void (*set)(NexmarkOptions&);
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](NexmarkOptions& o) { o.count = -2; }, "count must be >= 0, or -1 for an unbounded source, got -2"},
      {[](NexmarkOptions& o) { o.rate = -1; }, "rate must lie in 0..1000000000 events/s"},
      {[](NexmarkOptions& o) { o.rate = std::nan(""); }, "rate must lie in"},
      {[](NexmarkOptions& o) { o.rate = 2e9; }, "rate must lie in"},
      {[](NexmarkOptions& o) { o.event_rate = 0; }, "event_rate must lie in 1..1000000000"},
      {[](NexmarkOptions& o) { o.event_rate = 1'000'000'001; }, "event_rate must lie in"},
      {[](NexmarkOptions& o) { o.base_time_ms = -1; }, "base_time_ms must lie in 0..253402300799999"},
      {[](NexmarkOptions& o) { o.base_time_ms = 253402300800000; }, "base_time_ms must lie in"},
      {[](NexmarkOptions& o) { o.num_active_people = 0; }, "num_active_people must lie in 1..100000000, got 0"},
      {[](NexmarkOptions& o) { o.num_in_flight_auctions = 100'000'001; },
       "num_in_flight_auctions must lie in 1..100000000, got 100000001"},
      {[](NexmarkOptions& o) { o.hot_auction_ratio = 0; }, "hot_auction_ratio must lie in 1..1000000"},
      {[](NexmarkOptions& o) { o.hot_sellers_ratio = -3; }, "hot_sellers_ratio must lie in 1..1000000"},
      {[](NexmarkOptions& o) { o.hot_bidders_ratio = 1'000'001; }, "hot_bidders_ratio must lie in 1..1000000"},
      {[](NexmarkOptions& o) { o.avg_person_byte_size = -1; }, "avg_person_byte_size must lie in 0..100000"},
      {[](NexmarkOptions& o) { o.avg_auction_byte_size = 100'001; }, "avg_auction_byte_size must lie in"},
      {[](NexmarkOptions& o) { o.avg_bid_byte_size = -5; }, "avg_bid_byte_size must lie in 0..100000 bytes, got -5"},
  };
  for (const Case& c : cases) {
    NexmarkOptions o;
    c.set(o);
    const absl::Status s = o.Validate();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.message << ": " << s;
    EXPECT_NE(s.message().find(c.message), absl::string_view::npos) << s;
  }
}

TEST(NexmarkSourceTest, OpenRejectsBadOptionsAndAnotherSchema) {
  OperatorCounters counters;
  NexmarkOptions bad = Events(10);
  bad.hot_bidders_ratio = 0;
  NexmarkSource a(counters, NexmarkSchema(), proto::SourceSpec(), bad);
  const absl::Status s = a.Open(Context(0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message().substr(0, 55), "source 'nexmark' (nexmark): hot_bidders_ratio must lie ") << s;

  NexmarkSource b(counters, Schema({{"event_type", FieldType::kInt}}), proto::SourceSpec(), Events(10));
  const absl::Status t = b.Open(Context(0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(t));
  EXPECT_NE(t.message().find("a nexmark source has the schema {event_type: int, person_id: int"),
            absl::string_view::npos)
      << t;
}

// ---------------------------------------------------------------- schema

TEST(NexmarkSourceTest, SchemaIsTheFlattenedDatagenTable) {
  const Schema schema = NexmarkSchema();
  ASSERT_EQ(schema.size(), static_cast<size_t>(kNxFieldCount));
  EXPECT_EQ(schema.DebugString(),
            "{event_type: int, person_id: int, person_name: string, person_email: string, person_credit_card: string, "
            "person_city: string, person_state: string, person_date_time: timestamp, person_extra: string, "
            "auction_id: int, auction_item_name: string, auction_description: string, auction_initial_bid: int, "
            "auction_reserve: int, auction_date_time: timestamp, auction_expires: timestamp, auction_seller: int, "
            "auction_category: int, auction_extra: string, bid_auction: int, bid_bidder: int, bid_price: int, "
            "bid_channel: string, bid_url: string, bid_date_time: timestamp, bid_extra: string, "
            "date_time: timestamp}");
  EXPECT_EQ(schema.IndexOf("event_type"), kNxEventType);
  EXPECT_EQ(schema.IndexOf("person_extra"), kNxPersonExtra);
  EXPECT_EQ(schema.IndexOf("auction_id"), kNxAuctionId);
  EXPECT_EQ(schema.IndexOf("auction_expires"), kNxAuctionExpires);
  EXPECT_EQ(schema.IndexOf("bid_auction"), kNxBidAuction);
  EXPECT_EQ(schema.IndexOf("bid_url"), kNxBidUrl);
  EXPECT_EQ(schema.IndexOf("date_time"), kNxDateTime);
}

// ---------------------------------------------------------------- events

TEST(NexmarkSourceTest, ProportionsAndInterleavingAreTheReferences) {
  int64_t kinds[3] = {};
  Visit(Events(50'000), [&](int64_t n, const Row& r) {
    ASSERT_FALSE(r[kNxEventType].is_null);
    const int64_t type = r[kNxEventType].i;
    ASSERT_GE(type, 0);
    ASSERT_LE(type, 2);
    ++kinds[type];
    const int64_t offset = n % 50;
    const int64_t expected = offset == 0 ? 0 : offset <= 3 ? 1 : 2;
    ASSERT_EQ(type, expected) << "event " << n;
    ASSERT_EQ(static_cast<int64_t>(NexmarkOptions::TypeOf(n)), expected);
  });
  EXPECT_EQ(kinds[0], 1'000);
  EXPECT_EQ(kinds[1], 3'000);
  EXPECT_EQ(kinds[2], 46'000);
}

TEST(NexmarkSourceTest, IdsAreDenseAndReferencesStayInTheReferencesWindows) {
  // Defaults: 1000 active people, 100 auctions in flight, hot ratios 2/4/4.
  int64_t people = 0, auctions = 0;  // created so far
  std::set<int64_t> person_ids, auction_ids;
  std::vector<int64_t> ahead_people, ahead_auctions;  // referenced before they were created
  int64_t refs = 0, created_refs = 0;
  int64_t bids = 0, hot_auction = 0, hot_bidder = 0, sellers = 0, hot_seller = 0;
  auto check_person = [&](int64_t id, int64_t n) {
    // An active person (one of the last 1000) or one of the 10 to come.
    const int64_t last = 1000 + LastPerson(n);
    EXPECT_GE(id, std::max<int64_t>(1000, last + 1 - 1000)) << "event " << n;
    EXPECT_LE(id, last + kNexmarkIdLead) << "event " << n;
    ++refs;
    if (person_ids.count(id)) {
      ++created_refs;
    } else {
      ahead_people.push_back(id);
    }
  };
  Visit(Events(50'000), [&](int64_t n, const Row& r) {
    switch (r[kNxEventType].i) {
      case 0:
        ASSERT_EQ(r[kNxPersonId].i, 1000 + people) << "person ids are dense from 1000, event " << n;
        ASSERT_EQ(r[kNxPersonId].i, 1000 + LastPerson(n));
        person_ids.insert(r[kNxPersonId].i);
        ++people;
        break;
      case 1: {
        ASSERT_EQ(r[kNxAuctionId].i, 1000 + auctions) << "auction ids are dense from 1000, event " << n;
        ASSERT_EQ(r[kNxAuctionId].i, 1000 + LastAuction(n));
        auction_ids.insert(r[kNxAuctionId].i);
        ++auctions;
        const int64_t seller = r[kNxAuctionSeller].i;
        check_person(seller, n);
        ++sellers;
        hot_seller += seller == 1000 + LastPerson(n) / 100 * 100;
        break;
      }
      default: {
        ++bids;
        const int64_t auction = r[kNxBidAuction].i;
        // In flight (one of the last 101) or one of the 10 to come.
        const int64_t last = 1000 + LastAuction(n);
        EXPECT_GE(auction, std::max<int64_t>(1000, last - 100)) << "event " << n;
        EXPECT_LE(auction, last + kNexmarkIdLead) << "event " << n;
        ++refs;
        if (auction_ids.count(auction)) {
          ++created_refs;
        } else {
          ahead_auctions.push_back(auction);
        }
        hot_auction += auction == 1000 + LastAuction(n) / 100 * 100;
        const int64_t bidder = r[kNxBidBidder].i;
        check_person(bidder, n);
        hot_bidder += bidder == 1000 + LastPerson(n) / 100 * 100 + 1;
      }
    }
  });
  EXPECT_EQ(people, 1'000);
  EXPECT_EQ(auctions, 3'000);
  // Most references are to what was created before; as in the reference,
  // some run a little ahead (up to kNexmarkIdLead, checked above), to ids
  // created a few events later.
  EXPECT_GT(created_refs, refs * 93 / 100);
  EXPECT_FALSE(ahead_people.empty());
  EXPECT_FALSE(ahead_auctions.empty());
  // Hot auctions, bidders and sellers: 1 - 1/ratio of the picks (and a few
  // of the others by chance).
  EXPECT_NEAR(static_cast<double>(hot_auction) / static_cast<double>(bids), 0.505, 0.02);
  EXPECT_NEAR(static_cast<double>(hot_bidder) / static_cast<double>(bids), 0.75, 0.015);
  EXPECT_NEAR(static_cast<double>(hot_seller) / static_cast<double>(sellers), 0.75, 0.04);
}

TEST(NexmarkSourceTest, OptionsShapeTheWindowsAndTheHotShare) {
  NexmarkOptions o = Events(30'000);
  o.num_active_people = 50;
  o.num_in_flight_auctions = 20;
  o.hot_auction_ratio = 1;  // none hot
  o.hot_sellers_ratio = 1;
  o.hot_bidders_ratio = 1;
  int64_t bids = 0, hot = 0;
  std::set<int64_t> auctions_bid;
  Visit(o, [&](int64_t n, const Row& r) {
    if (r[kNxEventType].i == 1) {
      const int64_t last = 1000 + LastPerson(n);
      EXPECT_GE(r[kNxAuctionSeller].i, std::max<int64_t>(1000, last + 1 - 50));
      EXPECT_LE(r[kNxAuctionSeller].i, last + 10);
    } else if (r[kNxEventType].i == 2) {
      ++bids;
      const int64_t last = 1000 + LastAuction(n);
      EXPECT_GE(r[kNxBidAuction].i, std::max<int64_t>(1000, last - 20));
      EXPECT_LE(r[kNxBidAuction].i, last + 10);
      hot += r[kNxBidAuction].i == 1000 + LastAuction(n) / 100 * 100;
      const int64_t last_person = 1000 + LastPerson(n);
      EXPECT_GE(r[kNxBidBidder].i, std::max<int64_t>(1000, last_person + 1 - 50));
      EXPECT_LE(r[kNxBidBidder].i, last_person + 10);
      if (n > 10'000) auctions_bid.insert(r[kNxBidAuction].i - (1000 + last));
    }
  });
  // Uniform over the 31 auctions of the window: the hot one gets its 1/31
  // share at most, not half.
  EXPECT_LT(static_cast<double>(hot) / static_cast<double>(bids), 0.06);
  EXPECT_EQ(auctions_bid.size(), 31u) << "offsets -20 .. +10 from the last auction";
}

TEST(NexmarkSourceTest, DateTimeFollowsEventRateAndOtherKindsAreNull) {
  NexmarkOptions o = Events(2'000);
  o.event_rate = 7;  // not a divisor of 1000: floor(n * 1000 / 7)
  o.base_time_ms = 1000;
  Visit(o, [&](int64_t n, const Row& r) {
    const int64_t expected = 1000 + n * 1000 / 7;
    ASSERT_FALSE(r[kNxDateTime].is_null);
    ASSERT_EQ(r[kNxDateTime].i, expected) << "event " << n;
    ASSERT_EQ(o.DateTimeOf(n), expected);
    const int type = static_cast<int>(r[kNxEventType].i);
    for (int f = kNxPersonId; f <= kNxBidExtra; ++f) {
      const bool own = f >= kFirstField[type] && f <= kLastField[type];
      ASSERT_EQ(r[f].is_null, !own) << "event " << n << " field " << NexmarkSchema().field(f).name;
    }
    const int own_time[] = {kNxPersonDateTime, kNxAuctionDateTime, kNxBidDateTime};
    EXPECT_EQ(r[own_time[type]].i, expected);
  });
  // The default spacing: 10000 events/s of event time, 0.1 ms apart.
  const NexmarkOptions d;
  EXPECT_EQ(d.DateTimeOf(0), 1436918400000);
  EXPECT_EQ(d.DateTimeOf(9), 1436918400000);
  EXPECT_EQ(d.DateTimeOf(10), 1436918400001);
  EXPECT_EQ(d.DateTimeOf(10'000 * 3600), 1436918400000 + 3'600'000);
}

TEST(NexmarkSourceTest, ValuesHaveTheReferencesFormsAndDistributions) {
  const std::set<std::string> states = {"AZ", "CA", "ID", "OR", "WA", "WY"};
  const std::set<std::string> cities = {"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
                                        "Bend",    "Redmond",     "Seattle",       "Kent",  "Cheyenne"};
  const std::set<std::string> first_names = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                             "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
  const std::set<std::string> last_names = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                            "Walton", "Smith",  "Jones",   "Noris"};
  const std::set<std::string> hot_channels = {"Google", "Facebook", "Baidu", "Apple"};
  std::map<int64_t, int> categories;
  std::set<std::string> seen_states, seen_cities;
  std::map<std::string, std::string> url_of;  // per channel: always the same
  int64_t bids = 0, hot = 0, cold = 0, with_id = 0, cheap = 0, auctions = 0;
  double length_sum = 0;
  const std::string prefix = "https://www.nexmark.com/";
  Visit(Events(50'000), [&](int64_t n, const Row& r) {
    switch (r[kNxEventType].i) {
      case 0: {
        EXPECT_TRUE(states.count(r[kNxPersonState].s)) << r[kNxPersonState].s;
        EXPECT_TRUE(cities.count(r[kNxPersonCity].s)) << r[kNxPersonCity].s;
        seen_states.insert(r[kNxPersonState].s);
        seen_cities.insert(r[kNxPersonCity].s);
        const std::string& name = r[kNxPersonName].s;
        const size_t space = name.find(' ');
        ASSERT_NE(space, std::string::npos) << name;
        EXPECT_TRUE(first_names.count(name.substr(0, space))) << name;
        EXPECT_TRUE(last_names.count(name.substr(space + 1))) << name;
        // "<up to 6>@<up to 4>.com", letters and inner spaces.
        const std::string& email = r[kNxPersonEmail].s;
        const size_t at = email.find('@');
        ASSERT_NE(at, std::string::npos) << email;
        ASSERT_GE(email.size(), at + 5) << email;
        EXPECT_EQ(email.substr(email.size() - 4), ".com") << email;
        EXPECT_TRUE(IsWords(email.substr(0, at), 6)) << email;
        EXPECT_TRUE(IsWords(email.substr(at + 1, email.size() - 4 - at - 1), 4)) << email;
        // "dddd dddd dddd dddd"
        const std::string& card = r[kNxPersonCreditCard].s;
        ASSERT_EQ(card.size(), 19u) << card;
        for (size_t i = 0; i < card.size(); ++i) {
          if (i % 5 == 4) {
            EXPECT_EQ(card[i], ' ') << card;
          } else {
            EXPECT_TRUE(card[i] >= '0' && card[i] <= '9') << card;
          }
        }
        EXPECT_TRUE(IsLetters(r[kNxPersonExtra].s));
        break;
      }
      case 1: {
        ++auctions;
        const int64_t category = r[kNxAuctionCategory].i;
        EXPECT_GE(category, 10);
        EXPECT_LT(category, 15);
        ++categories[category];
        const int64_t initial = r[kNxAuctionInitialBid].i;
        EXPECT_GE(initial, 100);
        EXPECT_LE(initial, 100'000'000);
        EXPECT_GE(r[kNxAuctionReserve].i, initial + 100) << "reserve = initial bid + a price";
        EXPECT_TRUE(IsWords(r[kNxAuctionItemName].s, 19)) << r[kNxAuctionItemName].s;
        EXPECT_TRUE(IsWords(r[kNxAuctionDescription].s, 99)) << r[kNxAuctionDescription].s;
        EXPECT_TRUE(IsLetters(r[kNxAuctionExtra].s));
        // An auction lasts 1 .. 2h ms, h the time until the auction 100
        // ahead opens (100 * 50 / 3 = 1666 events later).
        const int64_t time = r[kNxDateTime].i;
        const int64_t horizon = (n + 1666) / 10 - n / 10;
        const int64_t length = r[kNxAuctionExpires].i - time;
        EXPECT_GE(length, 1);
        EXPECT_LE(length, 2 * horizon);
        length_sum += static_cast<double>(length);
        break;
      }
      default: {
        ++bids;
        const int64_t price = r[kNxBidPrice].i;
        EXPECT_GE(price, 100);
        EXPECT_LE(price, 100'000'000);
        cheap += price < 100'000;  // 10^(6u) < 1000: u < 1/2
        const std::string& channel = r[kNxBidChannel].s;
        const std::string& url = r[kNxBidUrl].s;
        const auto known = url_of.emplace(channel, url).first;
        EXPECT_EQ(known->second, url) << "channel " << channel << " has one url";
        // https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1[&channel_id=<id>]
        ASSERT_EQ(url.substr(0, prefix.size()), prefix) << url;
        size_t at = prefix.size();
        for (int segment = 0; segment < 3; ++segment) {
          const size_t slash = url.find('/', at);
          ASSERT_NE(slash, std::string::npos) << url;
          EXPECT_GE(slash - at, 3u) << url;
          EXPECT_LE(slash - at, 4u) << url;
          for (size_t i = at; i < slash; ++i) EXPECT_TRUE(url[i] == '_' || (url[i] >= 'a' && url[i] <= 'z')) << url;
          at = slash + 1;
        }
        const std::string rest = url.substr(at);
        if (hot_channels.count(channel)) {
          ++hot;
          EXPECT_EQ(rest, "item.htm?query=1") << url;
        } else {
          ++cold;
          ASSERT_EQ(channel.substr(0, 8), "channel-") << channel;
          const int64_t k = std::stoll(channel.substr(8));
          EXPECT_GE(k, 0);
          EXPECT_LT(k, 10'000);
          EXPECT_EQ(channel, "channel-" + std::to_string(k));
          if (rest != "item.htm?query=1") {
            ++with_id;
            EXPECT_EQ(rest, "item.htm?query=1&channel_id=" + std::to_string(JavaAbsReverse(k))) << url;
          }
        }
        EXPECT_TRUE(IsLetters(r[kNxBidExtra].s));
      }
    }
  });
  EXPECT_EQ(seen_states.size(), states.size());
  EXPECT_EQ(seen_cities.size(), cities.size());
  ASSERT_EQ(categories.size(), 5u);
  for (const auto& [category, count] : categories) EXPECT_GT(count, 500) << category;  // 600 each expected
  EXPECT_NEAR(static_cast<double>(cheap) / static_cast<double>(bids), 0.5, 0.02) << "log-uniform prices";
  EXPECT_NEAR(static_cast<double>(hot) / static_cast<double>(bids), 0.5, 0.02) << "hot channels: half the bids";
  EXPECT_NEAR(static_cast<double>(with_id) / static_cast<double>(cold), 0.9, 0.02) << "9 in 10 channels have an id";
  // Auctions last h + 1/2 ms on average (h = 166 for events 1..3 mod 50).
  EXPECT_NEAR(length_sum / static_cast<double>(auctions), 166.5, 6);
  std::set<std::string> hot_urls;
  for (const std::string& c : hot_channels) {
    ASSERT_TRUE(url_of.count(c)) << c;
    hot_urls.insert(url_of[c]);
  }
  EXPECT_EQ(hot_urls.size(), 4u) << "each hot channel has its own url";
}

TEST(NexmarkSourceTest, EventsReachTheConfiguredAverageSizes) {
  struct Sizes {
    int64_t person, auction, bid;
  };
  for (const Sizes& want : {Sizes{200, 500, 100}, Sizes{1000, 2000, 300}}) {
    SCOPED_TRACE(want.bid);
    NexmarkOptions o = Events(50'000);
    o.avg_person_byte_size = want.person;
    o.avg_auction_byte_size = want.auction;
    o.avg_bid_byte_size = want.bid;
    const int64_t avg[3] = {want.person, want.auction, want.bid};
    double sum[3] = {};
    int64_t count[3] = {};
    Visit(o, [&](int64_t, const Row& r) {
      const int type = static_cast<int>(r[kNxEventType].i);
      const int64_t size = ReferenceSize(r);
      // Each within the reference's +-20% of what the padding had to add.
      EXPECT_GE(size, avg[type] * 8 / 10);
      EXPECT_LE(size, avg[type] * 12 / 10);
      sum[type] += static_cast<double>(size);
      ++count[type];
    });
    // On average the configured size less 1/2, within 1%.
    for (int t = 0; t < 3; ++t) {
      const double mean = sum[t] / static_cast<double>(count[t]);
      EXPECT_NEAR(mean, static_cast<double>(avg[t]) - 0.5, static_cast<double>(avg[t]) / 100) << "kind " << t;
    }
  }
}

// ---------------------------------------------------------------- projection pushdown

// Each field of every row, as text; "-" for null.
std::vector<std::vector<std::string>> Fields(const NexmarkOptions& options, const proto::SourceSpec& spec) {
  static const Schema schema = NexmarkSchema();
  std::vector<std::vector<std::string>> rows;
  VisitingOutput out([&](const Row& r) {
    std::vector<std::string>& fields = rows.emplace_back();
    for (size_t f = 0; f < schema.size(); ++f) {
      fields.push_back(r[f].is_null ? "-" : DatumToString(r[f], schema.field(f).type));
    }
  });
  Drive(options, &out, 0, 1, spec);
  return rows;
}

TEST(NexmarkSourceTest, ProjectionLeavesUnreadFieldsNullAndReadOnesAsTheyAre) {
  const NexmarkOptions o = Events(2'000);
  const std::vector<std::vector<std::string>> whole = Fields(o, {});
  ASSERT_EQ(whole.size(), 2'000u);
  const std::vector<std::vector<int>> projections = {
      // q3's
      {kNxEventType, kNxPersonId, kNxPersonName, kNxPersonCity, kNxPersonState, kNxAuctionId, kNxAuctionSeller,
       kNxAuctionCategory, kNxDateTime},
      // the extras without the strings their lengths depend on; the url
      // without its channel; a reserve without its initial bid
      {kNxPersonExtra, kNxAuctionExtra, kNxBidUrl, kNxAuctionReserve},
      // the other half
      {kNxPersonEmail, kNxPersonCreditCard, kNxPersonDateTime, kNxAuctionItemName, kNxAuctionDescription,
       kNxAuctionInitialBid, kNxAuctionDateTime, kNxAuctionExpires, kNxBidAuction, kNxBidBidder, kNxBidPrice,
       kNxBidChannel, kNxBidDateTime, kNxBidExtra},
  };
  for (const std::vector<int>& reads : projections) {
    proto::SourceSpec spec;
    for (int f : reads) spec.add_reads(f);
    SCOPED_TRACE(spec.ShortDebugString());
    const std::vector<std::vector<std::string>> projected = Fields(o, spec);
    ASSERT_EQ(projected.size(), whole.size());
    int64_t made = 0;
    for (size_t n = 0; n < whole.size(); ++n) {
      for (int f = 0; f < kNxFieldCount; ++f) {
        const bool read = std::count(reads.begin(), reads.end(), f) > 0;
        const std::string& got = projected[n][static_cast<size_t>(f)];
        if (read) {
          ASSERT_EQ(got, whole[n][static_cast<size_t>(f)]) << "event " << n << " field " << f;
          made += got != "-";
        } else {
          ASSERT_EQ(got, "-") << "event " << n << " field " << f << " is not read";
        }
      }
    }
    EXPECT_GE(made, 2'000);  // each event has a field read
  }

  OperatorCounters counters;
  proto::SourceSpec bad;
  bad.add_reads(kNxFieldCount);
  NexmarkSource src(counters, NexmarkSchema(), bad, o);
  const absl::Status s = src.Open(Context(0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("reads field 27, but a nexmark event has fields 0..26"), absl::string_view::npos) << s;
}

// ---------------------------------------------------------------- determinism

TEST(NexmarkSourceTest, OutputDoesNotDependOnParallelism) {
  const NexmarkOptions o = Events(3'001);
  std::vector<std::string> one = Texts(o);
  ASSERT_EQ(one.size(), 3'001u);
  std::vector<std::string> three;
  for (int i = 0; i < 3; ++i) {
    const std::vector<std::string> part = Texts(o, i, 3);
    EXPECT_EQ(part.size(), i == 0 ? 1'001u : 1'000u);
    three.insert(three.end(), part.begin(), part.end());
  }
  std::sort(one.begin(), one.end());
  std::sort(three.begin(), three.end());
  EXPECT_EQ(one, three);
}

TEST(NexmarkSourceTest, SameSeedSameEventsAnotherSeedOthers) {
  NexmarkOptions o = Events(2'000);
  const std::vector<std::string> a = Texts(o);
  EXPECT_EQ(a, Texts(o));
  // Event n does not depend on how many events follow it.
  o.count = 700;
  const std::vector<std::string> prefix = Texts(o);
  EXPECT_EQ(prefix, std::vector<std::string>(a.begin(), a.begin() + 700));
  o.count = 2'000;
  o.seed = 8;
  const std::vector<std::string> b = Texts(o);
  ASSERT_EQ(b.size(), a.size());
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  EXPECT_LT(same, 10u) << "another seed gives other events";
}

// A source stopped after `batches` batches and restored from its snapshot
// into a new source emits, with what came before, exactly what one run emits.
void ExpectResumesExactly(const NexmarkOptions& o, int subtask, int parallelism, int batches) {
  const std::vector<std::string> whole = Texts(o, subtask, parallelism);
  std::string position;
  TextOutput first;
  {
    OperatorCounters counters;
    NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), o);
    src.set_output(&first);
    ASSERT_TRUE(src.Open(Context(subtask, parallelism)).ok());
    for (int b = 0; b < batches; ++b) ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
    position = src.SnapshotOperatorState(1);
  }
  std::vector<std::string> resumed = std::move(first.texts);
  ASSERT_LT(resumed.size(), whole.size()) << "the test must stop the source midway";
  EXPECT_EQ(position, "nexmark next=" + std::to_string(static_cast<int64_t>(resumed.size()) * parallelism + subtask));
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), o);
  TextOutput rest;
  src.set_output(&rest);
  ASSERT_TRUE(src.Open(Context(subtask, parallelism)).ok());
  const absl::Status restored = src.RestoreOperatorState(position);
  ASSERT_TRUE(restored.ok()) << restored;
  while (src.Produce() != SourceStatus::kEnd) {
  }
  EXPECT_EQ(counters.records_out.load(), static_cast<int64_t>(rest.texts.size()));
  resumed.insert(resumed.end(), rest.texts.begin(), rest.texts.end());
  EXPECT_EQ(resumed, whole) << "restored from '" << position << "'";
}

TEST(NexmarkSourceTest, ResumesExactlyWhereTheSnapshotWas) {
  const NexmarkOptions o = Events(5'000);
  ExpectResumesExactly(o, 0, 1, 3);
  ExpectResumesExactly(o, 1, 2, 2);
  ExpectResumesExactly(o, 2, 3, 1);
}

TEST(NexmarkSourceTest, RestoreRejectsForeignPositions) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), Events(100));
  TextOutput out;
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 2)).ok());
  EXPECT_EQ(src.SnapshotOperatorState(1), "nexmark next=0");
  for (const char* bad : {"", "generator next=4", "nexmark next=", "nexmark next=x", "nexmark next=-2",
                          "nexmark next=4 start=1", "patients next=4 start=1"}) {
    const absl::Status s = src.RestoreOperatorState(bad);
    EXPECT_TRUE(absl::IsDataLoss(s)) << bad << ": " << s;
    EXPECT_NE(s.message().find("is not 'nexmark next=N'"), absl::string_view::npos) << s;
  }
  const absl::Status odd = src.RestoreOperatorState("nexmark next=5");
  EXPECT_TRUE(absl::IsDataLoss(odd));
  EXPECT_NE(odd.message().find("restoring at another parallelism?"), absl::string_view::npos) << odd;
  ASSERT_TRUE(src.RestoreOperatorState("nexmark next=96").ok());
  EXPECT_EQ(src.SnapshotOperatorState(2), "nexmark next=96");
  EXPECT_EQ(src.Produce(), SourceStatus::kEnd) << "events 96 and 98, then the end of 100";
  ASSERT_EQ(out.texts.size(), 2u);
  EXPECT_EQ(out.texts, std::vector<std::string>({Texts(Events(100))[96], Texts(Events(100))[98]}));
}

// ---------------------------------------------------------------- batches

TEST(NexmarkSourceTest, BoundedSourceEndsAtCountInFullBatches) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), Events(2'500));
  VisitingOutput out([](const Row&) {});
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1)).ok());
  EXPECT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
  EXPECT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
  EXPECT_EQ(src.Produce(), SourceStatus::kEnd);
  // A call makes up to 1,024 events, in batches that fit in the cache.
  const size_t cap = RowBatch::CapacityFor(NexmarkSchema().size());
  ASSERT_LT(cap, 1024u);
  std::vector<size_t> sizes;
  for (size_t call : {1024, 1024, 452}) {
    for (size_t left = call; left > 0; left -= std::min(left, cap)) sizes.push_back(std::min(left, cap));
  }
  EXPECT_EQ(out.batch_sizes, sizes);
  EXPECT_EQ(counters.records_out.load(), 2'500);
  EXPECT_EQ(src.Produce(), SourceStatus::kEnd);
  EXPECT_EQ(counters.records_out.load(), 2'500);
  EXPECT_EQ(src.SnapshotOperatorState(1), "nexmark next=2500");
}

TEST(NexmarkSourceTest, UnboundedSourceKeepsGoing) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), Events(-1));
  int64_t n = 0;
  VisitingOutput out([&](const Row& r) { EXPECT_EQ(r[kNxDateTime].i, kBase + n++ / 10); });
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1)).ok());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
  const size_t cap = RowBatch::CapacityFor(NexmarkSchema().size());
  EXPECT_EQ(out.batch_sizes.size(), 20 * ((1024 + cap - 1) / cap));
  EXPECT_EQ(counters.records_out.load(), 20 * 1024);
}

TEST(NexmarkSourceTest, DateTimeDrivesWatermarks) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), Events(3'000));
  proto::EventTimeSpec event_time;
  event_time.set_field("date_time");
  event_time.set_field_index(kNxDateTime);
  src.set_event_time(event_time);
  VisitingOutput out([](const Row&) {});
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1)).ok());
  while (src.Produce() != SourceStatus::kEnd) {
  }
  ASSERT_EQ(out.watermarks.size(), 3u) << "one per batch";
  EXPECT_EQ(out.watermarks[0], kBase + 1023 / 10 - 1);
  EXPECT_EQ(out.watermarks[2], kBase + 2999 / 10 - 1);
}

// Opens `src` with event time from date_time and a watermark interval of an
// hour: after the first watermark, none is due until the test says an hour
// has passed (EmitDueWatermark).
void OpenWithHourlyWatermarks(NexmarkSource& src, VisitingOutput& out) {
  proto::EventTimeSpec event_time;
  event_time.set_field("date_time");
  event_time.set_field_index(kNxDateTime);
  event_time.set_watermark_interval_ms(3'600'000);
  src.set_event_time(event_time);
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1)).ok());
}

// watermark_interval: a watermark after the first batch, none after the
// next ones until the interval has passed; the task's EmitDueWatermark then
// sends the latest one held back.
TEST(NexmarkSourceTest, WatermarkIntervalHoldsWatermarksBackUntilDue) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), Events(3'000));
  VisitingOutput out([](const Row&) {});
  ASSERT_NO_FATAL_FAILURE(OpenWithHourlyWatermarks(src, out));
  while (src.Produce() != SourceStatus::kEnd) {
  }
  ASSERT_EQ(out.watermarks.size(), 1u) << "the first batch's only";
  EXPECT_EQ(out.watermarks[0], kBase + 1023 / 10 - 1);
  src.EmitDueWatermark(MonotonicMillis());
  EXPECT_EQ(out.watermarks.size(), 1u) << "not due yet";
  src.EmitDueWatermark(MonotonicMillis() + 3'600'000);
  ASSERT_EQ(out.watermarks.size(), 2u);
  EXPECT_EQ(out.watermarks[1], kBase + 2999 / 10 - 1) << "the last batch's";
  src.EmitDueWatermark(MonotonicMillis() + 2 * 3'600'000);
  EXPECT_EQ(out.watermarks.size(), 2u) << "nothing new to send";
}

// Before a checkpoint barrier (StreamTask::PerformCheckpoint) the watermark
// held back goes, due or not: it follows the records before the barrier.
TEST(NexmarkSourceTest, APendingWatermarkGoesOutBeforeABarrierDueOrNot) {
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), Events(3'000));
  VisitingOutput out([](const Row&) {});
  ASSERT_NO_FATAL_FAILURE(OpenWithHourlyWatermarks(src, out));
  ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
  ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);
  ASSERT_EQ(out.watermarks.size(), 1u);
  src.EmitPendingWatermark();
  ASSERT_EQ(out.watermarks.size(), 2u);
  EXPECT_EQ(out.watermarks[1], kBase + 2047 / 10 - 1) << "the second batch's";
  src.EmitPendingWatermark();
  EXPECT_EQ(out.watermarks.size(), 2u) << "nothing new to send";
}

// ---------------------------------------------------------------- pacing

TEST(NexmarkSourceTest, PacedSourceEmitsNoEventBeforeItIsDue) {
  // 1000 events/s over two subtasks: 500/s each, one every 2 ms.
  ManualStateClock clock(kBase);
  NexmarkOptions o = Events(-1);
  o.rate = 1000;
  OperatorCounters counters;
  auto src = std::make_unique<NexmarkSource>(counters, NexmarkSchema(), proto::SourceSpec(), o);
  TextOutput out;
  src->set_output(&out);
  ASSERT_TRUE(src->Open(Context(1, 2, &clock)).ok());
  ASSERT_EQ(src->Produce(), SourceStatus::kMoreAvailable);
  EXPECT_EQ(out.texts.size(), 1u) << "the first event is due at once";
  src->Produce();
  EXPECT_EQ(out.texts.size(), 1u) << "the next one 2 ms later";
  clock.Advance(1);
  src->Produce();
  EXPECT_EQ(out.texts.size(), 1u);
  clock.Advance(1);
  src->Produce();
  EXPECT_EQ(out.texts.size(), 2u);
  clock.Advance(8);  // 10 ms: events 0..5 of this subtask
  src->Produce();
  EXPECT_EQ(out.texts.size(), 6u);
  clock.Advance(10'000);  // 10.01 s: 5006 events, in batches of 1024 at most
  while (out.texts.size() < 5'006) ASSERT_EQ(src->Produce(), SourceStatus::kMoreAvailable);
  src->Produce();
  EXPECT_EQ(out.texts.size(), 5'006u);
  EXPECT_EQ(counters.records_out.load(), 5'006);
  // Pacing does not move event time: this subtask's events 1, 3, 5, ...
  const std::vector<std::string> fast = Texts(Events(2 * 5'006), 1, 2);
  EXPECT_EQ(out.texts, fast);

  // A restore resumes at the pace from the restored event, without catching
  // up on the time the job was down.
  const std::string position = src->SnapshotOperatorState(1);
  EXPECT_EQ(position, "nexmark next=10013");
  clock.Advance(3'600'000);
  out.texts.clear();
  src = std::make_unique<NexmarkSource>(counters, NexmarkSchema(), proto::SourceSpec(), o);
  src->set_output(&out);
  ASSERT_TRUE(src->Open(Context(1, 2, &clock)).ok());
  ASSERT_TRUE(src->RestoreOperatorState(position).ok());
  src->Produce();
  src->Produce();
  EXPECT_EQ(out.texts.size(), 1u);
  clock.Advance(2);
  src->Produce();
  EXPECT_EQ(out.texts.size(), 2u);
}

TEST(NexmarkSourceTest, RealTimePacingFollowsTheClock) {
  NexmarkOptions o = Events(5);
  o.rate = 20;  // event 4 is due 200 ms after event 0
  const auto begin = std::chrono::steady_clock::now();
  const auto deadline = begin + std::chrono::seconds(30);
  OperatorCounters counters;
  NexmarkSource src(counters, NexmarkSchema(), proto::SourceSpec(), o);
  TextOutput out;
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1)).ok());
  while (src.Produce() != SourceStatus::kEnd) ASSERT_LT(std::chrono::steady_clock::now(), deadline);
  EXPECT_EQ(out.texts.size(), 5u);
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(200));
}

}  // namespace
}  // namespace vstream
