#include "common/cpu_set.h"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"

namespace vstream {

namespace {

absl::Status CpuSetError(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("cpuset '", AV(text), "': ", AV(why),
                                                 " (expected CPU numbers and ranges, e.g. 0 or 2-3 or 0,2,4-7)"));
}

// A whole decimal number, digits only.
bool ParseCpu(std::string_view s, int* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// f(tid) for each thread of process `pid` (0: this one) whose name starts
// with `name_prefix`.
template <typename F>
void ForEachThread(int pid, std::string_view name_prefix, F f) {
  std::error_code ec;
  const std::string dir = pid == 0 ? "/proc/self/task" : absl::StrCat("/proc/", pid, "/task");
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::filesystem::directory_entry& task = *it;
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (!std::getline(comm, name) || !name.starts_with(name_prefix)) continue;
    int tid = 0;
    const std::string t = task.path().filename().string();
    if (std::from_chars(t.data(), t.data() + t.size(), tid).ec != std::errc()) continue;
    f(tid);
  }
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuSet(std::string_view text) {
  std::vector<int> cpus;
  if (text.empty()) return CpuSetError(text, "empty");
  size_t pos = 0;
  while (true) {
    const size_t comma = text.find(',', pos);
    const std::string_view part = text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    const size_t dash = part.find('-');
    int first = 0, last = 0;
    if (!ParseCpu(part.substr(0, dash), &first) ||
        (dash != std::string_view::npos && !ParseCpu(part.substr(dash + 1), &last))) {
      return CpuSetError(text, absl::StrCat("'", AV(part), "' is not a CPU number or range"));
    }
    if (dash == std::string_view::npos) last = first;
    if (last < first) return CpuSetError(text, absl::StrCat("range '", AV(part), "' ends before it starts"));
    if (last >= CPU_SETSIZE) return CpuSetError(text, absl::StrCat("CPU ", last, " is beyond ", CPU_SETSIZE - 1));
    for (int c = first; c <= last; ++c) cpus.push_back(c);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string FormatCpuSet(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    absl::StrAppend(&out, cpus[i]);
    if (j > i) absl::StrAppend(&out, "-", cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

absl::Status ConfineToCpus(const std::vector<int>& cpus) {
  if (cpus.empty()) return absl::InvalidArgumentError("cpuset: no CPU");
  const std::vector<int> allowed = AllowedCpus();
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (!std::binary_search(allowed.begin(), allowed.end(), c)) {
      return absl::InvalidArgumentError(absl::StrCat("cpuset ", FormatCpuSet(cpus), ": CPU ", c,
                                                     " is not one this process may use (",
                                                     FormatCpuSet(allowed), ")"));
    }
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::InternalError(absl::StrCat("cpuset ", FormatCpuSet(cpus), ": sched_setaffinity: ",
                                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status LowerThreadPriority() {
  // PRIO_PROCESS with 0 is the calling thread on Linux.
  if (setpriority(PRIO_PROCESS, 0, kBackgroundNice) != 0) {
    return absl::InternalError(absl::StrCat("setpriority(", kBackgroundNice, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::vector<int> NiceOfThreads(int pid, std::string_view name_prefix) {
  std::vector<int> nices;
  ForEachThread(pid, name_prefix, [&](int tid) {
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    if (errno == 0) nices.push_back(nice);
  });
  return nices;
}

absl::Status UseBatchScheduling() {
  const sched_param param{};  // priority 0, the only one SCHED_BATCH has
  // 0 is the calling thread.
  if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    return absl::InternalError(absl::StrCat("sched_setscheduler(SCHED_BATCH): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::vector<int> SchedulingPolicyOfThreads(int pid, std::string_view name_prefix) {
  std::vector<int> policies;
  ForEachThread(pid, name_prefix, [&](int tid) {
    const int policy = sched_getscheduler(tid);
    if (policy >= 0) policies.push_back(policy);
  });
  return policies;
}

}  // namespace vstream
