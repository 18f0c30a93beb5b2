#include "runtime/network/network_thread.h"

#include <algorithm>

#include <pthread.h>

namespace vstream {

NetworkThread::NetworkThread(std::unique_ptr<grpc::ServerCompletionQueue> cq) : cq_(std::move(cq)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "network");
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) static_cast<Op*>(tag)->Done(ok);
  });
}

NetworkThread::~NetworkThread() { Stop(); }

void NetworkThread::Wake(Op* op) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_ || std::find(woken_.begin(), woken_.end(), op) != woken_.end()) return;
  woken_.push_back(op);
  if (alarm_set_) return;
  alarm_set_ = true;
  // Already due: it only puts wake_op_ on the queue, waking the thread.
  alarm_.Set(cq_.get(), std::chrono::system_clock::now(), &wake_op_);
}

void NetworkThread::CancelWake(Op* op) {
  std::lock_guard<std::mutex> lock(mu_);
  woken_.erase(std::remove(woken_.begin(), woken_.end(), op), woken_.end());
}

void NetworkThread::WakeOp::Done(bool) {
  // One at a time, so that an op run here may cancel the wake of another;
  // ops woken meanwhile run in this round, without another alarm.
  std::unique_lock<std::mutex> lock(thread_->mu_);
  while (!thread_->woken_.empty()) {
    Op* op = thread_->woken_.front();
    thread_->woken_.pop_front();
    lock.unlock();
    op->Done(true);
    lock.lock();
  }
  thread_->alarm_set_ = false;
}

void NetworkThread::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cq_->Shutdown();
  if (thread_.joinable()) thread_.join();
}

}  // namespace vstream
