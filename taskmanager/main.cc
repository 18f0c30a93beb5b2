// vstream-taskmanager --jobmanager HOST:PORT --rpc-port PORT --slots N --data-dir DIR [--config FILE]

#include <csignal>
#include <cstdio>
#include <thread>

#include "common/flags.h"
#include "common/logging.h"
#include "common/process_config.h"
#include "taskmanager/task_manager.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace vstream;
  auto flags = ParseFlags(argc, argv, 1,
                          {"jobmanager", "rpc-port", "slots", "data-dir", "config", "host", "log-level", "state-memory-mb"},
                          {"help"});
  if (!flags.ok()) {
    std::fprintf(stderr, "vstream-taskmanager: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->Has("help")) {
    std::printf(
        "usage: vstream-taskmanager --jobmanager HOST:PORT --data-dir DIR [--rpc-port PORT] [--slots N]\n"
        "                           [--host ADDRESS] [--state-memory-mb MB] [--config FILE] [--log-level LEVEL]\n");
    return 0;
  }
  auto config = LoadProcessConfig(*flags, "taskmanager");
  if (!config.ok()) {
    std::fprintf(stderr, "vstream-taskmanager: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  InitLogging("taskmanager", config->Get("log-level"));
  TaskManagerOptions options;
  options.jobmanager_address = config->Get("jobmanager");
  options.data_dir = config->Get("data-dir");
  if (auto h = config->Get("host"); !h.empty()) options.host = h;
  auto port = config->GetInt("rpc-port", 0);
  auto slots = config->GetInt("slots", 1);
  auto state_mb = config->GetInt("state-memory-mb", 256);
  if (!state_mb.ok() || *state_mb < 16) {
    std::fprintf(stderr, "vstream-taskmanager: --state-memory-mb needs a whole number of at least 16\n");
    return 2;
  }
  options.state_memory_bytes = int64_t{*state_mb} << 20;
  if (!port.ok() || !slots.ok()) {
    std::fprintf(stderr, "vstream-taskmanager: %s\n",
                 std::string((!port.ok() ? port.status() : slots.status()).message()).c_str());
    return 2;
  }
  options.rpc_port = *port;
  options.slots = *slots;
  auto tm = TaskManager::Start(options);
  if (!tm.ok()) {
    std::fprintf(stderr, "vstream-taskmanager: %s\n", std::string(tm.status().message()).c_str());
    return 1;
  }
  std::printf("TaskManager listening on %s\n", (*tm)->address().c_str());
  std::fflush(stdout);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*tm)->Stop();
  return 0;
}
