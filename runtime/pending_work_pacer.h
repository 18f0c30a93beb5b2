#pragma once
// When a task with input does a slice of the work its operators left
// pending (a window firing in slices, StreamOperator::DoPendingWork): input
// first. A slice when the last look at the input found none, or after
// kBuffersPerSlice buffers in a row while input keeps coming, so that the
// pending work still moves on under load; and a slice at every look once
// the work has been pending for kMaxLagMs, so that a fire (and the
// watermark it holds) does not fall behind for as long as the load lasts.
// A slice per buffer held the records that came during a fire of the
// clinical job's 40,000 windows per subtask for the whole fire
// (docs/benchmarks.md).
//
// Thread-compatible: the task thread's.

#include <cstdint>

namespace vstream {

class PendingWorkPacer {
 public:
  static constexpr int kBuffersPerSlice = 4;
  static constexpr int64_t kMaxLagMs = 250;

  // Whether work is pending, at now_ms (a monotonic clock): call before
  // SliceNow.
  void OnPending(bool pending, int64_t now_ms) {
    if (!pending) pending_since_ms_ = -1;
    else if (pending_since_ms_ < 0) pending_since_ms_ = now_ms;
    lagging_ = pending && now_ms - pending_since_ms_ >= kMaxLagMs;
  }
  // Whether to do a slice (if any work is pending) before the next look at
  // the input.
  bool SliceNow() const { return input_idle_ || lagging_ || buffers_since_slice_ >= kBuffersPerSlice; }
  void OnSlice() { buffers_since_slice_ = 0; }
  // The result of a look at the input: a buffer, or none there yet.
  void OnBuffer() {
    input_idle_ = false;
    ++buffers_since_slice_;
  }
  void OnNoInput() { input_idle_ = true; }

 private:
  bool input_idle_ = true;
  bool lagging_ = false;
  int buffers_since_slice_ = 0;
  int64_t pending_since_ms_ = -1;
};

}  // namespace vstream
