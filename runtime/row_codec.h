#pragma once
// The compact binary row format used in network buffers and state.
//
//   row   := null-bitmap (ceil(n/8) bytes, bit i set = field i is null)
//            then, for each non-null field in schema order:
//              int, timestamp: zigzag varint
//              double: 8 bytes little-endian
//              bool: 1 byte
//              string: varint length, bytes
//
// Encoding appends to a caller-owned string (no allocation once it has
// grown); decoding fills a reused Row.

#include <string>
#include <string_view>

#include "runtime/types.h"

namespace vstream {

void EncodeRow(const Schema& schema, const Row& row, std::string* out);

// Decodes the row starting at data[*pos] and advances *pos. Returns false if
// the bytes are truncated or corrupt (then *row is unspecified).
bool DecodeRow(const Schema& schema, std::string_view data, size_t* pos, Row* row);

// Encodes only the given fields (a key) in the same format.
void EncodeKey(const Schema& schema, const Row& row, const std::vector<int>& key_fields,
               std::string* out);

// Whether EncodeKey writes the same bytes for rows a and b, without encoding
// either: a run of rows of one key (a window's results, all with its
// bounds) then needs its key encoded and hashed once.
bool SameKey(const Schema& schema, const Row& a, const Row& b, const std::vector<int>& key_fields);

void PutVarint64(uint64_t v, std::string* out);
bool GetVarint64(std::string_view data, size_t* pos, uint64_t* v);

}  // namespace vstream
