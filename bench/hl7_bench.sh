#!/usr/bin/env bash
# HL7 v2 parsing throughput per core: bench/hl7_bench.cc over the real
# messages of ../shared/data/hl7v2/authored, repeated. Three passes on one
# thread, each timed on its CPU clock: splitting into messages, + parsing
# segments and fields, + making observation rows (what the hl7v2 file source
# and the MLLP listener do per message).
#
#   bench/hl7_bench.sh [MESSAGES (default 500000)]
#   environment: BIN (build/bin), VSTREAM_SHARED_DATA (../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
MESSAGES=${1:-500000}
[[ "$MESSAGES" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/hl7_bench.sh [MESSAGES]" >&2; exit 2; }
[ -x "$BIN/hl7_bench" ] || { echo "no $BIN/hl7_bench: build first (./deploy/build.sh)" >&2; exit 1; }
dirty=""
git diff --quiet HEAD -- 2> /dev/null || dirty=" (the working tree has uncommitted changes)"
echo "revision  $(git rev-parse --short HEAD)$dirty"
echo "binary    $BIN/hl7_bench, built $(date -r "$BIN/hl7_bench" '+%Y-%m-%d %H:%M:%S')"
echo "command   bench/hl7_bench.sh $MESSAGES"
"$BIN/hl7_bench" "$MESSAGES" "${VSTREAM_SHARED_DATA:-../shared/data}"
