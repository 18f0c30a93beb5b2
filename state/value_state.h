#pragma once
// ValueState: one value per (current key, namespace), as Flink's ValueState.
//
//   backend.SetCurrentKey(key_group, key);
//   ASSIGN_OR_RETURN(StateLookup r, last->Get(window, &value));
//   RETURN_IF_ERROR(last->Put(window, value));
//
// With `write_back_cache` in its descriptor, reads and writes go to the
// backend's write-back cache, and reach RocksDB on eviction or Flush().
//
// Thread-compatible: used by the backend's task thread only.

#include <string>
#include <string_view>

#include "state/keyed_state.h"

namespace vstream {

class ValueState final : public KeyedState {
 public:
  // Reads the value of the current key in `ns` into *value.
  absl::StatusOr<StateLookup> Get(std::string_view ns, std::string* value);
  absl::Status Put(std::string_view ns, std::string_view value);
  absl::Status Clear(std::string_view ns);

 private:
  friend class KeyedStateBackend;
  using KeyedState::KeyedState;

  // The same on an explicit key prefix ([key group][key]), for the backend's
  // Get/Put/Delete by StateId.
  absl::StatusOr<StateLookup> GetAt(std::string_view key_prefix, std::string_view ns,
                                    std::string* value);
  absl::Status PutAt(std::string_view key_prefix, std::string_view ns, std::string_view value);
  absl::Status ClearAt(std::string_view key_prefix, std::string_view ns);

  absl::StatusOr<StateLookup> GetComposed(std::string* value);
  absl::Status PutComposed(std::string_view value);
  absl::Status ClearComposed();
};

}  // namespace vstream
