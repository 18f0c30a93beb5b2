#include "common/process_memory.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

namespace vstream {

int64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<int64_t>(resident) * ::sysconf(_SC_PAGESIZE);
}

void RetainFreedMemory() {
  // 32 MiB is the largest threshold glibc accepts (half its 64 MiB arena
  // heaps); setting it also stops glibc's dynamic threshold.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace vstream
