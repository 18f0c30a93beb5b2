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
  RecordEmitter(std::shared_ptr<ResultPartition> partition, Schema schema, PartitionMode mode,
                std::vector<int> key_fields, int max_parallelism, int subtask_index);

  // Serializes the batch. Returns false if the partition was released
  // (the job is being cancelled).
  bool Emit(const RowBatch& batch);
  // Sends every non-empty buffer.
  bool Flush();
  // Flushes, then sends a watermark (or idle) event on every subpartition.
  bool EmitWatermark(int64_t watermark);
  bool EmitIdle();
  // Flushes, then sends checkpoint barrier `checkpoint_id` on every subpartition.
  bool EmitBarrier(int64_t checkpoint_id);
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
  int max_parallelism_;
  int num_targets_;
  int next_target_;
  std::vector<NetworkBuffer> building_;
  std::string key_scratch_;
};

}  // namespace vstream
