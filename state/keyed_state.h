#pragma once
// The base of every state handle (ValueState, ListState, MapState,
// ReducingState, AggregatingState), as Flink's InternalKvState.
//
// A handle is created by KeyedStateBackend::Get*State and owned by the
// backend. It works on the backend's current key (SetCurrentKey) and on a
// namespace passed per call (a window, or "" for none): each access composes
// [state id][key group][key][namespace] in a buffer the handle reuses, so the
// record path allocates nothing once buffers have grown.
//
// Thread-compatible: used by the backend's task thread only.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "state/state_behavior.h"
#include "state/state_clock.h"

namespace vstream {

class WriteBackCache;

// A state's number within its backend (the order of registration).
using StateId = int;

// The outcome of a read.
enum class StateLookup {
  kFound,   // the value was read
  kAbsent,  // no value: never written, cleared, or expired
};

// What a read-modify-write's function did to the value it was given.
enum class StateChange {
  kNone,     // nothing (fn left the value as it was): not written, not marked dirty
  kChanged,  // changed in place: store it
  kCleared,  // clear the value
};

// Internal: what the handles of one backend share. Owned by the backend.
struct StateContext {
  rocksdb::DB* db = nullptr;
  rocksdb::ReadOptions read_options;
  rocksdb::WriteOptions write_options;
  // Reused by every single write: DB::Put would build a fresh batch each time.
  rocksdb::WriteBatch write_batch;
  const StateClock* clock = nullptr;
  WriteBackCache* cache = nullptr;  // null when the write-back cache is off
  std::string current_key;          // [key group][varint n][key], see state_key.h
};

class KeyedState {
 public:
  virtual ~KeyedState() = default;
  KeyedState(const KeyedState&) = delete;
  KeyedState& operator=(const KeyedState&) = delete;

  StateId id() const { return id_; }
  const std::string& name() const { return name_; }
  StateKind kind() const { return behavior_->kind; }
  int64_t ttl_ms() const { return behavior_->ttl_ms; }
  // Whether the state goes through the backend's write-back cache.
  bool cached() const { return cached_; }

 protected:
  KeyedState(StateContext& ctx, StateId id, std::string name, rocksdb::ColumnFamilyHandle* cf,
             std::shared_ptr<const StateBehavior> behavior, bool cached);

  // key_ = [state id: 2 bytes][key prefix][namespace]; the key prefix is the
  // current key unless given.
  void ComposeKey(std::string_view ns) { ComposeKey(ctx_.current_key, ns); }
  void ComposeKey(std::string_view key_prefix, std::string_view ns);
  // The RocksDB key of key_, and key_ itself as the write-back cache's key.
  rocksdb::Slice rocks_key() const { return rocksdb::Slice(key_.data() + 2, key_.size() - 2); }
  std::string_view cache_key() const { return key_; }

  int64_t NowIfTimed() const { return behavior_->timed() ? ctx_.clock->NowMillis() : 0; }
  bool Expired(int64_t write_ms, int64_t now_ms) const {
    return behavior_->timed() && now_ms - write_ms >= behavior_->ttl_ms;
  }

  // Reads the value of rocks_key() from RocksDB. *payload (valid until the
  // next read) excludes the write time. kAbsent when missing or expired.
  absl::StatusOr<StateLookup> ReadPayload(int64_t now_ms, std::string_view* payload);
  // The stored form of `payload` written at `now_ms`, in write_buf_.
  rocksdb::Slice StoredForm(std::string_view payload, int64_t now_ms);
  absl::Status PutStored(const rocksdb::Slice& stored);
  absl::Status MergeStored(const rocksdb::Slice& operand);
  absl::Status DeleteStored();
  // Clears the value at the composed key: in the write-back cache when the
  // state uses it (a dirty "absent" entry), else in RocksDB.
  absl::Status ClearCurrent();

  StateContext& ctx_;
  const StateId id_;
  const std::string name_;
  rocksdb::ColumnFamilyHandle* const cf_;
  const std::shared_ptr<const StateBehavior> behavior_;  // shared with RocksDB's hooks
  const bool cached_;

  std::string key_;
  rocksdb::PinnableSlice read_buf_;
  std::string write_buf_;
};

// Converts a RocksDB status; only state/ sees rocksdb::Status.
absl::Status FromRocksStatus(const rocksdb::Status& s, std::string_view what);

}  // namespace vstream
