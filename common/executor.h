#pragma once
// A single-threaded executor: the "main thread" of a control-plane component
// (Dispatcher, JobMaster, ResourceManager, TaskExecutor), actor-style as in
// Flink. All of a component's state is touched only from its executor thread;
// gRPC handlers Post() work to it, or Call() and wait for the answer.
//
// Thread-safe: Post/Call/Schedule may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace vstream {

class Executor {
 public:
  explicit Executor(std::string name);
  ~Executor();  // Stops and joins; pending work is dropped.

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Post(std::function<void()> fn);
  // Runs fn after delay on the executor thread.
  void Schedule(std::chrono::milliseconds delay, std::function<void()> fn);

  // Runs fn on the executor thread and waits for its result.
  template <typename F>
  auto Call(F&& fn) -> decltype(fn()) {
    using R = decltype(fn());
    if (InExecutorThread()) return fn();
    std::packaged_task<R()> task(std::forward<F>(fn));
    auto fut = task.get_future();
    Post([&task] { task(); });
    return fut.get();
  }

  bool InExecutorThread() const { return std::this_thread::get_id() == thread_.get_id(); }
  void Stop();

 private:
  void Run();

  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> timers_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vstream
