#pragma once
// The Nexmark source (connector nexmark): the event stream of the Nexmark
// benchmark (people registering, auctions opening, bids), generated as the
// reference generator does, so that the Nexmark queries can be run and
// benchmarked on Vitalstream as on Flink. The reference is Apache Beam's
// Nexmark generator (sdks/java/testing/nexmark/.../sources/generator/:
// GeneratorConfig, Generator, model/{Person,Auction,Bid,Strings,Price,
// Long}Generator, NexmarkConfiguration for the defaults), which the
// nexmark/nexmark project (Flink's Nexmark) copies and extends with the bid's
// channel and url.
//
// One stream, as nexmark/nexmark's `datagen` table flattened: event_type
// (0 person, 1 auction, 2 bid), the person's, the auction's and the bid's
// fields (those of the other two kinds are null), and date_time, the event's
// time whatever its kind: the field for event_time and watermarks. See
// NexmarkSchema() and NexmarkField.
//
// Events. Event n (n = 0, 1, ... over the whole source) is, by n mod 50: 0 a
// person, 1..3 an auction, 4..49 a bid (the reference's proportions 1 : 3 :
// 46). Its time is base_time_ms + floor(n * 1000 / event_rate). As in the
// reference:
//   - person ids are 1000 + n / 50 and auction ids 1000 + 3 * (n / 50) +
//     (n mod 50) - 1, dense and in event order;
//   - person: name "<first> <last>" from 11 first and 9 last names; email
//     "<3-6 chars>@<3-4 chars>.com" and item names and descriptions made of
//     lowercase letters and spaces (1 in 13), trimmed; credit card four
//     groups of 4 digits; city from 10 and state from 6 (AZ CA ID OR WA WY),
//     drawn independently;
//   - auction: seller a hot seller with probability 1 - 1/hot_sellers_ratio
//     (the first person of the current block of 100 people), else an active
//     person (below); category 10 + [0, 5); initial_bid a price; reserve
//     initial_bid + another price; item_name up to 19 characters, description
//     up to 99; expires date_time + 1 + [0, 2h) where h is how much later
//     the auction num_in_flight_auctions ahead opens (num_in_flight_auctions
//     * 50 / 3 events later), so that about num_in_flight_auctions auctions
//     are open at any time;
//   - bid: auction a hot auction with probability 1 - 1/hot_auction_ratio
//     (the first of the current block of 100 auctions), else one of the last
//     num_in_flight_auctions + 1 auctions or of the 10 still to come; bidder
//     a hot bidder with probability 1 - 1/hot_bidders_ratio (the second
//     person of the current block of 100 people), else an active person;
//     price a price; channel, with probability 1/2, one of Google, Facebook,
//     Baidu, Apple, else "channel-<k>", k in [0, 10000); url
//     "https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1" (a, b, c: 3-4
//     lowercase letters or '_', 1 in 13) fixed per channel, and for 9 in 10
//     of the "channel-<k>" channels followed by "&channel_id=<|reverse32(k)|>"
//     (the bits of k reversed as a Java int, its absolute value: k = 1 gives
//     -2147483648, as Java's Math.abs does);
//   - an active person is one of the last num_active_people people or of the
//     10 still to come (so a reference may run up to 10 people or auctions
//     ahead of the last one created, as in the reference: "newPerson and
//     newAuction events appear to have been swapped in time");
//   - a price is round(100 * 10^(6u)), u uniform in [0, 1): 100 .. 10^8;
//   - extra: lowercase letters padding the event to its configured average
//     size, counted as the reference counts it (8 bytes for the id and each
//     number, the lengths of the strings; person: id + name + email + credit
//     card + city + state; auction: id + item name + description + 5 numbers;
//     bid: 4 numbers): with d the average minus that size, a length uniform
//     in [d - r, d + r), r = round(d / 5), so the average is d - 1/2.
//
// Simplifications relative to the reference, all deliberate:
//   - one timeline: event n is the n-th event of the whole source and subtask
//     i of p emits the events n = i mod p (as GeneratorSource does), so the
//     union of the subtasks' output is the same at any parallelism. The
//     reference gives each of its p generators its own id range and its own
//     timeline (each with 1/p of the rate).
//   - randomness: each value of event n is drawn from a SplitMix64 stream
//     keyed by (seed, n, field), so any event can be made alone and a
//     restore is only a position. The reference seeds java.util.Random with
//     the event id (Beam) or shares one unseeded Random (nexmark/nexmark):
//     the distributions are the reference's, the values are not.
//   - the channel urls are a function of (seed, channel), not drawn once per
//     JVM.
//   - extra holds lowercase letters only (the reference's Java also yields
//     some of 'H'..'`' from the remainders of negative ints).
//   - the bidder id is 1000 + base id, as in Beam; nexmark/nexmark adds the
//     1000 twice, so that its bidders are no person ids.
//   - fixed: the proportions (nexmark/nexmark makes them options), one event
//     rate (no rate shape, no next event rate), events in order (no
//     outOfOrderGroupSize), no extended bid mode, no occasional delays.
//   - time: base_time_ms + floor(n * 1000 / event_rate) in integer ms; the
//     reference rounds the inter-event delay to whole microseconds first
//     (the same when event_rate divides 10^6, as the default 10000 does).
//     The default base time is Beam's fixed BASE_TIME, 2015-07-15T00:00:00Z
//     (nexmark/nexmark uses the wall clock); never the wall clock here, so
//     that runs and replays are identical.
// A bounded source (count >= 0) emits events 0 .. count - 1; any source ends
// before its date_time passes 9999-12-31.
//
// Pacing (rate r > 0): from the first Produce after Open or a restore, a
// subtask emits at most 1 + t * r / p events in the first t seconds (ctx.clock
// when set, else a monotonic clock), in steps of a millisecond's worth (at
// most 512) and, at the task's flush, whatever is due (RateLimiter; not with
// ctx.clock, whose time is not the flush's), sleeping at most 5 ms at a time
// until then; a restore resumes at the pace without catching up. Event time
// does not depend on the pace. rate 0: as fast as possible.
//
// Projection pushdown (SourceSpec.reads, set by the job builder): a field no
// vertex of the job reads is left null and not made (the `extra` padding,
// every bid field when only people and auctions are read, ...). The fields
// that are made have the values they have without it: each is drawn from its
// own stream. The reference's
// source (nexmark/nexmark's NexmarkTableSource) makes every field.
//
// Hot path: rows are written into the reused batch (strings keep their
// capacity); no allocation per event once warm, no lock, no protobuf.
//
// Position (for checkpoints): "nexmark next=N", this subtask's next event. A
// restore needs the same parallelism (N must be one of this subtask's
// events) and, to replay the same events, the same options.
//
// Task thread only.

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "proto/jobgraph.pb.h"
#include "runtime/operators/sources.h"
#include "runtime/types.h"

namespace vstream {

// The kinds of event, as nexmark/nexmark numbers them in event_type.
enum class NexmarkEventType : int64_t {
  kPerson = 0,
  kAuction = 1,
  kBid = 2,
};

// The fields of NexmarkSchema(), by index.
enum NexmarkField : int {
  kNxEventType,
  kNxPersonId,
  kNxPersonName,
  kNxPersonEmail,
  kNxPersonCreditCard,
  kNxPersonCity,
  kNxPersonState,
  kNxPersonDateTime,
  kNxPersonExtra,
  kNxAuctionId,
  kNxAuctionItemName,
  kNxAuctionDescription,
  kNxAuctionInitialBid,
  kNxAuctionReserve,
  kNxAuctionDateTime,
  kNxAuctionExpires,
  kNxAuctionSeller,
  kNxAuctionCategory,
  kNxAuctionExtra,
  kNxBidAuction,
  kNxBidBidder,
  kNxBidPrice,
  kNxBidChannel,
  kNxBidUrl,
  kNxBidDateTime,
  kNxBidExtra,
  kNxDateTime,
  kNxFieldCount,
};

// event_type: int, person_id: int, person_name: string, ..., date_time:
// timestamp: the fields of NexmarkField in that order.
Schema NexmarkSchema();

// The reference's model constants.
inline constexpr int64_t kNexmarkFirstPersonId = 1000;
inline constexpr int64_t kNexmarkFirstAuctionId = 1000;
inline constexpr int64_t kNexmarkFirstCategoryId = 10;
inline constexpr int64_t kNexmarkNumCategories = 5;
// Of every 50 events, 1 person, 3 auctions and 46 bids.
inline constexpr int64_t kNexmarkProportionDenominator = 50;
inline constexpr int64_t kNexmarkPersonProportion = 1;
inline constexpr int64_t kNexmarkAuctionProportion = 3;
// How far ahead of the last person or auction created a reference may run.
inline constexpr int64_t kNexmarkIdLead = 10;
// Hot sellers, bidders and auctions are the first (bidders: the second) of
// blocks of this many people or auctions.
inline constexpr int64_t kNexmarkHotBlock = 100;
// The bid channels other than the 4 hot ones: "channel-0" .. "channel-9999".
inline constexpr int64_t kNexmarkChannels = 10'000;

struct NexmarkOptions {
  // Events over all subtasks. Default -1: unbounded.
  int64_t count = -1;
  // Seed of every pseudo-random choice. Default 0.
  uint64_t seed = 0;
  // Wall-clock pacing, events/s over all subtasks, 0..kMaxRate. Default 0:
  // as fast as possible.
  double rate = 0;
  // Events per second of event time (the reference's firstEventRate): sets
  // the spacing of date_time, 1..kMaxEventRate. Default 10000.
  int64_t event_rate = 10'000;
  // date_time of event 0, epoch ms in 0..kMaxTimeMs. Default
  // 1436918400000, 2015-07-15T00:00:00Z (Beam's BASE_TIME).
  int64_t base_time_ms = 1'436'918'400'000;
  // People an auction or bid may pick from besides the hot ones (the
  // reference's numActivePeople), 1..kMaxWindow. Default 1000.
  int64_t num_active_people = 1000;
  // Auctions open at any time on average, and those a bid may pick from
  // besides the hot ones (numInFlightAuctions), 1..kMaxWindow. Default 100.
  int64_t num_in_flight_auctions = 100;
  // 1 in hot_auction_ratio bids is for any in-flight auction, the others for
  // the hot auction; likewise auctions and hot sellers, bids and hot
  // bidders. 1..kMaxHotRatio (1: none hot). Defaults 2, 4, 4.
  int64_t hot_auction_ratio = 2;
  int64_t hot_sellers_ratio = 4;
  int64_t hot_bidders_ratio = 4;
  // Average sizes of the events in bytes, as the reference counts them (see
  // above), reached by padding extra; 0..kMaxAvgByteSize. Defaults 200, 500,
  // 100.
  int64_t avg_person_byte_size = 200;
  int64_t avg_auction_byte_size = 500;
  int64_t avg_bid_byte_size = 100;

  static constexpr double kMaxRate = 1e9;
  static constexpr int64_t kMaxEventRate = 1'000'000'000;
  // 9999-12-31T23:59:59.999Z
  static constexpr int64_t kMaxTimeMs = 253'402'300'799'999;
  static constexpr int64_t kMaxWindow = 100'000'000;
  static constexpr int64_t kMaxHotRatio = 1'000'000;
  static constexpr int64_t kMaxAvgByteSize = 100'000;

  // OK, or InvalidArgument naming the first option out of range by its
  // job-spec key (the field's name), with its value and the allowed range.
  absl::Status Validate() const;

  // The kind and the date_time of event n (n >= 0).
  static NexmarkEventType TypeOf(int64_t n);
  int64_t DateTimeOf(int64_t n) const;
};

class NexmarkSource : public SourceOperator {
 public:
  // `schema` must be NexmarkSchema() (Open fails otherwise). Every parameter
  // comes from `options`; of `spec` only reads is read (the task applies its
  // event_time through set_event_time).
  NexmarkSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec,
                const NexmarkOptions& options);
  // Checks the options and the schema: InvalidArgument says what is wrong.
  absl::Status Open(const OperatorContext& ctx) override;
  // Emits up to RowBatch::kDefaultCapacity events (fewer when paced or at
  // the end of a bounded source), in batches of the batch's capacity
  // (SourceOperator::EmitRows).
  SourceStatus Produce() override;
  std::string SnapshotOperatorState(int64_t) override;
  absl::Status RestoreOperatorState(std::string_view state) override;

 private:
  class Draws;

  bool Done() const;
  void Fill(int64_t n, Row& row);
  void FillPerson(int64_t n, uint64_t key, int64_t time, Row& row);
  void FillAuction(int64_t n, uint64_t key, int64_t time, Row& row);
  void FillBid(int64_t n, uint64_t key, int64_t time, Row& row);
  // An active person (base 0) for event n.
  int64_t NextPersonId(int64_t n, Draws& draws) const;
  // An in-flight or soon-to-open auction (base 0) for event n.
  int64_t NextAuctionId(int64_t n, Draws& draws) const;
  // Appends the url of a channel: k in [0, kNexmarkChannels), or
  // kNexmarkChannels + i for hot channel i.
  void AppendChannelUrl(int64_t k, std::string* out) const;
  // The same url, made once per channel and kept (the reference keeps its
  // channels' urls in a cache too): making it was a tenth of q5's
  // instructions (docs/benchmarks.md, "Fewer instructions per event"). The
  // view is valid until the next call.
  std::string_view ChannelUrl(int64_t k);
  void ResetPace();
  void LogStart();
  void LogSummary();

  // Whether field f is made: reads_ (the spec's reads, all if empty), and
  // what an extra that is read needs for its length; made but not read are
  // nulled again.
  bool Makes(int f) const { return makes_[static_cast<size_t>(f)]; }
  void NullUnread(Row& row, int first, int last) const;
  // Field f of row: v, or null if f is not made.
  void MakeInt(Row& row, int f, int64_t v) const {
    if (Makes(f)) {
      row[f].SetInt(v);
    } else {
      row[f].is_null = true;
    }
  }

  const Schema schema_;
  const NexmarkOptions options_;
  const std::vector<int> spec_reads_;
  std::bitset<kNxFieldCount> reads_;
  std::bitset<kNxFieldCount> makes_;
  OperatorContext ctx_;
  uint64_t seed_key_ = 0;  // of the events
  uint64_t url_key_ = 0;   // of the channels' urls
  // ChannelUrl's: the urls made so far, one after another in urls_, and
  // where each channel's is (size 0: not made yet).
  struct UrlRef {
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  std::vector<UrlRef> url_refs_;
  std::string urls_;
  int64_t next_ = 0;       // this subtask's next event
  int64_t step_ = 1;
  int64_t last_event_ = 0;  // the last event before year 10000
  // Pacing (rate > 0), from the first Produce after Open or a restore.
  std::unique_ptr<RateLimiter> limiter_;
  RowBatch batch_;
  int64_t people_ = 0;
  int64_t auctions_ = 0;
  int64_t bids_ = 0;
  bool announced_ = false;
  bool summarized_ = false;
};

}  // namespace vstream
