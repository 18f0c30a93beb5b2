#include "state/state_key.h"

#include <cassert>

namespace vstream {

void AppendVarint32(uint32_t v, std::string* out) {
  // Into a buffer, then one append: a push_back a byte checked the
  // capacity each time (these build every state key and timer).
  char buf[5];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

bool ReadVarint32(std::string_view* in, uint32_t* v) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint32_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

namespace {

bool ReadLengthPrefixed(std::string_view* in, std::string_view* out) {
  uint32_t n = 0;
  if (!ReadVarint32(in, &n) || n > in->size()) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

void ToPrefixSuccessor(std::string* prefix) {
  while (!prefix->empty() && static_cast<uint8_t>(prefix->back()) == 0xff) prefix->pop_back();
  if (!prefix->empty()) prefix->back() = static_cast<char>(static_cast<uint8_t>(prefix->back()) + 1);
}

void AppendKeyGroupBytes(int key_group, std::string* out) {
  assert(key_group >= 0 && key_group < kMaxKeyGroups && "key group out of range");
  const char bytes[2] = {static_cast<char>((key_group >> 8) & 0xff), static_cast<char>(key_group & 0xff)};
  out->append(bytes, 2);
}

void AppendBigEndian64(uint64_t v, std::string* out) {
  char bytes[8];
  for (int b = 0; b < 8; ++b) bytes[b] = static_cast<char>((v >> (8 * (7 - b))) & 0xff);
  out->append(bytes, 8);
}

void AppendOrderedTime(int64_t time, std::string* out) {
  AppendBigEndian64(static_cast<uint64_t>(time) ^ (1ull << 63), out);
}

int64_t ReadOrderedTime(const char* p) {
  uint64_t u = 0;
  for (int b = 0; b < 8; ++b) u = (u << 8) | static_cast<uint8_t>(p[b]);
  return static_cast<int64_t>(u ^ (1ull << 63));
}

void AppendStateKeyPrefix(int key_group, std::string_view key, std::string* out) {
  AppendKeyGroupBytes(key_group, out);
  AppendVarint32(static_cast<uint32_t>(key.size()), out);
  out->append(key.data(), key.size());
}

void AppendStateNamespace(std::string_view ns, std::string* out) {
  AppendVarint32(static_cast<uint32_t>(ns.size()), out);
  out->append(ns.data(), ns.size());
}

bool DecodeStateKey(std::string_view raw, StateKeyView* out) {
  if (raw.size() < 2) return false;
  out->key_group = (static_cast<uint8_t>(raw[0]) << 8) | static_cast<uint8_t>(raw[1]);
  raw.remove_prefix(2);
  if (!ReadLengthPrefixed(&raw, &out->key) || !ReadLengthPrefixed(&raw, &out->ns)) return false;
  out->user_key = raw;
  return true;
}

size_t StateKeyPrefixSize(std::string_view raw) {
  if (raw.size() < 2) return 0;
  std::string_view rest = raw.substr(2);
  std::string_view key;
  if (!ReadLengthPrefixed(&rest, &key)) return 0;
  return raw.size() - rest.size();
}

std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<uint8_t>(s.back()) == 0xff) s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<uint8_t>(s.back()) + 1);
  return s;
}

}  // namespace vstream
