#pragma once
// MapState: a map from user keys to values per (current key, namespace), as
// Flink's MapState. Each map entry is its own RocksDB entry,
// [key group][key][namespace][user key], so entries are read and written one
// by one and the entries of one key and namespace are one prefix scan. With a
// TTL, entries expire one by one.
//
// Thread-compatible: used by the backend's task thread only.

#include <functional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "state/keyed_state.h"

namespace vstream {

class MapState final : public KeyedState {
 public:
  absl::Status Put(std::string_view ns, std::string_view user_key, std::string_view value);
  absl::StatusOr<StateLookup> Get(std::string_view ns, std::string_view user_key,
                                  std::string* value);
  absl::Status Remove(std::string_view ns, std::string_view user_key);
  // Calls `fn` on each live entry in user-key byte order; the views are valid
  // during the call.
  absl::Status ForEach(std::string_view ns,
                       const std::function<void(std::string_view user_key,
                                                std::string_view value)>& fn);
  // Calls `fn` on each live entry with from <= user key < to, in user-key
  // byte order, until it returns false; an empty `to` means no upper bound.
  // One RocksDB seek to `from`: with order-preserving user keys (e.g.
  // big-endian times) this reads exactly a range, without visiting the
  // entries (or deleted entries) before it. The views are valid during the
  // call; `fn` must not use this MapState.
  absl::Status ForEachInRange(std::string_view ns, std::string_view from, std::string_view to,
                              absl::FunctionRef<bool(std::string_view user_key, std::string_view value)> fn);
  // Whether the map of the current key in `ns` has no live entry.
  absl::StatusOr<bool> IsEmpty(std::string_view ns);
  // Removes every entry of the current key in `ns` (one WriteBatch).
  absl::Status Clear(std::string_view ns);

 private:
  friend class KeyedStateBackend;
  using KeyedState::KeyedState;

  void ComposeEntryKey(std::string_view ns, std::string_view user_key);
  // Scans the entries of the current key in `ns`; `fn` returns false to stop.
  absl::Status Scan(std::string_view ns,
                    const std::function<bool(std::string_view user_key, std::string_view value)>& fn);

  std::string upper_bound_;
};

}  // namespace vstream
