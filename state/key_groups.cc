#include "state/key_groups.h"

#include <cstring>

namespace vstream {

uint64_t HashKeyBytes(std::string_view bytes) {
  // 64-bit FNV-1a over 8-byte words, then a murmur3 finalizer.
  uint64_t h = 0xcbf29ce484222325ull ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<uint8_t>(bytes[i])) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

KeyGroupRange KeyGroupRangeForSubtask(int max_parallelism, int parallelism, int subtask) {
  // Inverse of SubtaskForKeyGroup: the smallest kg with kg*p/maxp == subtask.
  int start = (subtask * max_parallelism + parallelism - 1) / parallelism;
  int end = ((subtask + 1) * max_parallelism + parallelism - 1) / parallelism - 1;
  return {start, end};
}

}  // namespace vstream
