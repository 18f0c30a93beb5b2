#include "runtime/network/input_gate.h"

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace vstream {

// ---------------------------------------------------------------- local

LocalInputChannel::LocalInputChannel(PartitionManager& partitions, std::string partition_id,
                                     int subpartition)
    : partitions_(partitions), partition_id_(std::move(partition_id)), subpartition_(subpartition) {}

void LocalInputChannel::Start(InputGate* gate, int index) {
  // The producer may not be deployed yet: wait for its partition off the
  // task thread, so the other channels are read meanwhile.
  connect_thread_ = std::thread([this, gate, index] {
    std::shared_ptr<ResultPartition> partition;
    for (int waited_ms = 0; !partition && waited_ms < 60'000 && !closed_; waited_ms += 100) {
      partition = partitions_.Await(partition_id_, 100);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    if (!partition) {
      error_ = absl::StrCat("partition ", partition_id_, " was not produced within 60 s");
      gate->Notify(index);
      return;
    }
    partition_ = partition;
    partition_->subpartition(subpartition_).SetListener([gate, index] { gate->Notify(index); });
  });
}

std::optional<NetworkBuffer> LocalInputChannel::Poll() {
  std::shared_ptr<ResultPartition> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = partition_;
  }
  if (!p) return std::nullopt;
  return p->subpartition(subpartition_).Poll();
}

void LocalInputChannel::Close() {
  closed_ = true;
  if (connect_thread_.joinable()) connect_thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (partition_) {
    partition_->subpartition(subpartition_).SetListener(nullptr);
    partition_.reset();
  }
}

std::string LocalInputChannel::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

// ---------------------------------------------------------------- remote

RemoteInputChannel::RemoteInputChannel(std::shared_ptr<grpc::Channel> channel,
                                       std::string partition_id, int subpartition, int credits)
    : stub_(proto::DataExchange::NewStub(channel)),
      partition_id_(std::move(partition_id)),
      subpartition_(subpartition),
      credits_(credits) {}

RemoteInputChannel::~RemoteInputChannel() { Close(); }

void RemoteInputChannel::Start(InputGate* gate, int index) {
  gate_ = gate;
  index_ = index;
  reader_ = std::thread([this] { ReadLoop(); });
}

void RemoteInputChannel::ReadLoop() {
  {
    std::lock_guard<std::mutex> wl(write_mu_);
    if (closed_) return;
    stream_ = stub_->OpenChannel(&context_);
    proto::ChannelRequest first;
    first.set_partition_id(partition_id_);
    first.set_subpartition(subpartition_);
    first.set_credit(credits_);
    stream_->Write(first);
  }
  proto::BufferMessage msg;
  bool clean_end = false;
  while (stream_->Read(&msg)) {
    NetworkBuffer b;
    b.data = std::move(*msg.mutable_data());
    b.num_records = msg.num_records();
    b.end_of_partition = msg.end_of_partition();
    if (msg.end_of_partition()) {
      b.kind = BufferKind::kEndOfPartition;
    } else if (msg.idle()) {
      b.kind = BufferKind::kIdle;
    } else if (msg.checkpoint_barrier() > 0) {
      b.kind = BufferKind::kBarrier;
      b.checkpoint_id = msg.checkpoint_barrier();
    } else if (msg.has_watermark()) {
      b.kind = BufferKind::kWatermark;
      b.watermark = msg.watermark();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back(std::move(b));
    }
    gate_->Notify(index_);
    if (msg.end_of_partition()) {
      clean_end = true;
      break;
    }
  }
  if (!clean_end) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = absl::StrCat("data stream for partition ", partition_id_, " broke");
  }
  if (!clean_end) gate_->Notify(index_);
}

std::optional<NetworkBuffer> RemoteInputChannel::Poll() {
  std::optional<NetworkBuffer> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (received_.empty()) return std::nullopt;
    out = std::move(received_.front());
    received_.pop_front();
  }
  // Give the buffer's credit back, in batches of half the window. Events
  // are sent without credit and give none back.
  if (out->kind == BufferKind::kRecords && ++consumed_since_credit_ >= std::max(1, credits_ / 2)) {
    proto::ChannelRequest credit;
    credit.set_credit(consumed_since_credit_);
    consumed_since_credit_ = 0;
    std::lock_guard<std::mutex> wl(write_mu_);
    if (stream_ && !closed_) stream_->Write(credit);
  }
  return out;
}

void RemoteInputChannel::Close() {
  {
    std::lock_guard<std::mutex> wl(write_mu_);
    if (closed_) return;
    closed_ = true;
    bool ended;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended = !received_.empty() && received_.back().end_of_partition;
    }
    if (!ended) context_.TryCancel();
    if (stream_) stream_->WritesDone();
  }
  if (reader_.joinable()) reader_.join();
  if (stream_) stream_->Finish();
}

std::string RemoteInputChannel::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  // A buffered end-of-partition means the stream ended cleanly even if the
  // reader saw an error afterwards.
  return error_;
}

// ---------------------------------------------------------------- gate

InputGate::InputGate(std::vector<std::unique_ptr<InputChannel>> channels)
    : channels_(std::move(channels)),
      ended_(channels_.size()),
      queued_(channels_.size()),
      blocked_(channels_.size()),
      parked_(channels_.size()) {}

InputGate::~InputGate() { Close(); }

void InputGate::Start() {
  for (size_t i = 0; i < channels_.size(); ++i) channels_[i]->Start(this, static_cast<int>(i));
}

void InputGate::Notify(int channel) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_[channel]) return;
    queued_[channel] = true;
    available_.push_back(channel);
  }
  cv_.notify_one();
}

void InputGate::Block(int channel) {
  std::lock_guard<std::mutex> lock(mu_);
  blocked_[channel] = true;
}

void InputGate::UnblockAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t ch = 0; ch < channels_.size(); ++ch) {
      blocked_[ch] = false;
      if (!parked_[ch]) continue;
      parked_[ch] = false;
      if (!queued_[ch]) {
        queued_[ch] = true;
        available_.push_back(static_cast<int>(ch));
      }
    }
  }
  cv_.notify_one();
}

void InputGate::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

void InputGate::Close() {
  for (auto& c : channels_) c->Close();
}

std::string InputGate::error() const { return error_; }

GateResult InputGate::Next(std::chrono::steady_clock::time_point deadline, NetworkBuffer* buffer,
                           int* channel) {
  while (true) {
    int ch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cancelled_) return GateResult::kCancelled;
      if (num_ended_ == static_cast<int>(channels_.size())) return GateResult::kEnd;
      if (!cv_.wait_until(lock, deadline, [&] { return cancelled_ || !available_.empty(); })) {
        return GateResult::kTimeout;
      }
      if (cancelled_) return GateResult::kCancelled;
      ch = available_.front();
      available_.pop_front();
      queued_[ch] = false;  // cleared before polling: no notification is lost
      if (blocked_[ch]) {
        parked_[ch] = true;  // UnblockAll queues it again
        continue;
      }
    }
    std::optional<NetworkBuffer> b = channels_[ch]->Poll();
    if (!b) {
      std::string err = channels_[ch]->error();
      if (!err.empty() && !ended_[ch]) {
        error_ = std::move(err);
        return GateResult::kFailed;
      }
      continue;
    }
    Notify(ch);  // it may hold more
    if (b->end_of_partition) {
      if (!ended_[ch]) {
        ended_[ch] = true;
        ++num_ended_;
        *channel = ch;
        return GateResult::kChannelEnd;
      }
      continue;
    }
    *buffer = std::move(*b);
    *channel = ch;
    return GateResult::kBuffer;
  }
}

}  // namespace vstream
