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
# The same RocksDB settings as our state backend (and bench/state_bench.sh):
# no WAL, 16 MiB memtables, bloom filters, partitioned index and filters in a
# 256 MiB block cache. One thread: the figure is per core.
echo "== db_bench fillrandom,updaterandom (1 thread, 1M keys, 1M read-modify-write updates)"
db_bench --benchmarks=fillrandom,updaterandom --num=1000000 --key_size=16 --value_size=8 \
  --disable_wal=1 --write_buffer_size=$((16 << 20)) --max_write_buffer_number=2 \
  --memtable_bloom_size_ratio=0.02 --memtable_whole_key_filtering=1 --bloom_bits=10 \
  --cache_index_and_filter_blocks=1 --partition_index_and_filters=1 \
  --cache_size=$((256 << 20)) --threads=1 --seed=1 --db="$DIR/dbbench" 2>&1 |
  grep -E "^(fillrandom|updaterandom) "

echo "== window: generator -> key_by -> tumbling 1m window (4 aggregates) -> blackhole"
start_cluster 2
sed "s/COUNT/$COUNT/" bench/window.yaml > "$DIR/job.yaml"
run_job "$DIR/job.yaml" "$COUNT"
