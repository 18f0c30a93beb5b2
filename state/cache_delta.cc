#include "state/cache_delta.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "state/state_key.h"

namespace vstream {

namespace {
constexpr std::string_view kMagic = "vstream-cache-delta 2\n";
constexpr std::string_view kMagicV1 = "vstream-cache-delta 1\n";
static_assert(kMagic.size() == kMagicV1.size());
constexpr std::string_view kEnd = "END";

void AppendBytes(std::string_view bytes, std::string* out) {
  AppendVarint32(static_cast<uint32_t>(bytes.size()), out);
  out->append(bytes.data(), bytes.size());
}

bool ReadBytes(std::string_view* in, std::string_view* out) {
  uint32_t n = 0;
  if (!ReadVarint32(in, &n) || n > in->size()) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}
}  // namespace

CacheDelta::CacheDelta(size_t reserve_bytes) {
  body_.reserve(std::max(reserve_bytes, kMagic.size() + kEnd.size()));
  body_.append(kMagic);
}

CacheDelta::CacheDelta(std::string buffer, size_t reserve_bytes) : body_(std::move(buffer)) {
  body_.clear();
  body_.reserve(std::max(reserve_bytes, kMagic.size() + kEnd.size()));
  body_.append(kMagic);
}

std::string DeltaBuffers::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::move(kept_);
}

void DeltaBuffers::Give(std::string buffer) {
  if (buffer.capacity() > kMaxBytes) return;
  buffer.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (buffer.capacity() > kept_.capacity()) kept_.swap(buffer);
  // The smaller one is freed here, outside the task thread's way.
}

void CacheDelta::SetColumnFamily(std::string_view cf) {
  if (cf_set_ && cf == cf_) return;
  body_.push_back('F');
  AppendBytes(cf, &body_);
  cf_.assign(cf.data(), cf.size());
  cf_set_ = true;
}

void CacheDelta::AddPut(std::string_view cf, std::string_view key, std::string_view value_prefix,
                        std::string_view value) {
  SetColumnFamily(cf);
  body_.push_back('P');
  AppendBytes(key, &body_);
  AppendVarint32(static_cast<uint32_t>(value_prefix.size() + value.size()), &body_);
  body_.append(value_prefix.data(), value_prefix.size());
  body_.append(value.data(), value.size());
  ++records_;
}

namespace {
size_t VarintBytes(uint32_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
char* PutVarint(uint32_t v, char* out) {
  while (v >= 0x80) {
    *out++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}
}  // namespace

size_t CacheDelta::EncodedPutValueOffset(size_t key_size, size_t value_size) {
  return 1 + VarintBytes(static_cast<uint32_t>(key_size)) + key_size + VarintBytes(static_cast<uint32_t>(value_size));
}

size_t CacheDelta::EncodedPutBytes(size_t key_size, size_t value_size) {
  return EncodedPutValueOffset(key_size, value_size) + value_size;
}

void CacheDelta::EncodePut(std::string_view key, std::string_view value, char* out) {
  char* p = out;
  *p++ = 'P';
  p = PutVarint(static_cast<uint32_t>(key.size()), p);
  if (!key.empty()) std::memcpy(p, key.data(), key.size());
  p += key.size();
  p = PutVarint(static_cast<uint32_t>(value.size()), p);
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
}

void CacheDelta::AddEncodedPuts(std::string_view cf, std::string_view records, size_t n) {
  if (n == 0) return;
  SetColumnFamily(cf);
  body_.append(records.data(), records.size());
  records_ += n;
}

void CacheDelta::Append(const CacheDelta& other) {
  if (other.records_ == 0) return;
  // Its records start by naming their column family ('F').
  body_.append(other.body_, kMagic.size());
  cf_ = other.cf_;
  cf_set_ = other.cf_set_;
  records_ += other.records_;
}

void CacheDelta::AddDelete(std::string_view cf, std::string_view key) {
  SetColumnFamily(cf);
  body_.push_back('D');
  AppendBytes(key, &body_);
  ++records_;
}

std::string CacheDelta::Finish() && {
  body_.append(kEnd);
  return std::move(body_);
}

absl::Status CacheDelta::ParseFile(const std::string& path, const RecordFn& fn) {
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  }
  return Parse(bytes, fn);
}

absl::Status CacheDelta::Parse(std::string_view bytes, const RecordFn& fn) {
  bool v1 = false;
  if (bytes.substr(0, kMagicV1.size()) == kMagicV1) {
    v1 = true;
  } else if (bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError("cache delta: bad header");
  }
  bytes.remove_prefix(kMagic.size());
  std::string_view cf;
  bool cf_set = false;
  while (bytes != kEnd) {
    if (bytes.empty()) return absl::DataLossError("cache delta: truncated");
    const char op = bytes[0];
    bytes.remove_prefix(1);
    if (op == 'F' && !v1) {
      if (!ReadBytes(&bytes, &cf)) return absl::DataLossError("cache delta: malformed record");
      cf_set = true;
      continue;
    }
    std::string_view key, value;
    if ((op != 'P' && op != 'D') || (v1 && !ReadBytes(&bytes, &cf)) || !ReadBytes(&bytes, &key) ||
        (op == 'P' && !ReadBytes(&bytes, &value))) {
      return absl::DataLossError("cache delta: malformed record");
    }
    if (!v1 && !cf_set) return absl::DataLossError("cache delta: a record before any column family");
    if (absl::Status s = fn(cf, key, op == 'P' ? &value : nullptr); !s.ok()) return s;
  }
  return absl::OkStatus();
}

bool LaterDelta::Copy(CacheDelta* delta, size_t* budget) {
  if (step_ == nullptr) return true;
  if (!step_(delta, budget)) return false;
  step_ = nullptr;
  return true;
}

}  // namespace vstream
