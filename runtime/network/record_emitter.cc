#include "runtime/network/record_emitter.h"

#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {

RecordEmitter::RecordEmitter(std::shared_ptr<ResultPartition> partition, Schema schema,
                             PartitionMode mode, std::vector<int> key_fields, int max_parallelism,
                             int subtask_index)
    : partition_(std::move(partition)),
      schema_(std::move(schema)),
      mode_(mode),
      key_fields_(std::move(key_fields)),
      max_parallelism_(max_parallelism),
      num_targets_(partition_->num_subpartitions()),
      next_target_(subtask_index % std::max(1, num_targets_)),
      building_(num_targets_) {
  for (auto& b : building_) b.data.reserve(kNetworkBufferBytes + 1024);
}

bool RecordEmitter::SendBuffer(int target) {
  NetworkBuffer& b = building_[target];
  if (b.num_records == 0) return true;
  NetworkBuffer out;
  out.data.reserve(kNetworkBufferBytes + 1024);
  std::swap(out, b);
  return partition_->subpartition(target).Add(std::move(out));
}

inline bool RecordEmitter::Append(int target, const Row& row) {
  NetworkBuffer& b = building_[target];
  EncodeRow(schema_, row, &b.data);
  ++b.num_records;
  if (b.data.size() >= kNetworkBufferBytes) return SendBuffer(target);
  return true;
}

bool RecordEmitter::Emit(const RowBatch& batch) {
  const size_t n = batch.size();
  switch (mode_) {
    case PartitionMode::kForward:
      for (size_t i = 0; i < n; ++i) {
        if (!Append(0, batch[i])) return false;
      }
      break;
    case PartitionMode::kHash:
      for (size_t i = 0; i < n; ++i) {
        key_scratch_.clear();
        EncodeKey(schema_, batch[i], key_fields_, &key_scratch_);
        int kg = KeyGroupForHash(HashKeyBytes(key_scratch_), max_parallelism_);
        if (!Append(SubtaskForKeyGroup(kg, max_parallelism_, num_targets_), batch[i])) return false;
      }
      break;
    case PartitionMode::kRebalance:
      for (size_t i = 0; i < n; ++i) {
        if (!Append(next_target_, batch[i])) return false;
        if (++next_target_ == num_targets_) next_target_ = 0;
      }
      break;
    case PartitionMode::kBroadcast:
      for (size_t i = 0; i < n; ++i) {
        for (int t = 0; t < num_targets_; ++t) {
          if (!Append(t, batch[i])) return false;
        }
      }
      break;
  }
  return true;
}

bool RecordEmitter::Flush() {
  for (int t = 0; t < num_targets_; ++t) {
    if (!SendBuffer(t)) return false;
  }
  return true;
}

bool RecordEmitter::EmitEvent(BufferKind kind, int64_t watermark, int64_t checkpoint_id) {
  if (!Flush()) return false;
  for (int t = 0; t < num_targets_; ++t) {
    NetworkBuffer event;
    event.kind = kind;
    event.watermark = watermark;
    event.checkpoint_id = checkpoint_id;
    if (!partition_->subpartition(t).Add(std::move(event))) return false;
  }
  return true;
}

bool RecordEmitter::EmitWatermark(int64_t watermark) { return EmitEvent(BufferKind::kWatermark, watermark, 0); }
bool RecordEmitter::EmitIdle() { return EmitEvent(BufferKind::kIdle, 0, 0); }
bool RecordEmitter::EmitBarrier(int64_t checkpoint_id) { return EmitEvent(BufferKind::kBarrier, 0, checkpoint_id); }

bool RecordEmitter::Finish() {
  if (!Flush()) return false;
  for (int t = 0; t < num_targets_; ++t) partition_->subpartition(t).Finish();
  return true;
}

}  // namespace vstream
