#pragma once
// This process's resident memory, from /proc/self/statm (Linux).

#include <cstdint>

namespace vstream {

// Bytes resident now; 0 if unknown.
int64_t ResidentBytes();

}  // namespace vstream
