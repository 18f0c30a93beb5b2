#!/usr/bin/env bash
# Builds the parser fuzz targets with clang's libFuzzer (plus AddressSanitizer
# and UndefinedBehaviorSanitizer) and runs each for a bounded time, seeded with
# the corpus in ../shared/data. Fails on any crash, leak or sanitizer report.
#
#   tests/fuzz/run.sh [SECONDS per target (default 30)] [BUILD_DIR (default build/fuzz)]
#
# Needs clang++ and libclang-rt-14-dev (deploy/install-deps.sh installs them).
# ctest runs it as the test `fuzz_parsers` (label `fuzz`).
set -euo pipefail
SECONDS_PER_TARGET=${1:-30}
cd "$(dirname "$0")/../.."
OUT=${2:-build/fuzz}
SHARED=${VSTREAM_SHARED_DATA:-../shared/data}
CXX=${FUZZ_CXX:-clang++}
if ! command -v "$CXX" > /dev/null; then
  echo "tests/fuzz/run.sh: needs $CXX with libFuzzer (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p "$OUT"
FLAGS=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)
ABSL=$(pkg-config --libs absl_status absl_strings)

fuzz() {  # NAME SEEDS_DIR SOURCES...
  local name=$1 seeds=$2
  shift 2
  echo "== $name: building"
  "$CXX" "${FLAGS[@]}" "$@" -o "$OUT/$name" $ABSL
  local corpus="$OUT/$name-corpus"
  mkdir -p "$corpus"
  if [ -d "$seeds" ]; then
    find "$seeds" -type f \( -name '*.hl7' -o -name '*.bin' -o -name '*.json' \) -exec cp {} "$corpus/" \;
  else
    echo "   (no seeds: $seeds is absent; the clinical corpus ../shared/data gives them)"
  fi
  echo "== $name: fuzzing for $SECONDS_PER_TARGET s, $(ls "$corpus" | wc -l) inputs to start from"
  "$OUT/$name" -max_total_time="$SECONDS_PER_TARGET" -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$OUT/$name-" "$corpus" 2>&1 | tail -n 12
  echo "== $name: no crash"
}

fuzz hl7v2_fuzz "$SHARED/hl7v2" tests/fuzz/hl7v2_fuzz.cc runtime/formats/hl7v2.cc common/time_util.cc
fuzz mllp_fuzz "$SHARED/hl7v2" tests/fuzz/mllp_fuzz.cc runtime/formats/mllp.cc runtime/formats/hl7v2.cc \
  common/time_util.cc
# The FHIR target uses the row types, which include the generated protobuf
# header of the CMake build beside OUT.
BUILD=$(dirname "$OUT")
if [ ! -f "$BUILD/proto/jobgraph.pb.h" ]; then
  echo "tests/fuzz/run.sh: fhir_fuzz needs the CMake build's generated $BUILD/proto/jobgraph.pb.h (build first)" >&2
  exit 1
fi
PROTO_LIBS=$(pkg-config --libs protobuf absl_statusor absl_raw_hash_set absl_hash)
fuzz fhir_fuzz "$SHARED/fhir-r4" -I"$BUILD" tests/fuzz/fhir_fuzz.cc runtime/formats/fhir.cc \
  runtime/formats/json_value.cc runtime/formats/json_format.cc runtime/formats/format_util.cc \
  runtime/formats/hl7v2_rows.cc runtime/formats/hl7v2.cc runtime/types.cc common/time_util.cc \
  "$BUILD/proto/jobgraph.pb.cc" $PROTO_LIBS
