#pragma once
// What the JobManager and TaskManager mains share: printing a fatal error
// and waiting for SIGTERM/SIGINT.

#include <string>

#include "absl/status/status.h"

namespace vstream {

// Turns off absl::Mutex's deadlock detection. Debian builds Abseil without
// NDEBUG, so every absl::Mutex lock (gRPC's included: its completion
// queues, transports and combiners lock one per event) also updated a
// graph of lock order: absl's GraphCycles was 0.5% of all CPU samples of a
// q4 run, absl's mutex code 0.8% more. Call first thing in main.
void DisableMutexDeadlockDetection();

// Prints "<process>: <message>" to stderr and returns `exit_code`.
int ExitWithError(const std::string& process, const absl::Status& status, int exit_code);

// Prints "<what> listening on <address>" on stdout (tests and scripts read
// the bound port from it), then blocks until SIGTERM or SIGINT.
void AnnounceAndWaitForTermination(const std::string& what, const std::string& address);

}  // namespace vstream
