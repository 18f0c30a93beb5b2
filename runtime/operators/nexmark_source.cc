#include "runtime/operators/nexmark_source.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"
#include "state/state_clock.h"

namespace vstream {

namespace {

// ---------------------------------------------------------------- random

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ull;

// SplitMix64's finalizer: a bijection that scatters every input bit.
inline uint64_t Finalize(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t Mix(uint64_t x) { return Finalize(x + kGamma); }

// The pseudo-random streams of an event, one per value it draws, so that no
// value depends on how many draws another one took.
enum Salt : uint64_t {
  kSaltName = 1,
  kSaltEmail,
  kSaltCreditCard,
  kSaltCity,
  kSaltState,
  kSaltExtra,
  kSaltSeller,
  kSaltCategory,
  kSaltInitialBid,
  kSaltReserve,
  kSaltExpires,
  kSaltItemName,
  kSaltDescription,
  kSaltAuction,
  kSaltBidder,
  kSaltPrice,
  kSaltChannel,
  kSaltUrls,  // of the channels' urls, not of an event
};

// ---------------------------------------------------------------- model

// The reference's word lists (PersonGenerator).
constexpr std::string_view kStates[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
constexpr std::string_view kCities[] = {"Phoenix", "Los Angeles", "San Francisco", "Boise",   "Portland",
                                        "Bend",    "Redmond",     "Seattle",       "Kent",    "Cheyenne"};
constexpr std::string_view kFirstNames[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                            "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
constexpr std::string_view kLastNames[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                           "Walton", "Smith",  "Jones",   "Noris"};
// nexmark/nexmark's BidGenerator.
constexpr std::string_view kHotChannels[] = {"Google", "Facebook", "Baidu", "Apple"};
constexpr int64_t kHotChannelCount = 4;

template <typename T, size_t N>
constexpr uint32_t CountOf(const T (&)[N]) {
  return static_cast<uint32_t>(N);
}

// The base-0 id of the last person created by event n or before it (n's
// own when n is a person): the reference's lastBase0PersonId.
inline int64_t LastPersonId(int64_t n) { return n / kNexmarkProportionDenominator * kNexmarkPersonProportion; }

// The base-0 id of the last auction created by event n or before it (-1
// before the first): lastBase0AuctionId.
inline int64_t LastAuctionId(int64_t n) {
  const int64_t epoch = n / kNexmarkProportionDenominator;
  const int64_t offset = n % kNexmarkProportionDenominator;
  if (offset < kNexmarkPersonProportion) return epoch * kNexmarkAuctionProportion - 1;
  if (offset >= kNexmarkPersonProportion + kNexmarkAuctionProportion) {
    return epoch * kNexmarkAuctionProportion + kNexmarkAuctionProportion - 1;
  }
  return epoch * kNexmarkAuctionProportion + offset - kNexmarkPersonProportion;
}

// The reference's sizes: 8 bytes per id, number or time it counts.
constexpr int kNumberBytes = 8;

// ---------------------------------------------------------------- text

// Appends a number, zero-padded to `width` digits (when not negative).
void AppendNumber(int64_t v, int width, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  for (int pad = width - static_cast<int>(r.ptr - buf); pad > 0; --pad) out->push_back('0');
  out->append(buf, r.ptr);
}

// Java's Math.abs(Integer.reverse(k)): the 32 bits of k reversed, as an int,
// its absolute value (which stays negative for INT_MIN).
int64_t ReversedChannelId(int64_t k) {
  uint32_t v = static_cast<uint32_t>(k);
  uint32_t r = 0;
  for (int i = 0; i < 32; ++i) {
    r = (r << 1) | (v & 1);
    v >>= 1;
  }
  const int32_t s = static_cast<int32_t>(r);
  if (s == std::numeric_limits<int32_t>::min()) return s;
  return s < 0 ? -static_cast<int64_t>(s) : s;
}

template <typename Number>
absl::Status OutOfRange(std::string_view name, std::string_view range, Number got) {
  return absl::InvalidArgumentError(absl::StrCat(AV(name), " must lie in ", AV(range), ", got ", got));
}

// "aa", "ab", ..., "zz": pair 26 * i + j is letters i and j.
struct LetterPairs {
  char pairs[26 * 26][2];
};
constexpr LetterPairs MakeLetterPairs() {
  LetterPairs t{};
  for (int i = 0; i < 26 * 26; ++i) {
    t.pairs[i][0] = static_cast<char>('a' + i / 26);
    t.pairs[i][1] = static_cast<char>('a' + i % 26);
  }
  return t;
}
constexpr LetterPairs kLetterPairs = MakeLetterPairs();

}  // namespace

// One SplitMix64 stream: the values one field of one event draws (or the
// characters of one channel's url). Draw k of the stream keyed by (seed, n,
// field) is a hash of the four, so any event is made without the others.
class NexmarkSource::Draws {
 public:
  Draws(uint64_t key, uint64_t salt) : state_(key ^ (salt * 0xd1b54a32d192ed03ull)) {}

  uint64_t Next() {
    state_ += kGamma;
    return Finalize(state_);
  }
  // Uniform in [0, bound), bound in 1..2^32 (Java's nextInt(bound)).
  uint32_t Below(uint64_t bound) { return static_cast<uint32_t>(((Next() >> 32) * bound) >> 32); }
  // Uniform in [0, bound), bound >= 1 of any size (LongGenerator.nextLong).
  int64_t BelowLong(int64_t bound) {
    if (bound <= (int64_t{1} << 32)) return Below(static_cast<uint64_t>(bound));
    return static_cast<int64_t>(Next() % static_cast<uint64_t>(bound));
  }
  // The next digit in base `base` of *bits read as a fraction of 2^64 (the
  // high half of *bits * base), leaving the rest of the fraction in *bits:
  // one multiplication instead of a division and a remainder. Each digit
  // costs log2(base) of the 64 bits, so a draw gives 64 / log2(base) nearly
  // uniform digits (10 letters, 6 of 338).
  static uint32_t TakeDigit(uint32_t base, uint64_t* bits) {
    __extension__ using Wide = unsigned __int128;
    const Wide m = static_cast<Wide>(*bits) * base;
    *bits = static_cast<uint64_t>(m);
    return static_cast<uint32_t>(m >> 64);
  }

  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // PriceGenerator.nextPrice: round(100 * 10^(6u)), from 100 to 10^8.
  int64_t Price() { return std::llround(std::exp(Unit() * 13.815510557964274) * 100.0); }

  // StringsGenerator.nextString(max_length, special): 3 .. max_length - 1
  // characters, each `special` with probability 1/13 and otherwise a
  // lowercase letter, trimmed of spaces (Java's trim) at both ends.
  void AppendWords(int max_length, char special, std::string* out) {
    char buf[128];
    const int length = 3 + static_cast<int>(Below(static_cast<uint64_t>(max_length - 3)));
    uint64_t bits = 0;
    int left = 0;
    for (int i = 0; i < length; ++i) {
      // 13 * 26 outcomes: special in 26 of them, else a letter; six per
      // draw (TakeDigit).
      if (left == 0) {
        bits = Next();
        left = 6;
      }
      const uint32_t v = TakeDigit(338, &bits);
      --left;
      buf[i] = v < 26 ? special : static_cast<char>('a' + v % 26);
    }
    int begin = 0, end = length;
    if (special == ' ') {
      while (begin < end && buf[begin] == ' ') ++begin;
      while (end > begin && buf[end - 1] == ' ') --end;
    }
    out->append(buf + begin, static_cast<size_t>(end - begin));
  }

  // `count` lowercase letters (nextExactString), ten per draw. Two at a
  // time: a base-676 digit is the next two base-26 digits (26 * first +
  // second, leaving the same rest of the fraction), so the letters are
  // those of one at a time with half the multiplications, each of which
  // waits for the last (extra's letters were 16% of q5's instructions).
  void AppendLetters(size_t count, std::string* out) {
    const size_t old = out->size();
    out->resize(old + count);
    char* p = out->data() + old;
    while (count > 0) {
      uint64_t bits = Next();
      const size_t chunk = std::min<size_t>(count, 10);
      for (size_t i = 0; i + 2 <= chunk; i += 2) {
        std::memcpy(p, kLetterPairs.pairs[TakeDigit(26 * 26, &bits)], 2);
        p += 2;
      }
      if (chunk % 2 != 0) *p++ = static_cast<char>('a' + TakeDigit(26, &bits));
      count -= chunk;
    }
  }

  // StringsGenerator.nextExtra: letters such that current_size plus their
  // count is on average desired_average (less 1/2).
  void AppendExtra(int64_t current_size, int64_t desired_average, std::string* out) {
    if (current_size > desired_average) return;
    const int64_t desired = desired_average - current_size;
    const int64_t delta = (2 * desired + 5) / 10;  // Java's Math.round(desired * 0.2)
    const int64_t size = desired - delta + (delta == 0 ? 0 : BelowLong(2 * delta));
    AppendLetters(static_cast<size_t>(size), out);
  }

 private:
  uint64_t state_;
};

namespace {

// A string datum about to be written in place (keeps its capacity).
inline std::string& Text(Datum& d) {
  d.is_null = false;
  d.s.clear();
  return d.s;
}

inline void SetNulls(Row& row, int first, int last) {
  for (int f = first; f <= last; ++f) row[f].is_null = true;
}

}  // namespace

// ---------------------------------------------------------------- schema

Schema NexmarkSchema() {
  return Schema({
      {"event_type", FieldType::kInt},
      {"person_id", FieldType::kInt},
      {"person_name", FieldType::kString},
      {"person_email", FieldType::kString},
      {"person_credit_card", FieldType::kString},
      {"person_city", FieldType::kString},
      {"person_state", FieldType::kString},
      {"person_date_time", FieldType::kTimestamp},
      {"person_extra", FieldType::kString},
      {"auction_id", FieldType::kInt},
      {"auction_item_name", FieldType::kString},
      {"auction_description", FieldType::kString},
      {"auction_initial_bid", FieldType::kInt},
      {"auction_reserve", FieldType::kInt},
      {"auction_date_time", FieldType::kTimestamp},
      {"auction_expires", FieldType::kTimestamp},
      {"auction_seller", FieldType::kInt},
      {"auction_category", FieldType::kInt},
      {"auction_extra", FieldType::kString},
      {"bid_auction", FieldType::kInt},
      {"bid_bidder", FieldType::kInt},
      {"bid_price", FieldType::kInt},
      {"bid_channel", FieldType::kString},
      {"bid_url", FieldType::kString},
      {"bid_date_time", FieldType::kTimestamp},
      {"bid_extra", FieldType::kString},
      {"date_time", FieldType::kTimestamp},
  });
}

// ---------------------------------------------------------------- options

absl::Status NexmarkOptions::Validate() const {
  if (count < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("count must be >= 0, or -1 for an unbounded source, got ", count));
  }
  if (!(rate >= 0 && rate <= kMaxRate)) {  // false for NaN
    return OutOfRange("rate", "0..1000000000 events/s (0: as fast as possible)", rate);
  }
  if (event_rate < 1 || event_rate > kMaxEventRate) {
    return OutOfRange("event_rate", "1..1000000000 events per second of event time", event_rate);
  }
  if (base_time_ms < 0 || base_time_ms > kMaxTimeMs) {
    return OutOfRange("base_time_ms", "0..253402300799999 (1970-01-01 .. 9999-12-31)", base_time_ms);
  }
  if (num_active_people < 1 || num_active_people > kMaxWindow) {
    return OutOfRange("num_active_people", "1..100000000", num_active_people);
  }
  if (num_in_flight_auctions < 1 || num_in_flight_auctions > kMaxWindow) {
    return OutOfRange("num_in_flight_auctions", "1..100000000", num_in_flight_auctions);
  }
  const std::pair<std::string_view, int64_t> ratios[] = {{"hot_auction_ratio", hot_auction_ratio},
                                                         {"hot_sellers_ratio", hot_sellers_ratio},
                                                         {"hot_bidders_ratio", hot_bidders_ratio}};
  for (const auto& [name, value] : ratios) {
    if (value < 1 || value > kMaxHotRatio) return OutOfRange(name, "1..1000000 (1: none hot)", value);
  }
  const std::pair<std::string_view, int64_t> sizes[] = {{"avg_person_byte_size", avg_person_byte_size},
                                                        {"avg_auction_byte_size", avg_auction_byte_size},
                                                        {"avg_bid_byte_size", avg_bid_byte_size}};
  for (const auto& [name, value] : sizes) {
    if (value < 0 || value > kMaxAvgByteSize) return OutOfRange(name, "0..100000 bytes", value);
  }
  return absl::OkStatus();
}

NexmarkEventType NexmarkOptions::TypeOf(int64_t n) {
  const int64_t offset = n % kNexmarkProportionDenominator;
  if (offset < kNexmarkPersonProportion) return NexmarkEventType::kPerson;
  if (offset < kNexmarkPersonProportion + kNexmarkAuctionProportion) return NexmarkEventType::kAuction;
  return NexmarkEventType::kBid;
}

int64_t NexmarkOptions::DateTimeOf(int64_t n) const {
  // floor(n * 1000 / event_rate) without overflowing n * 1000.
  return base_time_ms + n / event_rate * 1000 + n % event_rate * 1000 / event_rate;
}

// ---------------------------------------------------------------- source

NexmarkSource::NexmarkSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec,
                             const NexmarkOptions& options)
    : SourceOperator(counters),
      schema_(std::move(schema)),
      options_(options),
      spec_reads_(spec.reads().begin(), spec.reads().end()),
      seed_key_(Mix(options.seed ^ 0x4e65786d61726bull)),  // "Nexmark"
      url_key_(Mix(seed_key_ ^ kSaltUrls)),
      batch_(schema_.size()) {}

void NexmarkSource::ResetPace() {
  limiter_.reset();
  if (options_.rate <= 0) return;
  limiter_ = std::make_unique<RateLimiter>(options_.rate / ctx_.parallelism, ctx_.clock);
}

absl::Status NexmarkSource::Open(const OperatorContext& ctx) {
  ctx_ = ctx;
  if (absl::Status s = options_.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "' (nexmark): ", s.message()));
  }
  const Schema events = NexmarkSchema();
  if (schema_.DebugString() != events.DebugString()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': a nexmark source has the schema ",
                                                   events.DebugString(), ", not ", schema_.DebugString()));
  }
  reads_.reset();
  for (int f : spec_reads_) {
    if (f < 0 || f >= kNxFieldCount) {
      return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': reads field ", f,
                                                     ", but a nexmark event has fields 0..", kNxFieldCount - 1));
    }
    reads_.set(static_cast<size_t>(f));
  }
  if (spec_reads_.empty()) reads_.set();
  makes_ = reads_;
  // An extra's length depends on the lengths of the other strings.
  if (reads_[kNxPersonExtra]) {
    for (int f : {kNxPersonName, kNxPersonEmail, kNxPersonCreditCard, kNxPersonCity, kNxPersonState}) makes_.set(f);
  }
  if (reads_[kNxAuctionExtra]) {
    for (int f : {kNxAuctionItemName, kNxAuctionDescription}) makes_.set(f);
  }
  next_ = ctx.subtask_index;
  step_ = ctx.parallelism;
  // The last n with DateTimeOf(n) <= kMaxTimeMs, i.e. n * 1000 < span *
  // event_rate: floor((span * event_rate - 1) / 1000), without overflow, at
  // most 2^62 (far enough from overflow for n + the auction horizon).
  constexpr int64_t kLastEvent = int64_t{1} << 62;
  const int64_t rate = options_.event_rate;
  const int64_t span = NexmarkOptions::kMaxTimeMs - options_.base_time_ms + 1;
  const int64_t q = span / 1000, r = span % 1000;
  if (q > (kLastEvent - rate) / rate) {
    last_event_ = kLastEvent;
  } else {
    last_event_ = std::min(kLastEvent, r == 0 ? q * rate - 1 : q * rate + (r * rate - 1) / 1000);
  }
  ResetPace();
  return absl::OkStatus();
}

std::string NexmarkSource::SnapshotOperatorState(int64_t) { return absl::StrCat("nexmark next=", next_); }

absl::Status NexmarkSource::RestoreOperatorState(std::string_view state) {
  constexpr std::string_view kNext = "nexmark next=";
  int64_t next = -1;
  if (state.substr(0, kNext.size()) == kNext) {
    const char* begin = state.data() + kNext.size();
    const char* end = state.data() + state.size();
    const auto r = std::from_chars(begin, end, next);
    if (r.ec != std::errc() || r.ptr != end) next = -1;
  }
  if (next < 0) {
    return absl::DataLossError(absl::StrCat("source position '", AV(state), "' is not 'nexmark next=N'"));
  }
  if (next % step_ != ctx_.subtask_index) {
    return absl::DataLossError(absl::StrCat("nexmark position ", next, " is not one of subtask ", ctx_.subtask_index,
                                            " of ", step_, " (restoring at another parallelism?)"));
  }
  next_ = next;
  ResetPace();  // no catching up on the time the job was down
  return absl::OkStatus();
}

bool NexmarkSource::Done() const {
  return (options_.count >= 0 && next_ >= options_.count) || next_ > last_event_;
}

SourceStatus NexmarkSource::Produce() {
  if (!announced_) {
    announced_ = true;
    LogStart();
  }
  if (Done()) {
    LogSummary();
    return SourceStatus::kEnd;
  }
  int64_t want = static_cast<int64_t>(RowBatch::kDefaultCapacity);
  if (options_.count >= 0) want = std::min(want, (options_.count - next_ + step_ - 1) / step_);
  want = std::min(want, (last_event_ - next_) / step_ + 1);
  if (limiter_) {
    // The flush deadline is on the steady clock: not for a test's clock.
    want = static_cast<int64_t>(AcquirePaced(*limiter_, static_cast<size_t>(want), ctx_.clock == nullptr));
  }
  EmitRows(batch_, static_cast<size_t>(want), [this](Row& row) {
    Fill(next_, row);
    next_ += step_;
  });
  if (Done()) {
    LogSummary();
    return SourceStatus::kEnd;
  }
  return SourceStatus::kMoreAvailable;
}

void NexmarkSource::Fill(int64_t n, Row& row) {
  const int64_t time = options_.DateTimeOf(n);
  const uint64_t key = Mix(seed_key_ ^ static_cast<uint64_t>(n));
  const NexmarkEventType type = NexmarkOptions::TypeOf(n);
  MakeInt(row, kNxEventType, static_cast<int64_t>(type));
  MakeInt(row, kNxDateTime, time);
  switch (type) {
    case NexmarkEventType::kPerson:
      FillPerson(n, key, time, row);
      SetNulls(row, kNxAuctionId, kNxBidExtra);
      ++people_;
      break;
    case NexmarkEventType::kAuction:
      SetNulls(row, kNxPersonId, kNxPersonExtra);
      FillAuction(n, key, time, row);
      SetNulls(row, kNxBidAuction, kNxBidExtra);
      ++auctions_;
      break;
    case NexmarkEventType::kBid:
      SetNulls(row, kNxPersonId, kNxAuctionExtra);
      FillBid(n, key, time, row);
      ++bids_;
      break;
  }
}

void NexmarkSource::NullUnread(Row& row, int first, int last) const {
  if (makes_ == reads_) return;
  for (int f = first; f <= last; ++f) {
    if (!reads_[static_cast<size_t>(f)]) row[f].is_null = true;
  }
}

int64_t NexmarkSource::NextPersonId(int64_t n, Draws& draws) const {
  // One of the last num_active_people people, or of the kNexmarkIdLead
  // still to come.
  const int64_t people = LastPersonId(n) + 1;
  const int64_t active = std::min(people, options_.num_active_people);
  return people - active + draws.Below(static_cast<uint64_t>(active + kNexmarkIdLead));
}

int64_t NexmarkSource::NextAuctionId(int64_t n, Draws& draws) const {
  // One of those likely still in flight, or of the kNexmarkIdLead still to
  // come.
  const int64_t last = LastAuctionId(n);
  const int64_t first = std::max<int64_t>(last - options_.num_in_flight_auctions, 0);
  return first + draws.Below(static_cast<uint64_t>(last - first + 1 + kNexmarkIdLead));
}

void NexmarkSource::FillPerson(int64_t n, uint64_t key, int64_t time, Row& row) {
  MakeInt(row, kNxPersonId, kNexmarkFirstPersonId + LastPersonId(n));
  int64_t size = kNumberBytes;

  if (Makes(kNxPersonName)) {
    std::string& name = Text(row[kNxPersonName]);
    Draws names(key, kSaltName);
    name.append(kFirstNames[names.Below(CountOf(kFirstNames))]);
    name.push_back(' ');
    name.append(kLastNames[names.Below(CountOf(kLastNames))]);
    size += static_cast<int64_t>(name.size());
  } else {
    row[kNxPersonName].is_null = true;
  }

  if (Makes(kNxPersonEmail)) {
    std::string& email = Text(row[kNxPersonEmail]);
    Draws emails(key, kSaltEmail);
    emails.AppendWords(7, ' ', &email);
    email.push_back('@');
    emails.AppendWords(5, ' ', &email);
    email.append(".com");
    size += static_cast<int64_t>(email.size());
  } else {
    row[kNxPersonEmail].is_null = true;
  }

  if (Makes(kNxPersonCreditCard)) {
    std::string& card = Text(row[kNxPersonCreditCard]);
    Draws cards(key, kSaltCreditCard);
    for (int i = 0; i < 4; ++i) {
      if (i > 0) card.push_back(' ');
      AppendNumber(cards.Below(10000), 4, &card);
    }
    size += static_cast<int64_t>(card.size());
  } else {
    row[kNxPersonCreditCard].is_null = true;
  }

  if (Makes(kNxPersonCity)) {
    Draws cities(key, kSaltCity);
    const std::string_view city = kCities[cities.Below(CountOf(kCities))];
    row[kNxPersonCity].SetString(city);
    size += static_cast<int64_t>(city.size());
  } else {
    row[kNxPersonCity].is_null = true;
  }
  if (Makes(kNxPersonState)) {
    Draws states(key, kSaltState);
    const std::string_view state = kStates[states.Below(CountOf(kStates))];
    row[kNxPersonState].SetString(state);
    size += static_cast<int64_t>(state.size());
  } else {
    row[kNxPersonState].is_null = true;
  }

  MakeInt(row, kNxPersonDateTime, time);
  if (Makes(kNxPersonExtra)) {
    Draws extra(key, kSaltExtra);
    extra.AppendExtra(size, options_.avg_person_byte_size, &Text(row[kNxPersonExtra]));
  } else {
    row[kNxPersonExtra].is_null = true;
  }
  NullUnread(row, kNxPersonId, kNxPersonExtra);
}

void NexmarkSource::FillAuction(int64_t n, uint64_t key, int64_t time, Row& row) {
  MakeInt(row, kNxAuctionId, kNexmarkFirstAuctionId + LastAuctionId(n));

  if (Makes(kNxAuctionSeller)) {
    Draws sellers(key, kSaltSeller);
    int64_t seller = 0;
    if (sellers.Below(static_cast<uint64_t>(options_.hot_sellers_ratio)) > 0) {
      seller = LastPersonId(n) / kNexmarkHotBlock * kNexmarkHotBlock;  // the hot seller
    } else {
      seller = NextPersonId(n, sellers);
    }
    row[kNxAuctionSeller].SetInt(kNexmarkFirstPersonId + seller);
  } else {
    row[kNxAuctionSeller].is_null = true;
  }

  if (Makes(kNxAuctionCategory)) {
    Draws categories(key, kSaltCategory);
    row[kNxAuctionCategory].SetInt(kNexmarkFirstCategoryId + categories.Below(kNexmarkNumCategories));
  } else {
    row[kNxAuctionCategory].is_null = true;
  }

  if (Makes(kNxAuctionInitialBid) || Makes(kNxAuctionReserve)) {
    Draws initial_bids(key, kSaltInitialBid);
    const int64_t initial_bid = initial_bids.Price();
    MakeInt(row, kNxAuctionInitialBid, initial_bid);
    Draws reserves(key, kSaltReserve);
    MakeInt(row, kNxAuctionReserve, initial_bid + reserves.Price());
  } else {
    row[kNxAuctionInitialBid].is_null = true;
    row[kNxAuctionReserve].is_null = true;
  }

  MakeInt(row, kNxAuctionDateTime, time);
  if (Makes(kNxAuctionExpires)) {
    // An auction lasts on average as long as it takes num_in_flight_auctions
    // more auctions to open (nextAuctionLengthMs).
    const int64_t horizon_events =
        options_.num_in_flight_auctions * kNexmarkProportionDenominator / kNexmarkAuctionProportion;
    const int64_t horizon_ms = options_.DateTimeOf(n + horizon_events) - time;
    Draws expiries(key, kSaltExpires);
    row[kNxAuctionExpires].SetInt(time + 1 + expiries.BelowLong(std::max<int64_t>(horizon_ms * 2, 1)));
  } else {
    row[kNxAuctionExpires].is_null = true;
  }

  int64_t size = kNumberBytes + 5 * kNumberBytes;
  if (Makes(kNxAuctionItemName)) {
    std::string& item_name = Text(row[kNxAuctionItemName]);
    Draws item_names(key, kSaltItemName);
    item_names.AppendWords(20, ' ', &item_name);
    size += static_cast<int64_t>(item_name.size());
  } else {
    row[kNxAuctionItemName].is_null = true;
  }
  if (Makes(kNxAuctionDescription)) {
    std::string& description = Text(row[kNxAuctionDescription]);
    Draws descriptions(key, kSaltDescription);
    descriptions.AppendWords(100, ' ', &description);
    size += static_cast<int64_t>(description.size());
  } else {
    row[kNxAuctionDescription].is_null = true;
  }

  if (Makes(kNxAuctionExtra)) {
    Draws extra(key, kSaltExtra);
    extra.AppendExtra(size, options_.avg_auction_byte_size, &Text(row[kNxAuctionExtra]));
  } else {
    row[kNxAuctionExtra].is_null = true;
  }
  NullUnread(row, kNxAuctionId, kNxAuctionExtra);
}

void NexmarkSource::FillBid(int64_t n, uint64_t key, int64_t time, Row& row) {
  if (Makes(kNxBidAuction)) {
    Draws auctions(key, kSaltAuction);
    int64_t auction = 0;
    if (auctions.Below(static_cast<uint64_t>(options_.hot_auction_ratio)) > 0) {
      auction = LastAuctionId(n) / kNexmarkHotBlock * kNexmarkHotBlock;  // the hot auction
    } else {
      auction = NextAuctionId(n, auctions);
    }
    row[kNxBidAuction].SetInt(kNexmarkFirstAuctionId + auction);
  } else {
    row[kNxBidAuction].is_null = true;
  }

  if (Makes(kNxBidBidder)) {
    Draws bidders(key, kSaltBidder);
    int64_t bidder = 0;
    if (bidders.Below(static_cast<uint64_t>(options_.hot_bidders_ratio)) > 0) {
      // The second person of the block, so that hot bidders are no hot sellers.
      bidder = LastPersonId(n) / kNexmarkHotBlock * kNexmarkHotBlock + 1;
    } else {
      bidder = NextPersonId(n, bidders);
    }
    row[kNxBidBidder].SetInt(kNexmarkFirstPersonId + bidder);
  } else {
    row[kNxBidBidder].is_null = true;
  }

  if (Makes(kNxBidPrice)) {
    Draws prices(key, kSaltPrice);
    row[kNxBidPrice].SetInt(prices.Price());
  } else {
    row[kNxBidPrice].is_null = true;
  }

  const bool channel = Makes(kNxBidChannel);
  const bool url = Makes(kNxBidUrl);
  if (channel || url) {
    // One draw decides both.
    Draws channels(key, kSaltChannel);
    int64_t k = 0;
    if (channels.Below(2) > 0) {
      const int64_t hot = channels.Below(kHotChannelCount);
      if (channel) Text(row[kNxBidChannel]).append(kHotChannels[hot]);
      k = kNexmarkChannels + hot;
    } else {
      k = channels.Below(kNexmarkChannels);
      if (channel) {
        std::string& name = Text(row[kNxBidChannel]);
        name.append("channel-");
        AppendNumber(k, 1, &name);
      }
    }
    if (url) Text(row[kNxBidUrl]).append(ChannelUrl(k));
  }
  if (!channel) row[kNxBidChannel].is_null = true;
  if (!url) row[kNxBidUrl].is_null = true;

  MakeInt(row, kNxBidDateTime, time);
  if (Makes(kNxBidExtra)) {
    Draws extra(key, kSaltExtra);
    extra.AppendExtra(4 * kNumberBytes, options_.avg_bid_byte_size, &Text(row[kNxBidExtra]));
  } else {
    row[kNxBidExtra].is_null = true;
  }
}

std::string_view NexmarkSource::ChannelUrl(int64_t k) {
  if (url_refs_.empty()) url_refs_.resize(kNexmarkChannels + kHotChannelCount);
  UrlRef& ref = url_refs_[static_cast<size_t>(k)];
  if (ref.size == 0) {  // no url is empty
    ref.offset = static_cast<uint32_t>(urls_.size());
    AppendChannelUrl(k, &urls_);
    ref.size = static_cast<uint32_t>(urls_.size() - ref.offset);
  }
  return std::string_view(urls_).substr(ref.offset, ref.size);
}

void NexmarkSource::AppendChannelUrl(int64_t k, std::string* out) const {
  Draws draws(url_key_, static_cast<uint64_t>(k) + 1);
  out->append("https://www.nexmark.com/");
  for (int i = 0; i < 3; ++i) {
    draws.AppendWords(5, '_', out);
    out->push_back('/');
  }
  out->append("item.htm?query=1");
  if (k < kNexmarkChannels && draws.Below(10) > 0) {
    out->append("&channel_id=");
    AppendNumber(ReversedChannelId(k), 1, out);  // may be negative (k = 1)
  }
}

void NexmarkSource::LogStart() {
  spdlog::info("source '{}' subtask {}: nexmark events from {} (seed {}, {} events/s of event time from {}, "
               "rate {} events/s, count {})",
               ctx_.vertex_name, ctx_.subtask_index, next_, options_.seed, options_.event_rate,
               FormatTimestamp(options_.base_time_ms), options_.rate, options_.count);
}

void NexmarkSource::LogSummary() {
  if (summarized_) return;
  summarized_ = true;
  spdlog::info("source '{}' subtask {}: generated {} nexmark events: {} people, {} auctions, {} bids",
               ctx_.vertex_name, ctx_.subtask_index, people_ + auctions_ + bids_, people_, auctions_, bids_);
}

}  // namespace vstream
