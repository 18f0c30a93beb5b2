#pragma once
// The layout of every RocksDB key of keyed state:
//
//   [key group: 2 bytes big-endian][varint32 n][key: n bytes]
//   [varint32 m][namespace: m bytes][user key: rest]
//
// The key group comes first, so the key groups of one subtask (a contiguous
// range) are one contiguous range of each column family: the unit of
// snapshotting and of redistribution on rescale. The length prefixes make
// (key group, key, namespace) prefix-free, so a prefix scan of one key and
// namespace sees exactly that key's entries in that namespace. The user key
// (MapState's map key) is the rest and needs no length. Other kinds leave it
// empty. An empty namespace is the "void namespace" of states without one.
//
// Stateless functions; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

namespace vstream {

// Key groups are numbered 0 .. kMaxKeyGroups - 1 (they fit in 2 bytes).
constexpr int kMaxKeyGroups = 1 << 16;

// Appends [key group][varint n][key].
void AppendStateKeyPrefix(int key_group, std::string_view key, std::string* out);
// Appends [varint m][namespace].
void AppendStateNamespace(std::string_view ns, std::string* out);
// Appends the 2 bytes of the first RocksDB key of a key group.
void AppendKeyGroupBytes(int key_group, std::string* out);
// 8 bytes big-endian (byte order is numeric order; an interval join's
// sequence numbers).
void AppendBigEndian64(uint64_t v, std::string* out);
// A time as 8 bytes big-endian with the sign bit flipped, so that byte
// order is time order (timer keys, interval join map keys), and back.
void AppendOrderedTime(int64_t time, std::string* out);
int64_t ReadOrderedTime(const char* p);
// Turns *prefix into the smallest key after every key that starts with it
// (drops trailing 0xff bytes, then adds one to the last): the exclusive
// upper bound of a prefix scan. Empty if there is none (all 0xff).
void ToPrefixSuccessor(std::string* prefix);

// A decoded key; the views point into the decoded bytes.
struct StateKeyView {
  int key_group = 0;
  std::string_view key;
  std::string_view ns;
  std::string_view user_key;
};

// Decodes a RocksDB key of keyed state. False when the bytes are malformed.
bool DecodeStateKey(std::string_view raw, StateKeyView* out);
// The size of raw's [key group][varint n][key] (the part every entry of
// one key shares, whatever its namespace and user key), or 0 when raw does
// not start with one. RocksDB's prefix bloom filters use it (a MapState's
// range scans of a key that is not there skip the SST files).
size_t StateKeyPrefixSize(std::string_view raw);

// LEB128 varints, as RocksDB's PutVarint32 / GetVarint32.
void AppendVarint32(uint32_t v, std::string* out);
bool ReadVarint32(std::string_view* in, uint32_t* v);

// The smallest string greater than every string starting with `prefix`
// (the exclusive upper bound of a prefix scan). Empty when there is none.
std::string PrefixSuccessor(std::string_view prefix);

}  // namespace vstream
