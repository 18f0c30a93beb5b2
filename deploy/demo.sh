#!/usr/bin/env bash
# The ICU early-warning demo: installs, builds, starts a local cluster (a
# JobManager and 2 TaskManagers as separate processes), submits
# examples/icu-early-warning.yaml (200 simulated patients at 60x speed) and
# shows its alerts as they appear, with the reason for each, for
# DEMO_SECONDS (default 30) seconds. Then it cancels the job and says where
# the logs, the alert file and the 5-minute statistics are.
#
#   ./deploy/demo.sh                  # SKIP_BUILD=1 to use an existing build/
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  ./deploy/install-deps.sh
  ./deploy/build.sh
fi
source bench/common.sh  # start_cluster: a JobManager and TaskManagers, logs in $DIR
BIN=$PWD/build/bin
SECONDS_TO_RUN=${DEMO_SECONDS:-30}
DIR=$(mktemp -d /tmp/vstream-icu-demo-XXXXXX)
KEEP=1  # the logs and outputs stay for a look afterwards
trap bench_cleanup EXIT

echo "== starting a JobManager and 2 TaskManagers (logs in $DIR)"
start_cluster 2 2

cp examples/icu-early-warning.yaml "$DIR/"
echo "== vstream submit examples/icu-early-warning.yaml"
JOB=$($BIN/vstream submit "$DIR/icu-early-warning.yaml" --jobmanager "$JM" | head -1)
echo "job $JOB: 200 patients, a set of vital signs per patient per simulated minute, 60x speed"
echo "== alerts for ${SECONDS_TO_RUN} s (time, patient, alert: why)"
# The console sink's JSON lines, one per alert, from both TaskManagers.
tail -q -n +1 -F "$DIR/tm0.out" "$DIR/tm1.out" 2> /dev/null | grep --line-buffered '"alert_id"' |
  sed -u -E 's/.*"alert_at":"[0-9-]+T([0-9:]+)\.[0-9]+Z","patient_id":"([^"]*)","alert":"([^"]*)","reason":"([^"]*)".*/\1  \2  \3: \4/' &
TAIL=$!
sleep "$SECONDS_TO_RUN"
kill $TAIL 2> /dev/null || true
echo "== status"
$BIN/vstream status "$JOB" --jobmanager "$JM" | head -40
$BIN/vstream cancel "$JOB" --jobmanager "$JM" > /dev/null
cat <<MSG
== what the alerts mean
  NEWS2 medium/high        the National Early Warning Score 2 of the patient's latest vital signs
                           reached 5-6 (medium: urgent ward review) or 7+ (high: emergency response);
                           news2_total is the score, "rose from" an earlier alert's level
  possible sepsis (qSOFA)  2 or more of: respiratory rate >= 22, altered mentation, systolic BP <= 100
  pattern                  SpO2 below 90% three times within 5 minutes, or a heart rate up more
                           than 30/min within 10 minutes
  The same alert repeats only after its cool-down (1 h, 30 min for patterns) or when it gets worse.
== alerts: $DIR/out/alerts, 5-minute statistics: $DIR/out/vitals_5min, logs: $DIR/*.log
MSG
