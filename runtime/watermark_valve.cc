#include "runtime/watermark_valve.h"

#include <algorithm>

#include "runtime/network/buffer.h"

namespace vstream {

WatermarkValve::WatermarkValve(size_t num_channels)
    : channel_watermark_(num_channels, kMinWatermark),
      channel_idle_(num_channels, false),
      watermark_(kMinWatermark) {}

void WatermarkValve::OnRecords(int channel) {
  channel_idle_[channel] = false;
  idle_ = false;
}

std::optional<int64_t> WatermarkValve::OnWatermark(int channel, int64_t watermark) {
  OnRecords(channel);
  channel_watermark_[channel] = std::max(channel_watermark_[channel], watermark);
  return Advance();
}

WatermarkValve::IdleResult WatermarkValve::OnIdle(int channel) {
  channel_idle_[channel] = true;
  IdleResult result;
  // The channel that held the watermark back may be the one that went idle.
  result.watermark = Advance();
  if (!idle_ && std::all_of(channel_idle_.begin(), channel_idle_.end(), [](bool b) { return b; })) {
    idle_ = true;
    result.became_idle = true;
  }
  return result;
}

std::optional<int64_t> WatermarkValve::OnEnd(int channel) {
  channel_watermark_[channel] = kMaxWatermark;
  channel_idle_[channel] = false;
  idle_ = false;
  return Advance();
}

std::optional<int64_t> WatermarkValve::Advance() {
  int64_t min = kMaxWatermark;
  bool any_active = false;
  for (size_t c = 0; c < channel_watermark_.size(); ++c) {
    if (channel_idle_[c]) continue;
    any_active = true;
    min = std::min(min, channel_watermark_[c]);
  }
  if (!any_active || min <= watermark_) return std::nullopt;
  watermark_ = min;
  return min;
}

}  // namespace vstream
