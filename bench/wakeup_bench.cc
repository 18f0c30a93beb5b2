// How late a sleeping thread wakes on this machine when nothing else runs:
// the floor under every latency figure (a latency marker crosses several
// threads that sleep and wake). One thread per CPU this process may use,
// pinned to it, sleeps to the next 1 ms tick (std::this_thread::
// sleep_until, a timer) for about SECONDS and records how long after the
// tick it ran again. On bare metal that is tens of microseconds; a virtual
// machine whose virtual CPU the hypervisor takes away for a while shows
// milliseconds, which its steal counter may not report.
//
//   wakeup_bench [SECONDS (2; fractional allowed)]
//
// Prints `wakeup_late_p99_ms <value>`, `wakeup_late_p999_ms <value>` and
// `wakeup_late_max_ms <value>` over every wakeup of every thread.
// bench/machine_limits.sh runs it with its SECONDS and prints each as a
// `limit` line.

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Sleeps to each 1 ms tick until `end`; each wakeup's lateness in µs.
std::vector<double> Wakeups(Clock::time_point end) {
  std::vector<double> late;
  const auto ticks = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
  late.reserve(static_cast<size_t>(std::max<int64_t>(ticks, 0)) + 1);
  for (Clock::time_point tick = Clock::now() + std::chrono::milliseconds(1); tick < end;
       tick += std::chrono::milliseconds(1)) {
    std::this_thread::sleep_until(tick);
    const Clock::time_point woke = Clock::now();
    late.push_back(std::chrono::duration<double, std::micro>(woke - tick).count());
    // A wakeup later than a tick skips the ticks it missed.
    while (tick + std::chrono::milliseconds(1) < woke) tick += std::chrono::milliseconds(1);
  }
  return late;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  if (argc > 2 || !(seconds > 0)) {
    std::fprintf(stderr, "usage: wakeup_bench [SECONDS > 0 (2)]\n");
    return 2;
  }
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    std::perror("wakeup_bench: sched_getaffinity");
    return 1;
  }
  const Clock::time_point end =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  std::vector<std::vector<double>> results(cpus.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cpus.size(); ++i) {
    threads.emplace_back([&, i] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[i], &one);
      sched_setaffinity(0, sizeof(one), &one);  // best effort: unpinned still measures
      results[i] = Wakeups(end);
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<double> late;
  for (const std::vector<double>& r : results) late.insert(late.end(), r.begin(), r.end());
  if (late.empty()) {
    std::fprintf(stderr, "wakeup_bench: no wakeups measured\n");
    return 1;
  }
  std::sort(late.begin(), late.end());
  auto quantile = [&](double q) { return late[std::min(late.size() - 1, static_cast<size_t>(q * late.size()))]; };
  std::printf("wakeup_late_p99_ms %.2f\n", quantile(0.99) / 1000);
  std::printf("wakeup_late_p999_ms %.2f\n", quantile(0.999) / 1000);
  std::printf("wakeup_late_max_ms %.2f\n", late.back() / 1000);
  return 0;
}
