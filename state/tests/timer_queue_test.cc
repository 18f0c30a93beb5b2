#include "state/timer_queue.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/perf_context.h"
#include "state/state_key.h"

namespace vstream {
namespace {

// A payload of key group 1 (every payload starts with its key group).
std::string P(std::string_view rest) {
  std::string p;
  AppendKeyGroupBytes(1, &p);
  p.append(rest.data(), rest.size());
  return p;
}

// Each test gets a backend in its own directory and a queue with the
// parameter's memory limit (q_, after SetUp).
class TimerQueueTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("vstream-timers-" + std::to_string(::getpid()) + "-" + std::to_string(test->line()) + "-" +
            std::to_string(GetParam()));
    auto backend = KeyedStateBackend::Open({.path = dir_.string()});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
    auto timers = TimerQueue::Create(*backend_, "timers", GetParam());
    ASSERT_TRUE(timers.ok()) << timers.status();
    timers_ = std::move(*timers);
    q_ = timers_.get();
  }
  void TearDown() override {
    timers_.reset();
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<KeyedStateBackend> backend_;
  std::unique_ptr<TimerQueue> timers_;
  TimerQueue* q_ = nullptr;
};

// Memory limits: 0 spills every timer to RocksDB at once, 3 mixes memory and
// disk, 100000 keeps everything in memory.
INSTANTIATE_TEST_SUITE_P(MemoryLimits, TimerQueueTest, ::testing::Values(0, 3, 100000));

TEST_P(TimerQueueTest, PopsDueTimersInTimeOrderOnceEach) {
  TimerQueue& q = *q_;
  std::vector<std::pair<int64_t, std::string>> popped;
  auto collect = [&](int64_t t, std::string_view p) { popped.emplace_back(t, std::string(p)); };

  ASSERT_TRUE(q.Add(30, P("c")).ok());
  ASSERT_TRUE(q.Add(-5, P("neg")).ok());
  ASSERT_TRUE(q.Add(10, P("b")).ok());
  ASSERT_TRUE(q.Add(10, P("a")).ok());
  ASSERT_TRUE(q.Add(10, P("a")).ok());  // duplicate: kept once
  auto n = q.PopUpTo(10, collect);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(popped, (std::vector<std::pair<int64_t, std::string>>{{-5, P("neg")}, {10, P("a")}, {10, P("b")}}));
  popped.clear();
  EXPECT_EQ(*q.PopUpTo(29, collect), 0u);
  // Timers added while popping are there for the next pop.
  n = q.PopUpTo(100, [&](int64_t t, std::string_view p) {
    popped.emplace_back(t, std::string(p));
    ASSERT_TRUE(q.Add(t + 1, P("later")).ok());
  });
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(*q.PopUpTo(100, collect), 1u);
  EXPECT_EQ(popped, (std::vector<std::pair<int64_t, std::string>>{{30, P("c")}, {31, P("later")}}));
  // Many timers, popped in slices: each exactly once.
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(q.Add(1000 + i % 500, P("k" + std::to_string(i))).ok());
  size_t total = 0;
  for (int64_t wm = 1000; wm < 1600; wm += 7) total += *q.PopUpTo(wm, [](int64_t, std::string_view) {});
  EXPECT_EQ(total, 5000u);
}

// Pops of at most `max` timers (a window firing in slices) give the order a
// single pop gives, each timer once, whether the timers are in memory, on
// disk or both (one timer in both), and leave the rest queued: timers added
// between slices, later ones popped only when due.
TEST_P(TimerQueueTest, BoundedPopsTakeTheDueTimersInOrderAndLeaveTheRest) {
  TimerQueue& q = *q_;
  std::vector<std::pair<int64_t, std::string>> expected;
  for (int i = 0; i < 40; ++i) {
    const int64_t t = 100 + (i * 7) % 20;  // out of order, several per time
    ASSERT_TRUE(q.Add(t, P("k" + std::to_string(i))).ok());
    expected.emplace_back(t, P("k" + std::to_string(i)));
  }
  // With limit 3 the 40 went to disk; these three stay in memory: one of
  // them is on disk too, and the slice of the first pop takes one of the
  // others and leaves the other, and a timer from disk between them.
  ASSERT_TRUE(q.Add(100, P("k0")).ok());
  ASSERT_TRUE(q.Add(100, P("m1")).ok());
  ASSERT_TRUE(q.Add(102, P("m2")).ok());
  expected.emplace_back(100, P("m1"));
  expected.emplace_back(102, P("m2"));
  std::sort(expected.begin(), expected.end());
  std::vector<std::pair<int64_t, std::string>> popped;
  auto collect = [&](int64_t t, std::string_view p) { popped.emplace_back(t, std::string(p)); };
  EXPECT_EQ(*q.PopUpTo(1000, collect, 0), 0u);
  size_t pops = 0;
  for (;;) {
    auto n = q.PopUpTo(109, collect, 3);
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_LE(*n, 3u);
    ++pops;
    // Between slices: a timer due later than the watermark popped to.
    ASSERT_TRUE(q.Add(500 + static_cast<int64_t>(pops), P("later")).ok());
    if (*n < 3) break;
  }
  const auto due_end = std::find_if(expected.begin(), expected.end(), [](const auto& e) { return e.first > 109; });
  using Timers = std::vector<std::pair<int64_t, std::string>>;
  EXPECT_EQ(popped, Timers(expected.begin(), due_end));
  EXPECT_EQ(pops, popped.size() / 3 + 1);
  popped.clear();
  auto n = q.PopUpTo(499, collect, 7);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 7u);
  EXPECT_EQ(*q.PopUpTo(499, collect), static_cast<size_t>(expected.end() - due_end) - 7);
  EXPECT_EQ(popped, Timers(due_end, expected.end()));
  EXPECT_EQ(*q.PopUpTo(INT64_MAX, [](int64_t, std::string_view) {}), pops);
}

// A window's timers all have one time: slices of them popped from disk
// seek past the ones the earlier slices deleted, not to their time (which
// stepped over every tombstone again: quadratic in the timers).
TEST_P(TimerQueueTest, SlicesOfOneTimeSkipWhatEarlierSlicesPopped) {
  TimerQueue& q = *q_;
  constexpr int kTimers = 3000;
  for (int i = 0; i < kTimers; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "k%05d", i);
    ASSERT_TRUE(q.Add(1000, P(name)).ok());
  }
  std::string previous;
  int popped = 0;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  for (;;) {
    auto n = q.PopUpTo(
        1000,
        [&](int64_t, std::string_view p) {
          EXPECT_LT(previous, p);
          previous.assign(p);
          ++popped;
        },
        100);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n < 100) break;
  }
  const uint64_t skipped = rocksdb::get_perf_context()->internal_delete_skipped_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  EXPECT_EQ(popped, kTimers);
  // Seeking to the time instead: 100 + 200 + ... + 2,900 = 43,500.
  EXPECT_LT(skipped, static_cast<uint64_t>(kTimers)) << "tombstones stepped over";
}

TEST_P(TimerQueueTest, RemovedTimersDoNotFireWhereverTheyAre) {
  TimerQueue& q = *q_;
  // With limit 0 and 3 the first timers are spilled to RocksDB before the
  // later ones are added, so removals hit both memory and disk.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(q.Add(100 + i, P("k" + std::to_string(i))).ok());
  ASSERT_TRUE(q.Remove(100, P("k0")).ok());
  ASSERT_TRUE(q.Remove(109, P("k9")).ok());
  ASSERT_TRUE(q.Remove(105, P("other")).ok());  // not queued: no-op
  ASSERT_TRUE(q.Remove(104, P("k5")).ok());     // wrong time: no-op
  ASSERT_TRUE(q.Add(103, P("k3")).ok());        // re-added after a spill: still once
  ASSERT_TRUE(q.Remove(103, P("k3")).ok());     // gone from memory and disk
  std::vector<std::pair<int64_t, std::string>> popped;
  auto n = q.PopUpTo(1000, [&](int64_t t, std::string_view p) { popped.emplace_back(t, std::string(p)); });
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(popped, (std::vector<std::pair<int64_t, std::string>>{
                        {101, P("k1")}, {102, P("k2")}, {104, P("k4")}, {105, P("k5")}, {106, P("k6")}, {107, P("k7")}, {108, P("k8")}}));
  // Removing an already fired timer is a no-op, and the queue is empty.
  ASSERT_TRUE(q.Remove(101, P("k1")).ok());
  EXPECT_EQ(*q.PopUpTo(INT64_MAX, [](int64_t, std::string_view) {}), 0u);
}

}  // namespace
}  // namespace vstream

namespace vstream {
namespace {

// A snapshot holds what is in RocksDB: Persist moves the in-memory timers
// there, so a backend reopened from it (as a restore does) has them all.
TEST(TimerQueuePersistTest, PersistedTimersSurviveAReopen) {
  const auto dir = std::filesystem::temp_directory_path() / ("vstream-timers-persist-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (bool persist : {false, true}) {
    {
      auto backend = KeyedStateBackend::Open({.path = dir.string()});
      ASSERT_TRUE(backend.ok()) << backend.status();
      auto timers = TimerQueue::Create(**backend, "timers");
      ASSERT_TRUE(timers.ok());
      for (int i = 0; i < 10; ++i) ASSERT_TRUE((*timers)->Add(100 + i, P("p" + std::to_string(i))).ok());
      if (persist) {
        ASSERT_TRUE((*timers)->Persist().ok());
      }
    }
    auto backend = KeyedStateBackend::Open({.path = dir.string(), .wipe_on_open = false});
    ASSERT_TRUE(backend.ok()) << backend.status();
    auto timers = TimerQueue::Create(**backend, "timers");
    ASSERT_TRUE(timers.ok());
    std::vector<int64_t> popped;
    ASSERT_TRUE((*timers)->PopUpTo(1000, [&](int64_t t, std::string_view) { popped.push_back(t); }).ok());
    // Without Persist the timers lived only in memory and are gone.
    EXPECT_EQ(popped.size(), persist ? 10u : 0u) << "persist " << persist;
    backend->reset();
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace vstream

namespace vstream {
namespace {

// Over its memory limit a queue spills its latest timers, a batch at a time:
// the earliest, due first, stay in memory and pop without RocksDB, and what
// is in memory stays near the limit (it spilled everything at once before).
TEST(TimerQueueSpillTest, TheEarliestTimersStayInMemoryOverTheLimit) {
  const auto dir = std::filesystem::temp_directory_path() / ("vstream-timers-spill-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto backend = KeyedStateBackend::Open({.path = dir.string()});
  ASSERT_TRUE(backend.ok()) << backend.status();
  constexpr size_t kLimit = 1000;
  auto timers = TimerQueue::Create(**backend, "timers", kLimit);
  ASSERT_TRUE(timers.ok()) << timers.status();
  TimerQueue& q = **timers;
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(q.Add(i, P("t")).ok());
    ASSERT_LE(q.memory_timers(), kLimit) << "after " << i;
  }
  EXPECT_GE(q.memory_timers(), kLimit / 2);
  // The first 500 were never spilled: they pop from memory.
  const size_t in_memory = q.memory_timers();
  std::vector<int64_t> popped;
  auto collect = [&](int64_t t, std::string_view) { popped.push_back(t); };
  ASSERT_TRUE(q.PopUpTo(499, collect).ok());
  EXPECT_EQ(q.memory_timers(), in_memory - 500);
  // Timers re-added before the spilled ones, and the rest from disk, in order.
  ASSERT_TRUE(q.Add(400, P("t")).ok());
  ASSERT_TRUE(q.Add(2500, P("t")).ok());  // also on disk: once
  ASSERT_TRUE(q.PopUpTo(INT64_MAX, collect).ok());
  std::vector<int64_t> expected;
  for (int i = 0; i < 500; ++i) expected.push_back(i);
  expected.push_back(400);
  for (int i = 500; i < 3000; ++i) expected.push_back(i);
  EXPECT_EQ(popped, expected);
  backend->reset();
  std::filesystem::remove_all(dir);
}

// A timer queue's column family is recognisable by its name (a restore at
// another parallelism depends on it), and its payloads carry a key group.
TEST(TimerQueueNamingTest, ColumnFamilyIsPrefixedAndThePrefixIsReserved) {
  const auto dir = std::filesystem::temp_directory_path() / ("vstream-timers-naming-" + std::to_string(::getpid()));
  auto backend = KeyedStateBackend::Open({.path = dir.string()});
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto timers = TimerQueue::Create(**backend, "window");
  ASSERT_TRUE(timers.ok()) << timers.status();
  ASSERT_TRUE((*timers)->Add(5, P("k")).ok());
  ASSERT_TRUE((*timers)->Persist().ok());
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.string(), &names).ok());
  EXPECT_NE(std::find(names.begin(), names.end(), "timers/window"), names.end());
  // Other states may not take the prefix; the same queue name again is the same state.
  EXPECT_TRUE(absl::IsInvalidArgument((*backend)->GetValueState({.name = "timers/window"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*backend)->GetMapState({.name = "timers/x"}).status()));
  EXPECT_TRUE((*backend)->GetValueState({.name = "timers"}).ok());
  EXPECT_TRUE(TimerQueue::Create(**backend, "window").ok());
  // A payload too short to hold its key group is refused.
  EXPECT_TRUE(absl::IsInvalidArgument((*timers)->Add(5, "k")));
  timers->reset();
  backend->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vstream
