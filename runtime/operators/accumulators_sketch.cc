#include "runtime/operators/accumulators_sketch.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "runtime/operators/accumulators_codec.h"

namespace vstream {

using accumulators_internal::GetVarint;
using accumulators_internal::Patch;
using accumulators_internal::PatchVarint;
using accumulators_internal::UnZigZag;
using accumulators_internal::VarintLength;
using accumulators_internal::ZigZag;

static_assert(std::endian::native == std::endian::little,
              "the fixed-width sketch entries are read with memcpy");

namespace {

constexpr double kGamma =
    (1 + QuantileSketch::kRelativeAccuracy) / (1 - QuantileSketch::kRelativeAccuracy);
const double kLogGamma = std::log(kGamma);

// Fixed-size copies per width, so that they compile to single moves.
uint64_t Load(const char* p, size_t width) {
  switch (width) {
    case 1:
      return static_cast<uint8_t>(*p);
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}

void Save(uint64_t v, size_t width, char* p) {
  switch (width) {
    case 1:
      *p = static_cast<char>(v);
      break;
    case 2: {
      const uint16_t w = static_cast<uint16_t>(v);
      std::memcpy(p, &w, 2);
      break;
    }
    case 4: {
      const uint32_t w = static_cast<uint32_t>(v);
      std::memcpy(p, &w, 4);
      break;
    }
    default:
      std::memcpy(p, &v, 8);
      break;
  }
}

bool Fits(uint64_t v, size_t width) { return width >= 8 || v < (uint64_t{1} << (8 * width)); }

// log2 of the smallest of 1, 2, 4, 8 bytes that holds v.
uint8_t WidthCode(uint64_t v) {
  if (v <= 0xff) return 0;
  if (v <= 0xffff) return 1;
  if (v <= 0xffffffff) return 2;
  return 3;
}

// Parses the store at data[*pos], whose counts may add up to at most
// `limit`, and advances *pos past it.
bool ParseStore(std::string_view data, size_t* pos, uint64_t limit, QuantileSketch::Check check,
                QuantileSketch::Store* store) {
  *store = QuantileSketch::Store();
  store->begin = *pos;
  uint64_t m;
  if (!GetVarint(data, pos, &m) || m > QuantileSketch::kMaxBuckets) return false;
  store->buckets = m;
  if (m == 0) {
    store->entries = store->end = *pos;
    return true;
  }
  if (*pos >= data.size()) return false;
  const uint8_t widths = static_cast<uint8_t>(data[(*pos)++]);
  if ((widths & 0xcc) != 0) return false;
  store->index_width = size_t{1} << (widths & 3);
  store->count_width = size_t{1} << (widths >> 4);
  uint64_t base;
  if (!GetVarint(data, pos, &base)) return false;
  store->base = UnZigZag(base);
  if (store->base < -QuantileSketch::kMaxIndex || store->base > QuantileSketch::kMaxIndex) {
    return false;
  }
  const size_t stride = store->index_width + store->count_width;
  if ((data.size() - *pos) / stride < m) return false;
  store->entries = *pos;
  *pos += m * stride;
  store->end = *pos;
  if (check == QuantileSketch::Check::kLayout) return true;

  const uint64_t max_offset = static_cast<uint64_t>(QuantileSketch::kMaxIndex - store->base);
  const char* entry = data.data() + store->entries;
  uint64_t total = 0;
  uint64_t prev = 0;
  for (uint64_t k = 0; k < m; ++k, entry += stride) {
    const uint64_t offset = Load(entry, store->index_width);
    if (k == 0 ? offset != 0 : offset <= prev) return false;
    if (offset > max_offset) return false;
    const uint64_t count = Load(entry + store->index_width, store->count_width);
    if (count == 0 || count > limit - total) return false;
    total += count;
    prev = offset;
  }
  store->total = total;
  return true;
}

// The representative of the bucket holding the rank-th (1-based) value of a
// store parsed with kFull, in ascending index order.
double FindRank(std::string_view data, const QuantileSketch::Store& store, uint64_t rank) {
  const size_t stride = store.index_width + store.count_width;
  const char* entry = data.data() + store.entries;
  uint64_t offset = 0;
  uint64_t seen = 0;
  for (uint64_t k = 0; k < store.buckets; ++k, entry += stride) {
    offset = Load(entry, store.index_width);
    seen += Load(entry + store.index_width, store.count_width);
    if (seen >= rank) break;
  }
  return QuantileSketch::ValueOf(store.base + static_cast<int64_t>(offset));
}

}  // namespace

int64_t QuantileSketch::IndexOf(double magnitude) {
  const double index = std::ceil(std::log(magnitude) / kLogGamma);
  if (!(index < kMaxIndex)) return kMaxIndex;  // also +inf
  if (index < -kMaxIndex) return -kMaxIndex;
  return static_cast<int64_t>(index);
}

double QuantileSketch::ValueOf(int64_t index) {
  return 2 * std::exp(static_cast<double>(index) * kLogGamma) / (kGamma + 1);
}

bool QuantileSketch::Parse(std::string_view data, size_t* pos, View* view, Check check) {
  *view = View();
  view->begin = *pos;
  if (!GetVarint(data, pos, &view->count)) return false;
  if (view->count != 0) {
    const uint64_t n = view->count;
    if (!GetVarint(data, pos, &view->zeros) || view->zeros > n) return false;
    if (!ParseStore(data, pos, n - view->zeros, check, &view->positive)) return false;
    if (!ParseStore(data, pos, n - view->zeros - view->positive.total, check, &view->negative)) {
      return false;
    }
    if (check == Check::kFull && view->zeros + view->positive.total + view->negative.total != n) {
      return false;
    }
  }
  view->end = *pos;
  return true;
}

void QuantileSketch::Add(double x, const View& view, std::string* state) {
  if (view.count == 0) {
    encoded_.clear();
    if (x == 0) {
      encoded_.append({1, 1, 0, 0});  // n, zeros, two empty stores
    } else {
      encoded_.append({1, 0});  // n, zeros
      buckets_.clear();
      buckets_.push_back({IndexOf(std::fabs(x)), 1});
      if (x < 0) encoded_.push_back(0);  // empty positive store
      AppendStore(&encoded_);
      if (x > 0) encoded_.push_back(0);  // empty negative store
    }
    Patch(state, view.begin, view.end - view.begin, encoded_);
    return;
  }
  // Patches go from the back of the sketch to its front, so that each
  // leaves the offsets of the ones still to come valid.
  const size_t count_len = VarintLength(view.count);
  if (x == 0) {
    PatchVarint(state, view.begin + count_len, VarintLength(view.zeros), view.zeros + 1);
    PatchVarint(state, view.begin, count_len, view.count + 1);
    return;
  }
  const Store& store = x > 0 ? view.positive : view.negative;
  const int64_t index = IndexOf(std::fabs(x));
  bool done = false;
  if (store.buckets != 0) {
    const size_t iw = store.index_width;
    const size_t cw = store.count_width;
    const size_t stride = iw + cw;
    char* entries = state->data() + store.entries;
    // k = the first bucket at or above `index`.
    size_t k = 0;
    bool found = false;
    if (index >= store.base) {
      // Branch-free lower bound: the comparisons are unpredictable.
      const uint64_t offset = static_cast<uint64_t>(index - store.base);
      size_t len = store.buckets;
      while (len > 1) {
        const size_t half = len / 2;
        k += Load(entries + (k + half) * stride, iw) < offset ? half : 0;
        len -= half;
      }
      k += Load(entries + k * stride, iw) < offset ? 1 : 0;
      found = k < store.buckets && Load(entries + k * stride, iw) == offset;
    }
    // A full store folds values below its lowest bucket into that bucket.
    if (!found && k == 0 && store.buckets >= kMaxBuckets) found = true;
    if (found) {
      char* count_at = entries + k * stride + iw;
      const uint64_t count = Load(count_at, cw) + 1;
      if (count != 0 && Fits(count, cw)) {
        Save(count, cw, count_at);
        done = true;
      }
    } else if (index >= store.base && store.buckets < kMaxBuckets &&
               Fits(static_cast<uint64_t>(index - store.base), iw)) {
      char entry[16];
      Save(static_cast<uint64_t>(index - store.base), iw, entry);
      Save(1, cw, entry + iw);
      state->insert(store.entries + k * stride, entry, stride);
      PatchVarint(state, store.begin, VarintLength(store.buckets), store.buckets + 1);
      done = true;
    }
  }
  if (!done) RewriteStore(store, index, state);
  PatchVarint(state, view.begin, count_len, view.count + 1);
}

void QuantileSketch::RewriteStore(const Store& store, int64_t index, std::string* state) {
  DecodeStore(*state, store);
  size_t k = 0;
  while (k < buckets_.size() && buckets_[k].index < index) ++k;
  if (k < buckets_.size() && buckets_[k].index == index) {
    ++buckets_[k].count;
  } else {
    buckets_.insert(buckets_.begin() + static_cast<ptrdiff_t>(k), Bucket{index, 1});
  }
  CollapseLowest();
  encoded_.clear();
  AppendStore(&encoded_);
  Patch(state, store.begin, store.end - store.begin, encoded_);
}

void QuantileSketch::DecodeStore(std::string_view data, const Store& store) {
  buckets_.clear();
  const size_t stride = store.index_width + store.count_width;
  const char* entry = data.data() + store.entries;
  for (uint64_t k = 0; k < store.buckets; ++k, entry += stride) {
    // Unsigned: a kLayout store may hold any offset.
    const uint64_t index = static_cast<uint64_t>(store.base) + Load(entry, store.index_width);
    buckets_.push_back(
        {static_cast<int64_t>(index), Load(entry + store.index_width, store.count_width)});
  }
}

void QuantileSketch::Merge(std::string_view a_data, const View& a, std::string_view b_data,
                           const View& b, std::string* out) {
  if (a.count == 0 || b.count == 0) {
    const std::string_view data = a.count == 0 ? b_data : a_data;
    const View& v = a.count == 0 ? b : a;
    out->append(data.data() + v.begin, v.end - v.begin);
    return;
  }
  PutVarint64(a.count + b.count, out);
  PutVarint64(a.zeros + b.zeros, out);
  MergeStores(a_data, a.positive, b_data, b.positive);
  AppendStore(out);
  MergeStores(a_data, a.negative, b_data, b.negative);
  AppendStore(out);
}

void QuantileSketch::MergeStores(std::string_view a_data, const Store& a, std::string_view b_data,
                                 const Store& b) {
  buckets_.clear();
  const size_t a_stride = a.index_width + a.count_width;
  const size_t b_stride = b.index_width + b.count_width;
  const char* pa = a_data.data() + a.entries;
  const char* pb = b_data.data() + b.entries;
  uint64_t ka = 0;
  uint64_t kb = 0;
  while (ka < a.buckets || kb < b.buckets) {
    Bucket x{0, 0};
    Bucket y{0, 0};
    if (ka < a.buckets) {
      x = {a.base + static_cast<int64_t>(Load(pa, a.index_width)),
           Load(pa + a.index_width, a.count_width)};
    }
    if (kb < b.buckets) {
      y = {b.base + static_cast<int64_t>(Load(pb, b.index_width)),
           Load(pb + b.index_width, b.count_width)};
    }
    if (kb == b.buckets || (ka < a.buckets && x.index < y.index)) {
      buckets_.push_back(x);
      ++ka;
      pa += a_stride;
    } else if (ka == a.buckets || y.index < x.index) {
      buckets_.push_back(y);
      ++kb;
      pb += b_stride;
    } else {
      buckets_.push_back({x.index, x.count + y.count});
      ++ka;
      pa += a_stride;
      ++kb;
      pb += b_stride;
    }
  }
  CollapseLowest();
}

void QuantileSketch::CollapseLowest() {
  if (buckets_.size() <= kMaxBuckets) return;
  const size_t drop = buckets_.size() - kMaxBuckets;
  for (size_t k = 0; k < drop; ++k) buckets_[drop].count += buckets_[k].count;
  buckets_.erase(buckets_.begin(), buckets_.begin() + static_cast<ptrdiff_t>(drop));
}

void QuantileSketch::AppendStore(std::string* out) const {
  PutVarint64(buckets_.size(), out);
  if (buckets_.empty()) return;
  // Unsigned differences: decoded kLayout stores need not be sorted.
  const uint64_t base = static_cast<uint64_t>(buckets_.front().index);
  uint64_t max_offset = 0;
  uint64_t max_count = 0;
  for (const Bucket& b : buckets_) {
    max_offset = std::max(max_offset, static_cast<uint64_t>(b.index) - base);
    max_count = std::max(max_count, b.count);
  }
  const uint8_t iw_code = WidthCode(max_offset);
  const uint8_t cw_code = WidthCode(max_count);
  out->push_back(static_cast<char>(iw_code | (cw_code << 4)));
  PutVarint64(ZigZag(buckets_.front().index), out);
  const size_t iw = size_t{1} << iw_code;
  const size_t cw = size_t{1} << cw_code;
  char entry[16];
  for (const Bucket& b : buckets_) {
    Save(static_cast<uint64_t>(b.index) - base, iw, entry);
    Save(b.count, cw, entry + iw);
    out->append(entry, iw + cw);
  }
}

double QuantileSketch::Quantile(std::string_view data, const View& view, double q) {
  const uint64_t n = view.count;
  const double r = std::ceil(q * static_cast<double>(n));
  uint64_t rank = n;
  if (r < 1) {
    rank = 1;
  } else if (r < static_cast<double>(n)) {
    rank = static_cast<uint64_t>(r);
  }
  // Value order: negatives by descending magnitude, zeros, positives.
  const uint64_t negatives = view.negative.total;
  if (rank <= negatives) return -FindRank(data, view.negative, negatives - rank + 1);
  rank -= negatives;
  if (rank <= view.zeros) return 0;
  return FindRank(data, view.positive, rank - view.zeros);
}

}  // namespace vstream
