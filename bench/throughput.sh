#!/usr/bin/env bash
# One throughput run of a harness workload by hand: the spec bench/run's
# throughput run makes (bench/workloads/WORKLOAD.yaml, EVENTS events as fast
# as the job goes, exactly-once checkpoints every CHECKPOINTS), on a fresh
# JobManager and 2 TaskManagers (2 slots each, on a CPU each as bench/run
# starts them). Prints one line: events/s over the job's wall time
# (submission to FINISHED), the cluster's CPU seconds, the checkpoints and
# the CPU seconds the hypervisor stole meanwhile. For A/B comparisons: run
# the two sides in turn, several times (docs/benchmarks.md).
#
#   bench/throughput.sh WORKLOAD EVENTS [CHECKPOINTS (10s, or none)]
#   environment: BIN (build/bin), TASKMANAGER_FLAGS (more flags for each
#                TaskManager), KEEP=1 keeps the logs
set -euo pipefail
usage() {
  echo "usage: bench/throughput.sh WORKLOAD EVENTS [CHECKPOINTS]   (e.g. q4 30000000 10s)" >&2
  exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
w=$1 events=$2 interval=${3:-10s}
[[ "$events" =~ ^[1-9][0-9]*$ ]] || usage
cd "$(dirname "$0")/.."
[ -f "bench/workloads/$w.yaml" ] || { echo "no workload '$w' (bench/workloads/$w.yaml)" >&2; usage; }
source bench/common.sh
bench_start
spec=$(make_spec "$w" "$events" "$interval" 0)
run_spec "$spec"
secs=$(sed -n 's/.*(\([0-9.]*\) s since submission).*/\1/p' "$DIR/status.txt")
# The status shows tenths of a second: a shorter job counts as a twentieth.
secs=$(awk -v s="${secs:-0}" 'BEGIN { print (s > 0 ? s : 0.05) }')
awk -v w="$w" -v n="$events" -v s="$secs" -v i="$interval" 'BEGIN {
  printf "%s, %d events, checkpoints %s: %.0f events/s (%.2f s);", w, n, i, n / s, s
}'
echo " CPU $CPU_S s; checkpoints $(checkpoint_summary "$DIR/checkpoints"); stolen $STOLEN_S s"
