#pragma once
// For tests: wait on a condition with a timeout, never a fixed sleep.

#include <chrono>
#include <functional>
#include <thread>

namespace vstream {

// Polls cond every `poll` until it holds or `timeout` passes; returns
// whether it held (checked once more at the deadline).
inline bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                    std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(poll);
  }
  return cond();
}

}  // namespace vstream
