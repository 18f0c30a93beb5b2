#!/usr/bin/env bash
# Checkpoints of about TARGET_MB of keyed RocksDB state: how long the first,
# full one takes, and the incremental ones after it.
#
# One TaskManager runs bench/checkpoint_size.yaml at parallelism 1: a running
# aggregate whose `build` source gives each of KEYS distinct keys about 350
# bytes of state, as fast as it can, while an `updates` source changes RATE
# random existing keys a second and keeps the job running after the build.
# The checkpoint interval is longer than the build, so that checkpoint 1 comes
# when the state is complete and uploads all of it (a full checkpoint, as a
# job's first one is); the INCREMENTAL checkpoints after it upload only the
# SST files that are new since (memtables flushed, compaction output). Then
# the job is cancelled.
#
# Duration and state size of each checkpoint come from the JobManager's log
# (every checkpoint; `vstream status`, printed at the end, keeps the last
# five); SIZE there counts every file a checkpoint refers to, also those an
# earlier one uploaded. What each checkpoint uploaded is measured in the
# checkpoint storage: the files under chk-<id>/ and the shared files written
# between its trigger and its completion (the storage is listed every second
# while the job runs; retention deletes old files).
set -euo pipefail
usage() {
  cat >&2 << 'EOF'
usage: bench/checkpoint_size.sh [TARGET_MB]
  TARGET_MB  keyed state to build, in MiB (default 1024)
environment:
  INTERVAL     checkpoint interval in seconds (default TARGET_MB / 6, at least 10):
               longer than the build, so that checkpoint 1 is a full one
  INCREMENTAL  checkpoints to wait for after the first one (default 3)
  RATE         updates/s of existing keys, during and after the build (default 1000)
  KEYS         distinct keys (default TARGET_MB * 3000, about 350 bytes of state each)
  MEMORY_MB    the TaskManager's --memory-mb (default 1024)
  STATE_MB     its --state-memory-mb, RocksDB and caches (default 512)
Needs build/bin (./deploy/build.sh); BIN overrides the directory. Local state
and checkpoint storage go under /tmp, all deleted at the end; it refuses to
start with less than 5 x TARGET_MB free there.
EOF
  exit 2
}
[[ "${1:-}" == -h || "${1:-}" == --help ]] && usage
[ $# -le 1 ] || usage
TARGET_MB=${1:-1024}
[[ "$TARGET_MB" =~ ^[1-9][0-9]*$ ]] || usage
INTERVAL=${INTERVAL:-$((TARGET_MB / 6 > 10 ? TARGET_MB / 6 : 10))}
INCREMENTAL=${INCREMENTAL:-3}
RATE=${RATE:-1000}
KEYS=${KEYS:-$((TARGET_MB * 3000))}
MEMORY_MB=${MEMORY_MB:-1024}
STATE_MB=${STATE_MB:-512}
for v in INTERVAL INCREMENTAL RATE KEYS MEMORY_MB STATE_MB; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a whole number, got '${!v}'" >&2; usage; }
done
cd "$(dirname "$0")/.."
source bench/common.sh
bench_start
need_mb=$((TARGET_MB * 5))  # RocksDB with compaction headroom, plus the checkpoint storage
free_mb=$(df -Pm "$DIR" | awk 'NR == 2 {print $4}')
if [ "$free_mb" -lt "$need_mb" ]; then
  echo "$(dirname "$DIR") has $free_mb MiB free; TARGET_MB=$TARGET_MB needs about $need_mb" >&2
  exit 1
fi

bench_header "INTERVAL=$INTERVAL INCREMENTAL=$INCREMENTAL RATE=$RATE KEYS=$KEYS MEMORY_MB=$MEMORY_MB" \
  "STATE_MB=$STATE_MB bench/checkpoint_size.sh $TARGET_MB"
echo "job       running aggregate over $KEYS keys (about $TARGET_MB MiB), then $RATE updates/s;" \
  "checkpoint every ${INTERVAL}s; 1 TaskManager (--memory-mb $MEMORY_MB --state-memory-mb $STATE_MB); $free_mb MiB free"
start_cluster 1 1 --memory-mb "$MEMORY_MB" --state-memory-mb "$STATE_MB"
sed "s/: KEYS\b/: $KEYS/; s/rate: RATE/rate: $RATE/; s/interval: INTERVAL/interval: ${INTERVAL}s/" \
  bench/checkpoint_size.yaml > "$DIR/job.yaml"

submitted=$(date +%s.%N)
JOB=$($BIN/vstream submit "$DIR/job.yaml" --jobmanager "$JM")
STORE=$DIR/jm/checkpoints/$JOB
(
  while :; do
    find "$STORE" -type f ! -name '*.tmp-*' -printf '%T@ %s %P\n' 2> /dev/null || true
    sleep 1
  done
) > "$DIR/files.txt" &
pids+=($!)

job_status() { $BIN/vstream status "$JOB" --jobmanager "$JM" > "$DIR/status.txt"; }
job_state() { sed -n 's/^State: \([A-Z_]*\).*/\1/p' "$DIR/status.txt"; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# Prints the checkpoints that ended since the last call.
shown=0
show_new_checkpoints() {
  checkpoint_log "$JOB" > "$DIR/checkpoints"
  awk -v from="$shown" -v t0="$submitted" 'NR > from {
    if ($2 == "COMPLETED") printf "  checkpoint %s completed at %.1f s: %.1f s, %.1f MiB of state\n", $1, $3 - t0, $4 / 1000, $5 / 1048576
    else { r = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ /, "", r); printf "  checkpoint %s failed at %.1f s: %s\n", $1, $3 - t0, r }
  }' "$DIR/checkpoints"
  shown=$(wc -l < "$DIR/checkpoints")
}
fail() {
  echo "$1" >&2
  cat "$DIR/status.txt" >&2
  exit 1
}

echo "== building the state"
while :; do
  job_status
  [ "$(job_state)" = RUNNING ] || [ "$(job_state)" = CREATED ] || fail "the job is $(job_state), not RUNNING"
  show_new_checkpoints
  [ "$(awk '$1 == "build" {print $3}' "$DIR/status.txt")" = FINISHED ] && break
  sleep 1
done
built=$(date +%s.%N)
echo "  build finished at $(since "$submitted" "$built") s ($KEYS keys)"

echo "== waiting for $((INCREMENTAL + 1)) checkpoints after the build (every ${INTERVAL}s)"
while :; do
  sleep 1
  job_status
  [ "$(job_state)" = RUNNING ] || fail "the job is $(job_state), not RUNNING"
  show_new_checkpoints
  read -r after failed_after < <(awk -v b="$built" '
    $2 == "COMPLETED" && $3 - $4 / 1000 >= b { n++ }
    $2 == "FAILED" && $3 >= b { f++ }
    END { print n + 0, f + 0 }' "$DIR/checkpoints")
  [ "$after" -ge $((INCREMENTAL + 1)) ] && break
  [ "$failed_after" -gt "$INCREMENTAL" ] && fail "$failed_after checkpoints failed after the build"
done
peak=$(peak_rss_mb "${TMS[0]}")
local_mb=$(du -sm "$DIR/tm0" | cut -f1)
$BIN/vstream cancel "$JOB" --jobmanager "$JM" > /dev/null
for _ in $(seq 1 100); do
  job_status
  [ "$(job_state)" = CANCELED ] && break
  sleep 0.2
done
show_new_checkpoints
kill "${pids[-1]}" 2> /dev/null || true  # the storage lister

# One line per checkpoint: ID STATE TRIGGERED_S DURATION_S BYTES UPLOADED_BYTES PHASE.
awk -v t0="$submitted" -v built="$built" '
  FNR == NR {
    if ($2 != "COMPLETED") next
    n++; id[n] = $1; trig[n] = $3 - $4 / 1000; end[n] = $3; dur[n] = $4 / 1000; bytes[n] = $5
    next
  }
  { mtime[$3] = $1; size[$3] = $2 }
  END {
    for (p in size) {
      if (match(p, /^chk-[0-9]+\//)) { up[substr(p, 5, RLENGTH - 5)] += size[p]; continue }
      for (i = 1; i <= n; i++) {
        if (mtime[p] >= trig[i] - 0.05 && mtime[p] <= end[i] + 0.05) { up[id[i]] += size[p]; break }
      }
    }
    first = 0
    for (i = 1; i <= n; i++) {
      if (trig[i] < built) phase = "during the build"
      else if (!first) { first = 1; phase = (i == 1) ? "first, full" : "first after the build" }
      else phase = "incremental"
      printf "%s %.1f %.3f %.0f %.0f %s\n", id[i], trig[i] - t0, dur[i], bytes[i], up[id[i]], phase
    }
  }' "$DIR/checkpoints" "$DIR/files.txt" > "$DIR/table"

echo
echo "== checkpoints ($(wc -l < "$DIR/table") completed)"
printf "%6s  %-22s  %10s  %10s  %15s  %11s  %11s\n" ID PHASE TRIGGERED DURATION "SIZE (bytes)" "SIZE (MiB)" "UPLOADED"
awk '{ ph = $6; for (i = 7; i <= NF; i++) ph = ph " " $i
       printf "%6s  %-22s  %8.1f s  %8.2f s  %15.0f  %11.1f  %7.1f MiB\n", $1, ph, $2, $3, $4, $4 / 1048576, $5 / 1048576 }' \
  "$DIR/table"
awk '$2 == "FAILED"' "$DIR/checkpoints" | while read -r id _ at _ _ reason; do
  echo "  checkpoint $id failed at $(since "$submitted" "$at") s: $reason"
done

echo
during=$(awk '/during the build/' "$DIR/table" | wc -l)
awk '/ first/ {
  printf "first checkpoint after the build    #%s: %.2f s for %.1f MiB of state, %.1f MiB uploaded (%.0f MiB/s)\n",
    $1, $3, $4 / 1048576, $5 / 1048576, $5 / 1048576 / $3 }' "$DIR/table"
if [ "$during" -gt 0 ]; then
  echo "  NOT a full checkpoint: $during ran during the build (${INTERVAL}s is shorter than the build," \
    "$(since "$submitted" "$built") s); set INTERVAL above that"
fi
awk '/incremental/ {print $3}' "$DIR/table" > "$DIR/incr-durations"
awk '/incremental/ {printf "%.1f\n", $5 / 1048576}' "$DIR/table" > "$DIR/incr-uploads"
if [ -s "$DIR/incr-durations" ]; then
  echo "incremental checkpoints after it    $(wc -l < "$DIR/incr-durations"): durations $(paste -sd ' ' "$DIR/incr-durations") s" \
    "(median $(median < "$DIR/incr-durations") s); uploaded $(paste -sd ' ' "$DIR/incr-uploads") MiB" \
    "(median $(median < "$DIR/incr-uploads") MiB)"
fi
echo "checkpoint storage (du -sh)         $(du -sh "$STORE" | cut -f1) in $STORE (the last 3 checkpoints retained)"
echo "local state before cancel (du -sm)  $local_mb MiB under the TaskManager's data dir"
echo "TaskManager peak RSS                $peak MiB (VmHWM), budget $MEMORY_MB MiB"
echo
echo "as vstream status $JOB shows them:"
sed -n '/^CHECKPOINTS/,$p' "$DIR/status.txt"
