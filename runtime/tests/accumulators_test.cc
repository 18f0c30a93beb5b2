#include "runtime/operators/accumulators.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations, so that a test can check that Add does not
// allocate once warm. (GCC sees malloc/free inlined into new/delete call
// sites and mistakes them for a mismatch.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace vstream {
namespace {

using ::testing::HasSubstr;

// The input schema of every test: v double, n int, s string, b bool,
// t timestamp.
Schema TestSchema() {
  Schema schema;
  schema.Add("v", FieldType::kDouble);
  schema.Add("n", FieldType::kInt);
  schema.Add("s", FieldType::kString);
  schema.Add("b", FieldType::kBool);
  schema.Add("t", FieldType::kTimestamp);
  return schema;
}

proto::AggregateCall MakeCall(const std::string& name, const std::string& func,
                              const std::string& arg, double param = 0) {
  proto::AggregateCall call;
  call.set_name(name);
  call.set_func(func);
  call.set_arg(arg);
  call.set_param(param);
  return call;
}

Datum Dbl(double v) {
  Datum d;
  d.SetDouble(v);
  return d;
}
Datum Int(int64_t v) {
  Datum d;
  d.SetInt(v);
  return d;
}
Datum Str(std::string_view v) {
  Datum d;
  d.SetString(v);
  return d;
}
Datum Bool(bool v) {
  Datum d;
  d.SetBool(v);
  return d;
}
Datum Null() { return Datum(); }

// A row of TestSchema with only v set (the others null).
Row VRow(double v) { return {Dbl(v), Null(), Null(), Null(), Null()}; }

// An AccumulatorSet over TestSchema with helpers to read its results.
class TestingAccumulators {
 public:
  explicit TestingAccumulators(const std::vector<proto::AggregateCall>& calls) {
    auto set = AccumulatorSet::Create(calls, TestSchema());
    EXPECT_TRUE(set.ok()) << set.status();
    if (set.ok()) set_ = std::move(*set);
  }

  AccumulatorSet& set() { return *set_; }

  Row Result(std::string_view state) const {
    Row row(set_->result_types().size() + 1);  // field 0 stands for a key
    set_->Result(state, &row, 1);
    row.erase(row.begin());
    return row;
  }

  // The results of `state` as text, one entry per call.
  std::vector<std::string> Strings(std::string_view state) const {
    const Row row = Result(state);
    std::vector<std::string> out;
    for (size_t k = 0; k < row.size(); ++k) {
      out.push_back(DatumToString(row[k], set_->result_types()[k]));
    }
    return out;
  }

 private:
  std::unique_ptr<AccumulatorSet> set_;
};

// The exact value of rank ceil(q * n) of sorted values, as percentile
// defines it.
double ExactQuantile(const std::vector<double>& sorted, double q) {
  const double n = static_cast<double>(sorted.size());
  const double rank = std::clamp(std::ceil(q * n), 1.0, n);
  return sorted[static_cast<size_t>(rank) - 1];
}

double RelativeError(double estimate, double exact) {
  if (exact == 0) return std::abs(estimate);
  return std::abs(estimate - exact) / std::abs(exact);
}

TEST(AccumulatorSetTest, ResultTypesFollowTheFunctions) {
  TestingAccumulators acc({MakeCall("a", "count", ""), MakeCall("b", "count", "s"),
                           MakeCall("c", "sum", "n"), MakeCall("d", "sum", "v"),
                           MakeCall("e", "min", "s"), MakeCall("f", "max", "t"),
                           MakeCall("g", "avg", "n"), MakeCall("h", "first", "b"),
                           MakeCall("i", "last", "s"), MakeCall("j", "stddev", "n"),
                           MakeCall("k", "percentile", "n", 0.5), MakeCall("l", "SUM", "n * 2")});
  EXPECT_EQ(acc.set().result_types(),
            (std::vector<FieldType>{FieldType::kInt, FieldType::kInt, FieldType::kInt,
                                    FieldType::kDouble, FieldType::kString, FieldType::kTimestamp,
                                    FieldType::kDouble, FieldType::kBool, FieldType::kString,
                                    FieldType::kDouble, FieldType::kDouble, FieldType::kInt}));
}

TEST(AccumulatorSetTest, ExactUnderRegroupingOnlyWhereEveryGroupingGivesTheSameResult) {
  const Schema schema({{"i", FieldType::kInt}, {"d", FieldType::kDouble}, {"s", FieldType::kString}});
  const auto exact = [&](const std::string& func, const std::string& arg) {
    std::vector<proto::AggregateCall> calls(2);
    calls[0].set_func("count");
    calls[1].set_func(func);
    calls[1].set_arg(arg);
    if (func == "percentile") calls[1].set_param(0.5);
    auto set = AccumulatorSet::Create(calls, schema);
    EXPECT_TRUE(set.ok()) << set.status();
    return set.ok() && (*set)->ExactUnderRegrouping();
  };
  for (const char* func : {"count", "sum", "avg", "min", "max", "first", "last"}) {
    EXPECT_TRUE(exact(func, "i")) << func;
  }
  EXPECT_TRUE(exact("min", "s"));
  EXPECT_TRUE(exact("last", "d"));
  EXPECT_TRUE(exact("count", "d"));
  for (const char* func : {"sum", "avg", "min", "max", "stddev", "percentile"}) {
    EXPECT_FALSE(exact(func, "d")) << func;
  }
  EXPECT_FALSE(exact("stddev", "i"));
}

TEST(AccumulatorSetTest, CountStarCountsRecordsCountSkipsNulls) {
  TestingAccumulators acc({MakeCall("all", "count", ""), MakeCall("star", "count", " * "),
                           MakeCall("v", "count", "v"), MakeCall("s", "count", "s"),
                           MakeCall("sum", "sum", "v")});
  EXPECT_EQ(acc.Strings(""), (std::vector<std::string>{"0", "0", "0", "0", "null"}));
  std::string state;
  acc.set().Add({Dbl(1), Null(), Str("a"), Null(), Null()}, 0, &state);
  acc.set().Add({Null(), Null(), Str("b"), Null(), Null()}, 0, &state);
  acc.set().Add({Dbl(3), Null(), Null(), Null(), Null()}, 0, &state);
  acc.set().Add({Null(), Null(), Null(), Null(), Null()}, 0, &state);
  EXPECT_EQ(acc.Strings(state), (std::vector<std::string>{"4", "4", "2", "2", "4"}));
}

TEST(AccumulatorSetTest, AllNullInputGivesNullAndCountZero) {
  TestingAccumulators acc({MakeCall("c", "count", "v"), MakeCall("sum", "sum", "n"),
                           MakeCall("min", "min", "s"), MakeCall("max", "max", "t"),
                           MakeCall("avg", "avg", "v"), MakeCall("first", "first", "b"),
                           MakeCall("last", "last", "s"), MakeCall("sd", "stddev", "v"),
                           MakeCall("p", "percentile", "v", 0.5), MakeCall("all", "count", "")});
  std::string state;
  for (int k = 0; k < 3; ++k) acc.set().Add({Null(), Null(), Null(), Null(), Null()}, k, &state);
  EXPECT_EQ(acc.Strings(state), (std::vector<std::string>{"0", "null", "null", "null", "null",
                                                          "null", "null", "null", "null", "3"}));
}

TEST(AccumulatorSetTest, SumKeepsTheArgumentTypeAndIntSumsAreExact) {
  TestingAccumulators acc({MakeCall("n", "sum", "n"), MakeCall("v", "sum", "v")});
  std::string state;
  // 2^53 + 1 is not a double: a sum kept in double would lose the 1s.
  acc.set().Add({Dbl(0.5), Int((int64_t{1} << 53) + 1), Null(), Null(), Null()}, 0, &state);
  acc.set().Add({Dbl(0.25), Int(1), Null(), Null(), Null()}, 0, &state);
  acc.set().Add({Null(), Int(1), Null(), Null(), Null()}, 0, &state);
  acc.set().Add({Dbl(-2), Null(), Null(), Null(), Null()}, 0, &state);
  const Row r = acc.Result(state);
  EXPECT_EQ(r[0].i, (int64_t{1} << 53) + 3);
  EXPECT_FALSE(r[1].is_null);
  EXPECT_EQ(r[1].d, -1.25);
}

TEST(AccumulatorSetTest, MinMaxOfEveryOrderedType) {
  TestingAccumulators acc({MakeCall("a", "min", "v"), MakeCall("b", "max", "v"),
                           MakeCall("c", "min", "n"), MakeCall("d", "max", "n"),
                           MakeCall("e", "min", "s"), MakeCall("f", "max", "s"),
                           MakeCall("g", "min", "t"), MakeCall("h", "max", "t")});
  std::string state;
  acc.set().Add({Dbl(2.5), Int(-7), Str("pear"), Null(), Int(1000)}, 0, &state);
  acc.set().Add({Dbl(-1.5), Null(), Str("apple"), Null(), Int(5000)}, 0, &state);
  acc.set().Add({Null(), Int(12), Str("zebra"), Null(), Null()}, 0, &state);
  acc.set().Add({Dbl(9.75), Int(3), Null(), Null(), Int(-20)}, 0, &state);
  const Row r = acc.Result(state);
  EXPECT_EQ(r[0].d, -1.5);
  EXPECT_EQ(r[1].d, 9.75);
  EXPECT_EQ(r[2].i, -7);
  EXPECT_EQ(r[3].i, 12);
  EXPECT_EQ(r[4].s, "apple");
  EXPECT_EQ(r[5].s, "zebra");
  EXPECT_EQ(r[6].i, -20);
  EXPECT_EQ(r[7].i, 5000);
  for (const Datum& d : r) EXPECT_FALSE(d.is_null);
}

TEST(AccumulatorSetTest, AvgMatchesAStraightforwardReference) {
  TestingAccumulators acc({MakeCall("v", "avg", "v"), MakeCall("n", "avg", "n")});
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(120, 40);
  std::uniform_int_distribution<int64_t> ints(-5000, 100000);
  std::string state;
  double v_sum = 0;
  int64_t n_sum = 0;
  const int kRecords = 5000;
  for (int k = 0; k < kRecords; ++k) {
    const double v = normal(rng);
    const int64_t n = ints(rng);
    v_sum += v;
    n_sum += n;
    acc.set().Add({Dbl(v), Int(n), Null(), Null(), Null()}, k, &state);
  }
  const Row r = acc.Result(state);
  const double v_ref = v_sum / kRecords;
  const double n_ref = static_cast<double>(n_sum) / kRecords;
  EXPECT_NEAR(r[0].d, v_ref, 1e-9 * std::abs(v_ref));
  EXPECT_NEAR(r[1].d, n_ref, 1e-9 * std::abs(n_ref));

  // An int average is not an int division.
  std::string small;
  acc.set().Add({Dbl(1), Int(1), Null(), Null(), Null()}, 0, &small);
  acc.set().Add({Dbl(2), Int(2), Null(), Null(), Null()}, 0, &small);
  EXPECT_EQ(acc.Result(small)[1].d, 1.5);
}

TEST(AccumulatorSetTest, FirstAndLastFollowEventTimeAndBreakTiesByAddOrder) {
  TestingAccumulators acc({MakeCall("fs", "first", "s"), MakeCall("ls", "last", "s"),
                           MakeCall("fn", "first", "n"), MakeCall("lv", "last", "v"),
                           MakeCall("fb", "first", "b")});
  auto row = [](std::string_view s, int64_t n, double v, bool b) {
    return Row{Dbl(v), Int(n), Str(s), Bool(b), Null()};
  };
  std::string state;
  acc.set().Add(row("a", 1, 1.5, true), 5, &state);
  acc.set().Add(row("b", 2, 2.5, false), 3, &state);
  acc.set().Add(row("c", 3, 3.5, true), 3, &state);  // tie at 3: first keeps "b"
  acc.set().Add(row("d", 4, 4.5, true), 9, &state);
  acc.set().Add(row("e", 5, 5.5, true), 9, &state);  // tie at 9: last takes "e"
  acc.set().Add(row("f", 6, 6.5, true), 7, &state);
  // Nulls are skipped, however early or late.
  acc.set().Add({Null(), Null(), Null(), Null(), Null()}, 1, &state);
  acc.set().Add({Null(), Null(), Null(), Null(), Null()}, 20, &state);
  EXPECT_EQ(acc.Strings(state), (std::vector<std::string>{"b", "e", "2", "5.5", "false"}));

  // Merge treats the other state's records as added later.
  std::string early, late;
  acc.set().Add(row("x", 10, 10, true), 3, &early);
  acc.set().Add(row("y", 20, 20, false), 9, &early);
  acc.set().Add(row("p", 30, 30, false), 3, &late);
  acc.set().Add(row("q", 40, 40, true), 9, &late);
  std::string merged = early;
  acc.set().Merge(late, &merged);
  EXPECT_EQ(acc.Strings(merged), (std::vector<std::string>{"x", "q", "10", "40", "true"}));
  merged = late;
  acc.set().Merge(early, &merged);
  EXPECT_EQ(acc.Strings(merged), (std::vector<std::string>{"p", "y", "30", "20", "false"}));
}

TEST(AccumulatorSetTest, StddevIsThePopulationStddevAndStable) {
  TestingAccumulators acc({MakeCall("v", "stddev", "v"), MakeCall("n", "stddev", "n")});
  std::string state;
  for (int x : {2, 4, 4, 4, 5, 5, 7, 9}) {
    acc.set().Add({Dbl(x), Int(x), Null(), Null(), Null()}, 0, &state);
  }
  Row r = acc.Result(state);
  EXPECT_NEAR(r[0].d, 2.0, 1e-12);
  EXPECT_NEAR(r[1].d, 2.0, 1e-12);

  // Around 1e9, a sum of squares cancels catastrophically (1e18 has no
  // room for the small deviations); Welford keeps them.
  std::string offset;
  for (double x : {4.0, 7.0, 13.0, 16.0}) {
    acc.set().Add({Dbl(1e9 + x), Int(1000000000 + static_cast<int64_t>(x)), Null(), Null(), Null()},
                  0, &offset);
  }
  r = acc.Result(offset);
  EXPECT_NEAR(r[0].d, std::sqrt(22.5), 1e-6);
  EXPECT_NEAR(r[1].d, std::sqrt(22.5), 1e-6);

  std::string one;
  acc.set().Add({Dbl(42), Int(42), Null(), Null(), Null()}, 0, &one);
  EXPECT_EQ(acc.Result(one)[0].d, 0.0);
}

void CheckPercentileAccuracy(const std::vector<double>& values) {
  const std::vector<double> qs = {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0};
  std::vector<proto::AggregateCall> calls;
  for (double q : qs) calls.push_back(MakeCall("p", "percentile", "v", q));
  TestingAccumulators acc(calls);
  std::string state;
  for (double v : values) acc.set().Add(VRow(v), 0, &state);
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const Row r = acc.Result(state);
  for (size_t k = 0; k < qs.size(); ++k) {
    const double exact = ExactQuantile(sorted, qs[k]);
    EXPECT_LE(RelativeError(r[k].d, exact), 0.01 * (1 + 1e-9))
        << "q=" << qs[k] << " estimate " << r[k].d << " exact " << exact;
  }
}

TEST(AccumulatorSetTest, PercentileIsWithinOnePercentOnUniformValues) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> uniform(0.001, 1000);
  std::vector<double> values(100000);
  for (double& v : values) v = uniform(rng);
  CheckPercentileAccuracy(values);
}

TEST(AccumulatorSetTest, PercentileIsWithinOnePercentOnLognormalValues) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> lognormal(0, 2);
  std::vector<double> values(100000);
  for (double& v : values) v = lognormal(rng);
  CheckPercentileAccuracy(values);
}

TEST(AccumulatorSetTest, PercentileHandlesNegativesAndZeros) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(0, 100);
  std::vector<double> values(20000);
  for (size_t k = 0; k < values.size(); ++k) values[k] = k % 10 == 0 ? 0.0 : normal(rng);
  CheckPercentileAccuracy(values);
  // Exactly representable answers.
  TestingAccumulators acc({MakeCall("lo", "percentile", "n", 0.2),
                           MakeCall("mid", "percentile", "n", 0.5),
                           MakeCall("hi", "percentile", "n", 1)});
  std::string state;
  for (int64_t n : {-50, 0, 0, 0, 0, 0, 0, 0, 0, 7}) {
    acc.set().Add({Null(), Int(n), Null(), Null(), Null()}, 0, &state);
  }
  const Row r = acc.Result(state);
  EXPECT_EQ(r[1].d, 0.0);
  EXPECT_LE(RelativeError(r[0].d, 0), 0.0);
  EXPECT_LE(RelativeError(r[2].d, 7), 0.01);
  std::string negative;
  acc.set().Add({Null(), Int(-50), Null(), Null(), Null()}, 0, &negative);
  acc.set().Add({Null(), Int(-3), Null(), Null(), Null()}, 0, &negative);
  const Row n = acc.Result(negative);
  EXPECT_LE(RelativeError(n[0].d, -50), 0.01);
  EXPECT_LE(RelativeError(n[2].d, -3), 0.01);
}

TEST(AccumulatorSetTest, PercentileSkipsNanAndKeepsInfinities) {
  TestingAccumulators acc({MakeCall("lo", "percentile", "v", 0.01),
                           MakeCall("hi", "percentile", "v", 1.0), MakeCall("c", "count", "v")});
  const double inf = std::numeric_limits<double>::infinity();
  std::string state;
  acc.set().Add(VRow(std::numeric_limits<double>::quiet_NaN()), 0, &state);
  EXPECT_EQ(acc.Strings(state), (std::vector<std::string>{"null", "null", "1"}));
  acc.set().Add(VRow(inf), 0, &state);
  acc.set().Add(VRow(-inf), 0, &state);
  acc.set().Add(VRow(1e-320), 0, &state);  // subnormal
  const Row r = acc.Result(state);
  EXPECT_EQ(r[0].d, -inf);
  EXPECT_EQ(r[1].d, inf);
  EXPECT_EQ(r[2].i, 4);
}

TEST(AccumulatorSetTest, PercentileStateStaysBoundedOverHugeRanges) {
  // Values over 600 decades need ~69000 buckets; a store keeps 2048 and
  // folds the lowest into the lowest kept, so high quantiles stay exact to
  // 1 % and merging panes still matches adding everything to one state.
  TestingAccumulators acc(
      {MakeCall("p99", "percentile", "v", 0.99), MakeCall("max", "percentile", "v", 1.0)});
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> exponent(-300, 300);
  std::vector<double> values(30000);
  for (double& v : values) v = std::pow(10.0, exponent(rng));
  std::string single;
  std::vector<std::string> panes(7);
  for (size_t k = 0; k < values.size(); ++k) {
    acc.set().Add(VRow(values[k]), 0, &single);
    acc.set().Add(VRow(values[k]), 0, &panes[k * panes.size() / values.size()]);
  }
  // Two sketches of 2048 buckets, each of a 2-byte offset and count.
  EXPECT_LT(single.size(), 2 * (2048 * 4 + 32));
  std::sort(values.begin(), values.end());
  const Row r = acc.Result(single);
  EXPECT_LE(RelativeError(r[0].d, ExactQuantile(values, 0.99)), 0.01 * (1 + 1e-9));
  EXPECT_LE(RelativeError(r[1].d, ExactQuantile(values, 1.0)), 0.01 * (1 + 1e-9));
  std::string merged;
  for (const std::string& pane : panes) acc.set().Merge(pane, &merged);
  EXPECT_EQ(merged, single);  // identical buckets, identical bytes
}

// The calls of the merge tests and how their results compare.
enum class Compare { kExact, kClose };

struct MergeCase {
  proto::AggregateCall call;
  Compare compare;
};

std::vector<MergeCase> MergeCases() {
  return {
      {MakeCall("a", "count", ""), Compare::kExact},
      {MakeCall("b", "count", "v"), Compare::kExact},
      {MakeCall("c", "sum", "n"), Compare::kExact},
      {MakeCall("d", "sum", "v"), Compare::kClose},
      {MakeCall("e", "min", "v"), Compare::kExact},
      {MakeCall("f", "max", "v"), Compare::kExact},
      {MakeCall("g", "min", "n"), Compare::kExact},
      {MakeCall("h", "max", "s"), Compare::kExact},
      {MakeCall("i", "min", "t"), Compare::kExact},
      {MakeCall("j", "avg", "v"), Compare::kClose},
      {MakeCall("k", "avg", "n"), Compare::kClose},
      {MakeCall("l", "first", "s"), Compare::kExact},
      {MakeCall("m", "last", "v"), Compare::kExact},
      {MakeCall("n", "first", "n"), Compare::kExact},
      {MakeCall("o", "last", "s"), Compare::kExact},
      {MakeCall("p", "stddev", "v"), Compare::kClose},
      {MakeCall("q", "stddev", "n"), Compare::kClose},
      {MakeCall("r", "percentile", "v", 0.5), Compare::kExact},
      {MakeCall("s", "percentile", "n", 0.9), Compare::kExact},
      {MakeCall("t", "percentile", "v", 1.0), Compare::kExact},
      {MakeCall("u", "percentile", "v", 0.01), Compare::kExact},
  };
}

std::vector<Row> RandomRows(std::mt19937_64& rng, size_t count, std::vector<int64_t>* times) {
  std::normal_distribution<double> normal(50, 30);
  std::uniform_int_distribution<int64_t> ints(-1000, 1000);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int64_t> time(0, 60);  // many ties
  const std::vector<std::string> words = {"ant", "bee", "cat", "dog", "eel", "fox", ""};
  std::vector<Row> rows;
  for (size_t k = 0; k < count; ++k) {
    Row row(5);
    if (percent(rng) >= 10) row[0].SetDouble(percent(rng) < 5 ? 0.0 : normal(rng));
    if (percent(rng) >= 10) row[1].SetInt(ints(rng));
    if (percent(rng) >= 10)
      row[2].SetString(words[static_cast<size_t>(ints(rng) + 1000) % words.size()]);
    if (percent(rng) >= 10) row[4].SetInt(ints(rng) * 1000);
    rows.push_back(std::move(row));
    times->push_back(time(rng));
  }
  return rows;
}

void ExpectSameResults(const std::vector<MergeCase>& cases, const Row& got, const Row& want,
                       const std::vector<FieldType>& types) {
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string what = cases[k].call.func() + "(" + cases[k].call.arg() + ")";
    if (cases[k].compare == Compare::kExact || want[k].is_null) {
      EXPECT_EQ(DatumToString(got[k], types[k]), DatumToString(want[k], types[k])) << what;
      if (types[k] == FieldType::kDouble && !want[k].is_null) {
        EXPECT_EQ(got[k].d, want[k].d) << what;
      }
    } else {
      EXPECT_FALSE(got[k].is_null) << what;
      EXPECT_NEAR(got[k].d, want[k].d, 1e-9 * std::max(1.0, std::abs(want[k].d))) << what;
    }
  }
}

TEST(AccumulatorSetTest, MergingPanesMatchesOneState) {
  const std::vector<MergeCase> cases = MergeCases();
  std::vector<proto::AggregateCall> calls;
  for (const MergeCase& c : cases) calls.push_back(c.call);
  TestingAccumulators acc(calls);
  const std::vector<FieldType>& types = acc.set().result_types();
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<int64_t> times;
    const std::vector<Row> rows =
        RandomRows(rng, std::uniform_int_distribution<size_t>(0, 400)(rng), &times);
    std::string single;
    for (size_t k = 0; k < rows.size(); ++k) acc.set().Add(rows[k], times[k], &single);

    // Random contiguous panes, some of them empty.
    const size_t pane_count = std::uniform_int_distribution<size_t>(1, 12)(rng);
    std::vector<size_t> cuts = {0, rows.size()};
    for (size_t k = 1; k < pane_count; ++k) {
      cuts.push_back(std::uniform_int_distribution<size_t>(0, rows.size())(rng));
    }
    std::sort(cuts.begin(), cuts.end());
    std::vector<std::string> panes;
    for (size_t p = 0; p + 1 < cuts.size(); ++p) {
      std::string pane;
      for (size_t k = cuts[p]; k < cuts[p + 1]; ++k) acc.set().Add(rows[k], times[k], &pane);
      panes.push_back(std::move(pane));
    }

    // Left fold into a fresh state.
    std::string folded;
    for (const std::string& pane : panes) acc.set().Merge(pane, &folded);
    SCOPED_TRACE(testing::Message() << "trial " << trial << ", " << rows.size() << " rows, "
                                    << panes.size() << " panes");
    ExpectSameResults(cases, acc.Result(folded), acc.Result(single), types);

    // Pairwise tree: a different association, the same order.
    std::vector<std::string> level = panes;
    while (level.size() > 1) {
      std::vector<std::string> next;
      for (size_t k = 0; k < level.size(); k += 2) {
        if (k + 1 < level.size()) acc.set().Merge(level[k + 1], &level[k]);
        next.push_back(std::move(level[k]));
      }
      level = std::move(next);
    }
    ExpectSameResults(cases, acc.Result(level[0]), acc.Result(single), types);
  }
}

TEST(AccumulatorSetTest, MergeWithAFreshStateIsIdentity) {
  TestingAccumulators acc({MakeCall("c", "count", ""), MakeCall("p", "percentile", "v", 0.5),
                           MakeCall("f", "first", "s")});
  std::string state;
  acc.set().Add({Dbl(3), Null(), Str("x"), Null(), Null()}, 1, &state);
  acc.set().Add({Dbl(5), Null(), Str("y"), Null(), Null()}, 2, &state);
  const std::string before = state;
  acc.set().Merge("", &state);
  EXPECT_EQ(state, before);
  std::string fresh;
  acc.set().Merge(state, &fresh);
  EXPECT_EQ(fresh, before);
  std::string empty;
  acc.set().Merge("", &empty);
  EXPECT_EQ(empty, "");
}

// Corrupt bytes must read as a fresh state and never crash; these checks
// hold whether or not random bytes happen to decode.
void ExpectConsistent(TestingAccumulators& acc, const std::string& input, const Row& row) {
  // An exact-size heap copy, so that a sanitizer sees any read past the end.
  std::unique_ptr<char[]> exact(new char[input.size()]);
  std::copy(input.begin(), input.end(), exact.get());
  const std::string_view bytes(exact.get(), input.size());
  // Result of the bytes equals Result of what Merge accepts from them.
  std::string adopted;
  acc.set().Merge(bytes, &adopted);
  EXPECT_EQ(acc.Strings(bytes), acc.Strings(adopted));
  // Adding to any bytes gives a state that reads like what Merge makes of
  // it. (Add checks sketches only for layout, so the result need not be
  // valid; when it is not, both read it as fresh.)
  std::string added(bytes);
  acc.set().Add(row, 5, &added);
  std::string copy;
  acc.set().Merge(added, &copy);
  EXPECT_EQ(acc.Strings(added), acc.Strings(copy));
  EXPECT_FALSE(added.empty());
  // Merging the bytes into a valid state keeps it valid.
  std::string target = adopted;
  acc.set().Merge(bytes, &target);
  copy.clear();
  acc.set().Merge(target, &copy);
  EXPECT_EQ(copy, target);
}

// A set without strings and percentiles has a fixed layout and updates in
// place; adding a percentile call forces the general (parse and patch) path.
// Both must give the same results, bit for bit, with nulls, ties and merges.
TEST(AccumulatorSetTest, FixedLayoutMatchesTheGeneralPath) {
  const std::vector<proto::AggregateCall> calls = {
      MakeCall("c", "count", ""),     MakeCall("cv", "count", "v"), MakeCall("sn", "sum", "n"),
      MakeCall("sv", "sum", "v"),     MakeCall("mn", "min", "n"),   MakeCall("mx", "max", "v"),
      MakeCall("av", "avg", "n"),     MakeCall("fv", "first", "v"), MakeCall("ln", "last", "n"),
      MakeCall("lb", "last", "b"),    MakeCall("fb", "first", "b"), MakeCall("sd", "stddev", "v"),
      MakeCall("sdn", "stddev", "n"), MakeCall("xv", "min", "v"),   MakeCall("xn", "max", "n")};
  std::vector<proto::AggregateCall> with_sketch = calls;
  with_sketch.push_back(MakeCall("p", "percentile", "v", 0.5));
  TestingAccumulators fixed(calls), general(with_sketch);
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0, 100);
  std::uniform_int_distribution<int> small(-50, 50);
  for (int trial = 0; trial < 50; ++trial) {
    std::string f[2], g[2];  // two panes each, merged at the end
    const int n = std::uniform_int_distribution<int>(0, 200)(rng);
    for (int k = 0; k < n; ++k) {
      Row row = {small(rng) % 7 == 0 ? Null() : Dbl(normal(rng)),
                 small(rng) % 5 == 0 ? Null() : Int(small(rng)), Null(),
                 small(rng) % 3 == 0 ? Null() : Bool(small(rng) > 0), Null()};
      const int64_t time = small(rng) / 10;  // many ties
      fixed.set().Add(row, time, &f[k % 2]);
      general.set().Add(row, time, &g[k % 2]);
    }
    fixed.set().Merge(f[1], &f[0]);
    general.set().Merge(g[1], &g[0]);
    std::vector<std::string> a = fixed.Strings(f[0]);
    std::vector<std::string> b = general.Strings(g[0]);
    b.pop_back();  // the percentile
    ASSERT_EQ(a, b) << "trial " << trial << ", " << n << " rows";
    const Row ra = fixed.Result(f[0]);
    const Row rb = general.Result(g[0]);
    for (size_t c = 0; c < ra.size(); ++c) {
      if (fixed.set().result_types()[c] == FieldType::kDouble && !ra[c].is_null) {
        ASSERT_EQ(ra[c].d, rb[c].d) << "call " << c << ", trial " << trial;
      }
    }
  }
}

TEST(AccumulatorSetTest, CorruptStateReadsAsFreshAndNeverCrashes) {
  TestingAccumulators acc(
      {MakeCall("c", "count", ""), MakeCall("cv", "count", "v"), MakeCall("sn", "sum", "n"),
       MakeCall("sv", "sum", "v"), MakeCall("mn", "min", "s"), MakeCall("mx", "max", "v"),
       MakeCall("av", "avg", "n"), MakeCall("fs", "first", "s"), MakeCall("lb", "last", "b"),
       MakeCall("sd", "stddev", "v"), MakeCall("p", "percentile", "v", 0.9)});
  const Row row = {Dbl(-2.5), Int(3), Str("word"), Bool(true), Int(77)};
  std::mt19937_64 rng(6);
  std::normal_distribution<double> normal(0, 1000);
  std::string valid;
  for (int k = 0; k < 300; ++k) {
    acc.set().Add({Dbl(normal(rng)), Int(k), Str(std::string(k % 13, 'a' + k % 26)),
                   Bool(k % 2 == 0), Null()},
                  k % 17, &valid);
  }
  const std::vector<std::string> fresh = acc.Strings("");
  std::string one;
  acc.set().Add(row, 5, &one);

  // Every strict prefix is corrupt: it reads as fresh, Add restarts from
  // fresh, Merge ignores it or is replaced by the valid side.
  for (size_t len = 1; len < valid.size(); ++len) {
    const std::string prefix = valid.substr(0, len);
    ASSERT_EQ(acc.Strings(prefix), fresh) << "prefix " << len;
    std::string added = prefix;
    acc.set().Add(row, 5, &added);
    ASSERT_EQ(added, one) << "prefix " << len;
    std::string target = valid;
    acc.set().Merge(prefix, &target);
    ASSERT_EQ(target, valid) << "prefix " << len;
    target = prefix;
    acc.set().Merge(valid, &target);
    ASSERT_EQ(target, valid) << "prefix " << len;
  }
  // Trailing garbage and a wrong version byte are corrupt too.
  EXPECT_EQ(acc.Strings(valid + '\0'), fresh);
  std::string wrong_version = valid;
  wrong_version[0] = static_cast<char>(valid[0] + 1);
  EXPECT_EQ(acc.Strings(wrong_version), fresh);

  // Random bytes, some starting with a valid version byte, and random
  // byte flips of a valid state.
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes(std::uniform_int_distribution<size_t>(0, 80)(rng), '\0');
    for (char& c : bytes) c = static_cast<char>(byte(rng));
    if (trial % 2 == 0 && !bytes.empty()) bytes[0] = valid[0];  // the format version
    ExpectConsistent(acc, bytes, row);
    std::string flipped = valid;
    for (int f = 0; f < 1 + trial % 3; ++f) {
      flipped[std::uniform_int_distribution<size_t>(0, flipped.size() - 1)(rng)] ^=
          static_cast<char>(1 << (byte(rng) % 8));
    }
    ExpectConsistent(acc, flipped, row);
    if (HasFailure()) break;
  }
}

TEST(AccumulatorSetTest, AddDoesNotAllocateOnceWarm) {
  TestingAccumulators acc(
      {MakeCall("a", "count", ""), MakeCall("b", "count", "v"), MakeCall("c", "sum", "n"),
       MakeCall("d", "sum", "v"), MakeCall("e", "min", "v"), MakeCall("f", "max", "n"),
       MakeCall("g", "min", "s"), MakeCall("h", "max", "s"), MakeCall("i", "max", "t"),
       MakeCall("j", "avg", "v"), MakeCall("k", "stddev", "v"), MakeCall("l", "first", "v"),
       MakeCall("m", "last", "s"), MakeCall("n", "first", "s"),
       MakeCall("o", "percentile", "v", 0.95)});
  std::vector<Row> rows;
  const std::vector<std::string> words = {"kiwi", "fig", "banana", "apple", "cherry"};
  for (int k = 0; k < 50; ++k) {
    rows.push_back({Dbl(k * 1.5 - 20), Int(k * 7 - 100), Str(words[k % words.size()]),
                    Bool(k % 2 == 0), Int(k * 1000)});
  }
  std::string state;
  Row out(acc.set().result_types().size());
  // Warm up: scratch buffers grow, every bucket exists, and the sketch's
  // counts have widened to the two bytes they need (a rare rewrite).
  for (int k = 0; k < 20000; ++k) acc.set().Add(rows[k % rows.size()], k % 37, &state);
  acc.set().Result(state, &out, 0);
  const int64_t before = g_allocations.load();
  for (int k = 0; k < 20000; ++k) {
    acc.set().Add(rows[k % rows.size()], 100 + k % 37, &state);
    if (k % 100 == 0) acc.set().Result(state, &out, 0);
  }
  const int64_t allocations = g_allocations.load() - before;
  EXPECT_EQ(allocations, 0);
  EXPECT_EQ(out[0].i, 20000 + 19901);
  EXPECT_EQ(out[6].s, "apple");
  EXPECT_EQ(out[7].s, "kiwi");
}

TEST(AccumulatorSetTest, ErrorsNameTheCall) {
  struct Case {
    proto::AggregateCall call;
    std::string error;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Case> cases = {
      {MakeCall("total", "sum", "s"),
       "aggregate 'total': sum needs a numeric argument, got string"},
      {MakeCall("hr_p95", "percentile", "s", 0.95),
       "aggregate 'hr_p95': percentile needs a numeric argument, got string"},
      {MakeCall("a", "avg", "b"), "aggregate 'a': avg needs a numeric argument, got bool"},
      {MakeCall("sd", "stddev", "t"),
       "aggregate 'sd': stddev needs a numeric argument, got timestamp"},
      {MakeCall("lo", "min", "b"),
       "aggregate 'lo': min needs an int, double, string or timestamp argument, got bool"},
      {MakeCall("hi", "max", "b = TRUE"),
       "aggregate 'hi': max needs an int, double, string or timestamp argument, got bool"},
      {MakeCall("p", "percentile", "v", 0),
       "aggregate 'p': percentile needs a quantile in (0, 1], got 0"},
      {MakeCall("p", "percentile", "v", 1.5),
       "aggregate 'p': percentile needs a quantile in (0, 1], got 1.5"},
      {MakeCall("p", "percentile", "v", -0.5),
       "aggregate 'p': percentile needs a quantile in (0, 1], got -0.5"},
      {MakeCall("p", "percentile", "v", nan),
       "aggregate 'p': percentile needs a quantile in (0, 1], got nan"},
      {MakeCall("s", "sum", ""), "aggregate 's': sum needs an argument, only count takes *"},
      {MakeCall("f", "first", "*"), "aggregate 'f': first needs an argument, only count takes *"},
      {MakeCall("m", "median", "v"),
       "aggregate 'm': unknown aggregate function 'median', expected one of count, sum, min, "
       "max, avg, first, last, stddev, percentile"},
  };
  for (const Case& c : cases) {
    auto set = AccumulatorSet::Create({MakeCall("ok", "count", ""), c.call}, TestSchema());
    ASSERT_FALSE(set.ok()) << c.error;
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(set.status().message()), c.error);
  }
  // Compile errors of the argument keep the expression's message.
  auto set = AccumulatorSet::Create({MakeCall("c", "count", "nosuch + 1")}, TestSchema());
  ASSERT_FALSE(set.ok());
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("aggregate 'c': "));
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("nosuch"));
  // Accepted: any type for count, first and last; q = 1.
  EXPECT_TRUE(
      AccumulatorSet::Create({MakeCall("a", "count", "b"), MakeCall("b", "first", "b"),
                              MakeCall("c", "last", "t"), MakeCall("d", "percentile", "n", 1.0)},
                             TestSchema())
          .ok());
}

}  // namespace
}  // namespace vstream
