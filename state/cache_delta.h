#pragma once
// The dirty entries of a write-back cache, as a snapshot keeps them: a file
// CACHE-DELTA beside a RocksDB checkpoint, holding puts and deletes by
// column-family name, newer than everything in the checkpoint. Restores
// apply it on top (KeyedStateBackend on open; a rescaling restore to the
// key groups it copies). Writing it costs one sequential file per snapshot;
// pushing the same entries through RocksDB costs memtable inserts, L0
// files, compactions and later tombstones (docs/benchmarks.md: a 62%
// throughput cost at a checkpoint a second).
//
// Format: "vstream-cache-delta 1\n", then records
//   [op: 'P' | 'D'][varint32 n][cf name][varint32 n][key][varint32 n][value] (P only)
// and "END" last, so a truncated file is detected.
//
// Thread-compatible.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace vstream {

class CacheDelta {
 public:
  static constexpr char kFileName[] = "CACHE-DELTA";

  // `reserve_bytes`: room for the file's bytes, so that a delta as large as
  // the last one grows without reallocating.
  explicit CacheDelta(size_t reserve_bytes = 0);

  // value = value_prefix + value.
  void AddPut(std::string_view cf, std::string_view key, std::string_view value_prefix, std::string_view value);
  void AddDelete(std::string_view cf, std::string_view key);
  bool empty() const { return records_ == 0; }
  size_t records() const { return records_; }
  // The file's bytes so far, without the end marker.
  size_t bytes() const { return body_.size(); }
  // The file's bytes, moved out: the delta is spent.
  std::string Finish() &&;

  // Calls put(cf, key, value) or del(cf, key) per record, in order.
  // DataLoss for malformed bytes (nothing is applied past the error).
  static absl::Status Parse(std::string_view bytes,
                            const std::function<absl::Status(std::string_view cf, std::string_view key,
                                                             const std::string_view* value)>& fn);

 private:
  std::string body_;  // the header, then the records
  size_t records_ = 0;
};

}  // namespace vstream
