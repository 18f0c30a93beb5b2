#pragma once
// Private to runtime/operators: the byte-level helpers of accumulator state
// (accumulators.cc, accumulators_sketch.cc). Varints are those of
// runtime/row_codec.h; doubles are 8 bytes little-endian, as in rows.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "runtime/row_codec.h"

namespace vstream {
namespace accumulators_internal {

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

inline size_t VarintLength(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes the varint of v to buf (10 bytes suffice) and returns its length.
inline size_t EncodeVarint(uint64_t v, char* buf) {
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  return n;
}

// GetVarint64 with the one-byte case (small counts) inline.
inline bool GetVarint(std::string_view data, size_t* pos, uint64_t* v) {
  if (*pos < data.size() && static_cast<uint8_t>(data[*pos]) < 0x80) {
    *v = static_cast<uint8_t>(data[(*pos)++]);
    return true;
  }
  return GetVarint64(data, pos, v);
}

// Where encoders write: appends to a std::string (StringSink) or fills a
// small stack buffer (BufferSink, for sections without strings), both
// without allocating once warm.
class StringSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  void Varint(uint64_t v) {
    char buf[10];
    out_->append(buf, EncodeVarint(v, buf));
  }
  void Fixed64(uint64_t v) {
    char buf[8];
    std::memcpy(buf, &v, 8);
    out_->append(buf, 8);
  }
  void Double(double v) {
    char buf[8];
    std::memcpy(buf, &v, 8);
    out_->append(buf, 8);
  }
  void Bytes(std::string_view b) { out_->append(b.data(), b.size()); }

 private:
  std::string* out_;
};

class BufferSink {
 public:
  static constexpr size_t kCapacity = 32;
  void Varint(uint64_t v) { size_ += EncodeVarint(v, buf_ + size_); }
  void Fixed64(uint64_t v) {
    std::memcpy(buf_ + size_, &v, 8);
    size_ += 8;
  }
  void Double(double v) {
    std::memcpy(buf_ + size_, &v, 8);
    size_ += 8;
  }
  void Bytes(std::string_view) { std::abort(); }  // never: strings go to StringSink
  std::string_view view() const { return std::string_view(buf_, size_); }

 private:
  char buf_[kCapacity + 10];  // + one varint of slack
  size_t size_ = 0;
};

inline bool GetDouble(std::string_view data, size_t* pos, double* v) {
  if (data.size() - *pos < 8) return false;  // *pos <= size() always
  std::memcpy(v, data.data() + *pos, 8);
  *pos += 8;
  return true;
}

// Replaces (*s)[begin, begin + old_len) by `bytes`: a copy when the length
// is unchanged, else a move of the tail (no allocation within capacity).
inline void Patch(std::string* s, size_t begin, size_t old_len, std::string_view bytes) {
  if (bytes.size() == old_len) {
    if (old_len != 0) std::memcpy(s->data() + begin, bytes.data(), old_len);
  } else {
    s->replace(begin, old_len, bytes.data(), bytes.size());
  }
}

// Rewrites the varint at (*s)[begin, begin + old_len) to hold v.
inline void PatchVarint(std::string* s, size_t begin, size_t old_len, uint64_t v) {
  char buf[10];
  Patch(s, begin, old_len, std::string_view(buf, EncodeVarint(v, buf)));
}

}  // namespace accumulators_internal
}  // namespace vstream
