#include "runtime/network/record_emitter.h"

#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {

RecordEmitter::RecordEmitter(std::shared_ptr<ResultPartition> partition, Schema schema,
                             PartitionMode mode, std::vector<int> key_fields, int max_parallelism,
                             int subtask_index, std::vector<int> projection)
    : partition_(std::move(partition)),
      schema_(std::move(schema)),
      mode_(mode),
      key_fields_(std::move(key_fields)),
      projection_(std::move(projection)),
      max_parallelism_(max_parallelism),
      num_targets_(partition_->num_subpartitions()),
      next_target_(subtask_index % std::max(1, num_targets_)),
      building_(num_targets_) {
  for (auto& b : building_) b.data.reserve(kNetworkBufferBytes + 1024);
}

bool RecordEmitter::SendBuffer(int target) {
  NetworkBuffer& b = building_[target];
  if (b.num_records == 0 && b.latency_marker_us == 0) return true;
  NetworkBuffer out;
  out.data.reserve(kNetworkBufferBytes + 1024);
  std::swap(out, b);
  return partition_->subpartition(target).Add(std::move(out));
}

inline bool RecordEmitter::Append(int target, const Row& row) {
  NetworkBuffer& b = building_[target];
  if (projection_.empty()) {
    EncodeRow(schema_, row, &b.data);
  } else {
    EncodeKey(schema_, row, projection_, &b.data);  // the same format, those fields alone
  }
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
    case PartitionMode::kHash: {
      int target = 0;
      for (size_t i = 0; i < n; ++i) {
        // A row with the key of the one before it goes where that one went
        // (a window's results come 3,000 at once with its bounds in q5).
        if (i == 0 || !SameKey(schema_, batch[i], batch[i - 1], key_fields_)) {
          key_scratch_.clear();
          EncodeKey(schema_, batch[i], key_fields_, &key_scratch_);
          const int kg = KeyGroupForHash(HashKeyBytes(key_scratch_), max_parallelism_);
          target = SubtaskForKeyGroup(kg, max_parallelism_, num_targets_);
        }
        if (!Append(target, batch[i])) return false;
      }
      break;
    }
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

void RecordEmitter::MarkLatency(int64_t created_us) {
  if (num_targets_ == 0) return;
  NetworkBuffer& b = building_[next_marker_target_];
  if (++next_marker_target_ == num_targets_) next_marker_target_ = 0;
  if (b.latency_marker_us == 0) b.latency_marker_us = created_us;  // the older marker stays
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

bool RecordEmitter::EmitWatermark(int64_t watermark) {
  // The watermark rides on a buffer being filled: one message, not the
  // buffer and then an event.
  for (int t = 0; t < num_targets_; ++t) {
    NetworkBuffer& b = building_[t];
    if (b.num_records > 0 || b.latency_marker_us > 0) {
      b.then_watermark = true;
      b.watermark = watermark;
      if (!SendBuffer(t)) return false;
      continue;
    }
    NetworkBuffer event;
    event.kind = BufferKind::kWatermark;
    event.watermark = watermark;
    if (!partition_->subpartition(t).Add(std::move(event))) return false;
  }
  return true;
}
bool RecordEmitter::EmitIdle() { return EmitEvent(BufferKind::kIdle, 0, 0); }
bool RecordEmitter::EmitBarrier(int64_t checkpoint_id, const BarrierOptions& options, Overtaken* overtaken) {
  if (!options.unaligned && !Flush()) return false;
  settled_.assign(num_targets_, options.unaligned || options.aligned_deadline_ms == 0);
  std::vector<NetworkBuffer> taken;
  for (int t = 0; t < num_targets_; ++t) {
    ResultSubpartition& sub = partition_->subpartition(t);
    if (options.unaligned && building_[t].num_records > 0) {
      NetworkBuffer partial;
      partial.data.reserve(kNetworkBufferBytes + 1024);
      std::swap(partial, building_[t]);
      if (!sub.Add(std::move(partial), /*force=*/true)) return false;
    }
    NetworkBuffer barrier;
    barrier.kind = BufferKind::kBarrier;
    barrier.checkpoint_id = checkpoint_id;
    barrier.unaligned = options.unaligned;
    barrier.aligned_deadline_ms = options.unaligned ? 0 : options.aligned_deadline_ms;
    taken.clear();
    if (!sub.AddBarrier(std::move(barrier), &taken)) return false;
    if (overtaken == nullptr) continue;
    for (NetworkBuffer& b : taken) overtaken->emplace_back(t, std::move(b));
  }
  return true;
}

bool RecordEmitter::SettleBarrier(int64_t checkpoint_id, int64_t now_ms, Overtaken* overtaken) {
  bool all = true;
  std::vector<NetworkBuffer> taken;
  for (int t = 0; t < num_targets_; ++t) {
    if (settled_.empty() || settled_[t]) continue;
    taken.clear();
    settled_[t] = partition_->subpartition(t).SettleBarrier(checkpoint_id, now_ms, &taken);
    for (NetworkBuffer& b : taken) overtaken->emplace_back(t, std::move(b));
    all = all && settled_[t];
  }
  return all;
}

bool RecordEmitter::WaitForRoom(std::chrono::milliseconds max_wait) {
  for (int t = 0; t < num_targets_; ++t) {
    if (!partition_->subpartition(t).WaitForRoom(max_wait)) return false;
  }
  return true;
}

bool RecordEmitter::Restore(int subpartition, NetworkBuffer buffer) {
  if (subpartition < 0 || subpartition >= num_targets_) return false;
  return partition_->subpartition(subpartition).Add(std::move(buffer), /*force=*/true);
}

bool RecordEmitter::Finish() {
  if (!Flush()) return false;
  for (int t = 0; t < num_targets_; ++t) partition_->subpartition(t).Finish();
  return true;
}

}  // namespace vstream
