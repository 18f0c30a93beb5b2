#pragma once
// When a task with input does a slice of the work its operators left
// pending (a window firing in slices, StreamOperator::DoPendingWork): input
// first. A slice when the last look at the input found none, or after
// kBuffersPerSlice buffers in a row while input keeps coming, so that the
// pending work still moves on under load. A slice per buffer held the
// records that came during a fire of the clinical job's 40,000 windows per
// subtask for the whole fire (docs/benchmarks.md).
//
// Thread-compatible: the task thread's.

namespace vstream {

class PendingWorkPacer {
 public:
  static constexpr int kBuffersPerSlice = 4;

  // Whether to do a slice (if any work is pending) before the next look at
  // the input.
  bool SliceNow() const { return input_idle_ || buffers_since_slice_ >= kBuffersPerSlice; }
  void OnSlice() { buffers_since_slice_ = 0; }
  // The result of a look at the input: a buffer, or none there yet.
  void OnBuffer() {
    input_idle_ = false;
    ++buffers_since_slice_;
  }
  void OnNoInput() { input_idle_ = true; }

 private:
  bool input_idle_ = true;
  int buffers_since_slice_ = 0;
};

}  // namespace vstream
