#!/usr/bin/env bash
# Keyed-state benchmark: bench/state_bench.cc over the KeyedStateBackend, and
# RocksDB's own db_bench with the same settings on the same machine, in one
# run, so the state layer's numbers read against the storage engine's.
#
#   state_bench --mode=update  read-modify-write updates of random keys three
#                              ways: RocksDB Get+Put (rmw), the write-back
#                              cache (cache), an associative merge (merge)
#   state_bench --mode=rss     one update of each of RSS_KEYS distinct keys;
#                              peak RSS (VmHWM) against the memory budget
#   state_bench --mode=timers  a tumbling window's timers over TIMER_KEYS keys:
#                              add the next window's, pop the last window's
#   state_bench --mode=scans   an interval join's probes of its other side's
#                              entries on disk: a map scan and a put per round
#   state_bench --mode=dedup   the clinical dedup's state: a Get (a miss) and a
#                              Put of a new map key per round, flushed as
#                              checkpoints flush
#   state_bench --mode=join    an interval join's in-memory buffer as q4's
#                              join fills it from two interleaved inputs, with
#                              two lanes per key and with one
#   db_bench fillrandom,updaterandom   KEYS keys, then KEYS Get+Put updates
#
#   bench/state_bench.sh      environment: KEYS (1000000), UPDATES (5000000),
#                             RSS_KEYS (20000000), BUDGET_MB (256), CACHE_MB (64),
#                             TIMER_KEYS (40000),
#                             BUILD (build): the build directory with bin/state_bench
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
KEYS=${KEYS:-1000000}
UPDATES=${UPDATES:-5000000}
RSS_KEYS=${RSS_KEYS:-20000000}
BUDGET_MB=${BUDGET_MB:-256}
CACHE_MB=${CACHE_MB:-64}
TIMER_KEYS=${TIMER_KEYS:-40000}
BIN=$BUILD/bin/state_bench
if [ ! -x "$BIN" ]; then
  echo "no $BIN: build it first (cmake --build $BUILD --target state_bench)" >&2
  exit 1
fi
if ! command -v db_bench > /dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing rocksdb-tools for db_bench" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rocksdb-tools > /dev/null
fi
DIR=$(mktemp -d /tmp/vstream-state-bench-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== state_bench: vstream KeyedStateBackend"
"$BIN" --mode=update --keys="$KEYS" --updates="$UPDATES" --budget_mb="$BUDGET_MB" \
  --cache_mb="$CACHE_MB" --dir="$DIR/state"
# A process of its own, so that VmHWM is this mode's peak alone.
"$BIN" --mode=rss --rss_keys="$RSS_KEYS" --budget_mb="$BUDGET_MB" --cache_mb="$CACHE_MB" \
  --rss_method=cache --dir="$DIR/state"
"$BIN" --mode=timers --timer_keys="$TIMER_KEYS" --dir="$DIR/state"
"$BIN" --mode=scans --dir="$DIR/state"
"$BIN" --mode=dedup --dir="$DIR/state"
for lanes in 2 1; do
  "$BIN" --mode=join --join_keys=1000 --join_lag_ms=200 --join_lanes=$lanes --dir="$DIR/state"
done

echo
echo "== db_bench (RocksDB $(dpkg-query -W -f='${Version}' librocksdb-dev 2>/dev/null || echo '?')):" \
  "fillrandom then updaterandom (Get + Put) over $KEYS keys"
echo
# The backend's settings: 8-byte values, no WAL, 16 MiB memtables, bloom
# filters (memtable too), partitioned index and filters in a block cache of
# the budget's size.
db_bench --benchmarks=fillrandom,updaterandom --num="$KEYS" --key_size=16 --value_size=8 \
  --disable_wal=1 --write_buffer_size=$((16 << 20)) --max_write_buffer_number=2 \
  --memtable_bloom_size_ratio=0.02 --memtable_whole_key_filtering=1 --bloom_bits=10 \
  --cache_index_and_filter_blocks=1 --partition_index_and_filters=1 \
  --cache_size=$((BUDGET_MB << 20)) --threads=1 --seed=1 --db="$DIR/db_bench" 2>&1 |
  grep -E '^(fillrandom|updaterandom) '
