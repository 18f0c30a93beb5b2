#pragma once
// StateLog: every write to a backend's logged column families (map states
// with a filter of recent keys: dedup's `seen`) since RocksDB last flushed
// them, as Flink's changelog state backend (FLIP-158) keeps one. A snapshot
// then need not flush those memtables: it holds the SST files as they are
// plus the log's segments, and a restore applies the segments in order on
// top of the files. Flushed once a second by every checkpoint, the dedup's
// random keys made an L0 file a second that universal compaction merged
// again and again (clinical at 14,000 msg/s: 1.5 CPU s of compaction per
// subtask in 20 s, docs/benchmarks.md); with the log, the column family is
// flushed once its log reaches KeyedStateBackend's limit.
//
// A segment is sealed at each snapshot (and when KeyedStateBackend's
// MaintainStateLog starts a flush) and
// never changes: a checkpoint uploads the segments earlier ones did not,
// and references the others, as it does SST files. Segments are files
// named kFilePrefix + a 10-digit sequence number (so names sort in write
// order) in CacheDelta's format (state/cache_delta.h): puts and deletes by
// column family. Replaying a segment whose writes the files already hold
// changes nothing (puts and deletes only, never merge operands), so the
// log may safely hold more than the files lack.
//
// Thread-compatible: the backend's task thread writes and seals it; a
// snapshot's upload reads the sealed segments' bytes, which never change.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "state/cache_delta.h"

namespace vstream {

class StateLog {
 public:
  static constexpr std::string_view kFilePrefix = "STATE-LOG-";

  struct Segment {
    std::string name;                          // kFilePrefix + sequence number
    std::shared_ptr<const std::string> bytes;  // the file
  };

  void AddPut(std::string_view cf, std::string_view key, std::string_view value) {
    open_.AddPut(cf, key, std::string_view(), value);
  }
  void AddDelete(std::string_view cf, std::string_view key) { open_.AddDelete(cf, key); }

  // Seals the writes since the last Seal into a segment (none without writes).
  void Seal();
  // The sealed segments, oldest first.
  const std::vector<Segment>& segments() const { return segments_; }
  // The first `n` segments are in RocksDB's SST files: forgets them.
  void DropFirst(size_t n);
  // Bytes of the segments and of the writes not sealed yet.
  size_t bytes() const { return sealed_bytes_ + (open_.empty() ? 0 : open_.bytes()); }

  // Whether `name` is a segment's file name.
  static bool IsSegmentFile(std::string_view name);

 private:
  CacheDelta open_;
  std::vector<Segment> segments_;
  size_t sealed_bytes_ = 0;
  uint64_t next_sequence_ = 1;
};

// The files a restore applies on top of a snapshot's SST files in `dir`, in
// this order: its state log segments in write order, then its CACHE-DELTA
// (the write-back cache's entries, state/cache_delta.h). Paths; only those
// present. DataLoss if the directory cannot be listed.
absl::StatusOr<std::vector<std::string>> SnapshotDeltaFiles(const std::string& dir);

}  // namespace vstream
