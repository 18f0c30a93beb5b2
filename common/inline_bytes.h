#pragma once
// InlineBytes<N>: a byte string that keeps up to N bytes inside itself and
// only longer ones on the heap. For keys held by the million in hash tables
// and B-trees (state cache entries, timers): comparing two of them reads
// the memory the container already fetched instead of following a pointer
// to a string elsewhere, a cache miss per comparison once there are more
// keys than fit in the CPU's caches (docs/benchmarks.md). std::string keeps
// only 15 bytes inline, less than a typical state key.
//
// Copyable and movable; ordered and compared as its bytes.

#include <bit>
#include <compare>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

namespace vstream {

template <size_t N>
class InlineBytes {
 public:
  InlineBytes() = default;
  explicit InlineBytes(std::string_view bytes) { assign(bytes); }
  InlineBytes(const InlineBytes& other) {
    if (other.size_ <= N) {
      CopyInline(other);
    } else {
      assign(other.view());
    }
  }
  InlineBytes& operator=(const InlineBytes& other) {
    if (this != &other) assign(other.view());
    return *this;
  }
  InlineBytes(InlineBytes&& other) noexcept { *this = std::move(other); }
  InlineBytes& operator=(InlineBytes&& other) noexcept {
    if (this == &other) return *this;
    if (other.size_ <= N) {
      CopyInline(other);
    } else {
      size_ = other.size_;
      heap_ = std::move(other.heap_);
      heap_capacity_ = other.heap_capacity_;
      other.heap_capacity_ = 0;
    }
    other.size_ = 0;
    return *this;
  }

  // Replaces the bytes (which may be a part of this object's own). A heap
  // buffer, once grown, is kept for later long values: reassigning
  // allocates only to grow.
  void assign(std::string_view bytes) {
    if (bytes.size() <= N) {
      if (!bytes.empty()) std::memmove(inline_, bytes.data(), bytes.size());
      size_ = static_cast<uint32_t>(bytes.size());
      return;
    }
    if (heap_capacity_ < bytes.size()) {
      auto grown = std::make_unique_for_overwrite<char[]>(bytes.size());
      std::memcpy(grown.get(), bytes.data(), bytes.size());
      heap_ = std::move(grown);
      heap_capacity_ = static_cast<uint32_t>(bytes.size());
    } else {
      std::memmove(heap_.get(), bytes.data(), bytes.size());
    }
    size_ = static_cast<uint32_t>(bytes.size());
  }

  std::string_view view() const { return std::string_view(data(), size_); }
  const char* data() const { return size_ <= N ? inline_ : heap_.get(); }
  size_t size() const { return size_; }
  // Bytes held on the heap: the buffer of the longest value so far beyond
  // N, kept while shorter ones are inline (0 if there never was one).
  size_t heap_bytes() const { return heap_capacity_; }

  friend bool operator==(const InlineBytes& a, const InlineBytes& b) { return a.view() == b.view(); }
  // As their bytes (memcmp's order), the first 8 as one number: B-trees of
  // timers and keys compare at every level, and most pairs differ there.
  friend std::strong_ordering operator<=>(const InlineBytes& a, const InlineBytes& b) {
    if (a.size_ >= 8 && b.size_ >= 8) {
      const uint64_t x = LoadBigEndian64(a.data()), y = LoadBigEndian64(b.data());
      if (x != y) return x <=> y;
    }
    return a.view() <=> b.view();
  }

 private:
  static uint64_t LoadBigEndian64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
  }
  // Takes an inline value's bytes: all N, a fixed-size copy (a few moves),
  // rather than size_ of them (a call to memcpy); containers move their
  // elements on every insert into the middle of a node.
  void CopyInline(const InlineBytes& other) {
    std::memcpy(inline_, other.inline_, N);
    size_ = other.size_;
  }

  uint32_t size_ = 0;
  uint32_t heap_capacity_ = 0;
  char inline_[N] = {};  // all N copied when inline (CopyInline)
  std::unique_ptr<char[]> heap_;
};

}  // namespace vstream
