#!/usr/bin/env bash
# Nexmark on a real cluster: each query of bench/nexmark/ (q0, q1, q2, q3,
# q5, q7, q8; not yet q4) runs on a fresh JobManager and 2 TaskManagers (processes, 2 slots
# each), parallelism 2, with exactly-once checkpoints every 10 s (as
# issue 6 asks; Flink's published runs checkpoint every 3 min), for a fixed
# number of events from the nexmark source. Per query it prints:
#   events/s           EVENTS / the job's wall time, submission to FINISHED
#   cluster CPU s      CPU time (user + system) of the JobManager and both
#                      TaskManagers during the job, generator included
#   events/s per core  EVENTS / cluster CPU s, as nexmark/nexmark counts
#                      cores (measured CPU use, generator included)
#   vs Flink           that, as a ratio to Flink's per-core figure
#                      (../shared/REFERENCES.md: Flink 1.13, 8 x 1 slot)
#   checkpoints        completed, median duration and size
#   peak RSS           VmHWM of each process (its cluster ran one query)
# Not yet measured here: end-to-end latency, the machine's limits (iperf3,
# db_bench, memcpy), q4.
set -euo pipefail
usage() {
  cat >&2 << 'USAGE'
usage: bench/nexmark.sh [EVENTS] [QUERY...]
  EVENTS  events per query (default 50,000,000)
  QUERY   q0 q1 q2 q3 q5 q7 q8 (default: all of them)
Needs build/bin (./deploy/build.sh); BIN overrides the directory.
USAGE
  exit 2
}
[[ "${1:-}" == -h || "${1:-}" == --help ]] && usage
EVENTS=${1:-50000000}
[[ "$EVENTS" =~ ^[1-9][0-9]*$ ]] || usage
shift || true
QUERIES=("$@")
[ ${#QUERIES[@]} -gt 0 ] || QUERIES=(q0 q1 q2 q3 q5 q7 q8)
cd "$(dirname "$0")/.."
source bench/common.sh
bench_start

# Flink's Nexmark, K events/s per core (../shared/REFERENCES.md).
declare -A FLINK=([q0]=155.0 [q1]=157.9 [q2]=175.2 [q3]=152.1 [q4]=34.3 [q5]=22.1 [q7]=12.3 [q8]=146.1)

bench_header bench/nexmark.sh "$EVENTS" "${QUERIES[@]}"
echo "machine   $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo
hz=$(getconf CLK_TCK)
table=()
for q in "${QUERIES[@]}"; do
  spec=bench/nexmark/$q.yaml
  [ -f "$spec" ] || { echo "no $spec" >&2; exit 2; }
  sed "s/count: COUNT/count: $EVENTS/; s/^parallelism: 2$/parallelism: 2\ncheckpointing: {interval: 10s, mode: exactly_once}/" \
    "$spec" > "$DIR/$q.yaml"
  grep -q '^checkpointing:' "$DIR/$q.yaml" || { echo "$spec: no top-level 'parallelism: 2' line" >&2; exit 2; }
  start_cluster 2 2
  before=$(cluster_cpu_ticks)
  $BIN/vstream submit "$DIR/$q.yaml" --wait --jobmanager "$JM" > "$DIR/submit.out" 2> "$DIR/status.txt" || true
  after=$(cluster_cpu_ticks)
  if ! grep -q '^State: FINISHED' "$DIR/status.txt"; then
    echo "$q: the job did not finish" >&2
    cat "$DIR/status.txt" >&2
    exit 1
  fi
  job=$(cat "$DIR/submit.out")
  secs=$(sed -n 's/.*(\([0-9.]*\) s since submission).*/\1/p' "$DIR/status.txt")
  checkpoint_log "$job" > "$DIR/checkpoints"
  completed=$(awk '$2 == "COMPLETED"' "$DIR/checkpoints" | wc -l)
  ckpt_ms=$(awk '$2 == "COMPLETED" {print $4}' "$DIR/checkpoints" | median)
  ckpt_mib=$(awk '$2 == "COMPLETED" {printf "%.2f\n", $5 / 1048576}' "$DIR/checkpoints" | median)
  rss="JM $(peak_rss_mb "${pids[0]}")"
  for ((i = 0; i < ${#TMS[@]}; i++)); do rss+=", TM$i $(peak_rss_mb "${TMS[$i]}")"; done
  line=$(awk -v q="$q" -v n="$EVENTS" -v s="$secs" -v t=$((after - before)) -v hz="$hz" -v flink="${FLINK[$q]:-0}" \
    -v done="$completed" -v ms="${ckpt_ms:--}" -v mib="${ckpt_mib:--}" -v rss="$rss" 'BEGIN {
      cpu = t / hz; per_core = n / cpu
      printf "| %s | %d | %.2f | %.0f | %.1f | %.0f | %.1f | %.1fx | %d (%s ms, %s MiB) | %s MiB |", q, n, s, n / s, cpu, per_core, flink, per_core / 1000 / flink, done, ms, mib, rss
    }')
  echo "$line"
  table+=("$line")
  sed -n '/^VERTEX/,$p' "$DIR/status.txt" | sed 's/^/    /'
  stop_cluster
done
echo
echo "| query | events | wall s | events/s | cluster CPU s | events/s per core | Flink K events/s per core | vs Flink | checkpoints (median duration, size) | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${table[@]}"
