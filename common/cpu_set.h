#pragma once
// CPU sets for `--cpuset` (docs/operations.md): a process confined to some
// of the machine's CPUs, as Redpanda's and Seastar's --cpuset. A
// TaskManager's task, network and RocksDB threads wake each other thousands
// of times a second; on one CPU a wake-up needs no inter-processor
// interrupt and the threads share their caches (docs/benchmarks.md has
// the measurements).

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vstream {

// "0", "2-3", "0,2,4-7": CPU numbers and inclusive ranges, comma-separated
// (as taskset -c and cgroups' cpuset.cpus). Sorted, without repeats.
absl::StatusOr<std::vector<int>> ParseCpuSet(std::string_view text);
// The inverse: ranges where they save room ("0-3,6").
std::string FormatCpuSet(const std::vector<int>& cpus);
// The CPUs the calling thread may run on (its affinity, which a container
// or taskset may have narrowed).
std::vector<int> AllowedCpus();
// Confines the calling thread, and so every thread it starts afterwards, to
// `cpus`, which must all be allowed (AllowedCpus). Call it before starting
// threads.
absl::Status ConfineToCpus(const std::vector<int>& cpus);

// The nice value of background threads (`--background-priority low`): the
// least share of a busy CPU CFS gives, without SCHED_IDLE's starvation.
inline constexpr int kBackgroundNice = 19;
// Lowers the calling thread (only it: Linux applies setpriority to one
// thread) to kBackgroundNice. One way: an unprivileged thread cannot raise
// its priority again, so call it on a thread that only does background work.
absl::Status LowerThreadPriority();
// The nice value of each thread of process `pid` (0: this one) whose name
// (as /proc shows it, cut to 15 characters) starts with `name_prefix`.
// Threads that end meanwhile are left out.
std::vector<int> NiceOfThreads(int pid, std::string_view name_prefix);

// Puts the calling thread, and so every thread it starts afterwards, under
// SCHED_BATCH (`--scheduling batch`): a thread that wakes does not preempt
// the one running on its CPU, it waits until that one blocks or its slice
// ends. A TaskManager's threads wake each other thousands of times a second
// (a buffer for a task, a write for the network thread); under SCHED_OTHER
// most wake-ups on a busy CPU preempted the thread working there
// (docs/benchmarks.md, "Every TaskManager thread under SCHED_BATCH"). Nice
// values apply as before. Call it before starting threads; from
// SCHED_OTHER it needs no privilege (from SCHED_IDLE, say, it may be
// refused).
absl::Status UseBatchScheduling();
// The scheduling policy (SCHED_OTHER, SCHED_BATCH, ...) of each thread of
// process `pid` (0: this one) whose name starts with `name_prefix`, as
// NiceOfThreads.
std::vector<int> SchedulingPolicyOfThreads(int pid, std::string_view name_prefix);

}  // namespace vstream
