#pragma once
// The network thread of a TaskManager, as Flink's Netty event loop: one
// thread drives every DataExchange stream of the process, the server side
// (sending subpartitions' buffers) and the client side (receiving remote
// input channels' buffers), through one gRPC completion queue with the async
// API.
//
// Why not gRPC's synchronous API, a thread or two per stream: with the epoll
// poller one thread at a time polls for the whole process and hands each
// event to the thread waiting for it. On a paravirtualized VM every such
// hand-off (a futex wake and a context switch) costs ~25 µs, and a message
// took ~10 of them (docs/benchmarks.md, "The data exchange"). Here a
// message costs the wake of this thread, when it sleeps, and of the task it
// is for.
//
// Thread-safe: Wake from any thread; every Op::Done runs on the network
// thread.

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "grpcpp/alarm.h"
#include "grpcpp/grpcpp.h"

namespace vstream {

class NetworkThread {
 public:
  // What the completion queue's tags point to: the completion of one
  // operation (a read, a write, a finish, an alarm, a wake).
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
  // From any thread: runs op->Done(true) on the network thread soon; once,
  // however often op is woken before it runs. Ignored after Stop.
  void Wake(Op* op);
  // Network thread: forgets a pending Wake of op (before op goes away).
  void CancelWake(Op* op);
  // Shuts the queue down and returns once every operation on it has
  // completed. Call after the server's Shutdown and once no client stream
  // is open.
  void Stop();

 private:
  class WakeOp final : public Op {
   public:
    explicit WakeOp(NetworkThread* thread) : thread_(thread) {}
    void Done(bool ok) override;

   private:
    NetworkThread* thread_;
  };

  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::mutex mu_;
  std::deque<Op*> woken_;  // each op once
  bool alarm_set_ = false;  // a wake is on its way, or woken_ is being run
  bool stopped_ = false;
  grpc::Alarm alarm_;
  WakeOp wake_op_{this};
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
