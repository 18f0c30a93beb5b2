#pragma once
// MapState: a map from user keys to values per (current key, namespace), as
// Flink's MapState. Each map entry is its own RocksDB entry,
// [key group][key][namespace][user key], so entries are read and written one
// by one and the entries of one key and namespace are one prefix scan. With a
// TTL, entries expire one by one; a filter of the recent keys may then answer
// reads of entries never written without RocksDB (filter_recent_keys).
//
// Thread-compatible: used by the backend's task thread only.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "state/key_groups.h"
#include "state/keyed_state.h"
#include "state/recent_keys_filter.h"
#include "state/state_log.h"

namespace rocksdb {
class Iterator;
}  // namespace rocksdb

namespace vstream {

class MapState final : public KeyedState {
 public:
  absl::Status Put(std::string_view ns, std::string_view user_key, std::string_view value);
  absl::StatusOr<StateLookup> Get(std::string_view ns, std::string_view user_key,
                                  std::string* value);
  absl::Status Remove(std::string_view ns, std::string_view user_key);
  // Calls `fn` on each live entry in user-key byte order; the views are valid
  // during the call, and `fn` may use this MapState.
  absl::Status ForEach(std::string_view ns,
                       const std::function<void(std::string_view user_key,
                                                std::string_view value)>& fn);
  // Calls `fn` on each live entry with from <= user key < to, in user-key
  // byte order, until it returns false; an empty `to` means no upper bound.
  // One RocksDB seek to `from`: with order-preserving user keys (e.g.
  // big-endian times) this reads exactly a range, without visiting the
  // entries (or deleted entries) before it. The views are valid during the
  // call; `fn` may use this MapState (a scan within gets an iterator of its
  // own).
  absl::Status ForEachInRange(std::string_view ns, std::string_view from, std::string_view to,
                              absl::FunctionRef<bool(std::string_view user_key, std::string_view value)> fn);
  // Whether the map of the current key in `ns` has no live entry.
  absl::StatusOr<bool> IsEmpty(std::string_view ns);
  // Removes every entry of the current key in `ns` (one WriteBatch).
  absl::Status Clear(std::string_view ns);
  // Lets go of the iterator ForEachInRange keeps between calls, and of the
  // memtables and files it holds on to. The backend calls it at every
  // snapshot, once a second (the task's ticks) and on close.
  void ReleaseScan();
  // The filter of recent keys (MapStateDescriptor::filter_recent_keys); null
  // when off. For tests and diagnostics.
  const RecentKeysFilter* recent_keys() const { return recent_keys_.get(); }
  // Reads the filter answered (absent) without RocksDB.
  int64_t filtered_reads() const { return filtered_reads_; }
  // With the filter, Puts are held and written to RocksDB kMaxHeldPuts at a
  // time in one batch (one write each was a tenth of the clinical dedup
  // task's CPU), and before anything else of this state reaches RocksDB: a
  // Get the filter lets through, Remove, a scan, Clear; the backend writes
  // them before a snapshot, a flush or a scan of its own, and on close
  // (KeyedStateBackend::WriteHeldPuts). Such a state also logs every write
  // (state/state_log.h), so that snapshots need not flush its memtables.
  absl::Status WriteHeldPuts();
  static constexpr uint32_t kMaxHeldPuts = 256;

  ~MapState() override;

 private:
  friend class KeyedStateBackend;
  using KeyedState::KeyedState;

  void ComposeEntryKey(std::string_view ns, std::string_view user_key);
  // Turns the filter of recent keys on (a timed state: the backend checks);
  // a restored state first adds every live entry on disk to it (one scan of
  // the column family).
  absl::Status FilterRecentKeys(bool restored, size_t max_bytes);
  // From now on every write also goes to `log` (the backend's), which must
  // outlive this state.
  void LogWrites(StateLog* log) { log_ = log; }
  bool logged() const { return log_ != nullptr; }
  uint64_t EntryHash() const {
    const rocksdb::Slice k = rocks_key();
    return HashKeyBytes(std::string_view(k.data(), k.size()));
  }
  // Scans the entries of the current key in `ns`; `fn` returns false to stop.
  absl::Status Scan(std::string_view ns,
                    const std::function<bool(std::string_view user_key, std::string_view value)>& fn);

  std::string scan_prefix_;  // the outermost scan's: [key group][key][namespace]
  std::string upper_bound_;  // and its prefix + `to`
  // ForEachInRange's iterator, refreshed before each call: a refresh while
  // the column family's memtables and files are those it was built over
  // (no memtable switch, flush or compaction since) only moves it to the
  // latest sequence number, whereas a new iterator is built over every
  // memtable and file (q3's join probes its other side's on-disk entries
  // for each record).
  std::unique_ptr<rocksdb::Iterator> scan_;
  bool scanning_ = false;  // scan_ is in use (a scan's fn is running)
  std::unique_ptr<RecentKeysFilter> recent_keys_;
  int64_t filtered_reads_ = 0;
  rocksdb::WriteBatch held_;  // Puts not written yet (with the filter only)
  StateLog* log_ = nullptr;   // null: not logged
};

}  // namespace vstream
