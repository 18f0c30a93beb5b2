#pragma once
// The dirty entries of a write-back cache (and the in-memory timers and
// buffered map entries, KeyedStateBackend::AddSnapshotDelta), as a snapshot
// keeps them: a file
// CACHE-DELTA beside a RocksDB checkpoint, holding puts and deletes by
// column-family name, newer than everything in the checkpoint. Restores
// apply it on top (KeyedStateBackend on open; a rescaling restore to the
// key groups it copies). Writing it costs one sequential file per snapshot;
// pushing the same entries through RocksDB costs memtable inserts, L0
// files, compactions and later tombstones (docs/benchmarks.md: a 62%
// throughput cost at a checkpoint a second).
//
// Format 2: "vstream-cache-delta 2\n", then records
//   'F' [varint32 n][cf name]              the column family of what follows
//   'P' [varint32 n][key][varint32 n][value]
//   'D' [varint32 n][key]
// and "END" last, so a truncated file is detected. A column family is named
// once per run of its records, not per record: for timers the name was most
// of each record's bytes. Format 1 (snapshots taken before format 2) is still
// read: 'P' | 'D' records that each carry [varint32 n][cf name] first.
//
// Thread-compatible.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

namespace vstream {

class CacheDelta {
 public:
  static constexpr char kFileName[] = "CACHE-DELTA";

  // `reserve_bytes`: room for the file's bytes, so that a delta as large as
  // the last one grows without reallocating.
  explicit CacheDelta(size_t reserve_bytes = 0);
  // The same, writing into `buffer` (cleared; its capacity kept): a buffer
  // a DeltaBuffers kept from an earlier snapshot.
  CacheDelta(std::string buffer, size_t reserve_bytes);

  // value = value_prefix + value.
  void AddPut(std::string_view cf, std::string_view key, std::string_view value_prefix, std::string_view value);
  void AddDelete(std::string_view cf, std::string_view key);
  // Appends `n` records already in the file's 'P' format (EncodePut).
  void AddEncodedPuts(std::string_view cf, std::string_view records, size_t n);
  // A 'P' record made ahead (BufferedMapState keeps its entries so):
  // EncodedPutBytes of them, written at `out` by EncodePut; its value starts
  // EncodedPutValueOffset bytes in.
  static size_t EncodedPutBytes(size_t key_size, size_t value_size);
  static size_t EncodedPutValueOffset(size_t key_size, size_t value_size);
  static void EncodePut(std::string_view key, std::string_view value, char* out);
  // Appends the records of `other`.
  void Append(const CacheDelta& other);
  // Room for `more` bytes of records beyond those so far.
  void Reserve(size_t more) { body_.reserve(body_.size() + more); }
  bool empty() const { return records_ == 0; }
  size_t records() const { return records_; }
  // The file's bytes so far, without the end marker.
  size_t bytes() const { return body_.size(); }
  // The file's bytes, moved out: the delta is spent.
  std::string Finish() &&;

  // Calls put(cf, key, value) or del(cf, key) per record, in order.
  // DataLoss for malformed bytes (nothing is applied past the error).
  using RecordFn =
      std::function<absl::Status(std::string_view cf, std::string_view key, const std::string_view* value)>;
  static absl::Status Parse(std::string_view bytes, const RecordFn& fn);
  // Parse of the whole file `path` (a restore's CACHE-DELTA or state log
  // segment); DataLoss if it cannot be read.
  static absl::Status ParseFile(const std::string& path, const RecordFn& fn);

 private:
  void SetColumnFamily(std::string_view cf);

  std::string body_;  // the header, then the records
  std::string cf_;    // the column family the records are in now
  bool cf_set_ = false;
  size_t records_ = 0;
};

// The buffer of a snapshot's CACHE-DELTA, kept for the next snapshot once
// the upload has written it (IncrementalSnapshotter::Upload). A new buffer
// for every snapshot was new memory for the task thread at every checkpoint
// trigger: pages the kernel zeroes on first touch (a 2 MiB huge page at a
// time, the heap being on them), and copies as the string grew past the
// synchronous part's records, which is all the reservation knew of
// (docs/benchmarks.md, "The snapshot's CACHE-DELTA buffer kept"). At most
// one buffer of at most kMaxBytes is kept: memory outside the state budget,
// as large as the largest delta so far (it does not shrink).
//
// Thread-safe: the task thread takes, an upload thread gives back.
class DeltaBuffers {
 public:
  static constexpr size_t kMaxBytes = size_t{64} << 20;
  // The buffer kept (empty, with its capacity), or an empty string.
  std::string Take();
  // `buffer` is written out: kept for the next Take() if its capacity is
  // larger than the one kept's and at most kMaxBytes, else freed.
  void Give(std::string buffer);

 private:
  std::mutex mu_;
  std::string kept_;
};

// Records a contributor left for later (KeyedStateBackend::DirtyCacheEntries):
// the work that appends them to a snapshot's delta, all at once or a part at
// a time, so that a task thread can do it between batches of its input
// (runtime/task_checkpoints.h). The contributor keeps what those records
// are until the work is done or destroyed.
class LaterDelta {
 public:
  // Appends up to *budget more records to the delta, counting *budget down
  // (at least by one per call); true once every record is appended.
  using Step = std::function<bool(CacheDelta* delta, size_t* budget)>;
  explicit LaterDelta(Step step) : step_(std::move(step)) {}
  // A step of at most *budget records. Once done, the work is dropped (and
  // the contributor freed of it); later calls return true.
  bool Copy(CacheDelta* delta, size_t* budget);
  // Every record left.
  void operator()(CacheDelta* delta) {
    size_t unlimited = SIZE_MAX;
    Copy(delta, &unlimited);
  }
  bool done() const { return step_ == nullptr; }

 private:
  Step step_;
};

}  // namespace vstream
