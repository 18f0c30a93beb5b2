#pragma once
// What the JobManager and TaskManager mains share: printing a fatal error
// and waiting for SIGTERM/SIGINT.

#include <string>

#include "absl/status/status.h"

namespace vstream {

// Prints "<process>: <message>" to stderr and returns `exit_code`.
int ExitWithError(const std::string& process, const absl::Status& status, int exit_code);

// Prints "<what> listening on <address>" on stdout (tests and scripts read
// the bound port from it), then blocks until SIGTERM or SIGINT.
void AnnounceAndWaitForTermination(const std::string& what, const std::string& address);

}  // namespace vstream
