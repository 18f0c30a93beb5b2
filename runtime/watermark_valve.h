#pragma once
// The event-time status of a task's inputs, as Flink's StatusWatermarkValve:
// one watermark and one idle flag per input channel, folded into the task's
// own watermark and idle status.
//
// - The task's watermark is the minimum over its channels that are not idle;
//   an ended channel counts as +infinity. It never goes back.
// - A channel is idle from an idle event until it sends a record or a
//   watermark again. When every channel is idle, so is the task: it tells
//   its outputs once, and becomes active again with its next record or
//   watermark. So idleness travels past the first task behind a source.
//
//   WatermarkValve valve(num_channels);
//   switch on gate events:
//     record buffer:  valve.OnRecords(channel);
//     watermark:      if (auto wm = valve.OnWatermark(channel, w)) push *wm;
//     idle event:     auto r = valve.OnIdle(channel);
//                     if (r.watermark) push *r.watermark;
//                     if (r.became_idle) push idle downstream;
//     channel end:    if (auto wm = valve.OnEnd(channel)) push *wm;
//
// Thread-compatible: used by its task's thread.

#include <cstdint>
#include <optional>
#include <vector>

namespace vstream {

class WatermarkValve {
 public:
  explicit WatermarkValve(size_t num_channels);

  // Records arrived on `channel`: it (and the task) is active again.
  void OnRecords(int channel);
  // A watermark arrived on `channel`. Returns the task's new watermark if it
  // advanced.
  std::optional<int64_t> OnWatermark(int channel, int64_t watermark);
  // `channel`'s source went idle. Leaving it out may advance the watermark;
  // became_idle: every channel is idle now, and the task tells its outputs.
  struct IdleResult {
    std::optional<int64_t> watermark;
    bool became_idle = false;
  };
  IdleResult OnIdle(int channel);
  // `channel` ended: its watermark is +infinity from now on.
  std::optional<int64_t> OnEnd(int channel);

  int64_t watermark() const { return watermark_; }
  bool idle() const { return idle_; }

 private:
  // The minimum over non-idle channels, if above the current watermark.
  std::optional<int64_t> Advance();

  std::vector<int64_t> channel_watermark_;
  std::vector<bool> channel_idle_;
  int64_t watermark_;
  bool idle_ = false;
};

}  // namespace vstream
