#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a running program: installs the dependencies, builds the
# release preset's program, then runs the main job. Extra arguments go to the main job.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_deps.sh
cmake --preset release
cmake --build --preset release --target mambagrad_cli -j "$(nproc)"

bin=build/release/apps/mambagrad
# The main job: one line. When the Mamba language model lands it becomes
#   "$bin" train "$@" && "$bin" generate
"$bin" demo "$@"
