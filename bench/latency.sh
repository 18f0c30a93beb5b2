#!/usr/bin/env bash
# One latency run of a harness workload by hand: the spec bench/run's
# latency run makes (bench/workloads/WORKLOAD.yaml paced at RATE events/s,
# latency markers every 10 ms, checkpoints every CHECKPOINTS), on a fresh
# JobManager and 2 TaskManagers (2 slots each, on a CPU each as bench/run
# starts them), for SECS seconds of events. Prints one line: the worst
# sink's p50 / p99 / p99.9, the cluster's CPU seconds, the checkpoints and
# the CPU seconds the hypervisor stole meanwhile (steal_ticks); VERBOSE=1
# adds each sink's. For A/B comparisons: run the two sides in
# turn, several times (docs/benchmarks.md).
#
#   bench/latency.sh WORKLOAD RATE [SECS (20)] [CHECKPOINTS (1s, or none)]
#   environment: BIN (build/bin), TASKMANAGER_FLAGS (more flags for each
#                TaskManager, e.g. --background-priority normal), KEEP=1
#                keeps the logs
set -euo pipefail
usage() {
  echo "usage: bench/latency.sh WORKLOAD RATE [SECS] [CHECKPOINTS]   (e.g. q5 467289 20 1s)" >&2
  exit 2
}
[ $# -ge 2 ] && [ $# -le 4 ] || usage
w=$1 rate=$2 secs=${3:-20} interval=${4:-1s}
[[ "$rate" =~ ^[1-9][0-9]*$ && "$secs" =~ ^[1-9][0-9]*$ ]] || usage
cd "$(dirname "$0")/.."
[ -f "bench/workloads/$w.yaml" ] || { echo "no workload '$w' (bench/workloads/$w.yaml)" >&2; usage; }
source bench/common.sh
bench_start
spec=$(make_spec "$w" $((rate * secs)) "$interval" "$rate")
run_spec "$spec"
echo "$w at $rate events/s, $secs s, checkpoints $interval:" \
  "p50 / p99 / p99.9 ms $(worst_latency "$DIR/status.txt");" \
  "CPU $CPU_S s; checkpoints $(checkpoint_summary "$DIR/checkpoints"); stolen $STOLEN_S s"
if [ -n "${VERBOSE:-}" ]; then sed -n '/^LATENCY/,/^$/p' "$DIR/status.txt"; fi
