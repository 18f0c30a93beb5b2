#pragma once
// A network buffer: many records in the compact row format
// (runtime/row_codec.h), or the end-of-partition event.

#include <cstdint>
#include <string>

namespace vstream {

// Records are appended until a buffer reaches this size, then it is sent.
inline constexpr size_t kNetworkBufferBytes = 32 * 1024;

struct NetworkBuffer {
  std::string data;
  int32_t num_records = 0;
  bool end_of_partition = false;
};

}  // namespace vstream
