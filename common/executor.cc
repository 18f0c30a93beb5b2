#include "common/executor.h"

#include <pthread.h>

namespace vstream {

Executor::Executor(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { Run(); });
}

Executor::~Executor() { Stop(); }

void Executor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && !InExecutorThread()) thread_.join();
}

void Executor::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void Executor::Schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    timers_.emplace(std::chrono::steady_clock::now() + delay, std::move(fn));
  }
  cv_.notify_one();
}

void Executor::Run() {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    std::function<void()> fn;
    if (!timers_.empty() && timers_.begin()->first <= now) {
      fn = std::move(timers_.begin()->second);
      timers_.erase(timers_.begin());
    } else if (!queue_.empty()) {
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    if (fn) {
      // Run, and destroyed, without the lock: what it holds (a checkpoint
      // upload's buffers, megabytes to unmap) is freed while other threads
      // Post, on a thread that may run at nice 19.
      lock.unlock();
      fn();
      fn = nullptr;
      lock.lock();
      continue;
    }
    if (timers_.empty()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, timers_.begin()->first);
    }
  }
}

}  // namespace vstream
