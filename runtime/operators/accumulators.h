#pragma once
// Mergeable aggregate accumulators for windows (and panes of sliding
// windows): count, sum, min, max, avg, first, last, stddev and approximate
// percentiles. An accumulator's state is a compact byte string, so that it
// can live in RocksDB keyed state or in the state cache, and two states of
// the same aggregate can be merged (panes into a window, sessions into one).
//
//   AccumulatorSet set = *AccumulatorSet::Create(calls, input_schema);
//   std::string state;           // empty = no record yet
//   set.Add(row, event_time_ms, &state);      // per record
//   set.Merge(other_state, &state);           // pane/session merge
//   set.Result(state, &out_row, first_field); // fills one field per call
//
// Thread-compatible: one instance per operator subtask; methods are const
// except for internal scratch buffers.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"
#include "runtime/expr/expression.h"
#include "runtime/types.h"

namespace vstream {

class AccumulatorSet {
 public:
  // calls: func is count | sum | min | max | avg | first | last | stddev |
  // percentile (param = quantile in (0, 1]); arg is an expression over
  // `input` (empty for count(*)). Errors name the offending call.
  static absl::StatusOr<std::unique_ptr<AccumulatorSet>> Create(
      const std::vector<proto::AggregateCall>& calls, const Schema& input);
  ~AccumulatorSet();

  // The output type of each call, in order: count -> int; sum -> arg type
  // (int or double); min, max, first, last -> arg type; avg, stddev,
  // percentile -> double.
  const std::vector<FieldType>& result_types() const;

  // Folds one record into *state (empty string = fresh). event_time_ms
  // orders first/last: first keeps the record with the smallest time (ties:
  // the earlier Add), last the largest (ties: the later Add).
  void Add(const Row& row, int64_t event_time_ms, std::string* state);
  // Takes one earlier-added record back out of *state (a retraction of an
  // updating input). Only for sets whose every call is retractable (see
  // Retractable); returns false, changing nothing, if *state is empty or
  // corrupt. A double sum is exact only up to floating-point rounding.
  bool Retract(const Row& row, std::string* state);
  // Whether a function (count, sum, avg) can take a record back out.
  static bool Retractable(std::string_view func);
  // Folds `other` into *state, as if all of other's records had been added.
  void Merge(std::string_view other, std::string* state);
  // Whether adding records to separate states and merging those gives the
  // same results as adding them all to one, in order, for any grouping: true
  // for count, int sum and avg, min and max of non-double values, first and
  // last; false if any call is a double sum or avg (rounding depends on the
  // grouping), a double min or max (NaN compares false both ways), stddev
  // or percentile.
  bool ExactUnderRegrouping() const;
  // Writes one field per call into row[first_field ...]. Nulls as SQL:
  // count of nothing is 0; every other aggregate of no non-null value is null.
  // stddev is the population standard deviation. percentile is accurate to
  // 1 % relative error (a DDSketch-style log-bucket histogram).
  void Result(std::string_view state, Row* row, size_t first_field) const;

 private:
  class Impl;
  explicit AccumulatorSet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vstream
