#include "runtime/channel_state.h"

#include <utility>

#include "state/state_key.h"

namespace vstream {

namespace {
constexpr std::string_view kMagic = "vstream-channel-state 1\n";
constexpr std::string_view kEnd = "END";
}  // namespace

void ChannelState::AddInput(int input, int num_records, std::string data) {
  bytes_ += data.size();
  entries_.push_back(ChannelStateEntry{false, input, 0, num_records, std::move(data)});
}

void ChannelState::AddOutput(int emitter, int subpartition, int num_records, std::string data) {
  bytes_ += data.size();
  entries_.push_back(ChannelStateEntry{true, emitter, subpartition, num_records, std::move(data)});
}

std::string ChannelState::Serialize() const {
  std::string out(kMagic);
  out.reserve(kMagic.size() + bytes_ + entries_.size() * 12 + kEnd.size());
  for (const ChannelStateEntry& e : entries_) {
    out.push_back(e.output ? 'O' : 'I');
    AppendVarint32(static_cast<uint32_t>(e.index), &out);
    AppendVarint32(static_cast<uint32_t>(e.subpartition), &out);
    AppendVarint32(static_cast<uint32_t>(e.num_records), &out);
    AppendVarint32(static_cast<uint32_t>(e.data.size()), &out);
    out += e.data;
  }
  out += kEnd;
  return out;
}

absl::StatusOr<ChannelState> ChannelState::Parse(std::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic) return absl::DataLossError("channel state: bad header");
  bytes.remove_prefix(kMagic.size());
  ChannelState state;
  while (bytes != kEnd) {
    if (bytes.empty()) return absl::DataLossError("channel state: truncated");
    const char kind = bytes[0];
    bytes.remove_prefix(1);
    uint32_t index = 0, subpartition = 0, num_records = 0, n = 0;
    if ((kind != 'I' && kind != 'O') || !ReadVarint32(&bytes, &index) || !ReadVarint32(&bytes, &subpartition) ||
        !ReadVarint32(&bytes, &num_records) || !ReadVarint32(&bytes, &n) || n > bytes.size() ||
        index > (1u << 20) || subpartition > (1u << 20) || num_records > (1u << 30)) {
      return absl::DataLossError("channel state: malformed entry");
    }
    std::string data(bytes.substr(0, n));
    bytes.remove_prefix(n);
    if (kind == 'I') {
      state.AddInput(static_cast<int>(index), static_cast<int>(num_records), std::move(data));
    } else {
      state.AddOutput(static_cast<int>(index), static_cast<int>(subpartition), static_cast<int>(num_records),
                      std::move(data));
    }
  }
  return state;
}

}  // namespace vstream
