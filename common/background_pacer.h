#pragma once
// Background work paced in time as well as lowered in priority
// (`--background-priority low`, docs/operations.md). A checkpoint's copy of
// the write-back caches and its upload both start at the trigger; at nice 19
// the upload still took slices of the tasks' CPU (a thread the scheduler has
// picked runs out its slice), and the copy runs at the tasks' priority, so
// together they filled the CPU for the first ~150 ms after every checkpoint,
// and the records that came meanwhile waited (the clinical workload's p99 at
// the half rate 11-23 ms against 8-12 paced; docs/benchmarks.md, "Background
// work paced").
//
// A thread marks itself paced (PaceThisThread); work split into pieces then
// calls BackgroundPacer::Pause between two of them, which sleeps
// kBackgroundPauseFactor times as long as the piece took: the thread takes
// at most a 1 / (1 + kBackgroundPauseFactor) share of a CPU, in pieces of a
// millisecond or so, and the tasks get the rest at once. On any other thread
// (a task thread that copies an entry itself, the JobManager writing
// metadata) Pause returns at once: a task never sleeps here.
//
// Thread-compatible: a pacer belongs to the thread that made it.

#include <chrono>

namespace vstream {

inline constexpr int kBackgroundPauseFactor = 3;

// Paces the calling thread's background work from now on (one way).
void PaceThisThread();
bool ThisThreadIsPaced();

class BackgroundPacer {
 public:
  // Times the first piece from now.
  BackgroundPacer();
  // Between two pieces of work (not after the last): on a paced thread,
  // sleeps kBackgroundPauseFactor times as long as the piece since the
  // pacer was made or last paused took.
  void Pause();

 private:
  const bool paced_;
  std::chrono::steady_clock::time_point piece_start_;
};

}  // namespace vstream
