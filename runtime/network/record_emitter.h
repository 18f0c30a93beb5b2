#pragma once
// Writes the records of one output edge into its ResultPartition: picks the
// subpartition(s) by the edge's partitioning, serializes each record into
// that subpartition's buffer in the compact row format, and hands a buffer
// over when it is full or when the task's buffer timeout fires (Flush).
//
// Thread-compatible: owned by one task thread.

#include <memory>
#include <string>
#include <vector>

#include "runtime/network/result_partition.h"
#include "runtime/types.h"

namespace vstream {

enum class PartitionMode { kForward, kHash, kRebalance, kBroadcast };

class RecordEmitter {
 public:
  // key_fields index `schema`, the producer's output. projection:
  // non-empty, the fields of it (indexes) each record is encoded with
  // (JobEdge.projection); empty, every field.
  RecordEmitter(std::shared_ptr<ResultPartition> partition, Schema schema, PartitionMode mode,
                std::vector<int> key_fields, int max_parallelism, int subtask_index,
                std::vector<int> projection = {});

  // Serializes the batch. Returns false if the partition was released
  // (the job is being cancelled).
  bool Emit(const RowBatch& batch);
  // Sends every non-empty buffer.
  bool Flush();
  // Puts a latency marker made at `created_us` (wall clock) into the buffer
  // being filled for one subpartition, each marker the next one in turn (as
  // Flink sends a marker down one channel): it waits there as a record
  // emitted now would, and goes with that buffer.
  void MarkLatency(int64_t created_us);
  // Sends a watermark on every subpartition: on the buffer being filled
  // (NetworkBuffer::then_watermark), which it sends, or as an event if that
  // holds nothing.
  bool EmitWatermark(int64_t watermark);
  // Flushes, then sends an idle event on every subpartition.
  bool EmitIdle();
  // Sends checkpoint barrier `checkpoint_id` on every subpartition (see
  // ResultSubpartition::AddBarrier). Aligned: after flushing. Unaligned:
  // the partial buffers go out without waiting for room, the barrier ahead
  // of everything queued, and the records it overtook are appended to
  // *overtaken as (subpartition, buffer).
  using Overtaken = std::vector<std::pair<int, NetworkBuffer>>;
  bool EmitBarrier(int64_t checkpoint_id, const BarrierOptions& options = {}, Overtaken* overtaken = nullptr);
  // For an aligned barrier with a deadline: true once every subpartition's
  // is settled (ResultSubpartition::SettleBarrier), appending what the ones
  // that turned unaligned overtook.
  bool SettleBarrier(int64_t checkpoint_id, int64_t now_ms, Overtaken* overtaken);
  // Waits up to max_wait for every subpartition to have room for a buffer;
  // true if they have.
  bool WaitForRoom(std::chrono::milliseconds max_wait);
  // Queues records of an unaligned checkpoint's output state on a restore,
  // before anything else is emitted.
  bool Restore(int subpartition, NetworkBuffer buffer);
  // Flushes, then sends end-of-partition on every subpartition.
  bool Finish();

 private:
  // Flushes, then adds one event buffer to every subpartition.
  bool EmitEvent(BufferKind kind, int64_t watermark, int64_t checkpoint_id);
  bool SendBuffer(int target);
  bool Append(int target, const Row& row);

  std::shared_ptr<ResultPartition> partition_;  // shared with its readers
  Schema schema_;
  PartitionMode mode_;
  std::vector<int> key_fields_;
  std::vector<int> projection_;
  int max_parallelism_;
  int num_targets_;
  int next_target_;
  int next_marker_target_ = 0;
  std::vector<NetworkBuffer> building_;
  std::vector<bool> settled_;  // per subpartition, for SettleBarrier
  std::string key_scratch_;
};

}  // namespace vstream
