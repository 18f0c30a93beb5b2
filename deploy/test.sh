#!/usr/bin/env bash
# The whole test suite from scratch: install dependencies, build, run ctest
# (unit and integration tests; integration tests start real processes).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
cd build
ctest --output-on-failure --timeout 900 -j "${VSTREAM_TEST_JOBS:-2}" "$@"
