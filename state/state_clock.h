#pragma once
// The time source of state TTL (Flink's TtlTimeProvider). Injectable so tests
// move time by hand instead of sleeping.
//
// Implementations are thread-safe: the task thread reads the clock on every
// access to a state with a TTL, and RocksDB's compaction threads read it when
// they drop expired entries.

#include <atomic>
#include <cstdint>

namespace vstream {

class StateClock {
 public:
  virtual ~StateClock() = default;
  // Epoch milliseconds.
  virtual int64_t NowMillis() const = 0;

  // The wall clock; lives for the whole process.
  static const StateClock& System();
};

// A clock that moves only when told to, for tests.
class ManualStateClock final : public StateClock {
 public:
  explicit ManualStateClock(int64_t now_ms = 0) : now_ms_(now_ms) {}
  int64_t NowMillis() const override { return now_ms_.load(std::memory_order_acquire); }
  void Set(int64_t now_ms) { now_ms_.store(now_ms, std::memory_order_release); }
  void Advance(int64_t delta_ms) { now_ms_.fetch_add(delta_ms, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace vstream
