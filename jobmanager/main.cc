// vstream-jobmanager --rpc-port PORT --data-dir DIR [--config FILE]

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "common/flags.h"
#include "common/logging.h"
#include "common/process_config.h"
#include "jobmanager/job_manager.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace vstream;
  auto flags = ParseFlags(argc, argv, 1,
                          {"rpc-port", "data-dir", "config", "host", "log-level", "heartbeat-timeout-ms"},
                          {"help"});
  if (!flags.ok()) {
    std::fprintf(stderr, "vstream-jobmanager: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->Has("help")) {
    std::printf("usage: vstream-jobmanager --data-dir DIR [--rpc-port PORT] [--host ADDRESS]\n"
                "                          [--heartbeat-timeout-ms MS] [--config FILE] [--log-level LEVEL]\n");
    return 0;
  }
  auto config = LoadProcessConfig(*flags, "jobmanager");
  if (!config.ok()) {
    std::fprintf(stderr, "vstream-jobmanager: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  InitLogging("jobmanager", config->Get("log-level"));
  JobManagerOptions options;
  options.data_dir = config->Get("data-dir");
  if (auto h = config->Get("host"); !h.empty()) options.host = h;
  auto port = config->GetInt("rpc-port", 0);
  auto hb = config->GetInt("heartbeat-timeout-ms", 5000);
  if (!port.ok() || !hb.ok()) {
    std::fprintf(stderr, "vstream-jobmanager: %s\n",
                 std::string((!port.ok() ? port.status() : hb.status()).message()).c_str());
    return 2;
  }
  options.rpc_port = *port;
  options.heartbeat_timeout_ms = *hb;
  auto jm = JobManager::Start(options);
  if (!jm.ok()) {
    std::fprintf(stderr, "vstream-jobmanager: %s\n", std::string(jm.status().message()).c_str());
    return 1;
  }
  // Tests and scripts read the bound port from this line.
  std::printf("JobManager listening on %s\n", (*jm)->address().c_str());
  std::fflush(stdout);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*jm)->Stop();
  return 0;
}
