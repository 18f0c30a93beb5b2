#!/usr/bin/env bash
# Configures and builds into build/ (binaries in build/bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
# Two compile jobs fit this project's 2-core, 24 GB target machine.
cmake --build build -j "${VSTREAM_BUILD_JOBS:-$(nproc)}"
