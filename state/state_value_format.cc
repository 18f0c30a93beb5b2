#include "state/state_value_format.h"

#include "state/state_key.h"

namespace vstream {

void EncodeWriteTime(int64_t write_ms, char* out) {
  auto v = static_cast<uint64_t>(write_ms);
  for (int i = static_cast<int>(kWriteTimeBytes) - 1; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void AppendWriteTime(int64_t write_ms, std::string* out) {
  char buf[kWriteTimeBytes];
  EncodeWriteTime(write_ms, buf);
  out->append(buf, kWriteTimeBytes);
}

int64_t DecodeWriteTime(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < kWriteTimeBytes; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return static_cast<int64_t>(v);
}

bool SplitTimedValue(std::string_view stored, int64_t* write_ms, std::string_view* payload) {
  if (stored.size() < kWriteTimeBytes) return false;
  *write_ms = DecodeWriteTime(stored.data());
  *payload = stored.substr(kWriteTimeBytes);
  return true;
}

void AppendListElement(std::string_view element, bool timed, int64_t write_ms, std::string* out) {
  if (timed) AppendWriteTime(write_ms, out);
  AppendVarint32(static_cast<uint32_t>(element.size()), out);
  out->append(element.data(), element.size());
}

bool ListElementReader::Next(std::string_view* element, int64_t* write_ms) {
  if (rest_.empty() || !ok_) return false;
  *write_ms = 0;
  if (timed_) {
    if (rest_.size() < kWriteTimeBytes) {
      ok_ = false;
      return false;
    }
    *write_ms = DecodeWriteTime(rest_.data());
    rest_.remove_prefix(kWriteTimeBytes);
  }
  uint32_t n = 0;
  if (!ReadVarint32(&rest_, &n) || n > rest_.size()) {
    ok_ = false;
    return false;
  }
  *element = rest_.substr(0, n);
  rest_.remove_prefix(n);
  return true;
}

int RemoveExpiredListElements(std::string_view stored, int64_t ttl_ms, int64_t now_ms,
                              std::string* out) {
  ListElementReader reader(stored, /*timed=*/true);
  std::string_view element;
  int64_t write_ms = 0;
  int dropped = 0;
  while (reader.Next(&element, &write_ms)) {
    if (IsExpired(write_ms, ttl_ms, now_ms)) {
      ++dropped;
    } else {
      AppendListElement(element, /*timed=*/true, write_ms, out);
    }
  }
  return reader.ok() ? dropped : -1;
}

bool IsLiveValue(StateKind kind, int64_t ttl_ms, std::string_view stored, int64_t now_ms) {
  if (ttl_ms <= 0) return true;
  if (kind == StateKind::kList) {
    ListElementReader reader(stored, /*timed=*/true);
    std::string_view element;
    int64_t write_ms = 0;
    while (reader.Next(&element, &write_ms)) {
      if (!IsExpired(write_ms, ttl_ms, now_ms)) return true;
    }
    return !reader.ok();  // keep what we cannot parse: never drop data silently
  }
  int64_t write_ms = 0;
  std::string_view payload;
  if (!SplitTimedValue(stored, &write_ms, &payload)) return true;
  return !IsExpired(write_ms, ttl_ms, now_ms);
}

}  // namespace vstream
