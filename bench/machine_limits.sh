#!/usr/bin/env bash
# The machine's physical limits, for reading a benchmark's figures against:
# each measured for about SECONDS, one at a time, one core or stream each.
#   loopback_tcp_gbit_s  iperf3, one TCP stream over 127.0.0.1, Gbit/s received
#   rocksdb_updates_s    db_bench updaterandom (RocksDB read-modify-write,
#                        1 thread, 100-byte values, no WAL) over a fillseq'd
#                        key space, updates/s
#   memcpy_gib_s         $BIN/memcpy_bench (bench/memcpy_bench.cc): memcpy of
#                        a 256 MiB buffer, GiB copied/s
#   wakeup_late_p99_ms, wakeup_late_p999_ms, wakeup_late_max_ms
#                        $BIN/wakeup_bench (bench/wakeup_bench.cc): how late
#                        a thread per CPU, sleeping to 1 ms ticks, woke: the
#                        floor under every latency figure (a virtual
#                        machine's vCPU pauses show here)
# Prints one line per limit, `limit NAME VALUE`, or `limit NAME unavailable
# (WHY)` when a tool is missing or fails; exits 0 either way, so that a
# harness (bench/run) can print it beside its results.
#
#   bench/machine_limits.sh [SECONDS]   default 3 (a whole number);
#                                       environment: BIN (build/bin)
set -euo pipefail
# Not SECONDS: bash counts that up by itself.
SECS=${1:-3}
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/machine_limits.sh [SECONDS (3)]" >&2; exit 2; }
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}  # as in bench/common.sh
TMP=$(mktemp -d /tmp/vstream-limits-XXXXXX)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2> /dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

# True once something listens on TCP port $1 (without connecting to it,
# which would use up a one-off iperf3 server).
listening() {
  local p
  p=$(printf ':%04X' "$1")
  awk -v p="$p" 'substr($2, length($2) - 4) == p && $4 == "0A" { found = 1 } END { exit !found }' \
    /proc/net/tcp  # the server listens on 127.0.0.1
}

limit() { echo "limit $*"; }  # NAME VALUE, or NAME unavailable (WHY)

loopback_tcp() {
  local name=loopback_tcp_gbit_s port="" gbit
  command -v iperf3 > /dev/null || { limit $name "unavailable (no iperf3: apt-get install iperf3)"; return; }
  command -v python3 > /dev/null || { limit $name "unavailable (no python3)"; return; }
  # A free ephemeral port from the kernel; another process may take it
  # before iperf3 binds it, hence the retries.
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || break
    iperf3 -s -1 -B 127.0.0.1 -p "$port" > "$TMP/iperf3-server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 50); do
      listening "$port" && break 2
      kill -0 "$server" 2> /dev/null || break
      sleep 0.1
    done
    kill "$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
    server=""
  done
  if [ -z "$server" ]; then
    limit $name "unavailable (the iperf3 server did not start: $(tail -1 "$TMP/iperf3-server.log" 2> /dev/null))"
    return
  fi
  if iperf3 -c 127.0.0.1 -p "$port" -t "$SECS" -J > "$TMP/iperf3.json" 2> /dev/null &&
    gbit=$(python3 -c 'import json, sys
print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' < "$TMP/iperf3.json" 2> /dev/null); then
    limit $name "$gbit"
  else
    limit $name "unavailable (iperf3 failed)"
  fi
  wait "$server" 2> /dev/null || true
  server=""
}

rocksdb_updates() {
  local name=rocksdb_updates_s out ops
  command -v db_bench > /dev/null || { limit $name "unavailable (no db_bench: apt-get install rocksdb-tools)"; return; }
  # fillseq writes a fixed key space of 1M keys (about 3 s here), so that
  # runs of any length compare; updaterandom then runs Get + Put of random
  # keys in it for SECS (--duration). No WAL, as our RocksDB state backend.
  out=$(db_bench --benchmarks=fillseq,updaterandom --num=1000000 --duration="$SECS" \
    --value_size=100 --threads=1 --sync=0 --disable_wal=1 --seed=1 --db="$TMP/db" 2> /dev/null) || true
  ops=$(awk '/^updaterandom / { for (i = 1; i < NF; i++) if ($(i + 1) == "ops/sec") print $i }' <<< "$out")
  if [ -n "$ops" ]; then limit $name "$ops"; else limit $name "unavailable (db_bench failed)"; fi
}

memcpy_bandwidth() {
  local name=memcpy_gib_s gib
  [ -x "$BIN/memcpy_bench" ] || { limit $name "unavailable (no $BIN/memcpy_bench: build first (./deploy/build.sh))"; return; }
  gib=$("$BIN/memcpy_bench" "$SECS" | awk '/^memcpy_gib_s / { print $2 }') || true
  if [ -n "$gib" ]; then limit $name "$gib"; else limit $name "unavailable (memcpy_bench failed)"; fi
}

wakeup_lateness() {
  local names="wakeup_late_p99_ms wakeup_late_p999_ms wakeup_late_max_ms" out n v
  if [ ! -x "$BIN/wakeup_bench" ]; then
    for n in $names; do limit "$n" "unavailable (no $BIN/wakeup_bench: build first (./deploy/build.sh))"; done
    return
  fi
  out=$("$BIN/wakeup_bench" "$SECS") || true
  for n in $names; do
    v=$(awk -v n="$n" '$1 == n { print $2 }' <<< "$out")
    if [ -n "$v" ]; then limit "$n" "$v"; else limit "$n" "unavailable (wakeup_bench failed)"; fi
  done
}

loopback_tcp
rocksdb_updates
memcpy_bandwidth
wakeup_lateness
