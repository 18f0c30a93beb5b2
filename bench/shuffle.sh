#!/usr/bin/env bash
# Keyed-shuffle throughput: generator -> filter -> key_by -> blackhole with
# parallelism 2 on a JobManager and 2 TaskManagers (separate processes).
# Reports records/s (job wall time, from the JobManager) and CPU-seconds per
# million records (user+system time of both TaskManager processes).
#
#   bench/shuffle.sh [RECORDS]        default 20,000,000
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-20000000}
BIN=build/bin
DIR=$(mktemp -d /tmp/vstream-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

await_address() {
  for _ in $(seq 1 300); do
    addr=$(sed -n "s/^$2 listening on //p" "$1" | head -1)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  echo "$2 did not start" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

$BIN/vstream-jobmanager --rpc-port 0 --data-dir "$DIR/jm" > "$DIR/jm.out" 2> "$DIR/jm.log" &
pids+=($!)
JM=$(await_address "$DIR/jm.out" JobManager)
tms=()
for i in 0 1; do
  $BIN/vstream-taskmanager --jobmanager "$JM" --rpc-port 0 --slots 2 --data-dir "$DIR/tm$i" \
    > "$DIR/tm$i.out" 2> "$DIR/tm$i.log" &
  pids+=($!); tms+=($!)
  await_address "$DIR/tm$i.out" TaskManager > /dev/null
done
sed "s/COUNT/$COUNT/" bench/shuffle.yaml > "$DIR/job.yaml"
before=$(( $(cpu_ticks "${tms[0]}") + $(cpu_ticks "${tms[1]}") ))
$BIN/vstream submit "$DIR/job.yaml" --wait --jobmanager "$JM" > "$DIR/submit.out" 2> "$DIR/status.txt"
after=$(( $(cpu_ticks "${tms[0]}") + $(cpu_ticks "${tms[1]}") ))
JOB=$(head -1 "$DIR/submit.out")
secs=$(sed -n 's/.*(\([0-9.]*\) s since submission).*/\1/p' "$DIR/status.txt")
hz=$(getconf CLK_TCK)
awk -v n="$COUNT" -v s="$secs" -v t=$((after - before)) -v hz="$hz" 'BEGIN {
  cpu = t / hz;
  printf "records            %d\n", n;
  printf "wall seconds       %.2f (submission to FINISHED)\n", s;
  printf "records/s          %.0f\n", n / s;
  printf "TaskManager CPU s  %.2f\n", cpu;
  printf "CPU s per 1M recs  %.3f\n", cpu / (n / 1e6);
}'
cat "$DIR/status.txt" | sed -n '/^VERTEX/,$p'
