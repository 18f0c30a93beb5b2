#pragma once
// Private to state/: how values are stored in RocksDB.
//
// States with a TTL prefix every stored value (and every merge operand) with
// its write time: [write time: 8 bytes big-endian epoch ms][payload]. Lists
// store a concatenation of elements, each [write time: 8 bytes, TTL'd lists
// only][varint32 n][n bytes], so that appending is a byte concatenation (a
// RocksDB merge) and elements expire one by one.
//
// Stateless functions; thread-safe (RocksDB's compaction threads use them).

#include <cstdint>
#include <string>
#include <string_view>

#include "state/state_descriptor.h"

namespace vstream {

constexpr size_t kWriteTimeBytes = 8;

void EncodeWriteTime(int64_t write_ms, char* out);  // kWriteTimeBytes bytes
void AppendWriteTime(int64_t write_ms, std::string* out);
int64_t DecodeWriteTime(const char* p);

inline bool IsExpired(int64_t write_ms, int64_t ttl_ms, int64_t now_ms) {
  return ttl_ms > 0 && now_ms - write_ms >= ttl_ms;
}

// Splits [write time][payload]. False when `stored` is too short.
bool SplitTimedValue(std::string_view stored, int64_t* write_ms, std::string_view* payload);

void AppendListElement(std::string_view element, bool timed, int64_t write_ms, std::string* out);

// Reads list elements one by one out of a stored list.
class ListElementReader {
 public:
  ListElementReader(std::string_view stored, bool timed) : rest_(stored), timed_(timed) {}
  // False at the end, or when the bytes are malformed (then !ok()).
  bool Next(std::string_view* element, int64_t* write_ms);
  bool ok() const { return ok_; }

 private:
  std::string_view rest_;
  bool timed_;
  bool ok_ = true;
};

// Appends the elements of a TTL'd list not expired at `now_ms` to *out.
// Returns the number of elements dropped, or -1 when `stored` is malformed.
int RemoveExpiredListElements(std::string_view stored, int64_t ttl_ms, int64_t now_ms,
                              std::string* out);

// Whether a stored value of a state of `kind` with `ttl_ms` still holds
// anything visible at `now_ms`.
bool IsLiveValue(StateKind kind, int64_t ttl_ms, std::string_view stored, int64_t now_ms);

}  // namespace vstream
