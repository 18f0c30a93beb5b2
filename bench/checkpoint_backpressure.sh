#!/usr/bin/env bash
# How long checkpoints take while a throttled sink backpressures the job
# (bench/checkpoint_backpressure.yaml), aligned or unaligned. Aligned
# barriers travel in-band, so each one waits behind every buffer queued
# before it on the way to the slow sink: the duration grows with the queues
# and shrinks with the sink's rate. Unaligned barriers overtake the queued
# buffers, which go into the checkpoint instead. Runs the job for SECONDS,
# then prints the completed checkpoints' durations and alignment times (from
# the JobManager's log and `vstream status`).
set -euo pipefail
usage() {
  cat >&2 << 'USAGE'
usage: bench/checkpoint_backpressure.sh [SINK_RATE] [SECONDS] [MODE]
  SINK_RATE  records/s per sink subtask (default 2000)
  SECONDS    how long the job runs before it is cancelled (default 60)
  MODE       aligned (default), unaligned, or timeout:DURATION (aligned
             with `aligned_timeout: DURATION`, e.g. timeout:2s)
Needs build/bin (./deploy/build.sh); BIN overrides the directory.
USAGE
  exit 2
}
[[ "${1:-}" == -h || "${1:-}" == --help ]] && usage
[ $# -le 3 ] || usage
SINK_RATE=${1:-2000}
SECONDS_TO_RUN=${2:-60}
MODE=${3:-aligned}
case "$MODE" in
  aligned) CKPT="" ;;
  unaligned) CKPT=", unaligned: true" ;;
  timeout:*) CKPT=", aligned_timeout: ${MODE#timeout:}" ;;
  *) usage ;;
esac
[[ "$SINK_RATE" =~ ^[1-9][0-9]*$ && "$SECONDS_TO_RUN" =~ ^[1-9][0-9]*$ ]] || usage
cd "$(dirname "$0")/.."
source bench/common.sh
bench_start

bench_header bench/checkpoint_backpressure.sh "$SINK_RATE" "$SECONDS_TO_RUN" "$MODE"
echo "job       generator -> key_by -> running aggregate -> blackhole throttled to $SINK_RATE records/s per subtask, parallelism 2, $MODE checkpoints every 1 s"
start_cluster 2 2
sed -e "s/COUNT/1000000000/" -e "s/SINK_RATE/$SINK_RATE/" -e "s/CHECKPOINTING/$CKPT/" bench/checkpoint_backpressure.yaml > "$DIR/job.yaml"
JOB=$($BIN/vstream submit "$DIR/job.yaml" --jobmanager "$JM")
sleep "$SECONDS_TO_RUN"
$BIN/vstream status "$JOB" --jobmanager "$JM" > "$DIR/status.txt"
$BIN/vstream cancel "$JOB" --jobmanager "$JM" > /dev/null
checkpoint_log "$JOB" > "$DIR/checkpoints.txt"
completed=$(grep -c ' COMPLETED ' "$DIR/checkpoints.txt" || true)
failed=$(grep -c ' FAILED ' "$DIR/checkpoints.txt" || true)
echo "checkpoints in ${SECONDS_TO_RUN} s      $completed completed, $failed failed"
if [ "$completed" -gt 0 ]; then
  durations=$(awk '$2 == "COMPLETED" {print $4}' "$DIR/checkpoints.txt")
  echo "duration ms (median / max)  $(echo "$durations" | median) / $(echo "$durations" | sort -g | tail -1)"
fi
sed -n '/^CHECKPOINTS/,$p' "$DIR/status.txt"
