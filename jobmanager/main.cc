// vstream-jobmanager --rpc-port PORT --data-dir DIR [--config FILE]

#include <cstdio>

#include "common/flags.h"
#include "common/logging.h"
#include "common/process_config.h"
#include "common/process_main.h"
#include "common/process_memory.h"
#include "jobmanager/job_manager.h"

int main(int argc, char** argv) {
  using namespace vstream;
  RetainFreedMemory();
  DisableMutexDeadlockDetection();
  const std::string self = "vstream-jobmanager";
  auto flags = ParseFlags(argc, argv, 1,
                          {"rpc-port", "data-dir", "config", "host", "log-level", "heartbeat-timeout-ms"},
                          {"help"});
  if (!flags.ok()) return ExitWithError(self, flags.status(), 2);
  if (flags->Has("help")) {
    std::printf("usage: vstream-jobmanager --data-dir DIR [--rpc-port PORT] [--host ADDRESS]\n"
                "                          [--heartbeat-timeout-ms MS] [--config FILE] [--log-level LEVEL]\n");
    return 0;
  }
  auto config = LoadProcessConfig(*flags, "jobmanager");
  if (!config.ok()) return ExitWithError(self, config.status(), 2);
  InitLogging("jobmanager", config->Get("log-level"));
  JobManagerOptions options;
  options.data_dir = config->Get("data-dir");
  if (auto h = config->Get("host"); !h.empty()) options.host = h;
  auto port = config->GetInt("rpc-port", 0);
  if (!port.ok()) return ExitWithError(self, port.status(), 2);
  auto hb = config->GetInt("heartbeat-timeout-ms", 5000);
  if (!hb.ok()) return ExitWithError(self, hb.status(), 2);
  options.rpc_port = *port;
  options.heartbeat_timeout_ms = *hb;
  auto jm = JobManager::Start(options);
  if (!jm.ok()) return ExitWithError(self, jm.status(), 1);
  AnnounceAndWaitForTermination("JobManager", (*jm)->address());
  (*jm)->Stop();
  return 0;
}
