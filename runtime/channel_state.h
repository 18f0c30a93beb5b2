#pragma once
// The channel state of an unaligned checkpoint, for one subtask (Flink's
// ChannelStateWriter / InputChannelInfo + ResultSubpartitionInfo): the
// records that were in flight when the snapshot was taken, kept as the
// network buffers they travelled in.
//
//   input:  records that reached the task's inputs before their barrier but
//           after its snapshot; on a restore the task processes them first.
//   output: records the task had emitted before its snapshot that its
//           barrier overtook in the output queues; on a restore they are
//           queued first, ahead of anything new.
//
// Restored at the same parallelism only (savepoints are always aligned).
//
// Format: "vstream-channel-state 1\n", then entries
//   [kind: 'I' | 'O'][varint32 index][varint32 subpartition][varint32 num_records][varint32 n][n bytes]
// (index: the input (0 or 1) or the output edge's emitter), and "END".
//
// Thread-compatible.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace vstream {

struct ChannelStateEntry {
  bool output = false;
  int index = 0;         // input 0/1, or the emitter of an output edge
  int subpartition = 0;  // output only
  int num_records = 0;
  std::string data;      // rows in the compact row format (runtime/row_codec.h)
};

class ChannelState {
 public:
  void AddInput(int input, int num_records, std::string data);
  void AddOutput(int emitter, int subpartition, int num_records, std::string data);
  bool empty() const { return entries_.empty(); }
  size_t bytes() const { return bytes_; }
  const std::vector<ChannelStateEntry>& entries() const { return entries_; }

  std::string Serialize() const;
  // DataLoss for malformed bytes.
  static absl::StatusOr<ChannelState> Parse(std::string_view bytes);

 private:
  std::vector<ChannelStateEntry> entries_;
  size_t bytes_ = 0;
};

}  // namespace vstream
