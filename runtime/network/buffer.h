#pragma once
// A network buffer: many records in the compact row format
// (runtime/row_codec.h), or the end-of-partition event.

#include <cstdint>
#include <cstdint>
#include <limits>
#include <string>

namespace vstream {

// The watermark of an input that has ended, or of the end of a bounded source.
inline constexpr int64_t kMaxWatermark = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kMinWatermark = std::numeric_limits<int64_t>::min();

// Records are appended until a buffer reaches this size, then it is sent.
inline constexpr size_t kNetworkBufferBytes = 32 * 1024;

// What a buffer carries. Events travel in-band, in order with the records.
enum class BufferKind : uint8_t {
  kRecords,         // num_records rows in data
  kWatermark,       // the producer's watermark advanced to `watermark`
  kIdle,            // the producer went idle: leave it out of watermarks
  kBarrier,         // checkpoint barrier `checkpoint_id` (runtime/checkpoint_barriers.h)
  kEndOfPartition,  // the last buffer of the channel
};

struct NetworkBuffer {
  std::string data;
  int32_t num_records = 0;
  bool end_of_partition = false;  // == (kind == kEndOfPartition)
  BufferKind kind = BufferKind::kRecords;
  // kWatermark; or kRecords with then_watermark: the producer's watermark
  // advanced to this after the buffer's records (one message, not two).
  int64_t watermark = 0;
  bool then_watermark = false;
  int64_t checkpoint_id = 0;  // kBarrier
  // kBarrier: an unaligned barrier, put ahead of the buffers queued before
  // it; else an aligned one that turns unaligned at aligned_deadline_ms
  // (wall clock; 0: never). See runtime/checkpoint_barriers.h.
  bool unaligned = false;
  int64_t aligned_deadline_ms = 0;
  // An unaligned barrier at the consumer: how many record buffers received
  // before it it overtook (they follow it in the channel).
  int32_t overtaken = 0;
  // kRecords: > 0 when a latency marker rides on this buffer (the wall
  // clock, µs, when its source made it). It counts as arriving after the
  // buffer's records; a buffer may carry only a marker (num_records 0).
  int64_t latency_marker_us = 0;
};

// How a task sends a checkpoint's barrier on.
struct BarrierOptions {
  bool unaligned = false;
  int64_t aligned_deadline_ms = 0;  // aligned only; 0: no deadline
};

}  // namespace vstream
