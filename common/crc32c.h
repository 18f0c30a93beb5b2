#pragma once
// CRC-32C (Castagnoli), the checksum of RocksDB's and LevelDB's log records,
// for records this project writes to its own logs. Table-driven; a few
// hundred MB/s, far more than the disks it guards.

#include <cstdint>
#include <string_view>

namespace vstream {

// Extends `crc` (0 to start) with `data`.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace vstream
