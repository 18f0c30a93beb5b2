#!/usr/bin/env bash
# Installs, builds, then runs the running-totals example job on a local cluster: a
# JobManager and 2 TaskManagers as separate processes, fed 200,000 vital-sign
# rows of 100 patients. Prints the job's status and the last totals.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
BIN=build/bin
DEMO=$(mktemp -d /tmp/vstream-demo-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== demo data in $DEMO"
awk 'BEGIN { srand(7); print "patient_id,ts,hr,spo2,rr";
  for (i = 0; i < 200000; i++) {
    printf "P%03d,%d,%d,%d,%d\n", int(rand()*100), 1700000000000 + i*1000,
      int(rand()*180), int(45 + rand()*56), int(8 + rand()*20) } }' > "$DEMO/vitals.csv"
sed -e "s|/data/vitals.csv|$DEMO/vitals.csv|" -e "s|/data/out/totals|$DEMO/out|" \
  examples/vitals-running-totals.yaml > "$DEMO/job.yaml"

await_address() {  # file, what
  for _ in $(seq 1 300); do
    addr=$(sed -n "s/^$2 listening on //p" "$1" | head -1)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  echo "$2 did not start; see $1" >&2; return 1
}

echo "== starting a JobManager and 2 TaskManagers"
$BIN/vstream-jobmanager --rpc-port 0 --data-dir "$DEMO/jm" > "$DEMO/jm.out" 2> "$DEMO/jm.log" &
pids+=($!)
JM=$(await_address "$DEMO/jm.out" JobManager)
for i in 0 1; do
  $BIN/vstream-taskmanager --jobmanager "$JM" --rpc-port 0 --slots 2 --data-dir "$DEMO/tm$i" \
    > "$DEMO/tm$i.out" 2> "$DEMO/tm$i.log" &
  pids+=($!)
  await_address "$DEMO/tm$i.out" TaskManager > /dev/null
done

echo "== vstream submit $DEMO/job.yaml --wait"
$BIN/vstream submit "$DEMO/job.yaml" --wait --jobmanager "$JM"
echo "== last totals of 3 patients"
for p in P000 P001 P002; do grep -h "\"$p\"" "$DEMO"/out/part-* | tail -1; done
echo "== logs and outputs are in $DEMO"
