#pragma once
// Latency in microseconds, counted in log-linear buckets: exact below 16 µs,
// then 16 buckets per power of two (each at most 1/16 = 6.25% wide relative
// to its lower bound). A fixed array of counters: recording is one index
// computation and one relaxed atomic add, so the task thread records while
// the heartbeat thread reads; merging is adding counts bucket by bucket, so
// subtasks' histograms combine exactly into their vertex's.
//
// LatencyHistogram: the live, thread-safe counters of one sink subtask.
// LatencyCounts: a plain copy (sparse in protos), merged and queried.
//
// Latency markers (runtime/stream_task.h) feed it: a sink records each
// marker's age when it arrives.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace vstream {

namespace latency_buckets {

inline constexpr int kSubBits = 4;  // 16 buckets per power of two
inline constexpr int kSub = 1 << kSubBits;
inline constexpr int kMaxExponent = 40;  // 2^41 µs: 25 days; larger values land in the last bucket
inline constexpr int kCount = kSub + (kMaxExponent - kSubBits + 1) * kSub;

inline int IndexOf(int64_t us) {
  if (us < kSub) return us < 0 ? 0 : static_cast<int>(us);
  const int e = 63 - std::countl_zero(static_cast<uint64_t>(us));
  if (e > kMaxExponent) return kCount - 1;
  const int sub = static_cast<int>((static_cast<uint64_t>(us) >> (e - kSubBits)) & (kSub - 1));
  return std::min(kSub + (e - kSubBits) * kSub + sub, kCount - 1);
}

// The smallest value of bucket `index`.
inline int64_t LowerBound(int index) {
  if (index < kSub) return index;
  const int e = (index - kSub) / kSub + kSubBits;
  const int sub = (index - kSub) % kSub;
  return (int64_t{1} << e) + (static_cast<int64_t>(sub) << (e - kSubBits));
}

// The smallest and the largest value of the bucket that holds `us`: what a
// quantile reported as that bucket's representative may really be.
inline std::pair<int64_t, int64_t> BucketBounds(int64_t us) {
  const int index = IndexOf(us);
  if (index == kCount - 1) return {LowerBound(index), std::numeric_limits<int64_t>::max()};
  return {LowerBound(index), LowerBound(index + 1) - 1};
}

// A value that stands for bucket `index`: its midpoint.
inline int64_t Representative(int index) {
  if (index < kSub) return index;
  return (LowerBound(index) + LowerBound(index + 1) - 1) / 2;
}

}  // namespace latency_buckets

class LatencyCounts {
 public:
  LatencyCounts() : counts_(latency_buckets::kCount, 0) {}

  void Add(int bucket, int64_t n) {
    if (bucket < 0 || bucket >= latency_buckets::kCount || n <= 0) return;
    counts_[bucket] += n;
    total_ += n;
  }
  void Merge(const LatencyCounts& other) {
    for (int i = 0; i < latency_buckets::kCount; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }
  int64_t total() const { return total_; }
  int64_t count(int bucket) const { return counts_[bucket]; }

  // The value at quantile q (0 < q <= 1): the representative of the bucket
  // holding the ceil(q * total)-th smallest sample. 0 when empty.
  int64_t Quantile(double q) const {
    if (total_ == 0) return 0;
    int64_t rank = static_cast<int64_t>(q * static_cast<double>(total_));
    if (static_cast<double>(rank) < q * static_cast<double>(total_)) ++rank;
    rank = std::clamp<int64_t>(rank, 1, total_);
    int64_t seen = 0;
    for (int i = 0; i < latency_buckets::kCount; ++i) {
      seen += counts_[i];
      if (seen >= rank) return latency_buckets::Representative(i);
    }
    return latency_buckets::Representative(latency_buckets::kCount - 1);
  }
  // The representative of the highest non-empty bucket; 0 when empty.
  int64_t Max() const {
    for (int i = latency_buckets::kCount - 1; i >= 0; --i) {
      if (counts_[i] > 0) return latency_buckets::Representative(i);
    }
    return 0;
  }

 private:
  std::vector<int64_t> counts_;
  int64_t total_ = 0;
};

class LatencyHistogram {
 public:
  LatencyHistogram() {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  }
  void Record(int64_t us) {
    counts_[latency_buckets::IndexOf(us)].fetch_add(1, std::memory_order_relaxed);
    any_.store(true, std::memory_order_relaxed);
  }
  bool empty() const { return !any_.load(std::memory_order_relaxed); }
  // Calls fn(bucket, count) for every non-empty bucket (any thread).
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    if (empty()) return;
    for (int i = 0; i < latency_buckets::kCount; ++i) {
      const int64_t n = counts_[i].load(std::memory_order_relaxed);
      if (n > 0) fn(i, n);
    }
  }

 private:
  std::array<std::atomic<int64_t>, latency_buckets::kCount> counts_;
  std::atomic<bool> any_{false};
};

}  // namespace vstream
