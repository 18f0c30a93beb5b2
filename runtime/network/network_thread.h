#pragma once
// The network thread of a TaskManager, as Flink's Netty event loop: one
// thread takes the completions of every DataExchange stream of the process,
// the server side (sending subpartitions' buffers) and the client side
// (receiving remote input channels' buffers), from one gRPC completion
// queue (the async API). Writes start on the thread that has something to
// send (a producer task adding a buffer, a consumer task granting credit);
// their completions and every read come here.
//
// Why not gRPC's synchronous API, a thread or two per stream: with the epoll
// poller one thread at a time polls for the whole process and hands each
// event to the thread waiting for it. On a paravirtualized VM every such
// hand-off (a futex wake and a context switch) costs ~25 µs, and a message
// took ~10 of them (docs/benchmarks.md, "The data exchange").
//
// Thread-safe: every Op::Done runs on the network thread.

#include <memory>
#include <mutex>
#include <thread>

#include "grpcpp/grpcpp.h"

namespace vstream {

class NetworkThread {
 public:
  // What the completion queue's tags point to: the completion of one
  // operation (a read, a write, a finish, an alarm).
  class Op {
   public:
    virtual void Done(bool ok) = 0;

   protected:
    ~Op() = default;
  };

  // Runs the thread over cq (the server's, from ServerBuilder::
  // AddCompletionQueue; client calls use it too).
  explicit NetworkThread(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  ~NetworkThread();

  grpc::ServerCompletionQueue* cq() { return cq_.get(); }
  // Shuts the queue down and returns once every operation on it has
  // completed. Call after the server's Shutdown and once no client stream
  // is open.
  void Stop();

 private:
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::once_flag stopped_;
  std::thread thread_;
};

// A tag that calls a member function of its owner: a stream has one per
// kind of operation it may have outstanding.
template <typename T>
class MemberOp final : public NetworkThread::Op {
 public:
  MemberOp(T* owner, void (T::*fn)(bool)) : owner_(owner), fn_(fn) {}
  void Done(bool ok) override { (owner_->*fn_)(ok); }

 private:
  T* owner_;
  void (T::*fn_)(bool);
};

}  // namespace vstream
