#pragma once
// Timers held in the state backend: an ordered queue of (time, payload)
// entries in their own RocksDB column family, keyed by
// [time: 8 bytes big-endian, sign-flipped][payload], so RocksDB's order is
// time order. The window operator stores one entry per key and open window;
// nothing of it stays in memory but a small batch of not-yet-written
// additions and a lower bound of the earliest time, which lets a watermark
// that fires nothing skip RocksDB entirely.
//
// Unlike keyed state, this column family is ordered by time, not by key
// group: a restore at another parallelism filters it by key group (the
// payload carries it).
//
// Thread-compatible: used by one task thread.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "state/keyed_state_backend.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
}  // namespace rocksdb

namespace vstream {

class TimerQueue {
 public:
  // Declares the queue's column family `name` in the backend.
  static absl::StatusOr<std::unique_ptr<TimerQueue>> Create(KeyedStateBackend& backend, const std::string& name);

  // Adds a timer; adding the same (time, payload) twice keeps one.
  absl::Status Add(int64_t time, std::string_view payload);
  // Removes every timer with time <= up_to, then calls fn for each, in
  // (time, payload) order. fn may Add timers; those due too are popped by
  // the next call. Returns how many were popped.
  absl::StatusOr<size_t> PopUpTo(int64_t up_to, const std::function<void(int64_t, std::string_view)>& fn);

 private:
  TimerQueue(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) : db_(db), cf_(cf) {}
  absl::Status WritePending();

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::vector<std::string> pending_;  // encoded keys not yet written
  // No timer is earlier than this. Starts at the minimum: timers may be on
  // disk from before (a restore).
  int64_t min_time_ = INT64_MIN;
  std::vector<std::pair<int64_t, std::string>> due_;
};

}  // namespace vstream
