#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "runtime/dead_letter.h"
#include "runtime/operators/aggregate_operator.h"
#include "runtime/operators/basic_operators.h"
#include "runtime/operators/document_source.h"
#include "runtime/operators/sources.h"
#include "state/state_clock.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

// Collects every row pushed to it, as text.
class CollectingOutput : public Output {
 public:
  explicit CollectingOutput(Schema schema) : schema_(std::move(schema)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::string line;
      for (size_t f = 0; f < schema_.size(); ++f) {
        if (f) line += ",";
        line += DatumToString(batch[i][f], schema_.field(f).type);
      }
      rows.push_back(line);
    }
  }
  void Finish() override { finished = true; }
  void PushWatermark(int64_t watermark) override { watermarks.push_back(watermark); }
  std::vector<std::string> rows;
  std::vector<int64_t> watermarks;
  bool finished = false;

 private:
  Schema schema_;
};

std::string TempPath(const std::string& name) {
  auto p = fs::temp_directory_path() / ("vstream-op-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(p);
  return p.string();
}

OperatorContext Context(int subtask, int parallelism, const std::string& name) {
  OperatorContext ctx;
  ctx.job_id = "job";
  ctx.vertex_name = name;
  ctx.subtask_index = subtask;
  ctx.parallelism = parallelism;
  ctx.data_dir = TempPath("data");
  ctx.state_dir = TempPath(name + "-" + std::to_string(subtask));
  return ctx;
}

TEST(AggregateOperatorTest, RunningCountSumMinMaxAvgPerKeyInRocksDb) {
  Schema in({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  std::vector<proto::AggregateCall> calls;
  auto add = [&](const char* name, const char* func, const char* arg) {
    proto::AggregateCall c;
    c.set_name(name);
    c.set_func(func);
    c.set_arg(arg);
    calls.push_back(c);
  };
  add("n", "count", "");
  add("c", "count", "v");
  add("s", "sum", "v");
  add("lo", "min", "v");
  add("hi", "max", "v");
  add("avg", "avg", "v");
  OperatorCounters counters;
  AggregateOperator op(counters, in, {0}, calls);
  Schema out({{"k", FieldType::kString}, {"n", FieldType::kInt}, {"c", FieldType::kInt}, {"s", FieldType::kInt},
              {"lo", FieldType::kInt}, {"hi", FieldType::kInt}, {"avg", FieldType::kDouble}});
  CollectingOutput sink(out);
  op.set_output(&sink);
  ASSERT_TRUE(op.Open(Context(0, 1, "agg")).ok());
  RowBatch batch(2);
  auto row = [&](const char* k, std::optional<int> v) {
    Row& r = batch.Append();
    r[0].SetString(k);
    if (v) r[1].SetInt(*v); else r[1].SetNull();
  };
  row("a", 5);
  row("b", 1);
  row("a", std::nullopt);
  row("a", -3);
  op.Push(batch);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(sink.rows, (std::vector<std::string>{"a,1,1,5,5,5,5", "b,1,1,1,1,1,1", "a,2,1,5,5,5,5",
                                                 "a,3,2,2,-3,5,1"}));
  EXPECT_EQ(counters.records_in, 4);
  EXPECT_EQ(counters.records_out, 4);
}

TEST(AggregateOperatorTest, StateTtlStartsAKeyOverAfterItsLastUpdate) {
  Schema in({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  proto::AggregateCall sum;
  sum.set_name("s");
  sum.set_func("sum");
  sum.set_arg("v");
  OperatorCounters counters;
  AggregateOperator op(counters, in, {0}, {sum});
  CollectingOutput sink(Schema({{"k", FieldType::kString}, {"s", FieldType::kInt}}));
  op.set_output(&sink);
  ManualStateClock clock(1'000'000);
  OperatorContext ctx = Context(0, 1, "agg-ttl");
  ctx.state_ttl_ms = 60'000;  // state_ttl: 1m
  ctx.clock = &clock;
  ASSERT_TRUE(op.Open(ctx).ok());
  RowBatch batch(2);
  auto push = [&](const char* k, int v) {
    batch.Clear();
    Row& r = batch.Append();
    r[0].SetString(k);
    r[1].SetInt(v);
    op.Push(batch);
    ASSERT_TRUE(op.status().ok()) << op.status();
  };
  push("a", 1);
  push("b", 10);
  clock.Advance(59'999);
  push("a", 2);  // within the TTL: a's sum goes on, and its TTL restarts
  clock.Advance(59'999);
  push("a", 4);  // 59.999 s after a's last update: still there
  push("b", 20);  // 119.998 s after b's last update: expired, starts over
  clock.Advance(60'000);
  push("a", 8);  // exactly the TTL: expired
  EXPECT_EQ(sink.rows, (std::vector<std::string>{"a,1", "b,10", "a,3", "a,7", "b,20", "a,8"}));
}

proto::AggregateCall Call(const char* name, const char* func, const char* arg) {
  proto::AggregateCall c;
  c.set_name(name);
  c.set_func(func);
  c.set_arg(arg);
  return c;
}

// Nexmark q4's shape: the highest price per auction as a changelog, and the
// average of those per category, which takes the retracted rows back out.
TEST(AggregateOperatorTest, ChangelogRetractsTheOldRowAndARetractingAggregateTakesItBackOut) {
  Schema bids({{"auction", FieldType::kInt}, {"category", FieldType::kInt}, {"price", FieldType::kInt}});
  Schema finals({{"auction", FieldType::kInt}, {"category", FieldType::kInt}, {"final", FieldType::kInt},
                 {"retract", FieldType::kBool}});
  OperatorCounters inner_counters, outer_counters;
  AggregateOperator inner(inner_counters, bids, {0, 1}, {Call("final", "max", "price")}, /*changelog=*/true);
  AggregateOperator outer(outer_counters, finals, {1}, {Call("avg_final", "avg", "final"), Call("n", "count", "")},
                          /*changelog=*/true, /*retract_field=*/3);
  Schema out({{"category", FieldType::kInt}, {"avg_final", FieldType::kDouble}, {"n", FieldType::kInt},
              {"retract", FieldType::kBool}});
  CollectingOutput inner_rows(finals);
  CollectingOutput sink(out);
  // inner -> a tee of its rows and the outer aggregate
  class Tee : public Output {
   public:
    Tee(Output* a, Output* b) : a_(a), b_(b) {}
    void Push(RowBatch& batch) override {
      a_->Push(batch);
      b_->Push(batch);
    }
    void Finish() override {}
    void PushWatermark(int64_t) override {}

   private:
    Output* a_;
    Output* b_;
  } tee(&inner_rows, &outer);
  inner.set_output(&tee);
  outer.set_output(&sink);
  ASSERT_TRUE(inner.Open(Context(0, 1, "q4-inner")).ok());
  ASSERT_TRUE(outer.Open(Context(0, 1, "q4-outer")).ok());
  RowBatch batch(3);
  auto bid = [&](int auction, int category, int price) {
    batch.Clear();
    Row& r = batch.Append();
    r[0].SetInt(auction);
    r[1].SetInt(category);
    r[2].SetInt(price);
    inner.Push(batch);
    ASSERT_TRUE(inner.status().ok()) << inner.status();
    ASSERT_TRUE(outer.status().ok()) << outer.status();
  };
  bid(1, 10, 5);
  bid(1, 10, 3);  // the max stays 5: nothing
  bid(2, 10, 7);
  bid(1, 10, 9);
  EXPECT_EQ(inner_rows.rows, (std::vector<std::string>{"1,10,5,false", "2,10,7,false", "1,10,5,true", "1,10,9,false"}));
  EXPECT_EQ(sink.rows, (std::vector<std::string>{"10,5,1,false",                   // auction 1 at 5
                                                 "10,5,1,true", "10,6,2,false",    // auction 2 at 7
                                                 "10,6,2,true", "10,7,1,false",    // auction 1's 5 out
                                                 "10,7,1,true",
                                                 "10,8,2,false"}));               // auction 1 at 9
  EXPECT_EQ(inner_counters.records_in, 4);
  EXPECT_EQ(outer_counters.records_in, 4);
  EXPECT_EQ(outer_counters.records_out, 7);
}

TEST(AggregateOperatorTest, ARetractingAggregateDeletesAKeyWhoseRowsWereAllTakenBack) {
  Schema in({{"k", FieldType::kString}, {"v", FieldType::kInt}, {"retract", FieldType::kBool}});
  OperatorCounters counters;
  AggregateOperator op(counters, in, {0}, {Call("s", "sum", "v"), Call("n", "count", "")}, /*changelog=*/false,
                       /*retract_field=*/2);
  CollectingOutput sink(Schema({{"k", FieldType::kString}, {"s", FieldType::kInt}, {"n", FieldType::kInt}}));
  op.set_output(&sink);
  ASSERT_TRUE(op.Open(Context(0, 1, "agg-retract")).ok());
  RowBatch batch(3);
  auto push = [&](const char* k, int v, bool retract) {
    batch.Clear();
    Row& r = batch.Append();
    r[0].SetString(k);
    r[1].SetInt(v);
    r[2].SetBool(retract);
    op.Push(batch);
    ASSERT_TRUE(op.status().ok()) << op.status();
  };
  push("a", 4, true);   // a retraction of nothing: ignored
  push("a", 4, false);
  push("a", 6, false);
  push("a", 4, true);
  push("a", 6, true);   // all taken back: the aggregates of no rows, and the key is gone
  push("a", 6, true);   // so this one is ignored
  push("a", 1, false);  // and a starts over
  EXPECT_EQ(sink.rows, (std::vector<std::string>{"a,4,1", "a,10,2", "a,6,1", "a,null,0", "a,1,1"}));
  Schema counts({{"k", FieldType::kString}, {"v", FieldType::kInt}, {"retract", FieldType::kBool}});
  AggregateOperator bad(counters, counts, {0}, {Call("hi", "max", "v")}, false, 2);
  const absl::Status opened = bad.Open(Context(0, 1, "agg-retract-max"));
  EXPECT_NE(opened.message().find("max cannot take a retracted row back out"), std::string_view::npos) << opened;
}

// Subtask `subtask` of `parallelism`'s rows, in order; `reads`: the
// projection pushed into it (empty: every field).
std::vector<std::string> GenerateRows(int subtask, int parallelism, int64_t count, const std::vector<int>& reads = {}) {
  Schema s({{"id", FieldType::kInt}, {"p", FieldType::kString}, {"x", FieldType::kDouble}});
  proto::SourceSpec spec;
  spec.set_connector("generator");
  spec.set_count(count);
  spec.set_seed(9);
  for (int f : reads) spec.add_reads(f);
  OperatorCounters counters;
  GeneratorSource src(counters, s, spec);
  CollectingOutput out(s);
  src.set_output(&out);
  EXPECT_TRUE(src.Open(Context(subtask, parallelism, "gen")).ok());
  while (src.Produce() != SourceStatus::kEnd) {
  }
  return std::move(out.rows);
}

std::multiset<std::string> Generate(int parallelism, int64_t count) {
  std::multiset<std::string> all;
  for (int i = 0; i < parallelism; ++i) {
    const std::vector<std::string> rows = GenerateRows(i, parallelism, count);
    all.insert(rows.begin(), rows.end());
  }
  return all;
}

TEST(RowBatchTest, IsFullAtAsManyRowsAsFitInItsTargetBytes) {
  // Narrow rows: the most a batch takes; a Nexmark event's 27 fields: fewer.
  EXPECT_EQ(RowBatch::CapacityFor(2), RowBatch::kDefaultCapacity);
  EXPECT_EQ(RowBatch::CapacityFor(27), RowBatch::kTargetBytes / (27 * sizeof(Datum)));
  EXPECT_LT(RowBatch::CapacityFor(27), 256u);
  EXPECT_EQ(RowBatch::CapacityFor(100'000), RowBatch::kMinCapacity);
  RowBatch batch(2);
  while (!batch.full()) batch.Append();
  EXPECT_EQ(batch.size(), RowBatch::kDefaultCapacity);
  batch.Clear();
  batch.set_width(27);
  while (!batch.full()) ASSERT_EQ(batch.Append().size(), 27u);
  EXPECT_EQ(batch.size(), batch.capacity());
  EXPECT_EQ(batch.capacity(), RowBatch::CapacityFor(27));
}

TEST(RateLimiterTest, GrantsInStepsAndSaysHowLongTheFirstAndLastRecordWaited) {
  // 100,000 records/s: record i is due at i * 10 us; granted in steps of 100
  // (1 ms).
  int64_t now_ns = 1'000'000'000;
  RateLimiter limiter(100'000, [&now_ns] { return now_ns; });
  EXPECT_EQ(limiter.Acquire(1024), 0u) << "record 0 is due at once, but not a whole step";
  now_ns += 985'000;  // records 0..98 due
  EXPECT_EQ(limiter.Acquire(1024), 0u);
  now_ns += 10'000;  // 0.995 ms: records 0..99, a step
  EXPECT_EQ(limiter.Acquire(1024), 100u);
  EXPECT_NEAR(limiter.granted_lag_ns(), 995'000, 1'000) << "record 0 was due at the start";
  EXPECT_NEAR(limiter.granted_last_lag_ns(), 5'000, 1'000) << "record 99 was due at 0.99 ms";
  EXPECT_EQ(limiter.Acquire(1024), 0u);
  // Fewer than a step: not before the deadline; once it has passed, all due.
  now_ns += 500'000;  // 1.495 ms: records 100..149 due
  EXPECT_EQ(limiter.Acquire(1024, now_ns + 1'000'000), 0u);
  EXPECT_EQ(limiter.Acquire(1024, now_ns), 50u);
  EXPECT_NEAR(limiter.granted_lag_ns(), 495'000, 1'000) << "record 100 was due at 1 ms";
  EXPECT_NEAR(limiter.granted_last_lag_ns(), 5'000, 1'000);
  EXPECT_EQ(limiter.Acquire(1024, now_ns), 0u) << "past the deadline, but none due";
  now_ns += 20'000'000;  // 21.495 ms: records 150..2149 due
  EXPECT_EQ(limiter.Acquire(1024), 1024u) << "no more than asked for";
  EXPECT_NEAR(limiter.granted_lag_ns(), 19'995'000, 1'000) << "record 150 was due at 1.5 ms";
  EXPECT_NEAR(limiter.granted_last_lag_ns(), 9'765'000, 1'000) << "record 1173 was due at 11.73 ms";
  EXPECT_EQ(limiter.Acquire(1024), 976u) << "the rest of what is due";
  EXPECT_EQ(limiter.Acquire(1024), 0u);
  // A caller that wants fewer than a step gets them as soon as they are due.
  now_ns += 10'000;  // 21.505 ms: record 2150
  EXPECT_EQ(limiter.Acquire(1), 1u);
  EXPECT_EQ(limiter.Acquire(1), 0u);
  // A fast source's step is kMaxStep records: 1,000,000/s waits 0.51 ms, not 1.
  now_ns = 0;
  RateLimiter fast(1'000'000, [&now_ns] { return now_ns; });
  EXPECT_EQ(fast.Acquire(1024), 0u);
  now_ns = RateLimiter::kMaxStep * 1'000 - 500;
  EXPECT_EQ(fast.Acquire(1024), static_cast<size_t>(RateLimiter::kMaxStep));
  // Unpaced: whatever is asked for.
  RateLimiter unlimited(0);
  EXPECT_EQ(unlimited.Acquire(7), 7u);
}

TEST(RateLimiterTest, SleepsUntilTheDeadlineAndThenGrantsWhatIsDue) {
  // Each reading of the clock is 0.6 ms after the last, as if the limiter's
  // sleep took that long: the reading after the sleep is past the deadline.
  int64_t now_ns = 0;
  int reads = 0;
  RateLimiter limiter(100'000, [&] {
    ++reads;
    return now_ns += 600'000;
  });
  // Called at 0.6 ms (the start; record 0 due): it sleeps until the
  // deadline, 0.3 ms later (not until the step, 1 ms later), reads 1.2 ms,
  // and grants records 0..60 (fewer than a step: for the deadline), due from
  // when it was called to 0.6 ms after.
  EXPECT_EQ(limiter.Acquire(1024, 900'000), 61u);
  EXPECT_EQ(reads, 2);
  EXPECT_NEAR(limiter.granted_lag_ns(), 0, 1'000);
  EXPECT_NEAR(limiter.granted_last_lag_ns(), -600'000, 1'000);
  // Without a deadline, the same sleep grants a step once due. Called at 1.8
  // ms (records 61..120 due, not a step), reads 2.4 ms: records 61..180.
  EXPECT_EQ(limiter.Acquire(1024), 120u);
  EXPECT_EQ(reads, 4);
  EXPECT_NEAR(limiter.granted_lag_ns(), 590'000, 1'000) << "record 61 was due at 1.21 ms (0.61 ms after the start)";
  EXPECT_NEAR(limiter.granted_last_lag_ns(), -600'000, 1'000) << "record 180 was due at 2.4 ms";
  // Past the deadline with none due: nothing, at once (the caller flushes).
  RateLimiter slow(100, [&] {
    ++reads;
    return now_ns += 600'000;
  });
  EXPECT_EQ(slow.Acquire(1024, 1), 1u) << "record 0, due at once, past the deadline";
  reads = 0;
  EXPECT_EQ(slow.Acquire(1024, 1), 0u) << "record 1 is due 10 ms later";
  EXPECT_EQ(reads, 1) << "no sleep, no second look";
}

// A paced source whose Produce makes one row with the lags the test sets.
class LaggedSource : public SourceOperator {
 public:
  using SourceOperator::SourceOperator;
  SourceStatus Produce() override {
    RowBatch batch(1);
    if (rows > 0) {
      DateLatencyMarker(first_lag_ns, last_lag_ns);
      for (int i = 0; i < rows; ++i) batch.Append()[0].SetInt(i);
    }
    EmitBatch(batch);
    return SourceStatus::kMoreAvailable;
  }
  int rows = 1;
  int64_t first_lag_ns = 0;
  int64_t last_lag_ns = 0;
};

class MarkerOutput : public Output {
 public:
  void Push(RowBatch&) override {}
  void Finish() override {}
  void PushWatermark(int64_t) override {}
  void PushLatencyMarker(int64_t created_us) override { markers.push_back(created_us); }
  std::vector<int64_t> markers;
};

TEST(SourceOperatorTest, PacedMarkersSampleRecordsByTheirDueTime) {
  // A paced source granted 5 ms of records at each flush, 10,000 times: the
  // records of grant k were due from 5k to 5k + 5 ms (after a 1 s start),
  // and it is called 0.2 ms after the last of them. A marker every 10 ms on
  // average goes with the grant that holds its time, dated to it: markers
  // dated to when the source woke, or to a grant's first record, would all
  // sit at one end of their grants.
  OperatorCounters counters;
  LaggedSource src(counters);
  MarkerOutput out;
  src.set_output(&out);
  src.set_latency_marker_interval(10'000);
  constexpr int kGrants = 10'000;
  constexpr int64_t kStart = 1'000'000'000;
  double position_sum = 0;
  size_t before = 0;
  for (int k = 0; k < kGrants; ++k) {
    const int64_t first_due = kStart + 5'000 * k;
    const int64_t last_due = first_due + 4'999;
    const int64_t now = last_due + 200;
    src.first_lag_ns = (now - first_due) * 1000;
    src.last_lag_ns = (now - last_due) * 1000;
    src.rows = k % 100 == 99 ? 0 : 1;  // a call that made nothing now and then
    src.ArmLatencyMarker(now);
    src.Produce();
    for (size_t i = before; i < out.markers.size(); ++i) {
      ASSERT_LE(out.markers[i], last_due) << "grant " << k;
      if (k > 0 && (k - 1) % 100 != 99) {
        ASSERT_GE(out.markers[i], first_due) << "grant " << k;
      }
      position_sum += static_cast<double>(std::max(out.markers[i], first_due) - first_due) / 5'000.0;
    }
    if (src.rows == 0) {
      EXPECT_EQ(out.markers.size(), before) << "no batch, no marker";
    }
    before = out.markers.size();
  }
  // 50 s of due time: about 5,000 markers, spread evenly over the grants.
  EXPECT_NEAR(static_cast<double>(out.markers.size()), 5'000.0, 250.0);
  EXPECT_NEAR(position_sum / static_cast<double>(out.markers.size()), 0.5, 0.05);
  EXPECT_TRUE(std::is_sorted(out.markers.begin(), out.markers.end()));

  // A source that made nothing for 2 s (its markers' times passed unsent)
  // sends one marker with its next batch, dated to the batch's first record.
  const size_t sent = out.markers.size();
  const int64_t stalled = kStart + 5'000 * kGrants + 2'000'000;
  src.rows = 0;
  src.ArmLatencyMarker(stalled - 1'000'000);
  src.Produce();
  src.rows = 1;
  src.first_lag_ns = 1'000'000'000;  // records due from 1 s before
  src.last_lag_ns = 0;
  src.ArmLatencyMarker(stalled);
  src.Produce();
  ASSERT_EQ(out.markers.size(), sent + 1);
  EXPECT_EQ(out.markers.back(), stalled - 1'000'000);

  // Unpaced (no DateLatencyMarker): stamped when the call is made, once due.
  LaggedSource unpaced(counters);
  MarkerOutput unpaced_out;
  unpaced.set_output(&unpaced_out);
  unpaced.set_latency_marker_interval(10'000);
  unpaced.rows = 0;
  for (int64_t now = 1'000'000; now < 2'000'000; now += 1'000) {
    unpaced.ArmLatencyMarker(now);
    unpaced.Produce();
    unpaced.SendLatencyMarker();  // as the task does after a call that made rows
  }

  ASSERT_GE(unpaced_out.markers.size(), 60u);
  ASSERT_LE(unpaced_out.markers.size(), 200u);
  EXPECT_EQ(unpaced_out.markers[0], 1'000'000);
  for (size_t i = 1; i < unpaced_out.markers.size(); ++i) {
    EXPECT_GE(unpaced_out.markers[i] - unpaced_out.markers[i - 1], 5'000);
    EXPECT_LE(unpaced_out.markers[i] - unpaced_out.markers[i - 1], 16'000);
  }
  // After a stall of a second, one marker, not one for each interval missed.
  const size_t before_stall = unpaced_out.markers.size();
  unpaced.ArmLatencyMarker(3'000'000);
  unpaced.SendLatencyMarker();
  unpaced.ArmLatencyMarker(3'001'000);
  unpaced.SendLatencyMarker();
  EXPECT_EQ(unpaced_out.markers.size(), before_stall + 1);
}

TEST(GeneratorSourceTest, OutputDoesNotDependOnParallelism) {
  auto one = Generate(1, 5000);
  auto three = Generate(3, 5000);
  EXPECT_EQ(one.size(), 5000u);
  EXPECT_EQ(one, three);
  EXPECT_NE(one, Generate(1, 4999));
}

// Projection pushdown (SourceSpec.reads): the fields no vertex reads are
// null; the others are what they are without it.
TEST(GeneratorSourceTest, ProjectionLeavesUnreadFieldsNullAndReadOnesAsTheyAre) {
  const std::vector<std::string> whole = GenerateRows(0, 1, 1000);
  const std::vector<std::string> projected = GenerateRows(0, 1, 1000, {0, 2});
  ASSERT_EQ(projected.size(), whole.size());
  for (size_t n = 0; n < whole.size(); ++n) {
    const std::vector<std::string> all = absl::StrSplit(whole[n], ',');
    ASSERT_EQ(all.size(), 3u);
    EXPECT_NE(all[1], "null");
    ASSERT_EQ(projected[n], absl::StrCat(all[0], ",null,", all[2])) << n;
  }

  Schema s({{"id", FieldType::kInt}});
  proto::SourceSpec spec;
  spec.set_connector("generator");
  spec.add_reads(1);
  OperatorCounters counters;
  GeneratorSource src(counters, s, spec);
  const absl::Status opened = src.Open(Context(0, 1, "gen"));
  EXPECT_TRUE(absl::IsInvalidArgument(opened)) << opened;
  EXPECT_NE(opened.message().find("reads field 1, but its records have fields 0..0"), std::string_view::npos)
      << opened;
}

TEST(FileSourceTest, SubtasksReadEveryLineExactlyOnceAndDeadLetterTheBadOnes) {
  const std::string path = TempPath("in.csv");
  std::ofstream f(path);
  f << "id,name\r\n";
  int bad = 0;
  for (int i = 0; i < 10000; ++i) {
    if (i % 997 == 3) {
      f << "oops" << i << ",x\r\n";
      ++bad;
    } else {
      f << i << ",name" << i << "\r\n";
    }
  }
  f.close();
  Schema s({{"id", FieldType::kInt}, {"name", FieldType::kString}});
  proto::SourceSpec spec;
  spec.set_connector("file");
  spec.set_path(path);
  spec.set_format("csv");
  std::multiset<std::string> seen;
  std::vector<std::string> dead;
  for (int i = 0; i < 3; ++i) {
    OperatorCounters counters;
    FileSource src(counters, s, spec);
    CollectingOutput out(s);
    CollectingOutput dl(DeadLetterSchema());
    src.set_output(&out);
    src.set_dead_letter_output(&dl);
    ASSERT_TRUE(src.Open(Context(i, 3, "file")).ok());
    while (src.Produce() != SourceStatus::kEnd) {
    }
    seen.insert(out.rows.begin(), out.rows.end());
    dead.insert(dead.end(), dl.rows.begin(), dl.rows.end());
    EXPECT_EQ(counters.dead_letters, static_cast<int64_t>(dl.rows.size()));
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(10000 - bad));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size()) << "no line twice";
  ASSERT_EQ(dead.size(), static_cast<size_t>(bad));
  // source, location (path:line), reason, raw
  EXPECT_EQ(dead[0], "file," + path + ":5,field 'id': expected int, got 'oops3',oops3,x");
}

// A source stopped after `batches` batches and restored from its snapshot
// position emits, with what came before, exactly what one run emits.
template <typename Source>
void ExpectResumesExactly(const Schema& s, const proto::SourceSpec& spec, int subtask, int parallelism,
                          int batches, const StateClock* clock = nullptr) {
  auto context = [&] {
    OperatorContext ctx = Context(subtask, parallelism, "src");
    ctx.clock = clock;
    return ctx;
  };
  std::vector<std::string> whole, resumed;
  {
    OperatorCounters counters;
    Source src(counters, s, spec);
    CollectingOutput out(s);
    src.set_output(&out);
    ASSERT_TRUE(src.Open(context()).ok());
    while (src.Produce() != SourceStatus::kEnd) {
    }
    whole = out.rows;
  }
  std::string position;
  {
    OperatorCounters counters;
    Source src(counters, s, spec);
    CollectingOutput out(s);
    src.set_output(&out);
    ASSERT_TRUE(src.Open(context()).ok());
    for (int b = 0; b < batches; ++b) ASSERT_NE(src.Produce(), SourceStatus::kEnd);
    position = src.SnapshotOperatorState(1);
    resumed = out.rows;  // what reached the checkpoint
  }
  ASSERT_FALSE(position.empty());
  ASSERT_LT(resumed.size(), whole.size()) << "the test must stop the source midway";
  OperatorCounters counters;
  Source src(counters, s, spec);
  CollectingOutput out(s);
  src.set_output(&out);
  ASSERT_TRUE(src.Open(context()).ok());
  ASSERT_TRUE(src.RestoreOperatorState(position).ok()) << position;
  while (src.Produce() != SourceStatus::kEnd) {
  }
  resumed.insert(resumed.end(), out.rows.begin(), out.rows.end());
  EXPECT_EQ(resumed, whole) << "restored from '" << position << "'";
  EXPECT_FALSE(src.RestoreOperatorState("file offset=x").ok());
}

TEST(SourceRestoreTest, GeneratorAndFileResumeWhereTheSnapshotWas) {
  Schema g({{"id", FieldType::kInt}, {"p", FieldType::kString}});
  proto::SourceSpec gen;
  gen.set_connector("generator");
  gen.set_count(20000);
  gen.set_seed(4);
  ExpectResumesExactly<GeneratorSource>(g, gen, 1, 2, 2);

  const std::string path = TempPath("resume.csv");
  {
    std::ofstream f(path);
    f << "id,name\n";
    for (int i = 0; i < 20000; ++i) f << i << ",name" << i << "\n";
  }
  Schema s({{"id", FieldType::kInt}, {"name", FieldType::kString}});
  proto::SourceSpec file;
  file.set_connector("file");
  file.set_path(path);
  file.set_format("csv");
  ExpectResumesExactly<FileSource>(s, file, 0, 2, 2);
  ExpectResumesExactly<FileSource>(s, file, 1, 2, 1);
}

// HL7 messages in files: `messages` ORU^R01 of 3 OBX each; every 97th has
// a heart rate that is no number. `batch` wraps them in BHS ... BTS.
std::string Hl7Messages(int first, int messages, bool batch) {
  std::string out = batch ? "BHS|^~\\&|GW\r" : "";
  for (int i = first; i < first + messages; ++i) {
    const std::string id = std::to_string(i);
    out += "MSH|^~\\&|MON|WARD7|ENGINE|HOSP|20240301150004+0000||ORU^R01|M" + id + "|P|2.6\r";
    out += "PID|1||P" + std::to_string(i % 50) + "^^^HOSP^MR\r";
    out += "OBR|1|||VITALS|||20240301150000+0000\r";
    out += "OBX|1|NM|8867-4^HR^LN||" + (i % 97 == 0 ? std::string("7x") : std::to_string(60 + i % 40)) +
           "|/min|||||F\r";
    out += "OBX|2|NM|59408-5^SpO2^LN||" + std::to_string(90 + i % 10) + "|%|||||F\r";
    out += "OBX|3|NM|9279-1^RR^LN||" + std::to_string(12 + i % 10) + "|/min|||||F\r";
  }
  if (batch) out += "BTS|" + std::to_string(messages) + "\r";
  return out;
}

// A file source of HL7 v2 messages at `path` (a file or a directory).
proto::SourceSpec Hl7FileSpec(const std::string& path) {
  proto::SourceSpec spec;
  spec.set_connector("file");
  spec.set_path(path);
  spec.set_format("hl7v2");
  return spec;
}

TEST(SourceRestoreTest, DocumentFileSourceResumesWhereTheSnapshotWas) {
  const std::string dir = TempPath("hl7-in");
  fs::create_directories(dir);
  std::ofstream(dir + "/a.hl7") << Hl7Messages(0, 1000, false);
  std::ofstream(dir + "/b.hl7") << Hl7Messages(1000, 1000, true);
  std::ofstream(dir + "/.hidden") << "not HL7";
  proto::SourceSpec spec = Hl7FileSpec(dir);
  const ManualStateClock clock(1709300000000);
  const Schema s = Hl7ObservationSchema();
  static_assert(DocumentFileSource::kMessagesPerBatch == 256);
  ExpectResumesExactly<DocumentFileSource>(s, spec, 0, 1, 2, &clock);  // in a.hl7
  ExpectResumesExactly<DocumentFileSource>(s, spec, 0, 1, 5, &clock);  // in b.hl7's batch
  ExpectResumesExactly<DocumentFileSource>(s, spec, 1, 2, 1, &clock);  // b.hl7 only
}

TEST(DocumentFileSourceTest, ARestoreIntoAChangedDirectoryFailsInsteadOfSkipping) {
  const std::string dir = TempPath("hl7-changed");
  fs::create_directories(dir);
  std::ofstream(dir + "/b.hl7") << Hl7Messages(0, 600, false);
  proto::SourceSpec spec = Hl7FileSpec(dir);
  const Schema s = Hl7ObservationSchema();
  std::string position;
  {
    OperatorCounters counters;
    DocumentFileSource src(counters, s, spec);
    CollectingOutput out(s);
    src.set_output(&out);
    ASSERT_TRUE(src.Open(Context(0, 1, "src")).ok());
    ASSERT_NE(src.Produce(), SourceStatus::kEnd);
    position = src.SnapshotOperatorState(1);
  }
  EXPECT_NE(position.find(" files=1 file="), std::string::npos) << position;
  std::ofstream(dir + "/a.hl7") << Hl7Messages(1000, 10, false);  // sorts before b.hl7
  OperatorCounters counters;
  DocumentFileSource src(counters, s, spec);
  CollectingOutput out(s);
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 1, "src")).ok());
  const absl::Status restored = src.RestoreOperatorState(position);
  EXPECT_TRUE(absl::IsDataLoss(restored)) << restored;
  EXPECT_NE(restored.message().find("must not change"), std::string::npos) << restored;
}

TEST(DocumentFileSourceTest, EveryMessageBecomesRowsOrADeadLetterWithItsLine) {
  const std::string dir = TempPath("hl7-dead");
  fs::create_directories(dir);
  std::ofstream(dir + "/in.hl7") << "EVN|A04\rPID|1\r" << Hl7Messages(0, 200, false)
                                  << "MSH|^~\\&|A|B|C|D|2024||ACK^R01|K1|P|2.5\rMSA|AA|M1\r";
  proto::SourceSpec spec = Hl7FileSpec(dir + "/in.hl7");
  OperatorCounters counters;
  const Schema s = Hl7ObservationSchema();
  DocumentFileSource src(counters, s, spec);
  CollectingOutput out(s);
  CollectingOutput dead(DeadLetterSchema());
  src.set_output(&out);
  src.set_dead_letter_output(&dead);
  const ManualStateClock clock(1709300000000);
  OperatorContext ctx = Context(0, 1, "hl7");
  ctx.clock = &clock;
  ASSERT_TRUE(src.Open(ctx).ok());
  while (src.Produce() != SourceStatus::kEnd) {
  }
  // Messages 0, 97 and 194 have a bad heart rate: 197 x 3 rows.
  EXPECT_EQ(out.rows.size(), 591u);
  ASSERT_EQ(dead.rows.size(), 4u);
  EXPECT_EQ(counters.dead_letters, 4);
  EXPECT_EQ(dead.rows[0].rfind("hl7," + dir + "/in.hl7:1,line 1: segment 'EVN' outside any message", 0), 0u)
      << dead.rows[0];
  EXPECT_EQ(dead.rows[1].rfind("hl7," + dir + "/in.hl7:3,line 6: OBX-5: '7x' is not a number (OBX-2 is NM),MSH|", 0),
            0u)
      << dead.rows[1];
  EXPECT_NE(dead.rows[2].find("/in.hl7:585,line 588: OBX-5: '7x'"), std::string::npos) << dead.rows[2];
  EXPECT_NE(dead.rows[3].find("/in.hl7:1167,line 1170: OBX-5: '7x'"), std::string::npos) << dead.rows[3];
  // The first row, whole: message 1's heart rate.
  EXPECT_EQ(out.rows[0], "M1,1,null,ORU^R01,WARD7,P1,HOSP,8867-4,LN,HR,NM,61,61,/min,F,2024-03-01T15:00:00.000Z,null,"
                         "2024-03-01T13:33:20.000Z,false");
  EXPECT_EQ(out.rows[2].substr(out.rows[2].rfind(',')), ",true") << "the message's last OBX";
}

TEST(DocumentFileSourceTest, PacedSourceMakesItsWholeGrantInBatches) {
  // max_rate 1,000 messages/s on the context's clock: 200 ms later, 200
  // messages are due and granted. A batch holds about 61 of these 3-OBX
  // messages; the rest of the grant goes in more batches of the same call,
  // not nowhere (the limiter counts it as made, so the source would run
  // below its max_rate).
  const std::string dir = TempPath("hl7-paced");
  fs::create_directories(dir);
  std::ofstream(dir + "/in.hl7") << Hl7Messages(0, 1000, false);
  proto::SourceSpec spec = Hl7FileSpec(dir + "/in.hl7");
  spec.set_max_rate(1000);
  OperatorCounters counters;
  const Schema s = Hl7ObservationSchema();
  ASSERT_LT(RowBatch::CapacityFor(s.size()), 200u * 3) << "the test needs a grant larger than a batch";
  DocumentFileSource src(counters, s, spec);
  CollectingOutput out(s);
  CollectingOutput dead(DeadLetterSchema());
  src.set_output(&out);
  src.set_dead_letter_output(&dead);
  ManualStateClock clock(1709300000000);
  OperatorContext ctx = Context(0, 1, "hl7");
  ctx.clock = &clock;
  ASSERT_TRUE(src.Open(ctx).ok());
  ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);  // message 0, due at once
  clock.Advance(200);
  ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);  // messages 1-200
  // Messages 0, 97 and 194 have a bad heart rate: 198 x 3 rows.
  EXPECT_EQ(out.rows.size(), 594u);
  EXPECT_EQ(dead.rows.size(), 3u);
  ASSERT_EQ(src.Produce(), SourceStatus::kMoreAvailable);  // none due yet
  EXPECT_EQ(out.rows.size(), 594u) << "no message before it is due";
}

TEST(SourceRestoreTest, GeneratorRejectsAnotherSubtasksPosition) {
  Schema g({{"id", FieldType::kInt}});
  proto::SourceSpec gen;
  gen.set_connector("generator");
  gen.set_count(100);
  OperatorCounters counters;
  GeneratorSource src(counters, g, gen);
  CollectingOutput out(g);
  src.set_output(&out);
  ASSERT_TRUE(src.Open(Context(0, 2, "gen")).ok());
  EXPECT_TRUE(absl::IsDataLoss(src.RestoreOperatorState("generator next=7")));  // subtask 1's
  EXPECT_TRUE(src.RestoreOperatorState("generator next=8").ok());
  EXPECT_TRUE(absl::IsDataLoss(src.RestoreOperatorState("generator next=-2")));
}

TEST(FilterOperatorTest, KeepsMatchingRowsInOrder) {
  Schema s({{"v", FieldType::kInt}});
  OperatorCounters counters;
  FilterOperator op(counters, *Expression::Compile("v % 3 = 0", s));
  CollectingOutput out(s);
  op.set_output(&out);
  RowBatch batch(1);
  for (int i = 0; i < 10; ++i) batch.Append()[0].SetInt(i);
  op.Push(batch);
  EXPECT_EQ(out.rows, (std::vector<std::string>{"0", "3", "6", "9"}));
  EXPECT_EQ(counters.records_in, 10);
  EXPECT_EQ(counters.records_out, 4);
}

// Keeps the first row of each batch, truncating the batch in place: an
// operator that does not share its input.
class FirstRowOnly : public StreamOperator {
 public:
  using StreamOperator::StreamOperator;
  void Push(RowBatch& batch) override {
    batch.Truncate(1);
    Emit(batch);
  }
  void Finish() override { output_->Finish(); }
};

// Operators chained to one producer, and a network edge: each sees the
// whole batch, although two of them cut it down in place (each but the last
// of those gets a copy) and a filter shares it (it then copies what it
// keeps); watermarks and the end reach everyone.
TEST(ChainFanOutOutputTest, EveryConsumerGetsTheWholeBatch) {
  Schema s({{"v", FieldType::kInt}});
  OperatorCounters c1, c2, c3;
  FilterOperator thirds(c1, *Expression::Compile("v % 3 = 0", s));
  FirstRowOnly first(c2), also_first(c3);
  CollectingOutput thirds_out(s), first_out(s), also_first_out(s), network(s);
  thirds.set_output(&thirds_out);
  first.set_output(&first_out);
  also_first.set_output(&also_first_out);
  ChainFanOutOutput fan;
  fan.AddOperator(&first);
  fan.AddOperator(&also_first);
  fan.AddOperator(&thirds);
  fan.AddReader(&network);
  for (int round = 0; round < 2; ++round) {  // the copy is reused
    RowBatch batch(1);
    for (int i = 0; i < 7; ++i) batch.Append()[0].SetInt(round * 10 + i);
    fan.Push(batch);
  }
  fan.PushWatermark(5);
  fan.Finish();
  EXPECT_EQ(network.rows.size(), 14u);
  EXPECT_EQ(thirds_out.rows, (std::vector<std::string>{"0", "3", "6", "12", "15"}));
  EXPECT_EQ(first_out.rows, (std::vector<std::string>{"0", "10"}));
  EXPECT_EQ(also_first_out.rows, (std::vector<std::string>{"0", "10"}));
  for (const CollectingOutput* o : {&thirds_out, &first_out, &also_first_out, &network}) {
    EXPECT_EQ(o->watermarks, (std::vector<int64_t>{5}));
    EXPECT_TRUE(o->finished);
  }
}

// A union chained behind two branches of its task merges them as its
// task's gate would merge two channels: every record, the least watermark
// of the inputs not idle (a branch may hold its watermark back), idle once
// both are, every latency marker, and one Finish after both inputs'.
TEST(UnionOperatorTest, ChainedInputsMergeLikeAGate) {
  struct Out : Output {
    void Push(RowBatch& batch) override { rows += static_cast<int>(batch.size()); }
    void Finish() override { ++finishes; }
    void PushWatermark(int64_t watermark) override { watermarks.push_back(watermark); }
    void PushIdle() override { ++idles; }
    void PushLatencyMarker(int64_t) override { ++markers; }
    int rows = 0, finishes = 0, idles = 0, markers = 0;
    std::vector<int64_t> watermarks;
  } out;
  OperatorCounters counters;
  UnionOperator both(counters);
  Output* a = both.AddChainedInput();
  Output* b = both.AddChainedInput();
  both.set_output(&out);
  auto push = [](Output* in, int n) {
    RowBatch batch(1);
    for (int i = 0; i < n; ++i) batch.Append()[0].SetInt(i);
    in->Push(batch);
  };
  push(a, 2);
  push(b, 3);
  EXPECT_EQ(out.rows, 5);
  EXPECT_EQ(counters.records_in.load(), 5);
  EXPECT_EQ(counters.records_out.load(), 5);

  a->PushWatermark(100);
  EXPECT_TRUE(out.watermarks.empty()) << "b holds it back";
  b->PushWatermark(50);
  b->PushWatermark(120);
  EXPECT_EQ(out.watermarks, (std::vector<int64_t>{50, 100}));
  a->PushLatencyMarker(7);
  b->PushLatencyMarker(7);
  EXPECT_EQ(out.markers, 2);

  a->PushIdle();  // left out: b's 120 is the least
  EXPECT_EQ(out.watermarks.back(), 120);
  EXPECT_EQ(out.idles, 0);
  b->PushIdle();
  EXPECT_EQ(out.idles, 1);
  push(a, 1);  // active again
  a->PushWatermark(130);
  EXPECT_EQ(out.watermarks.back(), 130);

  a->Finish();
  EXPECT_EQ(out.finishes, 0);
  b->Finish();
  EXPECT_EQ(out.finishes, 1);
  EXPECT_EQ(out.rows, 6);
}

}  // namespace
}  // namespace vstream
