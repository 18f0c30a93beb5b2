#pragma once
// FoldingState: the common part of ReducingState and AggregatingState, a
// value per (current key, namespace) that inputs are folded into.
//
// Add takes one of three paths, fixed by the descriptor:
//   - write-back cache (`write_back_cache`): fold in the cached entry; RocksDB
//     sees the accumulator on eviction or Flush();
//   - merge (`associative`, no cache): a blind RocksDB Merge of the input;
//     RocksDB folds operands on read and in compaction (StateMergeOperator);
//   - otherwise read-modify-write: Get, fold, Put.
//
// Thread-compatible: used by the backend's task thread only.

#include <string>
#include <string_view>

#include "state/keyed_state.h"

namespace vstream {

class FoldingState : public KeyedState {
 public:
  // Folds `input` into the value of the current key in `ns`.
  absl::Status Add(std::string_view ns, std::string_view input);
  // Reads the folded value (AggregatingState: get_result of the accumulator).
  absl::StatusOr<StateLookup> Get(std::string_view ns, std::string* result);
  absl::Status Clear(std::string_view ns);

  // Whether Add is a blind RocksDB merge.
  bool uses_merge() const { return merge_; }

 protected:
  FoldingState(StateContext& ctx, StateId id, std::string name, rocksdb::ColumnFamilyHandle* cf,
               std::shared_ptr<const StateBehavior> behavior, bool cached)
      : KeyedState(ctx, id, std::move(name), cf, behavior, cached),
        merge_(!cached && behavior->associative) {}

 private:
  void Result(std::string_view acc, std::string* result) const;

  const bool merge_;
  std::string acc_;
};

// A value folded with a ReduceFunction, as Flink's ReducingState.
class ReducingState final : public FoldingState {
 private:
  friend class KeyedStateBackend;
  using FoldingState::FoldingState;
};

// An accumulator folded with an AggregateFunction, as Flink's AggregatingState.
class AggregatingState final : public FoldingState {
 private:
  friend class KeyedStateBackend;
  using FoldingState::FoldingState;
};

}  // namespace vstream
