#!/usr/bin/env bash
# Demo-pipeline latency, from an observation to its alert: the ICU demo's
# operators (bench/alert_latency.yaml: 200 simulated patients, a set each per
# second in real time, HL7 messages parsed, dedup, NEWS2, qSOFA, patterns,
# alerts) on a local cluster of a JobManager and 2 TaskManagers.
#
# An alert's latency is the wall-clock time from when its observation set
# was due at the source (the simulated monitor sent it: the source paces set
# n to wall + (time(n) - simulated) / speed and logs those numbers) to when
# the alert row was made (now() in the map after the alert operator, before
# the sinks; the console sink writes it at once). Percentiles over the alerts
# after the first WARMUP (default 10) seconds.
#
#   bench/alert_latency.sh [SECONDS (default 60)]
#   environment: BIN (build/bin), WARMUP (10), KEEP=1 keeps the logs
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
SECS=${1:-60}
WARMUP=${WARMUP:-10}
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/alert_latency.sh [SECONDS]" >&2; exit 2; }
bench_start
bench_header bench/alert_latency.sh "$SECS"
start_cluster 2 2
cp bench/alert_latency.yaml "$DIR/job.yaml"
JOB=$($BIN/vstream submit "$DIR/job.yaml" --jobmanager "$JM" | head -1)
sleep "$SECS"
$BIN/vstream status "$JOB" --jobmanager "$JM" > "$DIR/status.txt" 2>&1 || true
$BIN/vstream cancel "$JOB" --jobmanager "$JM" > /dev/null
# Each source subtask's pacing: "paced: start_ms=S simulated_ms=A wall_ms=W speed=V".
grep -h "source 'ward' subtask [0-9]*: paced:" "$DIR"/tm*.log |
  sed -E 's/.*subtask ([0-9]+): paced: start_ms=([0-9]+) simulated_ms=([0-9]+) wall_ms=([0-9]+) speed=([0-9.]+).*/\1 \2 \3 \4 \5/' \
  > "$DIR/pacing.txt"
[ -s "$DIR/pacing.txt" ] || { echo "no pacing line in the TaskManager logs" >&2; exit 1; }
cat "$DIR"/tm*.out | grep '"lag_ms"' > "$DIR/alerts.jsonl" || true
awk -v warmup="$WARMUP" -v patients=200 -v interval=1000 -v parallelism=2 '
  FNR == NR { start[$1] = $2; sim[$1] = $3; wall[$1] = $4; speed[$1] = $5; next }
  {
    match($0, /"message_id":"SIM[0-9]+-[0-9]+"/); id = substr($0, RSTART, RLENGTH); sub(/.*-/, "", id); sub(/"/, "", id)
    match($0, /"lag_ms":-?[0-9]+/); lag = substr($0, RSTART + 9, RLENGTH - 9)
    match($0, /"kind":"[a-z0-9]+"/); kind = substr($0, RSTART + 8, RLENGTH - 9)
    n = id + 0; s = n % parallelism
    t = start[s] + int(n / patients) * interval + int((n % patients) * interval / patients)   # the set time
    observed = int(t / 1000) * 1000                                # observed_at, whole seconds
    made = observed + lag                                          # wall clock when the alert row was made
    due = wall[s] + (t - sim[s]) / speed[s]                        # wall clock when the set was sent
    if (due - wall[s] < warmup * 1000) next
    print made - due, kind
  }' "$DIR/pacing.txt" "$DIR/alerts.jsonl" | sort -n > "$DIR/latencies.txt"
awk '
  { lat[++k] = $1; kinds[$2]++ }
  function at(q,   i) { i = int(k * q); if (i < 1) i = 1; return lat[i] }
  END {
    if (k == 0) { print "no alerts after the warm-up"; exit 1 }
    printf "alerts measured    %d (", k; sep = ""
    for (x in kinds) { printf "%s%s %d", sep, x, kinds[x]; sep = ", " }
    print ")"
    printf "latency p50        %.0f ms\n", at(0.50)
    printf "latency p99        %.0f ms\n", at(0.99)
    printf "latency max        %.0f ms\n", lat[k]
  }' "$DIR/latencies.txt"
sed -n '/^VERTEX/,/^$/p' "$DIR/status.txt" | head -25
