#include "runtime/row_codec.h"

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

bool GetVarint64(std::string_view data, size_t* pos, uint64_t* v) {
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

namespace {

inline uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

inline void EncodeValue(FieldType type, const Datum& d, std::string* out) {
  switch (type) {
    case FieldType::kInt:
    case FieldType::kTimestamp:
      PutVarint64(ZigZag(d.i), out);
      break;
    case FieldType::kDouble: {
      char buf[8];
      std::memcpy(buf, &d.d, 8);
      out->append(buf, 8);
      break;
    }
    case FieldType::kBool:
      out->push_back(d.i ? 1 : 0);
      break;
    case FieldType::kString:
      PutVarint64(d.s.size(), out);
      out->append(d.s);
      break;
  }
}

template <typename FieldIndexes>
void EncodeFields(const Schema& schema, const Row& row, const FieldIndexes& idx, size_t n,
                  std::string* out) {
  size_t bitmap_at = out->size();
  out->append((n + 7) / 8, '\0');
  for (size_t k = 0; k < n; ++k) {
    const Datum& d = row[idx(k)];
    if (d.is_null) {
      (*out)[bitmap_at + k / 8] |= static_cast<char>(1 << (k % 8));
      continue;
    }
    EncodeValue(schema.field(idx(k)).type, d, out);
  }
}

}  // namespace

void EncodeRow(const Schema& schema, const Row& row, std::string* out) {
  EncodeFields(schema, row, [](size_t k) { return k; }, schema.size(), out);
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
        if (!GetVarint64(data, pos, &v)) return false;
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
        if (!GetVarint64(data, pos, &len) || len > data.size() - *pos) return false;
        d.s.assign(data.data() + *pos, len);
        *pos += len;
        break;
      }
    }
  }
  return true;
}

}  // namespace vstream
