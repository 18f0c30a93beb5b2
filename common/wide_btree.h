#pragma once
// absl's B-tree map and set with larger nodes. absl::btree_map and
// absl::btree_set aim at 256-byte nodes; with slots of 56-72 bytes (keys
// of up to 40 bytes held inline, so that comparisons follow no pointer)
// that is absl's minimum of 4 slots a node, and a tree of 1.5 million
// entries (an operator's timers) about 11 levels deep: a
// cache miss a level on every insert and lookup. kWideBtreeNodeBytes nodes
// hold 4 times as many slots, so the trees are about half as deep.
//
// absl sets the node size only through its internal templates: these are
// the classes absl::btree_map and absl::btree_set are built on (absl
// 20220623, Debian 12's), with the node size changed, and have their
// interface.

#include <functional>
#include <memory>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"

namespace vstream {

inline constexpr int kWideBtreeNodeBytes = 1024;

template <typename Key, typename Value, typename Compare = std::less<Key>>
using WideBtreeMap = absl::container_internal::btree_map_container<
    absl::container_internal::btree<absl::container_internal::map_params<
        Key, Value, Compare, std::allocator<std::pair<const Key, Value>>, kWideBtreeNodeBytes, /*IsMulti=*/false>>>;

template <typename Key, typename Compare = std::less<Key>>
using WideBtreeSet = absl::container_internal::btree_set_container<absl::container_internal::btree<
    absl::container_internal::set_params<Key, Compare, std::allocator<Key>, kWideBtreeNodeBytes, /*IsMulti=*/false>>>;

}  // namespace vstream
