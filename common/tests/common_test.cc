#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/cpu_set.h"
#include "common/crc32c.h"
#include "common/executor.h"
#include "common/flags.h"
#include "common/inline_bytes.h"
#include "common/latency_histogram.h"
#include "common/process_main.h"
#include "common/process_memory.h"
#include "common/time_util.h"
#include "common/wait_for.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace vstream {
namespace {

TEST(TimeUtilTest, ParsesEpochMillisAndIso) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseTimestamp("1700000000123", &ms));
  EXPECT_EQ(ms, 1700000000123);
  ASSERT_TRUE(ParseTimestamp("2023-11-14T22:13:20.123Z", &ms));
  EXPECT_EQ(ms, 1700000000123);
  ASSERT_TRUE(ParseTimestamp("2023-11-14T23:13:20.123+01:00", &ms));
  EXPECT_EQ(ms, 1700000000123);
  ASSERT_TRUE(ParseTimestamp("2023-11-14 22:13:20", &ms));
  EXPECT_EQ(ms, 1700000000000);
  ASSERT_TRUE(ParseTimestamp("1970-01-01", &ms));
  EXPECT_EQ(ms, 0);
  EXPECT_FALSE(ParseTimestamp("2023-13-01", &ms));
  EXPECT_FALSE(ParseTimestamp("yesterday", &ms));
  EXPECT_FALSE(ParseTimestamp("", &ms));
  EXPECT_FALSE(ParseTimestamp("2023-11-14T22:13:20Zjunk", &ms));
}

TEST(TimeUtilTest, FormatsIsoUtcWithMillis) {
  EXPECT_EQ(FormatTimestamp(1700000000123), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59.999Z");
}

TEST(ExecutorTest, CallRunsOnExecutorThreadInOrder) {
  Executor ex("test");
  std::vector<int> seen;
  for (int i = 0; i < 100; ++i) ex.Post([&seen, i] { seen.push_back(i); });
  bool on_thread = ex.Call([&] { return ex.InExecutorThread(); });
  EXPECT_TRUE(on_thread);
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

// A function is destroyed without the executor's lock: while what it held
// is being freed (here: until released), other threads still Post.
TEST(ExecutorTest, AFunctionIsDestroyedWithoutTheLockPostTakes) {
  Executor ex("test");
  std::atomic<bool> destroying{false}, release{false}, posted{false};
  struct SlowToFree {
    SlowToFree(std::atomic<bool>* d, std::atomic<bool>* r) : destroying(d), release(r) {}
    std::atomic<bool>* destroying;
    std::atomic<bool>* release;
    ~SlowToFree() {
      destroying->store(true);
      while (!release->load()) std::this_thread::yield();
    }
  };
  auto held = std::make_shared<SlowToFree>(&destroying, &release);
  ex.Post([held = std::move(held)] {});
  ASSERT_TRUE(WaitFor([&] { return destroying.load(); }, std::chrono::seconds(10)));
  std::thread poster([&] {
    ex.Post([] {});
    posted.store(true);
  });
  EXPECT_TRUE(WaitFor([&] { return posted.load(); }, std::chrono::seconds(10)))
      << "Post waited for the previous function's destruction";
  release.store(true);
  poster.join();
}

TEST(FlagsTest, ParsesValuesBoolsAndPositionals) {
  const char* argv[] = {"prog", "submit", "job.yaml", "--wait", "--jobmanager=h:1", "--slots", "3"};
  auto flags = ParseFlags(7, const_cast<char**>(argv), 1, {"jobmanager", "slots"}, {"wait"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->positional, (std::vector<std::string>{"submit", "job.yaml"}));
  EXPECT_EQ(*flags->Get("jobmanager"), "h:1");
  EXPECT_EQ(*flags->Get("slots"), "3");
  EXPECT_TRUE(flags->Has("wait"));
  const char* bad[] = {"prog", "--nope"};
  EXPECT_FALSE(ParseFlags(2, const_cast<char**>(bad), 1, {}, {}).ok());
}

// Inline up to N bytes, on the heap beyond: the same bytes, copies, moves
// and order either way.
TEST(InlineBytesTest, HoldsShortAndLongBytesAlike) {
  using Bytes = InlineBytes<8>;
  const std::string exact(8, 'a'), longer(9, 'b'), much_longer(100, 'c');
  Bytes b;
  EXPECT_EQ(b.view(), "");
  b.assign(exact);
  EXPECT_EQ(b.view(), exact);
  EXPECT_EQ(b.heap_bytes(), 0u);
  b.assign(longer);
  EXPECT_EQ(b.view(), longer);
  EXPECT_EQ(b.heap_bytes(), 9u);
  b.assign(much_longer);
  EXPECT_EQ(b.view(), much_longer);
  b.assign(longer);  // shrinks into the heap buffer it has
  EXPECT_EQ(b.view(), longer);
  EXPECT_EQ(b.heap_bytes(), 100u);
  b.assign("xy");
  EXPECT_EQ(b.view(), "xy");
  EXPECT_EQ(b.heap_bytes(), 100u);  // kept for the next long value
  b.assign(much_longer);
  b.assign(b.view().substr(1));  // a part of its own bytes
  EXPECT_EQ(b.view(), much_longer.substr(1));
  b.assign(std::string_view());
  EXPECT_EQ(b.view(), "");

  Bytes heap(much_longer), inline_copy(exact);
  Bytes copy = heap;
  EXPECT_EQ(copy.view(), much_longer);
  EXPECT_NE(copy.data(), heap.data());
  Bytes moved = std::move(copy);
  EXPECT_EQ(moved.view(), much_longer);
  moved = inline_copy;
  EXPECT_EQ(moved.view(), exact);
  moved = Bytes(longer);
  EXPECT_EQ(moved.view(), longer);

  // Ordered as their bytes, across inline and heap.
  EXPECT_LT(Bytes("aaaaaaaa"), Bytes("aaaaaaaab"));
  EXPECT_LT(Bytes("aaaaaaaab"), Bytes("ab"));
  EXPECT_EQ(Bytes(longer), Bytes(longer));
  EXPECT_NE(Bytes(longer), Bytes(exact));
}

TEST(InlineBytesTest, OrdersAsTheirBytesAndCopiesKeepThem) {
  // The comparison reads the first 8 bytes as one number: it must agree
  // with memcmp's order (bytes unsigned, a prefix first) for every length
  // around 8 and for bytes with the high bit set, inline or on the heap.
  using Bytes = InlineBytes<12>;
  std::vector<std::string> all;
  uint64_t seed = 42;
  auto next = [&] { return seed = seed * 6364136223846793005ull + 1442695040888963407ull; };
  const char alphabet[] = {'\x00', '\x01', 'a', 'b', '\x7f', '\x80', '\xfe', '\xff'};
  for (int i = 0; i < 400; ++i) {
    std::string s(next() % 20, '\0');
    for (char& c : s) c = alphabet[next() % sizeof(alphabet)];
    all.push_back(s);
    if (s.size() > 1) all.push_back(s.substr(0, s.size() - 1));  // a prefix of another
  }
  for (const std::string& a : all) {
    for (const std::string& b : all) {
      const Bytes x(a), y(b);
      ASSERT_EQ(x <=> y, std::string_view(a) <=> std::string_view(b)) << a.size() << " " << b.size();
    }
    Bytes copy(Bytes{a});
    Bytes moved(std::move(copy));
    EXPECT_EQ(moved.view(), a);
    Bytes assigned;
    assigned = moved;
    EXPECT_EQ(assigned.view(), a);
  }
}

TEST(LatencyHistogramTest, BucketsCoverEveryValueWithinTheirRelativeWidth) {
  using namespace latency_buckets;
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{31}, int64_t{32},
                    int64_t{1000}, int64_t{4095}, int64_t{4096}, int64_t{999'999}, int64_t{1} << 40}) {
    const int i = IndexOf(v);
    EXPECT_LE(LowerBound(i), v) << v;
    EXPECT_GT(LowerBound(i + 1), v) << v;
    // A bucket is at most 1/16 of its lower bound wide.
    EXPECT_LE((LowerBound(i + 1) - LowerBound(i)) * 16, std::max<int64_t>(LowerBound(i), 16)) << v;
  }
  // Indexes ascend with the value and stay in range; negatives count as 0.
  int last = 0;
  for (int64_t v = 0; v < 100000; v += 7) {
    EXPECT_GE(IndexOf(v), last);
    last = IndexOf(v);
  }
  EXPECT_EQ(IndexOf(-5), 0);
  EXPECT_EQ(IndexOf(std::numeric_limits<int64_t>::max()), kCount - 1);
  EXPECT_EQ(IndexOf(int64_t{1} << 41), kCount - 1);  // past the last power of two, not wrapped
}

TEST(LatencyHistogramTest, QuantilesOfMergedCountsAreWithinABucket) {
  // Two subtasks' histograms: 1..1000 µs and 1001..2000 µs, one each.
  LatencyHistogram a, b;
  for (int64_t v = 1; v <= 1000; ++v) a.Record(v);
  for (int64_t v = 1001; v <= 2000; ++v) b.Record(v);
  LatencyCounts merged;
  for (const LatencyHistogram* h : {&a, &b}) h->ForEach([&](int bucket, int64_t n) { merged.Add(bucket, n); });
  EXPECT_EQ(merged.total(), 2000);
  auto near = [](int64_t got, int64_t want) { return std::abs(got - want) <= want / 16 + 1; };
  EXPECT_PRED2(near, merged.Quantile(0.50), 1000);
  EXPECT_PRED2(near, merged.Quantile(0.99), 1980);
  EXPECT_PRED2(near, merged.Quantile(0.999), 1998);
  EXPECT_PRED2(near, merged.Max(), 2000);
  EXPECT_EQ(LatencyCounts().Quantile(0.5), 0);
  EXPECT_TRUE(LatencyHistogram().empty());
}

// A quantile is shown as its bucket's midpoint; the bucket's bounds say how
// far the true value may be from it: a p99 shown as 9.984 ms may be over 10.
TEST(LatencyHistogramTest, BucketBoundsHoldTheRepresentativeOfEveryBucket) {
  namespace lb = latency_buckets;
  for (int i = 0; i + 1 < lb::kCount; i += 7) {
    const int64_t rep = lb::Representative(i);
    const auto [low, high] = lb::BucketBounds(rep);
    EXPECT_EQ(low, lb::LowerBound(i)) << i;
    EXPECT_EQ(high, lb::LowerBound(i + 1) - 1) << i;
    EXPECT_LE(low, rep);
    EXPECT_LE(rep, high);
  }
  EXPECT_EQ(lb::BucketBounds(7), std::make_pair(int64_t{7}, int64_t{7}));  // exact below 16 us
  EXPECT_EQ(lb::BucketBounds(9984), std::make_pair(int64_t{9728}, int64_t{10239}));
  EXPECT_EQ(lb::Representative(lb::IndexOf(9984)), 9983);
}

TEST(Crc32cTest, MatchesTheStandardCheckValues) {
  // RFC 3720 B.4 and the usual "123456789" check value.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
}

// Debian's Abseil is built without NDEBUG: its mutexes track lock order and
// abort the process on an inversion ("dying due to potential deadlock"),
// paying for the bookkeeping on every lock. The processes turn that off;
// this one too, and an inversion (harmless on one thread) goes through.
TEST(ProcessMainTest, MutexLockOrderIsNotTrackedOnceDeadlockDetectionIsOff) {
  DisableMutexDeadlockDetection();
  absl::Mutex a, b;
  for (absl::Mutex* first : {&a, &b}) {
    absl::Mutex* second = first == &a ? &b : &a;
    first->Lock();
    second->Lock();
    second->Unlock();
    first->Unlock();
  }
  EXPECT_TRUE(a.TryLock());
  a.Unlock();
}

TEST(CpuSetTest, ParsesNumbersAndRangesAndSaysWhatIsWrong) {
  EXPECT_EQ(*ParseCpuSet("0"), (std::vector<int>{0}));
  EXPECT_EQ(*ParseCpuSet("4-6,1,5"), (std::vector<int>{1, 4, 5, 6}));
  EXPECT_EQ(FormatCpuSet({0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
  EXPECT_EQ(FormatCpuSet(*ParseCpuSet("2,0-1")), "0-2");
  for (const char* bad : {"", "a", "1,", "-1", "3-1", "1-2-3", " 1", "+1", "0-", "99999"}) {
    absl::StatusOr<std::vector<int>> r = ParseCpuSet(bad);
    ASSERT_FALSE(r.ok()) << "'" << bad << "'";
    EXPECT_NE(r.status().message().find("expected CPU numbers and ranges"), std::string::npos) << r.status();
  }
  EXPECT_NE(ParseCpuSet("3-1").status().message().find("ends before it starts"), std::string::npos);
}

// On a thread of its own, so that the test process keeps its CPUs.
TEST(CpuSetTest, ConfinesTheThreadAndTheThreadsItStartsToAllowedCpusOnly) {
  const std::vector<int> allowed = AllowedCpus();
  ASSERT_FALSE(allowed.empty());
  std::vector<int> seen_by_child;
  absl::Status confined, refused;
  std::thread([&] {
    confined = ConfineToCpus({allowed.back()});
    std::thread([&] { seen_by_child = AllowedCpus(); }).join();
    refused = ConfineToCpus({allowed.back() + 1});  // no longer allowed here
  }).join();
  ASSERT_TRUE(confined.ok()) << confined;
  EXPECT_EQ(seen_by_child, (std::vector<int>{allowed.back()}));
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("is not one this process may use (" + std::to_string(allowed.back()) + ")"),
            std::string::npos)
      << refused;
  EXPECT_EQ(AllowedCpus(), allowed);
}

// Pages of `p` resident now, by mincore.
size_t ResidentPages(void* p, size_t pages) {
  std::vector<unsigned char> in(pages);
  EXPECT_EQ(::mincore(p, pages * ::sysconf(_SC_PAGESIZE), in.data()), 0);
  size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

TEST(ProcessMemoryTest, PrefaultPagesFaultsInTheWholePagesOfARangeAndKeepsItsBytes) {
  const size_t page = ::sysconf(_SC_PAGESIZE);
  constexpr size_t kPages = 64;
  char* p = static_cast<char*>(::mmap(nullptr, kPages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(ResidentPages(p, kPages), 0u);
  p[page] = 'x';  // page 1 was written already
  // From the middle of page 0 to the middle of the last page: only the
  // whole pages between, 1 to kPages - 2.
  ASSERT_TRUE(PrefaultPages(p + page / 2, (kPages - 1) * page));
  std::vector<unsigned char> in(kPages);
  ASSERT_EQ(::mincore(p, kPages * page, in.data()), 0);
  EXPECT_EQ(in[0] & 1, 0);
  EXPECT_EQ(in[kPages - 1] & 1, 0);
  EXPECT_EQ(ResidentPages(p + page, kPages - 2), kPages - 2);
  EXPECT_EQ(p[page], 'x');
  EXPECT_EQ(p[2 * page], 0);
  EXPECT_TRUE(PrefaultPages(p, page / 2));  // no whole page: nothing to do
  ::munmap(p, kPages * page);
}

// A hash table on the allocator is resident once reserved: its first
// inserts fault no page in.
TEST(ProcessMemoryTest, APrefaultingAllocatorsLargeAllocationsAreResidentWhenMade) {
  using Map = absl::flat_hash_map<uint64_t, uint64_t, absl::Hash<uint64_t>, std::equal_to<uint64_t>,
                                  PrefaultingAllocator<std::pair<const uint64_t, uint64_t>>>;
  const int64_t before = ResidentBytes();
  ASSERT_GT(before, 0);
  Map map;
  map.reserve(1 << 20);  // 16 bytes a slot: some 32 MiB
  const int64_t grown = ResidentBytes() - before;
  EXPECT_GT(grown, int64_t{16} << 20) << "the table's pages were not faulted in";
  map[1] = 2;
  EXPECT_EQ(map.at(1), 2u);
}

TEST(ProcessMemoryTest, HugePageTunablesAreAddedOnceAndOnlyWhereTheKernelHasThem) {
  const std::string ours(kHugePageTunables);
  EXPECT_EQ(HugePageTunables(nullptr, "always [madvise] never\n"), ours);
  EXPECT_EQ(HugePageTunables(nullptr, "[always] madvise never\n"), ours);
  EXPECT_EQ(HugePageTunables("glibc.malloc.arena_max=2", "always [madvise] never\n"),
            "glibc.malloc.arena_max=2:" + ours);
  // Already there: this process re-executed with them, or its user set
  // glibc's choice of pages.
  EXPECT_EQ(HugePageTunables(ours.c_str(), "always [madvise] never\n"), std::nullopt);
  EXPECT_EQ(HugePageTunables("glibc.malloc.hugetlb=0", "always [madvise] never\n"), std::nullopt);
  // No THP here.
  EXPECT_EQ(HugePageTunables(nullptr, "always madvise [never]\n"), std::nullopt);
  EXPECT_EQ(HugePageTunables(nullptr, ""), std::nullopt);
}

}  // namespace
}  // namespace vstream
