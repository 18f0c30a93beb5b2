#include "common/time_util.h"

#include <chrono>
#include <cstdio>

namespace vstream {

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Howard Hinnant's algorithm.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

namespace {

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool ReadDigits(std::string_view s, size_t* pos, int n, int* out) {
  if (*pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

}  // namespace

bool ParseTimestamp(std::string_view s, int64_t* out_ms) {
  if (s.empty()) return false;
  // Plain integer: epoch milliseconds.
  bool all_digits = true;
  size_t start = (s[0] == '-') ? 1 : 0;
  if (start == s.size()) return false;
  for (size_t i = start; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') { all_digits = false; break; }
  }
  if (all_digits) {
    if (s.size() - start > 18) return false;
    int64_t v = 0;
    for (size_t i = start; i < s.size(); ++i) v = v * 10 + (s[i] - '0');
    *out_ms = start ? -v : v;
    return true;
  }
  size_t pos = 0;
  int year, month, day, hour = 0, minute = 0, second = 0, millis = 0;
  if (!ReadDigits(s, &pos, 4, &year)) return false;
  if (pos >= s.size() || s[pos++] != '-') return false;
  if (!ReadDigits(s, &pos, 2, &month)) return false;
  if (pos >= s.size() || s[pos++] != '-') return false;
  if (!ReadDigits(s, &pos, 2, &day)) return false;
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  int64_t offset_min = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return false;
    ++pos;
    if (!ReadDigits(s, &pos, 2, &hour)) return false;
    if (pos >= s.size() || s[pos++] != ':') return false;
    if (!ReadDigits(s, &pos, 2, &minute)) return false;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!ReadDigits(s, &pos, 2, &second)) return false;
      if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        int digits = 0;
        int frac = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (digits < 3) frac = frac * 10 + (s[pos] - '0');
          ++digits;
          ++pos;
        }
        if (digits == 0) return false;
        for (int i = digits; i < 3; ++i) frac *= 10;
        millis = frac;
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return false;
    if (pos < s.size()) {
      char c = s[pos];
      if (c == 'Z' || c == 'z') {
        ++pos;
      } else if (c == '+' || c == '-') {
        ++pos;
        int oh, om = 0;
        if (!ReadDigits(s, &pos, 2, &oh)) return false;
        if (pos < s.size() && s[pos] == ':') ++pos;
        if (pos < s.size() && !ReadDigits(s, &pos, 2, &om)) return false;
        offset_min = (oh * 60 + om) * (c == '+' ? 1 : -1);
      } else {
        return false;
      }
    }
    if (pos != s.size()) return false;
  }
  int64_t days = DaysFromCivil(year, month, day);
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  *out_ms = secs * 1000 + millis;
  return true;
}

void AppendTimestamp(int64_t ms, std::string* out) {
  int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  int millis = static_cast<int>(ms - secs * 1000);
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  int64_t rem = secs - days * 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[40];
  int n = std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                        static_cast<long long>(y), m, d, static_cast<int>(rem / 3600),
                        static_cast<int>(rem % 3600 / 60), static_cast<int>(rem % 60), millis);
  out->append(buf, n);
}

std::string FormatTimestamp(int64_t ms) {
  std::string s;
  AppendTimestamp(ms, &s);
  return s;
}

}  // namespace vstream
