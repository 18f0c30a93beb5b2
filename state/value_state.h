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

#include "absl/functional/function_ref.h"
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
  // Read-modify-write with one cache lookup: fn gets whether a value is
  // present and the value to change in place, and says whether it changed
  // it, cleared it, or neither (then nothing is written, and the value is
  // not marked dirty).
  absl::Status ModifyAt(std::string_view key_prefix, std::string_view ns,
                        absl::FunctionRef<StateChange(bool present, std::string* value)> fn);

  absl::StatusOr<StateLookup> GetComposed(std::string* value);
  absl::Status PutComposed(std::string_view value);
  absl::Status ClearComposed();

  std::string update_buf_;  // ModifyAt without the cache
};

}  // namespace vstream
