#!/usr/bin/env bash
# Windowed-aggregation throughput per core, next to RocksDB's own
# read-modify-write rate (db_bench updaterandom) measured in the same run.
#
#   bench/window.sh [RECORDS]        default 10,000,000
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000000}
DIR=$(mktemp -d /tmp/vstream-bench-XXXXXX)
source bench/common.sh
trap bench_cleanup EXIT

if ! command -v db_bench > /dev/null; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq rocksdb-tools > /dev/null
fi
echo "== db_bench updaterandom (1 thread, 1M keys, 2M updates)"
db_bench --benchmarks=fillrandom,updaterandom --num=1000000 --reads=2000000 --threads=1 \
  --value_size=64 --key_size=16 --db="$DIR/dbbench" --disable_wal=1 2>&1 | grep -E "^(fillrandom|updaterandom)"

echo "== window: generator -> key_by -> tumbling 1m window (4 aggregates) -> blackhole"
start_cluster 2
sed "s/COUNT/$COUNT/" bench/window.yaml > "$DIR/job.yaml"
run_job "$DIR/job.yaml" "$COUNT"
