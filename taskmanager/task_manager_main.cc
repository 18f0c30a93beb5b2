#include "taskmanager/task_manager_main.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/cpu_set.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/process_config.h"
#include "common/process_main.h"
#include "common/process_memory.h"
#include "spdlog/spdlog.h"
#include "taskmanager/task_manager.h"

namespace vstream {

int TaskManagerMain(int argc, char** argv) {
  RetainFreedMemory();
  DisableMutexDeadlockDetection();
  const std::string self = "vstream-taskmanager";
  auto flags = ParseFlags(argc, argv, 1,
                          {"jobmanager", "rpc-port", "slots", "data-dir", "config", "host", "log-level",
                           "state-memory-mb", "memory-mb", "cpuset", "background-priority", "huge-pages",
                           "scheduling"},
                          {"help"});
  if (!flags.ok()) return ExitWithError(self, flags.status(), 2);
  if (flags->Has("help")) {
    std::printf(
        "usage: vstream-taskmanager --jobmanager HOST:PORT --data-dir DIR [--rpc-port PORT] [--slots N]\n"
        "                           [--host ADDRESS] [--memory-mb MB] [--state-memory-mb MB]\n"
        "                           [--cpuset CPUS] [--background-priority low|normal] [--huge-pages on|off]\n"
        "                           [--scheduling batch|normal] [--config FILE] [--log-level LEVEL]\n"
        "  --memory-mb        the whole process's memory (default 640)\n"
        "  --state-memory-mb  of it, keyed state: RocksDB caches and write buffers\n"
        "                     (default 40%% of --memory-mb)\n"
        "  --cpuset           run every thread on these CPUs only, e.g. 0 or 2-3 or 0,2\n"
        "                     (default: all the process may use)\n"
        "  --background-priority  low: checkpoint uploads and RocksDB compactions at nice 19,\n"
        "                     on the CPU the tasks leave (default); normal: as the tasks\n"
        "  --scheduling       batch: every thread under SCHED_BATCH, so that a thread waking\n"
        "                     does not preempt the one working (default); normal: the policy\n"
        "                     the TaskManager was started with (SCHED_OTHER unless chosen)\n"
        "  --huge-pages       on: the heap on transparent huge pages, where the machine has\n"
        "                     them (default; the TaskManager re-executes itself with\n"
        "                     GLIBC_TUNABLES set); off: on the kernel's 4 KiB pages\n");
    return 0;
  }
  auto config = LoadProcessConfig(*flags, "taskmanager");
  if (!config.ok()) return ExitWithError(self, config.status(), 2);
  auto huge_pages = config->GetChoice("huge-pages", "on", "off");
  if (!huge_pages.ok()) return ExitWithError(self, huge_pages.status(), 2);
  // Before any thread starts: it may replace this process.
  const std::string heap_pages =
      *huge_pages == "on" ? PutHeapOnHugePages(argv) : "heap on 4 KiB pages (--huge-pages off)";
  // Before any thread starts, so that every one inherits it.
  std::vector<int> cpus;
  if (config->Has("cpuset")) {  // an empty value is an error, not "all CPUs"
    auto parsed = ParseCpuSet(config->Get("cpuset"));
    if (!parsed.ok()) return ExitWithError(self, parsed.status(), 2);
    if (absl::Status s = ConfineToCpus(*parsed); !s.ok()) return ExitWithError(self, s, 2);
    cpus = *std::move(parsed);
  }
  auto scheduling = config->GetChoice("scheduling", "batch", "normal");
  if (!scheduling.ok()) return ExitWithError(self, scheduling.status(), 2);
  // Before any thread starts, so that every one inherits it; a refusal
  // leaves the threads under the policy the process started with, as
  // `normal` does.
  absl::Status batch = *scheduling == "batch" ? UseBatchScheduling() : absl::OkStatus();
  InitLogging("taskmanager", config->Get("log-level"));
  if (!cpus.empty()) spdlog::info("confined to CPUs {} (cpuset)", FormatCpuSet(cpus));
  spdlog::info("{}", heap_pages);
  if (!batch.ok()) {
    spdlog::warn("threads keep the scheduling policy the TaskManager started with: {}", batch.ToString());
  } else if (*scheduling == "batch") {
    spdlog::info("threads under SCHED_BATCH (--scheduling batch)");
  }
  TaskManagerOptions options;
  options.jobmanager_address = config->Get("jobmanager");
  options.data_dir = config->Get("data-dir");
  if (auto h = config->Get("host"); !h.empty()) options.host = h;
  auto port = config->GetInt("rpc-port", 0);
  if (!port.ok()) return ExitWithError(self, port.status(), 2);
  auto slots = config->GetInt("slots", 1);
  if (!slots.ok()) return ExitWithError(self, slots.status(), 2);
  auto memory_mb = config->GetInt("memory-mb", 640);
  if (!memory_mb.ok() || *memory_mb < 128) {
    return ExitWithError(self, absl::InvalidArgumentError("--memory-mb needs a whole number of at least 128"), 2);
  }
  // Flink's managed memory fraction.
  auto state_mb = config->GetInt("state-memory-mb", *memory_mb * 2 / 5);
  if (!state_mb.ok() || *state_mb < 16) {
    return ExitWithError(self, absl::InvalidArgumentError("--state-memory-mb needs a whole number of at least 16"), 2);
  }
  auto background = config->GetChoice("background-priority", "low", "normal");
  if (!background.ok()) return ExitWithError(self, background.status(), 2);
  options.low_priority_background = *background == "low";
  options.rpc_port = *port;
  options.slots = *slots;
  options.state_memory_bytes = int64_t{*state_mb} << 20;
  options.memory_bytes = int64_t{*memory_mb} << 20;
  auto tm = TaskManager::Start(options);
  if (!tm.ok()) return ExitWithError(self, tm.status(), 1);
  AnnounceAndWaitForTermination("TaskManager", (*tm)->address());
  (*tm)->Stop();
  return 0;
}

}  // namespace vstream
