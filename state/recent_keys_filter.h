#pragma once
// An in-memory filter of the keys a state with a TTL holds: it answers
// "certainly absent" for most keys never written within the ttl, so a read of
// one needs no RocksDB Get. For states whose reads are mostly of new keys:
// dedup's "seen" map, where nearly every record's key is new and each
// RocksDB Get of it went through every SST file's filter (a quarter of the
// clinical workload's TaskManager CPU; docs/benchmarks.md).
//
// Bloom filters (blocks of one cache line, ~10 bits and 6 probes per key:
// about 1% false positives) per bucket of write time, ttl/4 wide. A bucket
// whose every write has expired is dropped whole, so memory follows the keys
// written within one ttl (about 1.3 bytes each) and the filter never
// forgets a live key. A bucket that fills gets another filter of twice the
// size. Beyond `max_bytes` the filter turns itself off for good: every key
// may then be present (the caller reads RocksDB), and its memory is freed.
//
// A false "may contain" costs the caller a read; a wrong "absent" would lose
// data: Add every key written, with its write time, before MayContain may be
// asked about it (a restored state: every entry on disk first). A clock that
// steps back by more than a bucket may find a bucket dropped whose entries
// RocksDB still returns (until a compaction drops them): as reads of entries
// expired before the step, which compactions drop either way.
//
// Thread-compatible: used by the state's task thread.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace vstream {

class RecentKeysFilter {
 public:
  // ttl_ms > 0: the state's time to live; kNoExpiry: keys are never
  // dropped (BufferedMapState's filter of the prefixes it wrote to RocksDB;
  // add and ask with any time, e.g. 0). name: the state's, for the log.
  // first_keys: the capacity of the first filter made (a small max_bytes
  // wants a smaller one than kMinKeys).
  RecentKeysFilter(std::string name, int64_t ttl_ms, size_t max_bytes, size_t first_keys = kMinKeys);

  // Key `hash` (HashKeyBytes, key_groups.h) written at write_ms, added at
  // now_ms (on the state's clock). A restore adds its entries with their
  // write times, which may be later than now (another TaskManager's clock
  // ahead of this one's): only now_ms decides what has expired.
  void Add(uint64_t hash, int64_t write_ms, int64_t now_ms);
  // False: no key of this hash was written within the ttl before now_ms.
  // Drops the buckets expired by now_ms.
  bool MayContain(uint64_t hash, int64_t now_ms);

  // For a filter without expiry, by key: AddKey adds HashKeyBytes(key)
  // unless the filter may hold it already (its capacity is counted in keys
  // added: a key put many times takes room once).
  void AddKey(std::string_view key);
  bool MayContainKey(std::string_view key);

  bool on() const { return on_; }
  // Bytes of the filters held.
  size_t bytes() const { return bytes_; }
  // Filters held (one or more per bucket); for tests.
  size_t parts() const { return parts_.size(); }

  static constexpr int64_t kNoExpiry = std::numeric_limits<int64_t>::max();

  // Keys per filter of a new bucket's first, at least (by default).
  static constexpr size_t kMinKeys = size_t{1} << 16;
  static constexpr size_t kBitsPerKey = 10;

 private:
  struct Part {
    int64_t bucket = 0;  // write time / span_ms_, rounded down
    size_t capacity = 0;
    size_t count = 0;
    std::vector<uint64_t> words;  // blocks of 8 words (512 bits)
  };
  static constexpr int kProbes = 6;
  static constexpr size_t kBlockWords = 8;

  int64_t Bucket(int64_t ms) const;
  // The last write time bucket b may hold has expired at now_ms.
  bool Expired(int64_t bucket, int64_t now_ms) const;
  void DropExpired(int64_t now_ms);
  // The first word of the key's block in p.words.
  static size_t BlockWord(const Part& p, uint64_t hash);
  static void Set(Part& p, uint64_t hash);
  static bool Test(const Part& p, uint64_t hash);
  void TurnOff(size_t wanted_bytes);

  const std::string name_;
  const int64_t ttl_ms_;
  const int64_t span_ms_;
  const size_t max_bytes_;
  std::vector<Part> parts_;
  size_t bytes_ = 0;
  size_t last_capacity_;  // of the latest part made (at first first_keys)
  bool on_ = true;
};

}  // namespace vstream
