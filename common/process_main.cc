#include "common/process_main.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace vstream {

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

void DisableMutexDeadlockDetection() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

int ExitWithError(const std::string& process, const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "%s: %s\n", process.c_str(), std::string(status.message()).c_str());
  return exit_code;
}

void AnnounceAndWaitForTermination(const std::string& what, const std::string& address) {
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::printf("%s listening on %s\n", what.c_str(), address.c_str());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

}  // namespace vstream
