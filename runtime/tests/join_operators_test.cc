// The interval and broadcast joins driven directly, their state in RocksDB:
// the interval join against a brute-force reference over random out-of-order
// input, its cleanup as the watermark passes, and a run of 200k buffered
// rows; the broadcast join's replacement of broadcast rows.

#include "runtime/operators/join_operators.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/network/buffer.h"
#include "state/checkpoint_storage.h"
#include "state/state_snapshot.h"

namespace vstream {
namespace {

// Collects rows as comma-separated text, and watermarks.
class Collect : public Output {
 public:
  explicit Collect(Schema schema) : schema_(std::move(schema)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::string line;
      for (size_t f = 0; f < schema_.size(); ++f) {
        if (f) line += ",";
        line += batch[i][f].is_null ? "null" : DatumToString(batch[i][f], schema_.field(f).type);
      }
      rows.push_back(std::move(line));
    }
  }
  void Finish() override { finished = true; }
  void PushWatermark(int64_t wm) override { watermarks.push_back(wm); }
  std::vector<std::string> rows;
  std::vector<int64_t> watermarks;
  bool finished = false;

 private:
  Schema schema_;
};

// An operator subtask's context with its own state directory, removed when
// the object goes.
class TestingContext {
 public:
  TestingContext() {
    static std::atomic<int> counter{0};
    ctx_.job_id = "job";
    ctx_.vertex_name = "join";
    ctx_.state_dir = (std::filesystem::temp_directory_path() /
                      absl::StrCat("vstream-join-", ::getpid(), "-", counter++))
                         .string();
    std::filesystem::remove_all(ctx_.state_dir);
  }
  ~TestingContext() {
    std::error_code ec;
    std::filesystem::remove_all(ctx_.state_dir, ec);
  }
  const OperatorContext& ctx() const { return ctx_; }

 private:
  OperatorContext ctx_;
};

Schema Concat(const Schema& a, const Schema& b) {
  Schema s = a;
  for (const Field& f : b.fields()) s.Add(f.name + "_r", f.type);
  return s;
}

// ---------------------------------------------------------------- interval

// Both sides {k: string, ts}, joined on k within [lower, upper].
Schema KeyAndTime() { return Schema({{"k", FieldType::kString}, {"ts", FieldType::kTimestamp}}); }
proto::IntervalJoinSpec KeyAndTimeSpec(int64_t lower, int64_t upper) {
  proto::IntervalJoinSpec spec;
  spec.add_left_key("k");
  spec.add_right_key("k");
  spec.set_lower_ms(lower);
  spec.set_upper_ms(upper);
  spec.set_left_time_index(1);
  spec.set_right_time_index(1);
  return spec;
}

// Pushes one batch of {k, ts} rows into input 0 (left) or 1 (right).
void PushKeysAndTimes(IntervalJoinOperator& op, int input, const std::vector<std::pair<std::string, int64_t>>& rows) {
  RowBatch b(2);
  for (const auto& [k, ts] : rows) {
    Row& r = b.Append();
    r[0].SetString(k);
    r[1].SetInt(ts);
  }
  op.PushInput(input, b);
  ASSERT_TRUE(op.status().ok()) << op.status();
}

TEST(IntervalJoinOperatorTest, JoinsWithinTheIntervalOncePerPair) {
  Schema left({{"k", FieldType::kString}, {"ts", FieldType::kTimestamp}});
  Schema right({{"k", FieldType::kString}, {"ts", FieldType::kTimestamp}});
  proto::IntervalJoinSpec spec;
  spec.add_left_key("k");
  spec.add_right_key("k");
  spec.set_lower_ms(-10);
  spec.set_upper_ms(0);
  spec.set_left_time_index(1);
  spec.set_right_time_index(1);
  TestingContext ctx;  // outlives the operator: RocksDB closes first
  OperatorCounters counters;
  IntervalJoinOperator op(counters, left, right, spec);
  Collect out(Schema({{"k", FieldType::kString}, {"ts", FieldType::kInt}, {"k2", FieldType::kString},
                      {"ts2", FieldType::kInt}}));
  op.set_output(&out);
  ASSERT_TRUE(op.Open(ctx.ctx()).ok());
  auto push = [&](int input, const std::vector<std::pair<std::string, int64_t>>& rows) {
    PushKeysAndTimes(op, input, rows);
  };
  push(1, {{"a", 95}, {"a", 85}, {"b", 100}});
  push(0, {{"a", 100}, {"a", 105}});  // 100 meets 95 (not 85); 105 meets 95
  push(1, {{"a", 101}});              // meets left 105 only
  EXPECT_EQ(out.rows, (std::vector<std::string>{"a,100,a,95", "a,105,a,95", "a,105,a,101"}));
  EXPECT_EQ(*op.BufferedRecords(0), 2);
  EXPECT_EQ(*op.BufferedRecords(1), 4);
  op.PushWatermark(200);
  EXPECT_EQ(out.watermarks, (std::vector<int64_t>{200}));
  push(0, {{"a", 150}});  // late
  EXPECT_EQ(counters.late_records, 1);
  EXPECT_EQ(out.rows.size(), 3u);
  EXPECT_EQ(*op.BufferedRecords(0), 0);
  EXPECT_EQ(*op.BufferedRecords(1), 0);
}

// A batch's records of one key and time probe the other side once when it
// has nothing for them (a window's results: q5's join), and skip the
// cleanup timer the first added; every pair is still emitted, whichever
// side comes first and in whichever batch, and every record is cleaned up.
TEST(IntervalJoinOperatorTest, RecordsOfOneKeyAndTimeInABatchMeetTheirPartnersAlike) {
  TestingContext ctx;
  OperatorCounters counters;
  IntervalJoinOperator op(counters, KeyAndTime(), KeyAndTime(), KeyAndTimeSpec(2000, 2000));
  Collect out(Schema({{"k", FieldType::kString}, {"ts", FieldType::kInt}, {"k_r", FieldType::kString},
                      {"ts_r", FieldType::kInt}}));
  op.set_output(&out);
  ASSERT_TRUE(op.Open(ctx.ctx()).ok());
  auto push = [&](int input, const std::vector<std::pair<std::string, int64_t>>& rows) {
    PushKeysAndTimes(op, input, rows);
  };
  // Nothing on the right yet: three records of one key and time, then the
  // same key at another time, which a record on the right waits for.
  push(1, {{"u", 5000}});
  push(0, {{"u", 1000}, {"u", 3000}, {"u", 1000}, {"v", 1000}, {"v", 1000}, {"v", 1000}});
  EXPECT_EQ(out.rows, (std::vector<std::string>{"u,3000,u,5000"}));
  out.rows.clear();
  push(1, {{"v", 3000}});  // meets all three
  EXPECT_EQ(out.rows, (std::vector<std::string>(3, "v,1000,v,3000")));
  out.rows.clear();
  push(0, {{"v", 1000}, {"v", 1000}, {"v", 1500}});  // the right side has one now: a new batch probes again
  EXPECT_EQ(out.rows, (std::vector<std::string>(2, "v,1000,v,3000")));
  EXPECT_EQ(*op.BufferedRecords(0), 9);
  EXPECT_EQ(*op.BufferedRecords(1), 2);
  op.PushWatermark(10'000);
  EXPECT_EQ(*op.BufferedRecords(0), 0);
  EXPECT_EQ(*op.BufferedRecords(1), 0);
}

// Cleanup times that saturate at INT64_MAX (a left record near the end of
// time with upper > 0, a right one with lower < 0) do not overflow; the end
// of input's watermark (INT64_MAX) leaves the buffers alone: nothing can
// come after it, and a cleanup emits nothing.
TEST(IntervalJoinOperatorTest, RecordsNearTheEndOfTimeStayUntilTheEnd) {
  const Schema side = KeyAndTime();
  const proto::IntervalJoinSpec spec = KeyAndTimeSpec(-1000, 1000);
  TestingContext ctx;
  OperatorCounters counters;
  IntervalJoinOperator op(counters, side, side, spec);
  Collect out(Concat(side, side));
  op.set_output(&out);
  ASSERT_TRUE(op.Open(ctx.ctx()).ok());
  for (int input : {0, 1}) {
    RowBatch b(2);
    for (int64_t ts : {INT64_MAX - 500, INT64_MAX - 1, int64_t{1000}}) {
      Row& r = b.Append();
      r[0].SetString("a");
      r[1].SetInt(ts);
    }
    op.PushInput(input, b);
    ASSERT_TRUE(op.status().ok()) << op.status();
  }
  EXPECT_EQ(*op.BufferedRecords(0), 3);
  EXPECT_EQ(*op.BufferedRecords(1), 3);
  op.PushWatermark(INT64_MAX - 2000);
  EXPECT_EQ(*op.BufferedRecords(0), 2) << "the one at 1000 is due";
  EXPECT_EQ(*op.BufferedRecords(1), 2);
  op.PushWatermark(INT64_MAX - 1);
  EXPECT_EQ(*op.BufferedRecords(0), 2) << "due at INT64_MAX";
  EXPECT_EQ(*op.BufferedRecords(1), 2);
  op.PushWatermark(INT64_MAX);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(*op.BufferedRecords(0), 2) << "the end of input cleans nothing up";
  EXPECT_EQ(*op.BufferedRecords(1), 2);
}

// Left {k: string, g: int, ts, v: int (sometimes null)}; right {t, note:
// string, k2: string, g2: int}: keys of two fields at different positions.
const Schema kLeft({{"k", FieldType::kString}, {"g", FieldType::kInt}, {"ts", FieldType::kTimestamp},
                    {"v", FieldType::kInt}});
const Schema kRight({{"t", FieldType::kTimestamp}, {"note", FieldType::kString}, {"k2", FieldType::kString},
                     {"g2", FieldType::kInt}});

proto::IntervalJoinSpec JoinSpec(int64_t lower, int64_t upper) {
  proto::IntervalJoinSpec spec;
  spec.add_left_key("k");
  spec.add_left_key("g");
  spec.add_right_key("k2");
  spec.add_right_key("g2");
  spec.set_lower_ms(lower);
  spec.set_upper_ms(upper);
  spec.set_left_time_index(2);
  spec.set_right_time_index(0);
  return spec;
}

// One input event of the random test: a record of either side, or a watermark.
struct Event {
  enum Kind { kLeft, kRight, kWatermark } kind;
  std::string k;
  int64_t g = 0;
  int64_t ts = 0;  // the watermark for kWatermark
  int64_t v = 0;
  bool v_null = false;
  std::string note;
};

std::string TimeText(int64_t ts) {
  Datum d;
  d.SetInt(ts);
  return DatumToString(d, FieldType::kTimestamp);
}

// Text of a record as Collect renders it.
std::string Text(const Event& e) {
  if (e.kind == Event::kLeft) {
    return absl::StrCat(e.k, ",", e.g, ",", TimeText(e.ts), ",", e.v_null ? "null" : absl::StrCat(e.v));
  }
  return absl::StrCat(TimeText(e.ts), ",", e.note, ",", e.k, ",", e.g);
}

// Random keys, timestamps with many duplicates, arriving out of order (some
// beyond the watermark), in random batches, with watermarks in between.
std::vector<Event> RandomEvents(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::vector<Event> events;
  int64_t now = 1'000'000;
  int64_t max_ts = INT64_MIN;
  for (int i = 0; i < n; ++i) {
    if (rng() % 25 == 0 && max_ts != INT64_MIN) {
      events.push_back({Event::kWatermark, "", 0, max_ts - 15, 0, false, ""});
      continue;
    }
    now += rng() % 3;  // ~1 ms apart: equal timestamps are common
    Event e;
    e.kind = rng() % 2 == 0 ? Event::kLeft : Event::kRight;
    e.k = absl::StrCat("p", rng() % 4);
    e.g = static_cast<int64_t>(rng() % 2);
    e.ts = now - static_cast<int64_t>(rng() % 25);  // out of order; beyond 15 often late
    e.v = i;
    e.v_null = rng() % 7 == 0;
    e.note = absl::StrCat("n", i);
    max_ts = std::max(max_ts, e.ts);
    events.push_back(std::move(e));
  }
  // Past every record's cleanup (bounds within 20 ms, timers rounded up to
  // 100 ms), then the end of input, which cleans up nothing more.
  events.push_back({Event::kWatermark, "", 0, max_ts + 1000, 0, false, ""});
  events.push_back({Event::kWatermark, "", 0, kMaxWatermark, 0, false, ""});
  return events;
}

class IntervalJoinReferenceTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(IntervalJoinReferenceTest, MatchesBruteForceOverRandomOutOfOrderInput) {
  const auto [lower, upper] = GetParam();
  // The default keeps every record in memory; 2 KiB spills the buffers to
  // RocksDB every few records, so partners come from both.
  for (const size_t memory_limit : {BufferedMapState::kDefaultMemoryLimit, size_t{2048}})
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, ", buffer memory limit ", memory_limit));
    const std::vector<Event> events = RandomEvents(seed * 7919 + static_cast<uint64_t>(lower * 31 + upper), 3000);
    TestingContext ctx;  // outlives the operator: RocksDB closes first
    OperatorCounters counters;
    IntervalJoinOperator op(counters, kLeft, kRight, JoinSpec(lower, upper));
    op.set_buffer_memory_limit(memory_limit);
    Collect out(Concat(kLeft, kRight));
    op.set_output(&out);
    ASSERT_TRUE(op.Open(ctx.ctx()).ok());

    // The reference: every record not behind the watermark on arrival meets
    // every earlier such record of the other side with the same key within
    // the interval, partners in (time, arrival) order.
    std::vector<std::string> want;
    std::vector<const Event*> kept[2];
    int64_t watermark = INT64_MIN;
    int64_t late = 0;
    std::mt19937_64 rng(seed);
    RowBatch batch[2] = {RowBatch(kLeft.size()), RowBatch(kRight.size())};
    auto flush = [&] {
      for (int side = 0; side < 2; ++side) {
        op.PushInput(side, batch[side]);
        ASSERT_TRUE(op.status().ok()) << op.status();
        batch[side].Clear();
      }
    };
    for (const Event& e : events) {
      if (e.kind == Event::kWatermark) {
        flush();
        op.PushWatermark(e.ts);
        watermark = std::max(watermark, e.ts);
        // Kept: the records whose partners may still arrive, and those
        // whose cleanup timer (one per key, side and 100 ms) is not due yet.
        int64_t buffered[2] = {0, 0};
        for (int side = 0; side < 2; ++side) {
          for (const Event* x : kept[side]) {
            const int64_t cleanup = side == 0 ? x->ts + upper : x->ts - lower;
            if (IntervalJoinOperator::CleanupDue(cleanup) > watermark) ++buffered[side];
          }
        }
        if (e.ts != kMaxWatermark) {
          ASSERT_EQ(*op.BufferedRecords(0), buffered[0]) << "watermark " << e.ts;
          ASSERT_EQ(*op.BufferedRecords(1), buffered[1]) << "watermark " << e.ts;
        }
        continue;
      }
      const int side = e.kind == Event::kLeft ? 0 : 1;
      // The operator sees the records in arrival order: hand over the other
      // side's pending batch first.
      if (!batch[1 - side].empty()) flush();
      if (e.ts <= watermark) {
        ++late;
      } else {
        std::vector<const Event*> partners;
        for (const Event* x : kept[1 - side]) {
          const int64_t tl = side == 0 ? e.ts : x->ts;
          const int64_t tr = side == 0 ? x->ts : e.ts;
          if (x->k == e.k && x->g == e.g && tr >= tl + lower && tr <= tl + upper) partners.push_back(x);
        }
        std::stable_sort(partners.begin(), partners.end(),
                         [](const Event* a, const Event* b) { return a->ts < b->ts; });
        for (const Event* x : partners) {
          want.push_back(side == 0 ? absl::StrCat(Text(e), ",", Text(*x)) : absl::StrCat(Text(*x), ",", Text(e)));
        }
        // Kept only if a later record can still meet it (the operator
        // joins but does not keep one whose cleanup time has come).
        if ((side == 0 ? e.ts + upper : e.ts - lower) > watermark) kept[side].push_back(&e);
      }
      Row& r = batch[side].Append();
      if (side == 0) {
        r[0].SetString(e.k);
        r[1].SetInt(e.g);
        r[2].SetInt(e.ts);
        if (e.v_null) {
          r[3].SetNull();
        } else {
          r[3].SetInt(e.v);
        }
      } else {
        r[0].SetInt(e.ts);
        r[1].SetString(e.note);
        r[2].SetString(e.k);
        r[3].SetInt(e.g);
      }
      // Random batch boundaries (arrival order across sides is kept).
      if (rng() % 5 == 0 || batch[side].full()) flush();
    }
    EXPECT_EQ(counters.late_records, late);
    ASSERT_EQ(out.rows.size(), want.size());
    EXPECT_EQ(out.rows, want);
    EXPECT_GT(want.size(), 50u) << "too few pairs to tell";
    EXPECT_GT(late, 50) << "too few late records to tell";
    // Every record was cleaned up once the watermark passed it.
    EXPECT_EQ(*op.BufferedRecords(0), 0);
    EXPECT_EQ(*op.BufferedRecords(1), 0);
  }
}

// Snapshots leave the cleanup timers held in memory out; a restore adds the
// restored records' timers again, so that the watermark still removes them.
TEST(IntervalJoinOperatorTest, ARestoreAddsTheCleanupTimersOfTheRestoredRecords) {
  const Schema side = KeyAndTime();
  const proto::IntervalJoinSpec spec = KeyAndTimeSpec(-1000, 1000);
  auto batch = [](std::initializer_list<std::pair<const char*, int64_t>> rows) {
    RowBatch b(2);
    for (const auto& [k, ts] : rows) {
      Row& r = b.Append();
      r[0].SetString(k);
      r[1].SetInt(ts);
    }
    return b;
  };
  TestingContext ctx;
  const KeyGroupRange all{0, kDefaultMaxParallelism - 1};
  auto storage = CheckpointStorage::Open("file://" + ctx.ctx().state_dir + "-storage");
  ASSERT_TRUE(storage.ok()) << storage.status();
  std::shared_ptr<CheckpointStorage> shared = std::move(*storage);
  proto::KeyedStateHandle handle;
  {
    OperatorCounters counters;
    IntervalJoinOperator op(counters, side, side, spec);
    Collect out(Concat(side, side));
    op.set_output(&out);
    ASSERT_TRUE(op.Open(ctx.ctx()).ok());
    RowBatch left = batch({{"a", 1000}, {"a", 2000}, {"b", 40000}});
    op.PushInput(0, left);
    RowBatch right = batch({{"c", 1500}});
    op.PushInput(1, right);
    ASSERT_TRUE(op.status().ok()) << op.status();
    auto local = TakeLocalSnapshot(*op.keyed_state(), 1, ctx.ctx().state_dir + "-local", all);
    ASSERT_TRUE(local.ok()) << local.status();
    IncrementalSnapshotter snap(shared, "join-0");
    auto uploaded = snap.Upload(*local, "chk-1/join-0");
    ASSERT_TRUE(uploaded.ok()) << uploaded.status();
    handle = *uploaded;
  }
  const std::string restored = ctx.ctx().state_dir + "-restored";
  ASSERT_TRUE(RestoreKeyedState(*shared, handle, all, restored).ok());
  OperatorContext ctx2 = ctx.ctx();
  ctx2.state_dir = restored;
  ctx2.restored = true;
  OperatorCounters counters;
  IntervalJoinOperator op(counters, side, side, spec);
  Collect out(Concat(side, side));
  op.set_output(&out);
  ASSERT_TRUE(op.Open(ctx2).ok());
  EXPECT_EQ(*op.BufferedRecords(0), 3);
  EXPECT_EQ(*op.BufferedRecords(1), 1);
  RowBatch right = batch({{"a", 2500}});
  op.PushInput(1, right);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(out.rows.size(), 1u) << "a at 2500 meets the restored a at 2000 (not the one at 1000)";
  op.PushWatermark(5000);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(*op.BufferedRecords(0), 1) << "the restored records due by 5000 are removed; b at 40000 stays";
  EXPECT_EQ(*op.BufferedRecords(1), 0);
  op.PushWatermark(50000);
  EXPECT_EQ(*op.BufferedRecords(0), 0);
  std::error_code ec;
  for (const char* suffix : {"-storage", "-local", "-restored"}) std::filesystem::remove_all(ctx.ctx().state_dir + suffix, ec);
}

TEST(IntervalJoinTest, CleanupIsDueAtTheNextGranuleBoundary) {
  constexpr int64_t g = IntervalJoinOperator::kCleanupGranularityMs;
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(0), 0);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(1), g);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(g), g);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(g + 1), 2 * g);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(-1), 0);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(-g), -g);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(-g - 1), -g);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(1'700'000'000'050), 1'700'000'000'100);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(INT64_MAX), INT64_MAX);
  EXPECT_EQ(IntervalJoinOperator::CleanupDue(INT64_MIN), INT64_MIN + 8);  // -9223372036854775800
}

INSTANTIATE_TEST_SUITE_P(Bounds, IntervalJoinReferenceTest,
                         ::testing::Values(std::make_tuple(-10, 0), std::make_tuple(-5, 7),
                                           std::make_tuple(3, 12), std::make_tuple(-20, -4),
                                           std::make_tuple(0, 0)));

TEST(IntervalJoinOperatorTest, KeepsTwoHundredThousandRowsInMemoryAndRocksDb) {
  // 100k rows a side over 1000 keys, no watermark until the end: everything
  // stays buffered (the records spill to RocksDB past a 4 MiB memory limit).
  Schema side({{"k", FieldType::kInt}, {"ts", FieldType::kTimestamp}, {"payload", FieldType::kString}});
  proto::IntervalJoinSpec spec;
  spec.add_left_key("k");
  spec.add_right_key("k");
  spec.set_lower_ms(-2000);
  spec.set_upper_ms(0);
  spec.set_left_time_index(1);
  spec.set_right_time_index(1);
  TestingContext ctx;  // outlives the operator: RocksDB closes first
  OperatorCounters counters;
  IntervalJoinOperator op(counters, side, side, spec);
  op.set_buffer_memory_limit(size_t{4} << 20);
  // Counts output rows and checks each pair: same key, right in [tl - 2000, tl].
  struct Check : Output {
    void Push(RowBatch& b) override {
      for (size_t i = 0; i < b.size(); ++i) {
        ++rows;
        if (b[i][0].i != b[i][3].i || b[i][4].i < b[i][1].i - 2000 || b[i][4].i > b[i][1].i) ++wrong;
      }
    }
    void Finish() override {}
    void PushWatermark(int64_t) override {}
    int64_t rows = 0;
    int64_t wrong = 0;
  } out;
  op.set_output(&out);
  ASSERT_TRUE(op.Open(ctx.ctx()).ok());
  constexpr int64_t kRows = 100'000;
  const std::string payload(40, 'x');
  RowBatch batch(3);
  for (int64_t start = 0; start < kRows; start += 1000) {
    for (int s = 0; s < 2; ++s) {
      batch.Clear();
      for (int64_t i = start; i < start + 1000; ++i) {
        Row& r = batch.Append();
        r[0].SetInt(i % 1000);
        r[1].SetInt(i);
        r[2].SetString(payload);
      }
      op.PushInput(s, batch);
      ASSERT_TRUE(op.status().ok()) << op.status();
    }
  }
  // Left tl meets right tl, tl - 1000 and tl - 2000 (same key), where they exist.
  int64_t want = 0;
  for (int64_t tl = 0; tl < kRows; ++tl) want += std::min<int64_t>(3, tl / 1000 + 1);
  EXPECT_EQ(out.rows, want);
  EXPECT_EQ(out.wrong, 0);
  EXPECT_EQ(*op.BufferedRecords(0), kRows);
  EXPECT_EQ(*op.BufferedRecords(1), kRows);
  op.PushWatermark(kRows / 2);
  // Left kept while tl > 50000; right while tr + 2000 > 50000.
  EXPECT_EQ(*op.BufferedRecords(0), kRows - kRows / 2 - 1);
  EXPECT_EQ(*op.BufferedRecords(1), kRows - (kRows / 2 - 2000) - 1);
  op.PushWatermark(kRows + 2000 + IntervalJoinOperator::kCleanupGranularityMs);
  EXPECT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(*op.BufferedRecords(0), 0);
  EXPECT_EQ(*op.BufferedRecords(1), 0);
  EXPECT_EQ(counters.late_records, 0);
}

TEST(IntervalJoinOperatorTest, OpenFailsWithoutAStateDirectory) {
  Schema s({{"k", FieldType::kString}, {"ts", FieldType::kTimestamp}});
  OperatorCounters counters;
  proto::IntervalJoinSpec spec;
  spec.add_left_key("k");
  spec.add_right_key("k");
  spec.set_left_time_index(1);
  spec.set_right_time_index(1);
  IntervalJoinOperator op(counters, s, s, spec);
  EXPECT_FALSE(op.Open(OperatorContext()).ok());
}

// ---------------------------------------------------------------- broadcast

TEST(BroadcastJoinOperatorTest, UpdatesReplaceEarlierRowsAndMainRowsBeforeAnyGetNulls) {
  Schema main({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  Schema broadcast({{"ward", FieldType::kString}, {"key", FieldType::kString}, {"bed", FieldType::kInt}});
  proto::BroadcastJoinSpec spec;
  spec.add_main_key("k");
  spec.add_broadcast_key("key");
  TestingContext ctx;  // outlives the operator: RocksDB closes first
  OperatorCounters counters;
  BroadcastJoinOperator op(counters, main, broadcast, spec);
  Collect out(Schema({{"k", FieldType::kString}, {"v", FieldType::kInt}, {"ward", FieldType::kString},
                      {"bed", FieldType::kInt}}));
  op.set_output(&out);
  ASSERT_TRUE(op.Open(ctx.ctx()).ok());
  auto main_rows = [&](std::vector<std::pair<std::string, int64_t>> rows) {
    RowBatch b(2);
    for (auto& [k, v] : rows) {
      Row& r = b.Append();
      r[0].SetString(k);
      r[1].SetInt(v);
    }
    op.PushInput(0, b);
    ASSERT_TRUE(op.status().ok()) << op.status();
  };
  auto broadcast_rows = [&](std::vector<std::tuple<std::string, std::string, int64_t>> rows) {
    RowBatch b(3);
    for (auto& [ward, key, bed] : rows) {
      Row& r = b.Append();
      r[0].SetString(ward);
      r[1].SetString(key);
      if (bed < 0) {
        r[2].SetNull();
      } else {
        r[2].SetInt(bed);
      }
    }
    op.PushInput(1, b);
    ASSERT_TRUE(op.status().ok()) << op.status();
  };

  main_rows({{"a", 1}});  // nothing broadcast yet
  EXPECT_EQ(*op.StoredBroadcastRows(), 0);
  broadcast_rows({{"W1", "a", 1}, {"W2", "b", 2}});
  main_rows({{"a", 2}, {"b", 3}, {"c", 4}});
  broadcast_rows({{"W3", "a", -1}});  // replaces a's row; bed unknown now
  main_rows({{"a", 5}, {"b", 6}});
  EXPECT_EQ(out.rows, (std::vector<std::string>{"a,1,null,null", "a,2,W1,1", "b,3,W2,2", "c,4,null,null",
                                                "a,5,W3,null", "b,6,W2,2"}));
  EXPECT_EQ(*op.StoredBroadcastRows(), 2) << "one RocksDB entry per broadcast key";
  EXPECT_EQ(counters.records_in, 9);
  EXPECT_EQ(counters.records_out, 6);
}

}  // namespace
}  // namespace vstream
