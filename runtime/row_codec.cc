#include "runtime/row_codec.h"

#include <bit>
#include <cstring>

namespace vstream {

void PutVarint64(uint64_t v, std::string* out) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

namespace {

// GetVarint64 a byte at a time (fewer than 8 bytes left, or a varint longer
// than 8).
bool GetVarint64Bytewise(std::string_view data, size_t* pos, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && *pos < data.size(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(data[(*pos)++]);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *v = result;
      return true;
    }
  }
  return false;
}

static_assert(std::endian::native == std::endian::little, "the word-at-a-time varints below load little-endian");

// GetVarint64, inline here for DecodeRow: a word at a time when 8 bytes are
// left to load and the varint ends within them (the inverse of
// WriteVarint's spreading).
inline bool ReadVarint(std::string_view data, size_t* pos, uint64_t* v) {
  if (*pos + 8 <= data.size()) {
    uint64_t w;
    std::memcpy(&w, data.data() + *pos, 8);
    if ((w & 0x80) == 0) {
      *v = w & 0x7f;
      *pos += 1;
      return true;
    }
    const uint64_t stops = ~w & 0x8080808080808080ull;
    if (stops != 0) {
      const int len = std::countr_zero(stops) / 8 + 1;  // 2..8
      if (len < 8) w &= (uint64_t{1} << (8 * len)) - 1;
      uint64_t x = w & 0x7f7f7f7f7f7f7f7full;
      x = (x & 0x007f007f007f007full) | ((x & 0x7f007f007f007f00ull) >> 1);  // 14-bit groups
      x = (x & 0x00003fff00003fffull) | ((x & 0x3fff00003fff0000ull) >> 2);  // 28-bit
      x = (x & 0x000000000fffffffull) | ((x & 0x0fffffff00000000ull) >> 4);  // 56-bit
      *v = x;
      *pos += static_cast<size_t>(len);
      return true;
    }
  }
  return GetVarint64Bytewise(data, pos, v);
}

}  // namespace

bool GetVarint64(std::string_view data, size_t* pos, uint64_t* v) { return ReadVarint(data, pos, v); }

namespace {

inline uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Writes the varint of v at p; returns the end. The caller has room for 10
// bytes. A value of 2 to 8 bytes (timestamps: 6) is spread into its 7-bit
// groups in a few shifts and stored as one word (a byte at a time was a loop
// iteration per byte).
inline char* WriteVarint(uint64_t v, char* p) {
  if (v < 0x80) {
    *p = static_cast<char>(v);
    return p + 1;
  }
  if (v < (uint64_t{1} << 56)) {
    const int len = (70 - std::countl_zero(v)) / 7;  // ceil(bits / 7), 2..8
    uint64_t x = (v & 0x000000000fffffffull) | ((v & 0x00fffffff0000000ull) << 4);  // 28-bit groups
    x = (x & 0x00003fff00003fffull) | ((x & 0x0fffc0000fffc000ull) << 2);           // 14-bit
    x = (x & 0x007f007f007f007full) | ((x & 0x3f803f803f803f80ull) << 1);           // 7-bit
    x |= 0x8080808080808080ull & ((uint64_t{1} << (8 * (len - 1))) - 1);            // all but the last go on
    std::memcpy(p, &x, 8);
    return p + len;
  }
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// Writes a non-null field's value at p, as DecodeRow reads it; the caller
// has room for FieldBound bytes.
inline char* WriteField(FieldType type, const Datum& d, char* p) {
  switch (type) {
    case FieldType::kInt:
    case FieldType::kTimestamp:
      return WriteVarint(ZigZag(d.i), p);
    case FieldType::kDouble:
      std::memcpy(p, &d.d, 8);
      return p + 8;
    case FieldType::kBool:
      *p++ = d.i ? 1 : 0;
      return p;
    case FieldType::kString:
      p = WriteVarint(d.s.size(), p);
      std::memcpy(p, d.s.data(), d.s.size());
      return p + d.s.size();
  }
  return p;
}

// At most the bytes WriteField writes for a non-null field.
inline size_t FieldBound(FieldType type, const Datum& d) { return type == FieldType::kString ? 10 + d.s.size() : 10; }

// A row or key up to this many bytes (most keys, and most rows a network
// edge sends) is encoded in one pass on the stack and appended at once.
constexpr size_t kStackRowBytes = 256;

// Encodes into a buffer on the stack, in one pass; false (and nothing
// appended) if the row may not fit in it. Keys are encoded for every record
// at least twice (the edge's partitioning, the keyed operator's state), and
// a second pass and two resizes of `out` (one zero-filling the bound) were
// most of their cost (docs/benchmarks.md, "Keys encoded in one pass").
template <typename FieldIndexes>
bool EncodeFieldsOnStack(const Schema& schema, const Row& row, const FieldIndexes& idx, size_t n,
                         std::string* out) {
  if (n > 64) return false;
  const size_t bitmap_len = (n + 7) / 8;
  char buf[kStackRowBytes];
  char* p = buf + bitmap_len;
  uint64_t nulls = 0;  // the bitmap, written once the fields are
  for (size_t k = 0; k < n; ++k) {
    const Datum& d = row[idx(k)];
    if (d.is_null) {
      nulls |= uint64_t{1} << k;
      continue;
    }
    const FieldType type = schema.field(idx(k)).type;
    if (FieldBound(type, d) > static_cast<size_t>(buf + kStackRowBytes - p)) return false;
    p = WriteField(type, d, p);
  }
  for (size_t i = 0; i < bitmap_len; ++i) buf[i] = static_cast<char>(nulls >> (8 * i));
  out->append(buf, static_cast<size_t>(p - buf));
  return true;
}

// Encodes into room reserved up front (an upper bound), then trims: one
// resize per row instead of one append per field.
template <typename FieldIndexes>
void EncodeFields(const Schema& schema, const Row& row, const FieldIndexes& idx, size_t n,
                  std::string* out) {
  if (EncodeFieldsOnStack(schema, row, idx, n, out)) return;
  const size_t bitmap_len = (n + 7) / 8;
  size_t bound = bitmap_len;
  for (size_t k = 0; k < n; ++k) {
    const Datum& d = row[idx(k)];
    if (!d.is_null) bound += FieldBound(schema.field(idx(k)).type, d);
  }
  const size_t start = out->size();
  out->resize(start + bound);
  char* const base = out->data() + start;
  std::memset(base, 0, bitmap_len);
  char* p = base + bitmap_len;
  for (size_t k = 0; k < n; ++k) {
    const Datum& d = row[idx(k)];
    if (d.is_null) {
      base[k / 8] |= static_cast<char>(1 << (k % 8));
      continue;
    }
    p = WriteField(schema.field(idx(k)).type, d, p);
  }
  out->resize(static_cast<size_t>(p - out->data()));
}

}  // namespace

void EncodeRow(const Schema& schema, const Row& row, std::string* out) {
  EncodeFields(schema, row, [](size_t k) { return k; }, schema.size(), out);
}

bool SameKey(const Schema& schema, const Row& a, const Row& b, const std::vector<int>& key_fields) {
  for (const int f : key_fields) {
    const Datum& x = a[f];
    const Datum& y = b[f];
    if (x.is_null != y.is_null) return false;
    if (x.is_null) continue;
    switch (schema.field(f).type) {
      case FieldType::kInt:
      case FieldType::kTimestamp:
        if (x.i != y.i) return false;
        break;
      case FieldType::kBool:
        if ((x.i != 0) != (y.i != 0)) return false;
        break;
      case FieldType::kDouble:  // the bytes, as encoded (0.0 and -0.0 differ)
        if (std::memcmp(&x.d, &y.d, sizeof(double)) != 0) return false;
        break;
      case FieldType::kString:
        if (x.s != y.s) return false;
        break;
    }
  }
  return true;
}

void EncodeKey(const Schema& schema, const Row& row, const std::vector<int>& key_fields,
               std::string* out) {
  EncodeFields(schema, row, [&](size_t k) { return static_cast<size_t>(key_fields[k]); },
               key_fields.size(), out);
}

bool DecodeRow(const Schema& schema, std::string_view data, size_t* pos, Row* row) {
  const size_t n = schema.size();
  if (row->size() != n) row->resize(n);
  const size_t bitmap_len = (n + 7) / 8;
  if (*pos + bitmap_len > data.size()) return false;
  const char* bitmap = data.data() + *pos;
  *pos += bitmap_len;
  for (size_t k = 0; k < n; ++k) {
    Datum& d = (*row)[k];
    if (bitmap[k / 8] & (1 << (k % 8))) {
      d.is_null = true;
      continue;
    }
    d.is_null = false;
    switch (schema.field(k).type) {
      case FieldType::kInt:
      case FieldType::kTimestamp: {
        uint64_t v;
        if (!ReadVarint(data, pos, &v)) return false;
        d.i = UnZigZag(v);
        break;
      }
      case FieldType::kDouble:
        if (*pos + 8 > data.size()) return false;
        std::memcpy(&d.d, data.data() + *pos, 8);
        *pos += 8;
        break;
      case FieldType::kBool:
        if (*pos + 1 > data.size()) return false;
        d.i = data[(*pos)++] ? 1 : 0;
        break;
      case FieldType::kString: {
        uint64_t len;
        if (!ReadVarint(data, pos, &len) || len > data.size() - *pos) return false;
        d.s.assign(data.data() + *pos, len);
        *pos += len;
        break;
      }
    }
  }
  return true;
}

}  // namespace vstream
