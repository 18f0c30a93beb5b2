#pragma once
// ListState: a list of values per (current key, namespace), as Flink's
// ListState. Add is a blind write (a RocksDB merge that appends); reads see
// the elements in the order they were added. With a TTL, elements expire one
// by one.
//
// Thread-compatible: used by the backend's task thread only.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "state/keyed_state.h"

namespace vstream {

class ListState final : public KeyedState {
 public:
  // Appends `value` to the list of the current key in `ns`.
  absl::Status Add(std::string_view ns, std::string_view value);
  // Replaces the list with `values` (an empty vector clears it).
  absl::Status Update(std::string_view ns, const std::vector<std::string>& values);
  // Reads the list into *values, reusing its strings. kAbsent when empty.
  absl::StatusOr<StateLookup> Get(std::string_view ns, std::vector<std::string>* values);
  // Calls `fn` on each live element in order; the view is valid during the call.
  absl::Status ForEach(std::string_view ns, const std::function<void(std::string_view)>& fn);
  absl::Status Clear(std::string_view ns);

 private:
  friend class KeyedStateBackend;
  using KeyedState::KeyedState;
};

}  // namespace vstream
