#pragma once
// Descriptors declare a keyed state to the KeyedStateBackend, as Flink's
// StateDescriptor: its name (one RocksDB column family per state), its kind,
// its time-to-live and, for folding kinds, the function that folds values.
// States hold serialized bytes; operators own the (de)serialization.
//
// Folding functions are called on the task thread and, for a state that
// folds with a RocksDB merge operator (`associative` and no write-back
// cache), also on RocksDB's background threads and inside reads: they must
// be pure and thread-safe, and must not throw.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace vstream {

enum class StateKind {
  kValue,        // one value per key and namespace
  kList,         // an append-only list per key and namespace
  kMap,          // a map of user keys to values per key and namespace
  kReducing,     // a value folded with a ReduceFunction
  kAggregating,  // an accumulator folded with an AggregateFunction
};

const char* StateKindName(StateKind kind);

// acc = reduce(acc, value), in place.
using ReduceFunction = std::function<void(std::string* acc, std::string_view value)>;

// Flink's AggregateFunction over bytes: inputs are added to an accumulator.
struct AggregateFunction {
  // Writes a fresh accumulator into *acc, which is empty. Required.
  std::function<void(std::string* acc)> create_accumulator = nullptr;
  // acc = add(acc, input), in place. Required.
  std::function<void(std::string* acc, std::string_view input)> add = nullptr;
  // The result read by AggregatingState::Get. Optional: unset, Get returns
  // the accumulator bytes.
  std::function<void(std::string_view acc, std::string* result)> get_result = nullptr;
};

// Time to live, for every descriptor: an entry expires `ttl_ms` after its last
// write (Flink's UpdateType.OnCreateAndWrite); reads never see expired entries
// (StateVisibility.NeverReturnExpired) and compaction drops them. List elements
// and map entries expire one by one. 0 = never expire.

struct ValueStateDescriptor {
  // Column family name, unique within the backend. Required.
  std::string name;
  // Time to live in milliseconds. Default 0 (none).
  int64_t ttl_ms = 0;
  // Keep hot keys in the backend's write-back cache: reads hit the cache,
  // writes reach RocksDB in batches on eviction or Flush(). Default false.
  bool write_back_cache = false;
};

struct ListStateDescriptor {
  // Column family name, unique within the backend. Required.
  std::string name;
  // Time to live of each element in milliseconds. Default 0 (none).
  int64_t ttl_ms = 0;
};

struct MapStateDescriptor {
  // Column family name, unique within the backend. Required.
  std::string name;
  // Time to live of each map entry in milliseconds. Default 0 (none).
  int64_t ttl_ms = 0;
  // For a map whose reads are mostly of entries never written (dedup's
  // "seen"): an in-memory filter of the entries written within the ttl
  // (state/recent_keys_filter.h) answers most such reads without RocksDB.
  // Requires ttl_ms > 0. About 1.3 bytes per entry written within one ttl,
  // outside the state memory budget; over recent_keys_filter_max_bytes the
  // filter turns off (a warning in the log). A restore adds every restored
  // entry to it. Default false.
  bool filter_recent_keys = false;
  size_t recent_keys_filter_max_bytes = size_t{64} << 20;
};

struct ReducingStateDescriptor {
  // Column family name, unique within the backend. Required.
  std::string name;
  // The fold; the first value added becomes the accumulator. Required.
  ReduceFunction reduce = nullptr;
  // `reduce` is associative: Add becomes a blind RocksDB merge, folded in the
  // background and on read. Ignored when write_back_cache is set (the cache
  // folds in memory instead). Default false: read-modify-write.
  bool associative = false;
  // Keep hot keys in the backend's write-back cache. Default false.
  bool write_back_cache = false;
  // Time to live in milliseconds. Default 0 (none).
  int64_t ttl_ms = 0;
};

struct AggregatingStateDescriptor {
  // Column family name, unique within the backend. Required.
  std::string name;
  // The fold. Required: create_accumulator and add.
  AggregateFunction function = {};
  // `add` is associative and inputs are encoded like accumulators (sum, count
  // of ones, min, max): Add becomes a blind RocksDB merge whose operands
  // RocksDB may pre-combine with `add`. Ignored when write_back_cache is set.
  // Default false: read-modify-write.
  bool associative = false;
  // Keep hot keys in the backend's write-back cache. Default false.
  bool write_back_cache = false;
  // Time to live in milliseconds. Default 0 (none).
  int64_t ttl_ms = 0;
};

}  // namespace vstream
