#pragma once
// The DataExchange gRPC service of a TaskManager: serves each remote input
// channel one stream, sending a subpartition's buffers only against credit.
// gRPC's per-stream HTTP/2 flow control plus our credits mean one blocked
// channel never stalls another on the same connection.
//
// Thread-safe: gRPC runs each stream on its own thread.

#include "proto/data.grpc.pb.h"
#include "runtime/network/result_partition.h"

namespace vstream {

class DataExchangeService final : public proto::DataExchange::Service {
 public:
  explicit DataExchangeService(PartitionManager& partitions) : partitions_(partitions) {}

  grpc::Status OpenChannel(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<proto::BufferMessage, proto::ChannelRequest>* stream) override;

 private:
  PartitionManager& partitions_;
};

}  // namespace vstream
