#!/usr/bin/env bash
# State beyond memory: a keyed running aggregate over KEYS distinct keys on a
# JobManager and one TaskManager, and the TaskManager's peak RSS (VmHWM)
# against its configured memory.
#
#   bench/state_scale.sh [KEYS]     default 20,000,000
#   environment: MEMORY_MB (512): the TaskManager's --memory-mb (process)
#                STATE_MB (256):  its --state-memory-mb (RocksDB and caches)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-20000000}
MEMORY_MB=${MEMORY_MB:-512}
STATE_MB=${STATE_MB:-256}
source bench/common.sh
bench_start

echo "== keyed aggregate over $COUNT distinct keys, 1 TaskManager (--memory-mb $MEMORY_MB --state-memory-mb $STATE_MB)"
start_cluster 1 1 --memory-mb "$MEMORY_MB" --state-memory-mb "$STATE_MB"
sed "s/COUNT/$COUNT/" bench/state_scale.yaml > "$DIR/job.yaml"
run_job "$DIR/job.yaml" "$COUNT"
peak=$(peak_rss_mb "${TMS[0]}")
echo "TaskManager peak RSS  $peak MiB (VmHWM), budget $MEMORY_MB MiB process, $STATE_MB MiB of it state"
echo "state on disk         $(du -sm "$DIR/tm0" | cut -f1) MiB"
awk -v p="$peak" -v b="$MEMORY_MB" 'BEGIN { if (p > b) { print "OVER BUDGET"; exit 1 } print "within budget" }'
