#pragma once
// Key groups, as in Flink: a key hashes to one of max_parallelism key groups,
// and each of `parallelism` subtasks owns a contiguous range of key groups.
// The range is the unit of state redistribution when a job rescales.

#include <cstdint>
#include <string_view>

namespace vstream {

constexpr int kDefaultMaxParallelism = 128;

// A 64-bit hash of serialized key bytes (xxHash-like mixing, no allocation).
uint64_t HashKeyBytes(std::string_view bytes);

inline int KeyGroupForHash(uint64_t hash, int max_parallelism) {
  return static_cast<int>(hash % static_cast<uint64_t>(max_parallelism));
}

// The subtask owning a key group: key_group * parallelism / max_parallelism
// (Flink's KeyGroupRangeAssignment.computeOperatorIndexForKeyGroup).
inline int SubtaskForKeyGroup(int key_group, int max_parallelism, int parallelism) {
  return key_group * parallelism / max_parallelism;
}

struct KeyGroupRange {
  int start;  // inclusive
  int end;    // inclusive

  bool Contains(int key_group) const { return key_group >= start && key_group <= end; }
};

// The key groups owned by one subtask.
KeyGroupRange KeyGroupRangeForSubtask(int max_parallelism, int parallelism, int subtask);

}  // namespace vstream
