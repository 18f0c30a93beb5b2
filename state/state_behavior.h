#pragma once
// Private to state/: what a registered state is, as far as RocksDB's
// background work needs to know (its merge operator and compaction filter):
// kind, TTL and fold. Immutable once built; shared by the state handle, the
// column family's merge operator and its compaction filter factory, which
// RocksDB owns and may release after the handle is gone.

#include <cstdint>
#include <string>
#include <string_view>

#include "state/state_descriptor.h"

namespace vstream {

struct StateBehavior {
  StateKind kind = StateKind::kValue;
  int64_t ttl_ms = 0;
  // kReducing: the fold; the first value becomes the accumulator.
  ReduceFunction reduce;
  // kAggregating: the fold from a fresh accumulator.
  AggregateFunction aggregate;
  // The fold may pre-combine merge operands (see the descriptors).
  bool associative = false;

  bool timed() const { return ttl_ms > 0; }

  // Starts an accumulator from the first value after none (or an expired one).
  void FoldFirst(std::string* acc, std::string_view value) const {
    if (kind == StateKind::kAggregating) {
      acc->clear();
      aggregate.create_accumulator(acc);
      aggregate.add(acc, value);
    } else {
      acc->assign(value.data(), value.size());
    }
  }
  // Folds the next value into an accumulator.
  void FoldNext(std::string* acc, std::string_view value) const {
    if (kind == StateKind::kAggregating) {
      aggregate.add(acc, value);
    } else {
      reduce(acc, value);
    }
  }
};

}  // namespace vstream
