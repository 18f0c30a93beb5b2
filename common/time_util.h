#pragma once
// Timestamps are epoch milliseconds (UTC) everywhere in the data plane.

#include <cstdint>
#include <string>
#include <string_view>

namespace vstream {

int64_t NowMillis();          // wall clock
int64_t NowMicros();          // wall clock
int64_t MonotonicNanos();     // steady clock
inline int64_t MonotonicMillis() { return MonotonicNanos() / 1'000'000; }

// Saturating a + b, for time arithmetic near the ends of time.
inline int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

// Parses epoch milliseconds ("1700000000000") or ISO-8601
// ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+01:00", "2024-01-02 03:04:05",
// "2024-01-02"). Returns false on anything else.
bool ParseTimestamp(std::string_view text, int64_t* out_ms);

// Days since 1970-01-01 of a proleptic Gregorian date; month 1..12, day 1..31
// (not checked against the month's length).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

// "2024-01-02T03:04:05.123Z"
std::string FormatTimestamp(int64_t ms);
void AppendTimestamp(int64_t ms, std::string* out);

}  // namespace vstream
