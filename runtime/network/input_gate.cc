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
    partition_->subpartition(subpartition_).SetListener([gate, index](bool priority) {
      if (priority) {
        gate->NotifyPriority(index);
      } else {
        gate->Notify(index);
      }
    });
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

std::optional<NetworkBuffer> LocalInputChannel::PollPriority() {
  std::shared_ptr<ResultPartition> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = partition_;
  }
  if (!p) return std::nullopt;
  return p->subpartition(subpartition_).PollPriority();
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

RemoteInputChannel::RemoteInputChannel(NetworkThread* network, std::shared_ptr<grpc::Channel> channel,
                                       std::string partition_id, int subpartition, int credits)
    : network_(network),
      stub_(proto::DataExchange::NewStub(channel)),
      partition_id_(std::move(partition_id)),
      subpartition_(subpartition),
      credits_(credits) {}

RemoteInputChannel::~RemoteInputChannel() { Close(); }

void RemoteInputChannel::Start(InputGate* gate, int index) {
  gate_ = gate;
  index_ = index;
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  stream_ = stub_->PrepareAsyncOpenChannel(&context_, network_->cq());
  stream_->StartCall(&started_op_);
}

void RemoteInputChannel::OnStarted(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ok) {
    FinishLocked();
    return;
  }
  request_.set_partition_id(partition_id_);
  request_.set_subpartition(subpartition_);
  request_.set_credit(credits_ + std::exchange(pending_credit_, 0));
  writing_ = true;
  stream_->Write(request_, &write_op_);
  stream_->Read(&msg_, &read_op_);
}

void RemoteInputChannel::OnRead(bool ok) {
  if (!ok) {
    // The call broke (or was cancelled): OnFinished tells the gate why.
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked();
    return;
  }
  NetworkBuffer b;
  b.data = std::move(*msg_.mutable_data());
  b.num_records = msg_.num_records();
  b.end_of_partition = msg_.end_of_partition();
  b.latency_marker_us = msg_.latency_marker_us();
  if (msg_.end_of_partition()) {
    b.kind = BufferKind::kEndOfPartition;
  } else if (msg_.idle()) {
    b.kind = BufferKind::kIdle;
  } else if (msg_.checkpoint_barrier() > 0) {
    b.kind = BufferKind::kBarrier;
    b.checkpoint_id = msg_.checkpoint_barrier();
    b.unaligned = msg_.unaligned();
    b.aligned_deadline_ms = msg_.aligned_deadline_ms();
  } else if (msg_.has_watermark()) {
    // Records (or a latency marker) with a watermark after them, or only it.
    b.watermark = msg_.watermark();
    if (b.num_records > 0 || b.latency_marker_us > 0) {
      b.then_watermark = true;
    } else {
      b.kind = BufferKind::kWatermark;
    }
  }
  const bool priority = b.unaligned;
  const bool end = b.end_of_partition;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (b.unaligned) {
      // It overtakes what this channel received and the task has not
      // taken yet, too: those records go into the task's snapshot.
      for (const NetworkBuffer& r : received_) b.overtaken += r.kind == BufferKind::kRecords ? 1 : 0;
      received_.push_front(std::move(b));
    } else {
      if (b.kind == BufferKind::kBarrier && b.aligned_deadline_ms > 0) {
        const int64_t d = queued_deadline_ms_.load();
        if (d == 0 || b.aligned_deadline_ms < d) queued_deadline_ms_.store(b.aligned_deadline_ms);
      }
      received_.push_back(std::move(b));
    }
    if (end) {
      ended_ = true;
      FinishLocked();  // the producer finishes the call after the end
    } else {
      stream_->Read(&msg_, &read_op_);
    }
  }
  if (priority) {
    gate_->NotifyPriority(index_);
  } else {
    gate_->Notify(index_);
  }
}

void RemoteInputChannel::OnWritten(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (finishing_) {
    // It waited for this write (gRPC allows no Finish beside one).
    stream_->Finish(&status_, &finish_op_);
    return;
  }
  // A failed write: the call broke, which the read sees.
  can_write_ = ok;
  if (can_write_ && pending_credit_ > 0) WriteCreditLocked();
}

void RemoteInputChannel::WriteCreditLocked() {
  request_.Clear();
  request_.set_credit(std::exchange(pending_credit_, 0));
  can_write_ = false;
  writing_ = true;
  stream_->Write(request_, &write_op_);
}

void RemoteInputChannel::FinishLocked() {
  if (finishing_) return;
  finishing_ = true;
  can_write_ = false;
  if (!writing_) stream_->Finish(&status_, &finish_op_);  // else once the write is done
}

void RemoteInputChannel::OnFinished(bool) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ended_) {
    error_ = absl::StrCat("data stream for partition ", partition_id_, " broke: ", status_.error_message());
    // Under mu_: once finished_ is set, Close may return and the gate go.
    gate_->Notify(index_);
  }
  finished_ = true;
  finished_cv_.notify_all();
}

std::optional<NetworkBuffer> RemoteInputChannel::Poll() {
  std::optional<NetworkBuffer> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (received_.empty()) return std::nullopt;
  out = std::move(received_.front());
  received_.pop_front();
  // Give the buffer's credit back, in batches of half the window. Events
  // are sent without credit and give none back. The write starts here or,
  // with one outstanding, when that one completes (OnWritten).
  if (out->kind == BufferKind::kRecords && ++consumed_since_credit_ >= std::max(1, credits_ / 2)) {
    pending_credit_ += std::exchange(consumed_since_credit_, 0);
    if (can_write_) WriteCreditLocked();
  }
  return out;
}

std::optional<NetworkBuffer> RemoteInputChannel::PollPriority() {
  std::lock_guard<std::mutex> lock(mu_);
  if (received_.empty() || received_.front().kind != BufferKind::kBarrier || !received_.front().unaligned) {
    return std::nullopt;
  }
  std::optional<NetworkBuffer> b(std::move(received_.front()));
  received_.pop_front();
  return b;
}

bool RemoteInputChannel::ConvertOverdueBarrier(int64_t now_ms) {
  const int64_t deadline = queued_deadline_ms_.load(std::memory_order_relaxed);
  if (deadline == 0 || now_ms < deadline) return false;
  std::lock_guard<std::mutex> lock(mu_);
  queued_deadline_ms_.store(0);
  bool converted = false;
  int records = 0;
  for (auto it = received_.begin(); it != received_.end(); ++it) {
    if (it->kind == BufferKind::kRecords) ++records;
    if (it->kind != BufferKind::kBarrier || it->unaligned || it->aligned_deadline_ms == 0) continue;
    if (it->aligned_deadline_ms > now_ms) {
      // A later one: check again at its deadline.
      queued_deadline_ms_.store(it->aligned_deadline_ms);
      break;
    }
    NetworkBuffer b = std::move(*it);
    received_.erase(it);
    b.unaligned = true;
    b.aligned_deadline_ms = 0;
    b.overtaken = records;
    received_.push_front(std::move(b));
    converted = true;
    break;
  }
  return converted;
}

void RemoteInputChannel::Close() {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  if (stream_ == nullptr) return;  // never started
  // Ended: the producer finishes the call. Else cancelling completes every
  // operation outstanding (with !ok) and the read finishes the call.
  if (!ended_) context_.TryCancel();
  finished_cv_.wait(lock, [&] { return finished_; });
}

void RemoteInputChannel::CopyQueuedRecords(int n, std::vector<NetworkBuffer>* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const NetworkBuffer& b : received_) {
    if (n <= 0) break;
    if (b.kind != BufferKind::kRecords) continue;
    out->push_back(b);
    --n;
  }
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

void InputGate::NotifyPriority(int channel) {
  priority_events_.fetch_add(1, std::memory_order_relaxed);
  Notify(channel);
}

void InputGate::TakePriorityEvents(std::vector<std::pair<int, NetworkBuffer>>* out) {
  // Reset first: a notification after this is seen by the next check.
  if (priority_events_.exchange(0) == 0) return;
  for (size_t ch = 0; ch < channels_.size(); ++ch) {
    if (ended_[ch]) continue;
    while (std::optional<NetworkBuffer> b = channels_[ch]->PollPriority()) out->emplace_back(static_cast<int>(ch), std::move(*b));
  }
}

void InputGate::ConvertOverdueBarriers(int64_t now_ms) {
  for (size_t ch = 0; ch < channels_.size(); ++ch) {
    if (channels_[ch]->ConvertOverdueBarrier(now_ms)) NotifyPriority(static_cast<int>(ch));
  }
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

void InputGate::CopyQueuedRecords(int channel, int n, std::vector<NetworkBuffer>* out) const {
  if (n > 0) channels_[channel]->CopyQueuedRecords(n, out);
}

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
