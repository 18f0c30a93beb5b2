#include "runtime/network/network_thread.h"

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

void NetworkThread::Stop() {
  std::call_once(stopped_, [this] {
    cq_->Shutdown();
    thread_.join();
  });
}

}  // namespace vstream
