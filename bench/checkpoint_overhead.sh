#!/usr/bin/env bash
# The throughput cost of checkpointing every second. The same keyed windowed
# job (bench/checkpoint_overhead.yaml: generator -> key_by -> tumbling
# 10-minute window over 100,000 keys -> blackhole, parallelism 2 on a
# JobManager and 2 TaskManagers) runs without checkpointing and with
# `checkpointing: {interval: 1s}`, alternately, RUNS times each on one
# cluster, so that both see the same machine (a shared virtual machine swings
# by a quarter from minute to minute). records/s = RECORDS / the job's wall
# time from submission to FINISHED, as the JobManager reports it.
#
# Prints each run's records/s, the median of each, the overhead
# 1 - median(with) / median(without), the median of the per-pair overheads
# (run i without against run i with), and for the runs with checkpointing
# how many checkpoints completed (or failed) and their median duration and
# size. Those come from the JobManager's log, which records every checkpoint;
# `vstream status` (printed for the last run) keeps only the last five.
set -euo pipefail
usage() {
  cat >&2 << 'EOF'
usage: bench/checkpoint_overhead.sh [RECORDS] [RUNS]
  RECORDS  generated records per run (default 25,000,000: over 20 s per run,
           so that the runs with checkpointing take 20 and more checkpoints)
  RUNS     runs without and with checkpointing each, alternating (default 3)
Needs build/bin (./deploy/build.sh); BIN overrides the directory.
EOF
  exit 2
}
[[ "${1:-}" == -h || "${1:-}" == --help ]] && usage
[ $# -le 2 ] || usage
COUNT=${1:-25000000}
RUNS=${2:-3}
[[ "$COUNT" =~ ^[1-9][0-9]*$ && "$RUNS" =~ ^[1-9][0-9]*$ ]] || usage
cd "$(dirname "$0")/.."
source bench/common.sh
bench_start

bench_header bench/checkpoint_overhead.sh "$COUNT" "$RUNS"
echo "job       generator ($COUNT records) -> key_by -> tumbling 10m window (100,000 keys, 4 aggregates) -> blackhole, parallelism 2"
start_cluster 2
sed "s/COUNT/$COUNT/" bench/checkpoint_overhead.yaml > "$DIR/with.yaml"
sed '/^checkpointing:/d' "$DIR/with.yaml" > "$DIR/without.yaml"

: > "$DIR/rates-without"
: > "$DIR/rates-with"
: > "$DIR/durations"
for ((run = 1; run <= RUNS; run++)); do
  for mode in without with; do
    # Not `set -e` inside run_job: a job that fails is reported, with why.
    run_job "$DIR/$mode.yaml" "$COUNT" > "$DIR/run.txt" || true
    if ! grep -q '^State: FINISHED' "$DIR/status.txt"; then
      echo "run $run $mode checkpointing: the job did not finish" >&2
      cat "$DIR/status.txt" >&2
      exit 1
    fi
    rate=$(awk '$1 == "records/s" && NF == 2 {print $2}' "$DIR/run.txt")
    secs=$(awk '/^wall seconds/ {print $3}' "$DIR/run.txt")
    cpu=$(awk '/^TaskManager CPU s/ {print $4}' "$DIR/run.txt")
    echo "$rate" >> "$DIR/rates-$mode"
    line=$(printf "run %d  %-7s checkpointing  %6.1f s  %9.0f records/s  TaskManager CPU %6.1f s" \
      "$run" "$mode" "$secs" "$rate" "$cpu")
    if [ "$mode" = with ]; then
      job=$(cat "$DIR/submit.out")
      checkpoint_log "$job" > "$DIR/checkpoints"
      awk '$2 == "COMPLETED" {print $4}' "$DIR/checkpoints" | tee -a "$DIR/durations" > "$DIR/run-durations"
      completed=$(wc -l < "$DIR/run-durations")
      # The last trigger usually finds every source done ("every task
      # finished before taking part"): that one is no failure of the run.
      at_end=$(grep -c ' FAILED .* every task finished before taking part$' "$DIR/checkpoints" || true)
      failed=$(($(awk '$2 == "FAILED"' "$DIR/checkpoints" | wc -l) - at_end))
      line+=$(printf "  checkpoints: %d completed, median %s ms, median size %s MiB; %d failed, %d aborted at the end" \
        "$completed" "$(median < "$DIR/run-durations")" \
        "$(awk '$2 == "COMPLETED" {printf "%.1f\n", $5 / 1048576}' "$DIR/checkpoints" | median)" "$failed" "$at_end")
      awk '$2 == "FAILED" && !/every task finished before taking part$/ {
        r = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ /, "", r); print "  checkpoint " $1 " failed: " r }' \
        "$DIR/checkpoints" > "$DIR/failures"
      rm -rf "$DIR/jm/checkpoints/$job"  # they stay when a job ends; vstream status needs only the JobManager
    fi
    echo "$line"
    if [ "$mode" = with ]; then cat "$DIR/failures"; fi
  done
done

echo
echo "checkpoints of the last run, as vstream status $job shows them:"
$BIN/vstream status "$job" --jobmanager "$JM" | sed -n '/^CHECKPOINTS/,$p'
echo
without=$(median < "$DIR/rates-without")
with=$(median < "$DIR/rates-with")
printf "median records/s without checkpointing  %.0f   (runs: %s)\n" "$without" "$(paste -sd ' ' "$DIR/rates-without")"
printf "median records/s with checkpoints (1 s) %.0f   (runs: %s)\n" "$with" "$(paste -sd ' ' "$DIR/rates-with")"
printf "checkpoints over all runs with them     %d completed, median duration %s ms\n" \
  "$(wc -l < "$DIR/durations")" "$(median < "$DIR/durations")"
awk -v a="$with" -v b="$without" 'BEGIN { printf "overhead                                %.1f %% (1 - median with / median without)\n", (1 - a / b) * 100 }'
# Runs next to each other share the machine's mood; the median of the
# per-pair differences is less swayed by a slow or fast stretch.
paste "$DIR/rates-without" "$DIR/rates-with" | awk '{ printf "%.2f\n", (1 - $2 / $1) * 100 }' > "$DIR/pairs"
printf "per pair (run i without, run i with)    median %.1f %%   (pairs: %s)\n" \
  "$(median < "$DIR/pairs")" "$(paste -sd ' ' "$DIR/pairs")"
