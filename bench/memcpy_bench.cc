// Single-thread memory bandwidth: std::memcpy of a buffer larger than the
// caches (256 MiB by default), repeated for about SECONDS, one core.
// Reported as GiB/s of bytes copied: each byte is read once and written once
// per copy, and counted once (so the memory bus moves about twice that).
// Both buffers are written before timing, so page faults are not measured.
//
//   memcpy_bench [SECONDS (2; fractional allowed)] [MIB (256)]
//
// Prints one line, `memcpy_gib_s <value>`. bench/machine_limits.sh runs it
// with its SECONDS and prints it as `limit memcpy_gib_s <value>`.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

// Read back after every copy so that the copies cannot be optimized out.
volatile uint64_t sink = 0;

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const long mib = argc > 2 ? std::atol(argv[2]) : 256;
  if (argc > 3 || !(seconds > 0) || mib <= 0) {
    std::fprintf(stderr, "usage: memcpy_bench [SECONDS > 0 (2)] [MIB > 0 (256)]\n");
    return 2;
  }
  const size_t bytes = static_cast<size_t>(mib) << 20;
  std::unique_ptr<char[]> src(new char[bytes]);
  std::unique_ptr<char[]> dst(new char[bytes]);
  std::memset(src.get(), 1, bytes);
  std::memset(dst.get(), 0, bytes);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  uint64_t copies = 0;
  auto now = start;
  do {
    src[copies % bytes] = static_cast<char>(copies);  // a different source each time
    std::memcpy(dst.get(), src.get(), bytes);
    sink = sink + static_cast<unsigned char>(dst[(copies * 4099) % bytes]);
    ++copies;
    now = Clock::now();
  } while (now < deadline);

  const double elapsed = std::chrono::duration<double>(now - start).count();
  const double gib = static_cast<double>(copies) * static_cast<double>(bytes) / (1 << 30);
  std::printf("memcpy_gib_s %.2f\n", gib / elapsed);
  return 0;
}
