#include "runtime/network/data_exchange_service.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace vstream {

grpc::Status DataExchangeService::OpenChannel(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<proto::BufferMessage, proto::ChannelRequest>* stream) {
  proto::ChannelRequest first;
  if (!stream->Read(&first)) return grpc::Status(grpc::StatusCode::CANCELLED, "no request");
  // The producer may be deployed after its consumer: wait for it, in short
  // slices so that a cancelled call or a server shutdown is not held up.
  std::shared_ptr<ResultPartition> partition;
  for (int waited_ms = 0; !partition && waited_ms < 60'000 && !context->IsCancelled(); waited_ms += 100) {
    partition = partitions_.Await(first.partition_id(), 100);
  }
  if (!partition) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("partition ", first.partition_id(), " not found"));
  }
  if (first.subpartition() < 0 || first.subpartition() >= partition->num_subpartitions()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad subpartition");
  }
  ResultSubpartition& sub = partition->subpartition(first.subpartition());

  std::mutex mu;
  std::condition_variable cv;
  int credit = first.credit();
  bool available = false;
  bool urgent = false;  // an unaligned barrier is at the front: send it without credit
  bool reader_done = false;
  sub.SetListener([&](bool priority) {
    std::lock_guard<std::mutex> lock(mu);
    available = true;
    urgent = urgent || priority;
    cv.notify_one();
  });
  std::thread credit_reader([&] {
    proto::ChannelRequest req;
    while (stream->Read(&req)) {
      std::lock_guard<std::mutex> lock(mu);
      credit += req.credit();
      cv.notify_one();
    }
    std::lock_guard<std::mutex> lock(mu);
    reader_done = true;
    cv.notify_one();
  });

  grpc::Status result = grpc::Status::OK;
  proto::BufferMessage msg;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return reader_done || urgent || (credit > 0 && available); });
      if (reader_done && !urgent && !(credit > 0 && available)) {
        result = grpc::Status(grpc::StatusCode::CANCELLED, "consumer went away");
        break;
      }
      available = false;
      urgent = false;
    }
    bool ended = false;
    while (true) {
      bool has_credit;
      {
        std::lock_guard<std::mutex> lock(mu);
        has_credit = credit > 0;
      }
      // Without credit only an unaligned barrier goes: it overtakes the
      // records held back for lack of credit.
      std::optional<NetworkBuffer> b = has_credit ? sub.Poll() : sub.PollPriority();
      if (!b) break;
      msg.set_data(std::move(b->data));
      msg.set_num_records(b->num_records);
      msg.set_end_of_partition(b->end_of_partition);
      msg.set_has_watermark(b->kind == BufferKind::kWatermark || b->then_watermark);
      msg.set_watermark(b->watermark);
      msg.set_idle(b->kind == BufferKind::kIdle);
      msg.set_checkpoint_barrier(b->kind == BufferKind::kBarrier ? b->checkpoint_id : 0);
      msg.set_unaligned(b->unaligned);
      msg.set_aligned_deadline_ms(b->aligned_deadline_ms);
      msg.set_latency_marker_us(b->latency_marker_us);
      if (b->kind == BufferKind::kRecords) {
        std::lock_guard<std::mutex> lock(mu);
        --credit;
      }
      if (!stream->Write(msg)) {
        result = grpc::Status(grpc::StatusCode::CANCELLED, "consumer went away");
        ended = true;
        break;
      }
      if (b->end_of_partition) {
        ended = true;
        break;
      }
    }
    if (ended) break;
    // More may be queued than the credit allowed: look again once credit
    // comes. (queued() takes the subpartition lock: never under mu.)
    const bool more = sub.queued() > 0;
    if (more) {
      std::lock_guard<std::mutex> lock(mu);
      available = true;
    }
  }
  sub.SetListener(nullptr);
  if (!result.ok()) {
    // The consumer is gone: unblock the producer rather than let it hang.
    sub.Release();
    context->TryCancel();
  }
  credit_reader.join();
  return result;
}

}  // namespace vstream
