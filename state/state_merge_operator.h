#pragma once
// Private to state/: the RocksDB hooks of one state's column family.
//
// StateMergeOperator appends to lists (ListState::Add is a blind write) and
// folds ReducingState/AggregatingState operands with the state's function.
// TtlCompactionFilterFactory drops expired entries (and expired list
// elements) when RocksDB compacts.
//
// Both are created before their column family is opened and bound to the
// state's behavior once, when the state is registered: a column family found
// on disk when the backend reopens is opened before any descriptor names it,
// with automatic compactions off until it is bound, so neither hook ever runs
// unbound. After Bind they are immutable and safe for RocksDB's concurrent use.

#include <atomic>
#include <deque>
#include <memory>
#include <string>

#include "rocksdb/compaction_filter.h"
#include "rocksdb/merge_operator.h"
#include "state/state_behavior.h"
#include "state/state_clock.h"

namespace vstream {

class StateMergeOperator final : public rocksdb::MergeOperator {
 public:
  // `clock` must outlive the column family (the backend closes RocksDB first).
  explicit StateMergeOperator(const StateClock& clock) : clock_(clock) {}

  // Once, on the task thread, before the state is first written.
  void Bind(std::shared_ptr<const StateBehavior> behavior);

  bool FullMergeV2(const MergeOperationInput& merge_in,
                   MergeOperationOutput* merge_out) const override;
  bool PartialMergeMulti(const rocksdb::Slice& key, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* logger) const override;
  const char* Name() const override { return "vstream.StateMergeOperator"; }

 private:
  const StateClock& clock_;
  std::shared_ptr<const StateBehavior> owned_;  // keeps *behavior_ alive
  std::atomic<const StateBehavior*> behavior_{nullptr};
};

class TtlCompactionFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  // `clock` must outlive the column family (the backend closes RocksDB first).
  explicit TtlCompactionFilterFactory(const StateClock& clock) : clock_(clock) {}

  // Once, on the task thread, before the state is first written.
  void Bind(std::shared_ptr<const StateBehavior> behavior);

  bool ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason reason) const override;
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override;
  const char* Name() const override { return "vstream.TtlCompactionFilterFactory"; }

 private:
  const StateClock& clock_;
  std::shared_ptr<const StateBehavior> owned_;  // keeps *behavior_ alive
  std::atomic<const StateBehavior*> behavior_{nullptr};
};

}  // namespace vstream
