# Shared by the benchmark scripts: start a JobManager and TaskManagers from
# build/bin, run a job, measure wall and TaskManager CPU time.
BIN=${BIN:-build/bin}
pids=()
# Every script: a fresh $DIR, removed at exit (bench_cleanup), and the
# binaries present.
bench_start() {
  DIR=$(mktemp -d /tmp/vstream-bench-XXXXXX)
  trap bench_cleanup EXIT
  for b in vstream vstream-jobmanager vstream-taskmanager; do
    [ -x "$BIN/$b" ] || { echo "no $BIN/$b: build first (./deploy/build.sh)" >&2; exit 1; }
  done
}

# KEEP=1 keeps the run's directory (logs of the JobManager and TaskManagers).
bench_cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$DIR"; }

await_address() {  # file, what
  for _ in $(seq 1 300); do
    # The process may not have created its output file yet.
    addr=$(sed -n "s/^$2 listening on //p" "$1" 2> /dev/null | head -1 || true)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  echo "$2 did not start" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU time the hypervisor gave other guests while this one's vCPUs wanted it
# (steal, /proc/stat), all CPUs, in ticks: a run with seconds of it ran on a
# slower machine than its neighbours (docs/benchmarks.md, "Machine").
steal_ticks() { awk '$1 == "cpu" { print $9 + 0 }' /proc/stat; }
stolen_s() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'; }  # TICKS
# Microseconds in which some task waited on RESOURCE (io, memory) so far:
# the kernel's pressure stall information; "-" without it.
pressure_us() {
  awk '$1 == "some" { sub("total=", "", $5); print $5; found = 1; exit } END { if (!found) print "-" }' \
    "/proc/pressure/$1" 2>/dev/null || echo -
}
# Milliseconds between two pressure_us readings; "-" if either is.
stall_ms() {
  if [ "$1" = - ] || [ "$2" = - ]; then echo -; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) / 1000 }'
}
tms_cpu_ticks() {
  local t=0 p
  for p in "${TMS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

# Peak resident memory of a process so far (VmHWM), in MiB.
peak_rss_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# The CPUs this shell may use, one per line.
allowed_cpus() {
  local part
  for part in $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status | tr ',' ' '); do
    seq "${part%-*}" "${part#*-}"
  done
}

# TaskManager i gets `--cpuset` of its share of the allowed CPUs (with 2
# CPUs and 2 TaskManagers one each; one TaskManager gets them all) when
# there are at least as many CPUs as TaskManagers, unless
# PIN_TASKMANAGERS=0: a TaskManager's threads then wake each other on its
# own CPUs (docs/operations.md, docs/benchmarks.md).
taskmanager_cpusets() {  # TASKMANAGERS: prints one cpuset per TaskManager, or nothing
  local n=$1 cpus i k
  [ "${PIN_TASKMANAGERS:-1}" = 0 ] && return 0
  mapfile -t cpus < <(allowed_cpus)
  [ "${#cpus[@]}" -ge "$n" ] || return 0
  k=$((${#cpus[@]} / n))
  for ((i = 0; i < n; i++)); do echo "${cpus[@]:$((i * k)):$k}" | tr ' ' ','; done
}

start_cluster() {  # SLOTS [TASKMANAGERS (2)] [more TaskManager flags...]
  local slots=$1 n=${2:-2} cpusets
  shift; [ $# -gt 0 ] && shift
  mapfile -t cpusets < <(taskmanager_cpusets "$n")
  $BIN/vstream-jobmanager --rpc-port 0 --data-dir "$DIR/jm" > "$DIR/jm.out" 2> "$DIR/jm.log" &
  pids+=($!)
  JM=$(await_address "$DIR/jm.out" JobManager)
  TMS=()
  for ((i = 0; i < n; i++)); do
    $BIN/vstream-taskmanager --jobmanager "$JM" --rpc-port 0 --slots "$slots" --data-dir "$DIR/tm$i" \
      ${cpusets[$i]:+--cpuset "${cpusets[$i]}"} "$@" > "$DIR/tm$i.out" 2> "$DIR/tm$i.log" &
    pids+=($!); TMS+=($!)
    await_address "$DIR/tm$i.out" TaskManager > /dev/null
  done
}

# Stops the cluster start_cluster started and removes its data dirs, so that
# the next start_cluster begins afresh (and its processes' peak RSS with it).
stop_cluster() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  TMS=()
  rm -rf "$DIR/jm" "$DIR"/tm[0-9]*
}

# CPU ticks of the JobManager and every TaskManager so far.
cluster_cpu_ticks() {
  local t=0 p
  for p in "${pids[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

# run_spec SPEC: on a fresh cluster of 2 TaskManagers of 2 slots (with
# TASKMANAGER_FLAGS), submits SPEC and waits for it; exits unless it
# finished. Leaves the job's status in $DIR/status.txt, its checkpoints in
# $DIR/checkpoints, the cluster's CPU seconds in CPU_S and the seconds
# stolen meanwhile in STOLEN_S (bench/latency.sh, bench/throughput.sh).
run_spec() {
  local before after steal_before
  # shellcheck disable=SC2086  # TASKMANAGER_FLAGS is a list of flags
  start_cluster 2 2 ${TASKMANAGER_FLAGS:-}
  before=$(cluster_cpu_ticks)
  steal_before=$(steal_ticks)
  $BIN/vstream submit "$1" --wait --jobmanager "$JM" > "$DIR/submit.out" 2> "$DIR/status.txt" || true
  after=$(cluster_cpu_ticks)
  STOLEN_S=$(stolen_s $(($(steal_ticks) - steal_before)))
  grep -q '^State: FINISHED' "$DIR/status.txt" || { echo "$1: the job did not finish" >&2; cat "$DIR/status.txt" >&2; exit 1; }
  checkpoint_log "$(cat "$DIR/submit.out")" > "$DIR/checkpoints"
  CPU_S=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
}

# run_job JOB.yaml RECORDS: prints records/s and CPU figures.
run_job() {
  local before after secs hz
  before=$(tms_cpu_ticks)
  $BIN/vstream submit "$1" --wait --jobmanager "$JM" > "$DIR/submit.out" 2> "$DIR/status.txt"
  after=$(tms_cpu_ticks)
  secs=$(sed -n 's/.*(\([0-9.]*\) s since submission).*/\1/p' "$DIR/status.txt")
  hz=$(getconf CLK_TCK)
  awk -v n="$2" -v s="$secs" -v t=$((after - before)) -v hz="$hz" 'BEGIN {
    cpu = t / hz;
    printf "records            %d\n", n;
    printf "wall seconds       %.2f (submission to FINISHED)\n", s;
    printf "records/s          %.0f\n", n / s;
    printf "TaskManager CPU s  %.2f\n", cpu;
    printf "records/s per core %.0f (records / TaskManager CPU-seconds)\n", n / cpu;
    printf "CPU s per 1M recs  %.3f\n", cpu / (n / 1e6);
  }'
  sed -n '/^VERTEX/,$p' "$DIR/status.txt"
}

# The job spec of bench/workloads/$1.yaml with COUNT=$2, checkpoints every
# $3 (none: no checkpoints), and, if $4 > 0, paced at $4 events/s with
# latency markers every 10 ms. Written to $DIR; prints its path.
make_spec() {
  local w=$1 count=$2 interval=$3 rate=$4 out=$DIR/$1.yaml pace=""
  # The generator and nexmark sources pace by `rate`; the patients source
  # by `speed` (below).
  if [ "$rate" -gt 0 ] && ! grep -q '^    speed: 0$' "bench/workloads/$w.yaml"; then pace="\n    rate: $rate"; fi
  sed "s/^    count: COUNT$/    count: $count$pace/" "bench/workloads/$w.yaml" > "$out"
  grep -q '^parallelism: 2$' "$out" || { echo "bench/workloads/$w.yaml: no top-level 'parallelism: 2' line" >&2; exit 2; }
  if [ "$interval" != none ]; then
    sed -i "s/^parallelism: 2$/parallelism: 2\ncheckpointing: {interval: $interval, mode: exactly_once}/" "$out"
  fi
  grep -q "^    count: $count$" "$out" || { echo "bench/workloads/$w.yaml: no source with 'count: COUNT'" >&2; exit 2; }
  if [ "$rate" -gt 0 ]; then
    sed -i "s/^parallelism: 2$/parallelism: 2\nlatency_markers: 10ms/" "$out"
    if grep -q '^    speed: 0$' "$out"; then
      # The patients source paces by simulated time: sets/s = patients * speed / interval.
      local patients interval_s
      patients=$(sed -n 's/^    patients: \([0-9]*\)$/\1/p' "$out")
      interval_s=$(sed -n 's/^    interval: \([0-9]*\)m$/\1/p' "$out")
      [ -n "$patients" ] && [ -n "$interval_s" ] || { echo "$w: cannot pace (patients, interval in minutes)" >&2; exit 2; }
      sed -i "s/^    speed: 0$/    speed: $(awk -v r="$rate" -v p="$patients" -v i="$interval_s" 'BEGIN { printf "%.4f", r * i * 60 / p }')/" "$out"
    fi
  fi
  echo "$out"
}

# p50 / p99 / p99.9 of the latency markers in `vstream status` output $1:
# for each quantile the largest over the job's sinks, then the bucket the
# largest p99 lies in ("p99 within LOW-HIGH" ms: each quantile is its
# histogram bucket's midpoint, and the bucket says which side of a target
# the true p99 may be).
worst_latency() {
  awk '/^LATENCY/ { on = 1; getline; next } on && NF == 7 {
      for (i = 3; i <= 5; i++) if ($i + 0 > worst[i]) { worst[i] = $i + 0; if (i == 4) within = $7 }
      n += 1
    } on && NF == 0 { on = 0 }
    END { if (n) printf "%.2f / %.2f / %.2f (p99 within %s)", worst[3], worst[4], worst[5], within; else printf "no markers" }' "$1"
}

# "N (MEDIAN ms, MEDIAN MiB)" of the completed checkpoints in checkpoint_log
# output $1; "0" for none.
checkpoint_summary() {
  local n
  n=$(awk '$2 == "COMPLETED"' "$1" | wc -l)
  if [ "$n" -gt 0 ]; then
    n+=" ($(awk '$2 == "COMPLETED" {print $4}' "$1" | median) ms,"
    n+=" $(awk '$2 == "COMPLETED" {printf "%.2f\n", $5 / 1048576}' "$1" | median) MiB)"
  fi
  echo "$n"
}

# The revision and the command, printed first so that results can go into
# docs/benchmarks.md as they are.
bench_header() {  # COMMAND...
  local dirty=""
  git diff --quiet HEAD -- 2> /dev/null || dirty=" (the working tree has uncommitted changes)"
  echo "revision  $(git rev-parse --short HEAD)$dirty"
  echo "binaries  $BIN, built $(date -r "$BIN/vstream-taskmanager" '+%Y-%m-%d %H:%M:%S' 2> /dev/null || echo '?')"
  echo "command   $*"
}

# The header line of how start_cluster pins TASKMANAGERS TaskManagers.
cpuset_line() {  # TASKMANAGERS
  local cpusets
  cpusets=$(taskmanager_cpusets "$1" | paste -sd' ' -)
  if [ -n "$cpusets" ]; then
    echo "cpusets   TaskManagers on CPUs $cpusets in turn (--cpuset; PIN_TASKMANAGERS=0 for none)"
  else
    echo "cpusets   none (PIN_TASKMANAGERS=0, or fewer CPUs than TaskManagers)"
  fi
}

# Median of the numbers on stdin, one per line; nothing for none.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# The checkpoints of job $1 that ended, from the JobManager's log (which,
# unlike `vstream status`, has every one, not the last five), oldest first:
#   ID COMPLETED END_EPOCH_S DURATION_MS BYTES BYTES_UPLOADED
#   ID FAILED END_EPOCH_S - 0 REASON...
checkpoint_log() {
  awk -v job="job $1: checkpoint " '
    index($0, job) {
      d = substr($1, 2); gsub("-", " ", d)
      t = $2; sub(/]$/, "", t); split(t, hms, ":")
      end = mktime(d " " hms[1] " " hms[2] " " int(hms[3])) + hms[3] - int(hms[3])
      rest = substr($0, index($0, job) + length(job))
      split(rest, w, " ")
      if (w[2] == "completed") {
        bytes = w[6]; sub(/^\(/, "", bytes)
        printf "%s COMPLETED %.3f %s %s %s\n", w[1], end, w[4], bytes, w[8]
      } else if (w[2] == "failed:") {
        printf "%s FAILED %.3f - 0 %s\n", w[1], end, substr(rest, index(rest, "failed: ") + 8)
      }
    }' "$DIR/jm.log"
}
