#pragma once
// Private to runtime/operators (used only by accumulators.cc): the encoded
// percentile accumulator, a DDSketch-style mergeable quantile sketch
// (Masson, Rim, Lee: "DDSketch", VLDB 2019).
//
// A value x > 0 falls in bucket i = ceil(log_gamma(x)), which covers
// (gamma^(i-1), gamma^i] and is represented by 2 gamma^i / (gamma + 1). With
// gamma = (1 + a) / (1 - a) every value of a bucket lies within relative
// error a = 1 % of that representative. Negative values go to a second store
// keyed by |x|; zeros are only counted. A store keeps at most kMaxBuckets
// buckets: beyond that its lowest buckets are folded into the lowest kept one
// (DDSketch's "collapsing lowest" store). That costs accuracy only for the
// smallest magnitudes, and keeps Add and Merge equivalent: the kept buckets
// are always the kMaxBuckets highest indexes ever seen, whatever the order.
//
// The sketch works on its encoded form inside an AccumulatorSet state. A
// store is sparse (only non-empty buckets) but fixed-width per store, so
// that Add finds a bucket by binary search and bumps its count in place:
//
//   sketch := n (varint: values counted; 0 = empty, and nothing follows,
//                so an empty sketch is the byte 0 like other accumulators)
//             zeros (varint)
//             store(positive) store(negative)
//   store  := m (varint: buckets, <= kMaxBuckets; 0 = nothing follows)
//             widths (1 byte: bits 0-1 index width w_i, bits 4-5 count
//                     width w_c, as log2 of 1, 2, 4 or 8 bytes)
//             base (zigzag varint: the lowest bucket index)
//             m x { index - base (w_i bytes LE, strictly ascending from 0),
//                   count (w_c bytes LE, >= 1) }
//
// Widths are the smallest that fit. Add widens a store by rewriting it, and
// only ever grows indexes and counts between rewrites, so the encoding is a
// function of the buckets: adding records and merging panes give the same
// bytes. Heart rates (about 80 buckets, counts < 65536) cost ~3 bytes a
// bucket.
//
// Parse with Check::kFull validates everything (zeros + counts = n, order,
// index range, bucket limit, no truncation), so Merge and Quantile may trust
// the View. Check::kLayout, for Add on the per-record path, checks only what
// keeps Add within bounds; a state corrupt beyond that stays corrupt and
// reads as fresh on Merge and Result.
//
// Thread-compatible: Add and Merge use member scratch buffers.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vstream {

class QuantileSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.01;
  // Per store. gamma^2048 spans ~17 decades, so real data never collapses.
  static constexpr uint64_t kMaxBuckets = 2048;
  // Bound on |index|; +inf maps to kMaxIndex, whose value is +inf again.
  static constexpr int32_t kMaxIndex = 1 << 20;

  // Where a store sits in the state: [begin, end) spans all of it, the
  // entries start at `entries`.
  struct Store {
    size_t begin = 0;
    size_t entries = 0;
    size_t end = 0;
    uint64_t buckets = 0;  // m
    int64_t base = 0;
    size_t index_width = 1;
    size_t count_width = 1;
    uint64_t total = 0;  // sum of the counts (Check::kFull only)
  };
  // A parsed sketch at [begin, end) of the state.
  struct View {
    size_t begin = 0;
    size_t end = 0;
    uint64_t count = 0;  // n
    uint64_t zeros = 0;
    Store positive;
    Store negative;
  };
  enum class Check : uint8_t { kFull, kLayout };

  // The bucket of a magnitude > 0 (not NaN).
  static int64_t IndexOf(double magnitude);
  // The representative value of bucket `index`.
  static double ValueOf(int64_t index);

  // Parses the sketch starting at data[*pos] and advances *pos past it.
  // Returns false, without reading out of bounds, on any corrupt input.
  static bool Parse(std::string_view data, size_t* pos, View* view, Check check);

  // Adds x (not NaN) to the sketch `view` parsed (at least with kLayout)
  // from *state, in place.
  // Only (*state)[view.begin, view.end) changes, possibly in length.
  void Add(double x, const View& view, std::string* state);

  // Appends to *out the sketch holding the values of both a (parsed from
  // a_data) and b (parsed from b_data), both kFull. out must not alias
  // either.
  void Merge(std::string_view a_data, const View& a, std::string_view b_data, const View& b,
             std::string* out);

  // The estimate of the value of rank ceil(q * n), q in (0, 1], of a
  // non-empty sketch parsed with kFull.
  static double Quantile(std::string_view data, const View& view, double q);

 private:
  struct Bucket {
    int64_t index;
    uint64_t count;
  };

  // Adds one value in bucket `index` to `store` by re-encoding it.
  void RewriteStore(const Store& store, int64_t index, std::string* state);
  // Decodes the buckets of `store` into buckets_.
  void DecodeStore(std::string_view data, const Store& store);
  // Merges the buckets of a and b into buckets_.
  void MergeStores(std::string_view a_data, const Store& a, std::string_view b_data,
                   const Store& b);
  void CollapseLowest();
  // Appends buckets_ (sorted) as a store.
  void AppendStore(std::string* out) const;

  std::vector<Bucket> buckets_;  // scratch
  std::string encoded_;          // scratch
};

}  // namespace vstream
