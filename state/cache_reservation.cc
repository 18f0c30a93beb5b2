#include "state/cache_reservation.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace vstream {

namespace {

void NoopDeleter(const rocksdb::Slice& /*key*/, void* /*value*/) {}

}  // namespace

CacheReservation::~CacheReservation() {
  for (rocksdb::Cache::Handle* h : handles_) cache_->Release(h, /*erase_if_last_ref=*/true);
}

absl::Status CacheReservation::GrowTo(size_t bytes) {
  while (reserved_bytes() < bytes) {
    // A key unique in the cache while this reservation lives: a tag, its
    // address and the chunk number. RocksDB's own keys are 16 bytes long, so
    // this 17-byte key never meets one of them.
    char key[1 + 2 * sizeof(uint64_t)];
    const auto self = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(this));
    const uint64_t chunk = handles_.size();
    key[0] = 'v';
    std::memcpy(key + 1, &self, sizeof(self));
    std::memcpy(key + 1 + sizeof(self), &chunk, sizeof(chunk));
    rocksdb::Cache::Handle* handle = nullptr;
    rocksdb::Status s = cache_->Insert(rocksdb::Slice(key, sizeof(key)), nullptr, kChunkBytes,
                                       &NoopDeleter, &handle);
    if (!s.ok()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot reserve state cache memory: ", s.ToString()));
    }
    handles_.push_back(handle);
  }
  return absl::OkStatus();
}

}  // namespace vstream

