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
source bench/common.sh
bench_start
start_cluster 2
sed "s/COUNT/$COUNT/" bench/shuffle.yaml > "$DIR/job.yaml"
run_job "$DIR/job.yaml" "$COUNT"
