#include "state/recent_keys_filter.h"

#include <algorithm>

#include "spdlog/spdlog.h"
#include "state/key_groups.h"

namespace vstream {

RecentKeysFilter::RecentKeysFilter(std::string name, int64_t ttl_ms, size_t max_bytes, size_t first_keys)
    : name_(std::move(name)),
      ttl_ms_(ttl_ms),
      span_ms_(std::max<int64_t>(ttl_ms / 4, 1)),
      max_bytes_(max_bytes),
      last_capacity_(std::max<size_t>(first_keys, 64)) {}

int64_t RecentKeysFilter::Bucket(int64_t ms) const {
  const int64_t q = ms / span_ms_;
  return (ms % span_ms_ < 0) ? q - 1 : q;  // rounded down
}

bool RecentKeysFilter::Expired(int64_t bucket, int64_t now_ms) const {
  // The bucket's last write time, bucket * span + span - 1, is expired
  // (now - write >= ttl, as KeyedState::Expired): so is every other.
  const int64_t last = bucket * span_ms_ + (span_ms_ - 1);
  return now_ms - last >= ttl_ms_;
}

void RecentKeysFilter::DropExpired(int64_t now_ms) {
  auto expired = std::remove_if(parts_.begin(), parts_.end(), [&](const Part& p) { return Expired(p.bucket, now_ms); });
  for (auto it = expired; it != parts_.end(); ++it) bytes_ -= it->words.size() * sizeof(uint64_t);
  parts_.erase(expired, parts_.end());
}

// One block (cache line) per key, picked by the hash's high bits remixed;
// the 6 bits in it by 9-bit slices of its low 54.
size_t RecentKeysFilter::BlockWord(const Part& p, uint64_t hash) {
  const size_t blocks = p.words.size() / kBlockWords;
  const auto block = static_cast<size_t>(
      (static_cast<unsigned __int128>(hash * 0x9e3779b97f4a7c15ull) * blocks) >> 64);
  return block * kBlockWords;
}

void RecentKeysFilter::Set(Part& p, uint64_t hash) {
  uint64_t* w = p.words.data() + BlockWord(p, hash);
  for (int i = 0; i < kProbes; ++i) {
    const unsigned bit = (hash >> (9 * i)) & 511;
    w[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
}

bool RecentKeysFilter::Test(const Part& p, uint64_t hash) {
  const uint64_t* w = p.words.data() + BlockWord(p, hash);
  for (int i = 0; i < kProbes; ++i) {
    const unsigned bit = (hash >> (9 * i)) & 511;
    if ((w[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) return false;
  }
  return true;
}

void RecentKeysFilter::Add(uint64_t hash, int64_t write_ms, int64_t now_ms) {
  if (!on_) return;
  const int64_t bucket = Bucket(write_ms);
  // The bucket's newest filter (the last made), if it has room.
  Part* part = nullptr;
  size_t full_capacity = 0;  // of the bucket's filter that is full
  for (auto it = parts_.rbegin(); it != parts_.rend(); ++it) {
    if (it->bucket != bucket) continue;
    if (it->count < it->capacity) part = &*it;
    else full_capacity = it->capacity;
    break;
  }
  if (part == nullptr) {
    DropExpired(now_ms);  // a map only written to frees memory too
    // A bucket's first filter holds as many keys as the last made; another
    // for a full one twice as many.
    const size_t capacity = full_capacity > 0 ? 2 * full_capacity : last_capacity_;
    const size_t blocks = (capacity * kBitsPerKey + 511) / 512;
    const size_t part_bytes = blocks * kBlockWords * sizeof(uint64_t);
    if (bytes_ + part_bytes > max_bytes_) return TurnOff(bytes_ + part_bytes);
    parts_.push_back(Part{bucket, capacity, 0, std::vector<uint64_t>(blocks * kBlockWords, 0)});
    bytes_ += part_bytes;
    last_capacity_ = capacity;
    part = &parts_.back();
  }
  Set(*part, hash);
  ++part->count;
}

bool RecentKeysFilter::MayContain(uint64_t hash, int64_t now_ms) {
  if (!on_) return true;
  DropExpired(now_ms);
  for (const Part& p : parts_) {
    if (Test(p, hash)) return true;
  }
  return false;
}

void RecentKeysFilter::AddKey(std::string_view key) {
  const uint64_t hash = HashKeyBytes(key);
  if (!MayContain(hash, 0)) Add(hash, 0, 0);
}

bool RecentKeysFilter::MayContainKey(std::string_view key) { return MayContain(HashKeyBytes(key), 0); }

void RecentKeysFilter::TurnOff(size_t wanted_bytes) {
  spdlog::warn(
      "state '{}': its key filter would take {} bytes, over its limit of {}: off from now on (every read "
      "goes to RocksDB)",
      name_, wanted_bytes, max_bytes_);
  on_ = false;
  parts_.clear();
  parts_.shrink_to_fit();
  bytes_ = 0;
}

}  // namespace vstream
