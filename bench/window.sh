#!/usr/bin/env bash
# Windowed-aggregation throughput per core, next to RocksDB's own
# read-modify-write rate (db_bench updaterandom) measured in the same run.
# The two alternate RUNS times, so that both see the same machine (a shared
# virtual machine swings by a quarter from minute to minute); each pair
# gives a ratio, and the median ratio is the result.
#
#   bench/window.sh [RECORDS]        default 10,000,000; environment: RUNS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000000}
RUNS=${RUNS:-3}
source bench/common.sh
bench_start

if ! command -v db_bench > /dev/null; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq rocksdb-tools > /dev/null
fi
start_cluster 2
sed "s/COUNT/$COUNT/" bench/window.yaml > "$DIR/job.yaml"
ratios=()
for ((run = 1; run <= RUNS; run++)); do
  # The same RocksDB settings as our state backend (and bench/state_bench.sh):
  # no WAL, 16 MiB memtables, bloom filters, partitioned index and filters in
  # a 256 MiB block cache. One thread: the figure is per core.
  echo "== run $run: db_bench fillrandom,updaterandom (1 thread, 1M keys, 1M read-modify-write updates)"
  rm -rf "$DIR/dbbench"
  db_bench --benchmarks=fillrandom,updaterandom --num=1000000 --key_size=16 --value_size=8 \
    --disable_wal=1 --write_buffer_size=$((16 << 20)) --max_write_buffer_number=2 \
    --memtable_bloom_size_ratio=0.02 --memtable_whole_key_filtering=1 --bloom_bits=10 \
    --cache_index_and_filter_blocks=1 --partition_index_and_filters=1 \
    --cache_size=$((256 << 20)) --threads=1 --seed=1 --db="$DIR/dbbench" 2>&1 |
    grep -E "^(fillrandom|updaterandom) " | tee "$DIR/dbbench.txt"
  db=$(awk '/^updaterandom/ {for (i = 1; i < NF; i++) if ($(i + 1) == "ops/sec") print $i}' "$DIR/dbbench.txt")
  echo "== run $run: window: generator -> key_by -> tumbling 1m window (4 aggregates) -> blackhole"
  run_job "$DIR/job.yaml" "$COUNT" | tee "$DIR/job.txt"
  ours=$(awk '/^records\/s per core/ {print $4}' "$DIR/job.txt")
  ratio=$(awk -v a="$ours" -v b="$db" 'BEGIN { printf "%.2f", a / b }')
  echo "run $run: $ours records/s per core / $db db_bench updates/s = ${ratio}x"
  ratios+=("$ratio")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "ratios: ${ratios[*]}; median ${median}x (target 5x)"
