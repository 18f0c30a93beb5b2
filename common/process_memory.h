#pragma once
// This process's resident memory, from /proc/self/statm (Linux).

#include <cstdint>

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

}  // namespace vstream
