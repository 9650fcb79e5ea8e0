#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a running program: installs the dependencies, builds the
# release preset's program, then runs the main job. Extra arguments go to the main job.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_deps.sh
cmake --preset release
cmake --build --preset release --target mambagrad_cli -j "$(nproc)"

bin=build/release/apps/mambagrad
# The main job: train the default Mamba character model on TinyShakespeare for a short run (300
# steps, a few minutes on 2 cores; `mambagrad train --help` for the full run's options), then
# generate from the checkpoint it wrote. Extra arguments go to `train`.
"$bin" train --steps 300 --out out/quickstart "$@"
"$bin" generate --checkpoint out/quickstart/checkpoint.safetensors --prompt "ROMEO:" --max-new-tokens 400
