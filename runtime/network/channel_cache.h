#pragma once
// One gRPC channel (HTTP/2 connection) per remote TaskManager, shared by all
// the input channels that read from it: gRPC multiplexes their streams.
//
// Thread-safe.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "grpcpp/grpcpp.h"

namespace vstream {

class ChannelCache {
 public:
  std::shared_ptr<grpc::Channel> Get(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& ch = channels_[address];
    if (!ch) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(64 << 20);
      ch = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    }
    return ch;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

}  // namespace vstream
