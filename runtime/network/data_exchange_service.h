#pragma once
// The DataExchange gRPC service of a TaskManager: serves each remote input
// channel one stream, sending a subpartition's buffers only against credit.
// gRPC's per-stream HTTP/2 flow control plus our credits mean one blocked
// channel never stalls another on the same connection.
//
// Asynchronous: every stream is driven by the TaskManager's NetworkThread
// (runtime/network/network_thread.h), woken by the subpartition when a
// buffer is added to an empty queue.
//
// Thread-safe.

#include <condition_variable>
#include <mutex>

#include "proto/data.grpc.pb.h"
#include "runtime/network/network_thread.h"
#include "runtime/network/result_partition.h"

namespace vstream {

class DataExchangeService {
 public:
  explicit DataExchangeService(PartitionManager& partitions) : partitions_(partitions) {}

  // Register with the server builder.
  grpc::Service* service() { return &service_; }
  // Once the server is built: takes calls on network's queue.
  void Start(NetworkThread* network);
  // After the server's Shutdown (which cancels every call): waits until
  // every stream has ended, so that none starts an operation on the queue
  // once it is shut down.
  void AwaitStreamsGone();

 private:
  class Stream;

  PartitionManager& partitions_;
  std::mutex mu_;
  std::condition_variable streams_gone_;
  int streams_ = 0;  // Stream objects alive, the one awaiting the next call included
  proto::DataExchange::AsyncService service_;
  NetworkThread* network_ = nullptr;
};

}  // namespace vstream
