#pragma once
// This process's resident memory, from /proc/self/statm (Linux).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace vstream {

// Bytes resident now; 0 if unknown.
int64_t ResidentBytes();

// Makes malloc keep memory it gets back for reuse instead of returning it
// to the kernel (glibc: blocks up to 32 MiB come from the heap, and the
// heap is not trimmed). A checkpoint's CACHE-DELTA, a memtable's arena and
// the data exchange's buffers are large blocks allocated again and again;
// each one fresh from the kernel faults in every page: on a paravirtualized
// VM (the benchmark machine) 24 ms for 8 MiB against 0.25 ms to write warm
// memory (docs/benchmarks.md). Call once, first thing in main. The cost:
// the process keeps its peak heap resident.
void RetainFreedMemory();

// Faults in the whole pages of [p, p + bytes) now, in one system call
// (madvise MADV_POPULATE_WRITE, Linux 5.14), instead of one page fault at
// each page's first touch: on the benchmark VM 0.7 us per 4 KiB page
// against 9-10 us a fault (docs/benchmarks.md). For memory about to be
// written all over, at random: a hash table made for a full cache. The
// contents do not change. False when the kernel could not (older than
// 5.14, or out of memory): the pages then fault as they are touched.
bool PrefaultPages(void* p, size_t bytes);

// An allocator whose allocations of kPrefaultBytes or more are faulted in
// as they are made (PrefaultPages): a table's first inserts then write
// memory that is there already, instead of faulting page after page on the
// task thread while a job warms up.
inline constexpr size_t kPrefaultBytes = size_t{64} << 10;
template <typename T>
struct PrefaultingAllocator {
  using value_type = T;
  PrefaultingAllocator() = default;
  template <typename U>
  PrefaultingAllocator(const PrefaultingAllocator<U>&) {}  // NOLINT: rebinding converts implicitly
  T* allocate(size_t n) {
    T* p = std::allocator<T>().allocate(n);
    if (n * sizeof(T) >= kPrefaultBytes) PrefaultPages(p, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, size_t n) { std::allocator<T>().deallocate(p, n); }
  template <typename U>
  bool operator==(const PrefaultingAllocator<U>&) const {
    return true;
  }
};

// The heap on transparent huge pages (THP). The first touch of every page is
// a page fault: on the benchmark VM about 10 us per 4 KiB page, against
// 2-5 us per 4 KiB inside a 2 MiB huge page, one fault for all of it
// (docs/benchmarks.md). A
// TaskManager touches new memory all the time: its write-back caches' hash
// tables and entries as keys come (a clinical TaskManager faulted 20,000
// pages in its first second), the snapshot copies' and state logs' deltas
// at every checkpoint (about 2,000 a checkpoint), memtables. glibc's malloc
// asks for huge pages only when told before main, by the tunable
// glibc.malloc.hugetlb=1 in GLIBC_TUNABLES; glibc.malloc.top_pad=64 MiB
// makes it grow its heaps 64 MiB at a time, so that whole 2 MiB pages fit
// in them (without it the heaps grow a few KiB at a time and get none).
inline constexpr std::string_view kHugePageTunables = "glibc.malloc.hugetlb=1:glibc.malloc.top_pad=67108864";

// The GLIBC_TUNABLES value that puts the heap on huge pages, given its value
// now (`current`, nullptr when unset) and the contents of
// /sys/kernel/mm/transparent_hugepage/enabled (empty if unreadable); nullopt
// when nothing is to change: GLIBC_TUNABLES sets glibc.malloc.hugetlb
// already (this process re-executed, or its user chose), or the kernel has
// no THP, or it is off ("[never]").
std::optional<std::string> HugePageTunables(const char* current, std::string_view thp_enabled);

// Puts the heap on huge pages: re-executes this program (/proc/self/exe, the
// same argv) with HugePageTunables in its environment, when there is one.
// Call first thing in main, before any thread starts. Returns only when it
// did not re-execute, with a line for the log saying what the heap is on
// and why.
std::string PutHeapOnHugePages(char** argv);

}  // namespace vstream
