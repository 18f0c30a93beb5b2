#include "common/process_memory.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

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

bool PrefaultPages(void* p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  return end <= begin || ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) == 0;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

namespace {

constexpr char kThpEnabledPath[] = "/sys/kernel/mm/transparent_hugepage/enabled";

bool Contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::string> HugePageTunables(const char* current, std::string_view thp_enabled) {
  const std::string_view now = current == nullptr ? std::string_view() : std::string_view(current);
  if (Contains(now, "glibc.malloc.hugetlb=")) return std::nullopt;
  // "always [madvise] never": the mode in brackets. glibc's madvise asks for
  // huge pages under [madvise] and [always] alike.
  if (!Contains(thp_enabled, "[always]") && !Contains(thp_enabled, "[madvise]")) {
    return std::nullopt;
  }
  if (now.empty()) return std::string(kHugePageTunables);
  return std::string(now) + ":" + std::string(kHugePageTunables);
}

std::string PutHeapOnHugePages(char** argv) {
  const char* current = std::getenv("GLIBC_TUNABLES");
  const std::string thp = ReadSmallFile(kThpEnabledPath);
  const std::optional<std::string> tunables = HugePageTunables(current, thp);
  if (!tunables.has_value()) {
    if (current != nullptr && Contains(current, kHugePageTunables)) {
      return "heap on transparent huge pages (GLIBC_TUNABLES " + std::string(kHugePageTunables) + ")";
    }
    if (current != nullptr && Contains(current, "glibc.malloc.hugetlb=")) {
      return std::string("heap pages as GLIBC_TUNABLES sets them: ") + current;
    }
    if (thp.empty()) return std::string("heap on 4 KiB pages: no ") + kThpEnabledPath + " (no transparent huge pages)";
    std::string mode = thp;
    while (!mode.empty() && (mode.back() == '\n' || mode.back() == ' ')) mode.pop_back();
    return std::string("heap on 4 KiB pages: transparent huge pages are off on this machine (") + kThpEnabledPath +
           ": " + mode + ")";
  }
  const std::optional<std::string> had = current == nullptr ? std::nullopt : std::optional<std::string>(current);
  if (::setenv("GLIBC_TUNABLES", tunables->c_str(), 1) != 0) {
    return std::string("heap on 4 KiB pages: cannot set GLIBC_TUNABLES: ") + std::strerror(errno);
  }
  ::execv("/proc/self/exe", argv);
  const int error = errno;  // execv returns only when it failed
  if (had.has_value()) {
    ::setenv("GLIBC_TUNABLES", had->c_str(), 1);
  } else {
    ::unsetenv("GLIBC_TUNABLES");
  }
  return "heap on 4 KiB pages: cannot re-execute /proc/self/exe with GLIBC_TUNABLES=" + *tunables + ": " +
         std::strerror(error);
}

}  // namespace vstream
