#pragma once
// The consumer side of the network stack: an InputGate holds one
// InputChannel per producer subpartition the task reads. The task thread
// asks the gate for the next buffer of whichever channel has one, so one
// idle or slow channel never stalls the others.
//
//   producer TM                          consumer TM
//   ResultSubpartition --(same TM)-----> LocalInputChannel  --+
//   ResultSubpartition --DataExchange--> RemoteInputChannel --+--> InputGate --> task thread
//                        (credit-based gRPC stream)
//
// Thread-safe: channels notify from the network thread (remote) or the
// producer's (local); Next() is called by the task thread only.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "proto/data.grpc.pb.h"
#include "runtime/checkpoint_barriers.h"
#include "runtime/network/buffer.h"
#include "runtime/network/network_thread.h"
#include "runtime/network/result_partition.h"

namespace vstream {

class InputGate;

class InputChannel {
 public:
  virtual ~InputChannel() = default;
  // Connects; from now on the channel calls gate.Notify(index) when data arrives.
  virtual void Start(InputGate* gate, int index) = 0;
  virtual std::optional<NetworkBuffer> Poll() = 0;
  // Stops reading (cancel or done); idempotent.
  virtual void Close() = 0;
  // Non-empty once the channel failed (e.g. the producer's TaskManager is gone).
  virtual std::string error() const = 0;
  // Copies the first n record buffers queued in the channel itself (the
  // ones an unaligned barrier overtook here: NetworkBuffer::overtaken).
  virtual void CopyQueuedRecords(int n, std::vector<NetworkBuffer>* out) const { (void)n, (void)out; }
  // The next buffer if it is an unaligned barrier, else nullopt.
  virtual std::optional<NetworkBuffer> PollPriority() = 0;
  // An aligned barrier received with a deadline that is still queued here
  // once now_ms passed it turns unaligned: moved to the front, counting
  // what it overtook. True if one did.
  virtual bool ConvertOverdueBarrier(int64_t now_ms) { return now_ms < 0; }
};

// Reads a subpartition of a partition produced in the same TaskManager.
class LocalInputChannel : public InputChannel {
 public:
  LocalInputChannel(PartitionManager& partitions, std::string partition_id, int subpartition);
  void Start(InputGate* gate, int index) override;
  std::optional<NetworkBuffer> Poll() override;
  std::optional<NetworkBuffer> PollPriority() override;
  void Close() override;
  std::string error() const override;

 private:
  PartitionManager& partitions_;
  std::string partition_id_;
  int subpartition_;
  std::shared_ptr<ResultPartition> partition_;  // shared with the producer
  std::thread connect_thread_;
  std::atomic<bool> closed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

// Reads a subpartition from another TaskManager over one DataExchange
// stream, granting the producer one credit per free receive buffer. The
// stream is driven by the NetworkThread: it reads, the task thread takes
// buffers and writes credit back.
class RemoteInputChannel : public InputChannel {
 public:
  // credits: receive buffers of this channel (the most it holds at once).
  RemoteInputChannel(NetworkThread* network, std::shared_ptr<grpc::Channel> channel, std::string partition_id,
                     int subpartition, int credits);
  ~RemoteInputChannel() override;
  void Start(InputGate* gate, int index) override;
  std::optional<NetworkBuffer> Poll() override;
  std::optional<NetworkBuffer> PollPriority() override;
  bool ConvertOverdueBarrier(int64_t now_ms) override;
  // Cancels the stream unless it ended, and waits until gRPC is done with it.
  void Close() override;
  std::string error() const override;
  void CopyQueuedRecords(int n, std::vector<NetworkBuffer>* out) const override;

 private:
  // Network thread.
  void OnStarted(bool ok);
  void OnRead(bool ok);
  void OnWritten(bool ok);
  void OnFinished(bool ok);
  void FinishLocked();
  // Writes the credit granted so far (under mu_, none outstanding).
  void WriteCreditLocked();

  NetworkThread* network_;
  std::unique_ptr<proto::DataExchange::Stub> stub_;
  std::string partition_id_;
  int subpartition_;
  const int credits_;
  InputGate* gate_ = nullptr;
  int index_ = -1;
  grpc::ClientContext context_;
  // Set once the call starts (it must then finish).
  std::unique_ptr<grpc::ClientAsyncReaderWriter<proto::ChannelRequest, proto::BufferMessage>> stream_;
  MemberOp<RemoteInputChannel> started_op_{this, &RemoteInputChannel::OnStarted};
  MemberOp<RemoteInputChannel> read_op_{this, &RemoteInputChannel::OnRead};
  MemberOp<RemoteInputChannel> write_op_{this, &RemoteInputChannel::OnWritten};
  MemberOp<RemoteInputChannel> finish_op_{this, &RemoteInputChannel::OnFinished};
  proto::BufferMessage msg_;  // the read outstanding (network thread)
  int consumed_since_credit_ = 0;  // task thread only

  mutable std::mutex mu_;
  std::condition_variable finished_cv_;
  std::deque<NetworkBuffer> received_;
  std::string error_;
  proto::ChannelRequest request_;  // the write outstanding
  grpc::Status status_;
  int pending_credit_ = 0;  // granted, not yet written
  bool can_write_ = false;  // the call is up and no write is outstanding
  bool writing_ = false;
  bool ended_ = false;      // the end of the partition arrived
  bool finishing_ = false;  // Finish was called (or waits for the write)
  bool finished_ = false;   // ... and completed: no operation is outstanding
  bool closed_ = false;
  // The earliest deadline of an aligned barrier queued in received_ (0: none).
  std::atomic<int64_t> queued_deadline_ms_{0};
};

enum class GateResult {
  kBuffer,     // *buffer holds records or an event (watermark, idle) of channel *channel
  kChannelEnd, // channel *channel has ended (its end-of-partition arrived)
  kTimeout,    // nothing arrived before the deadline
  kEnd,        // every channel has ended
  kFailed,     // a channel failed; see error()
  kCancelled,  // Cancel() was called
};

class InputGate : public ChannelBlocker {
 public:
  explicit InputGate(std::vector<std::unique_ptr<InputChannel>> channels);
  ~InputGate();

  void Start();
  // Blocks until a buffer arrives, the deadline passes or the gate ends.
  // End-of-partition events are reported once per channel as kChannelEnd.
  GateResult Next(std::chrono::steady_clock::time_point deadline, NetworkBuffer* buffer,
                  int* channel);
  void Notify(int channel);
  // A channel queued an unaligned barrier at its front.
  void NotifyPriority(int channel);
  // Unaligned barriers overtake a task in the middle of a buffer too: it
  // checks priority_pending() between batches and takes them (as
  // (channel, barrier), in no particular order across channels) at once.
  bool priority_pending() const { return priority_events_.load(std::memory_order_relaxed) > 0; }
  void TakePriorityEvents(std::vector<std::pair<int, NetworkBuffer>>* out);
  // See InputChannel::ConvertOverdueBarrier. Task thread.
  void ConvertOverdueBarriers(int64_t now_ms);
  // Checkpoint alignment: Next() skips a blocked channel, whose buffers wait
  // (and, by credit, hold its producer back) until UnblockAll. Task thread.
  void Block(int channel) override;
  void UnblockAll() override;
  void Cancel();
  void Close();
  std::string error() const;
  // See InputChannel::CopyQueuedRecords. Task thread.
  void CopyQueuedRecords(int channel, int n, std::vector<NetworkBuffer>* out) const;
  int num_channels() const { return static_cast<int>(channels_.size()); }

 private:
  std::vector<std::unique_ptr<InputChannel>> channels_;
  std::vector<bool> ended_;
  int num_ended_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> available_;
  std::vector<bool> queued_;
  std::vector<bool> blocked_;
  std::vector<bool> parked_;  // blocked with a notification pending
  bool cancelled_ = false;
  std::string error_;
  std::atomic<int> priority_events_{0};
};

}  // namespace vstream
