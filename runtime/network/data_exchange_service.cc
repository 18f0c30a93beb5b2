#include "runtime/network/data_exchange_service.h"

#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "grpcpp/alarm.h"

namespace vstream {

namespace {
// The producer may be deployed after its consumer: its partition is looked
// for every kRetry, for up to kMaxWait.
constexpr auto kRetry = std::chrono::milliseconds(20);
constexpr int kMaxRetries = 3000;  // 60 s
}  // namespace

// One OpenChannel call, from its request to its end. Its methods run on the
// network thread, except Pump, which the subpartition's listener runs on
// the producer's thread too: a buffer added to an empty queue is written at
// once, without waking another thread (mu_ guards what Pump touches). It
// deletes itself once the call is over and no operation of its own is
// outstanding.
class DataExchangeService::Stream {
 public:
  explicit Stream(DataExchangeService* service) : service_(service), network_(service->network_) {
    {
      std::lock_guard<std::mutex> lock(service_->mu_);
      ++service_->streams_;
    }
    ctx_.AsyncNotifyWhenDone(&done_op_);
    service_->service_.RequestOpenChannel(&ctx_, &rw_, network_->cq(), network_->cq(), &started_op_);
  }
  ~Stream() {
    std::lock_guard<std::mutex> lock(service_->mu_);
    if (--service_->streams_ == 0) service_->streams_gone_.notify_all();
  }

 private:
  void OnStarted(bool ok) {
    if (!ok) {  // the server is shutting down: no call, no done tag
      delete this;
      return;
    }
    new Stream(service_);  // the next call
    reading_ = true;
    rw_.Read(&first_, &read_op_);
  }

  void OnRead(bool ok) {
    reading_ = false;
    if (finishing_) return MaybeDelete();
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, got_first_ ? "consumer went away" : "no request"));
    if (!got_first_) {
      got_first_ = true;
      return Connect();
    }
    std::lock_guard<std::mutex> lock(mu_);
    credit_ += request_.credit();
    reading_ = true;
    rw_.Read(&request_, &read_op_);
    PumpLocked();
  }

  void Connect() {
    if (done_) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "consumer went away"));
    partition_ = service_->partitions_.Await(first_.partition_id(), 0);
    if (!partition_) {
      if (++retries_ > kMaxRetries) {
        return Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   absl::StrCat("partition ", first_.partition_id(), " not found")));
      }
      retrying_ = true;
      retry_.Set(network_->cq(), std::chrono::system_clock::now() + kRetry, &retry_op_);
      return;
    }
    if (first_.subpartition() < 0 || first_.subpartition() >= partition_->num_subpartitions()) {
      return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad subpartition"));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      sub_ = &partition_->subpartition(first_.subpartition());
      credit_ = first_.credit();
      reading_ = true;
      rw_.Read(&request_, &read_op_);
    }
    // Sends what is queued already, then whatever comes.
    sub_->SetListener([this](bool) {
      std::lock_guard<std::mutex> lock(mu_);
      PumpLocked();
    });
  }

  void OnRetry(bool ok) {
    retrying_ = false;
    if (!ok || done_) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "consumer went away"));
    Connect();
  }

  // Sends the next buffer if there is one, no write is outstanding and it
  // has credit (an unaligned barrier needs none: it overtakes the records
  // held back for lack of credit).
  void PumpLocked() {
    if (finishing_ || writing_ || sub_ == nullptr) return;
    std::optional<NetworkBuffer> b = credit_ > 0 ? sub_->Poll() : sub_->PollPriority();
    if (!b) return;
    msg_.set_data(std::move(b->data));
    msg_.set_num_records(b->num_records);
    msg_.set_end_of_partition(b->end_of_partition);
    msg_.set_has_watermark(b->kind == BufferKind::kWatermark || b->then_watermark);
    msg_.set_watermark(b->watermark);
    msg_.set_idle(b->kind == BufferKind::kIdle);
    msg_.set_checkpoint_barrier(b->kind == BufferKind::kBarrier ? b->checkpoint_id : 0);
    msg_.set_unaligned(b->unaligned);
    msg_.set_aligned_deadline_ms(b->aligned_deadline_ms);
    msg_.set_latency_marker_us(b->latency_marker_us);
    if (b->kind == BufferKind::kRecords) --credit_;
    sent_end_ = b->end_of_partition;
    writing_ = true;
    rw_.Write(msg_, &write_op_);
  }

  void OnWritten(bool ok) {
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (finishing_) {
      } else if (deferred_finish_) {
        finish = std::exchange(deferred_finish_, std::nullopt);
      } else if (!ok) {
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "consumer went away");
      } else if (sent_end_) {
        finish = grpc::Status::OK;
      } else {
        PumpLocked();
        return;
      }
      // Under the same lock as the decision: no listener starts a write
      // in between.
      if (finish) finishing_ = true;
    }
    if (finish) return FinishStarted(*std::move(finish));
    MaybeDelete();
  }

  // Ends the call (after the outstanding write, if any: gRPC allows no
  // Finish beside one).
  void Finish(grpc::Status status) {
    if (finishing_) return MaybeDelete();  // set on this thread only
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_) {
        if (!deferred_finish_) deferred_finish_ = std::move(status);
        return;
      }
      finishing_ = true;  // Pump sends nothing more
    }
    FinishStarted(std::move(status));
  }

  // finishing_ is set and no write is outstanding.
  void FinishStarted(grpc::Status status) {
    // Not under mu_: a listener running now holds the subpartition's
    // listener lock and waits for mu_.
    if (sub_ != nullptr) {
      sub_->SetListener(nullptr);  // no listener runs after this
      // The consumer is gone: unblock the producer rather than let it hang.
      if (!status.ok()) sub_->Release();
    }
    if (done_) {
      // Cancelled: nothing reaches the consumer any more.
      return MaybeDelete();
    }
    finish_pending_ = true;
    rw_.Finish(status, &finish_op_);
  }

  void OnFinished(bool) {
    finish_pending_ = false;
    MaybeDelete();
  }

  // The call is over: finished, or cancelled by the consumer (or a server
  // shutdown).
  void OnDone(bool) {
    done_ = true;
    if (retrying_) retry_.Cancel();  // OnRetry comes with !ok
    if (!finishing_) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "consumer went away"));
    MaybeDelete();
  }

  void MaybeDelete() {
    if (!done_ || !finishing_ || reading_ || retrying_ || finish_pending_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_) return;
    }
    delete this;
  }

  DataExchangeService* service_;
  NetworkThread* network_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<proto::BufferMessage, proto::ChannelRequest> rw_{&ctx_};
  MemberOp<Stream> started_op_{this, &Stream::OnStarted};
  MemberOp<Stream> read_op_{this, &Stream::OnRead};
  MemberOp<Stream> write_op_{this, &Stream::OnWritten};
  MemberOp<Stream> finish_op_{this, &Stream::OnFinished};
  MemberOp<Stream> done_op_{this, &Stream::OnDone};
  MemberOp<Stream> retry_op_{this, &Stream::OnRetry};
  grpc::Alarm retry_;
  proto::ChannelRequest first_;
  proto::ChannelRequest request_;
  std::shared_ptr<ResultPartition> partition_;  // shared with the producer
  int retries_ = 0;
  bool got_first_ = false;
  bool reading_ = false;
  bool retrying_ = false;
  bool finish_pending_ = false;
  bool done_ = false;

  std::mutex mu_;
  ResultSubpartition* sub_ = nullptr;  // set once, before the listener
  proto::BufferMessage msg_;  // the write outstanding
  int64_t credit_ = 0;
  bool writing_ = false;
  bool sent_end_ = false;
  bool finishing_ = false;
  std::optional<grpc::Status> deferred_finish_;
};

void DataExchangeService::Start(NetworkThread* network) {
  network_ = network;
  new Stream(this);
}

void DataExchangeService::AwaitStreamsGone() {
  std::unique_lock<std::mutex> lock(mu_);
  streams_gone_.wait(lock, [&] { return streams_ == 0; });
}

}  // namespace vstream
