#!/usr/bin/env bash
# Installs what building mambagrad needs, from Debian/Ubuntu packages (Debian 12 names).
# Runs as root, or through sudo otherwise. CUDA is optional and not installed here: when nvcc is
# at /usr/local/cuda (or on PATH) the build uses it (MG_CUDA=AUTO), else it builds CPU-only.
set -euo pipefail

packages=(
  build-essential     # g++ (C++20), make
  cmake               # 3.25 or newer (presets with workflows)
  ninja-build         # the presets' generator (builds a target's objects while its libraries link)
  libeigen3-dev       # CPU GEMM and kernels
  libgtest-dev libgmock-dev
  libbenchmark-dev    # benchmarks/
  libcli11-dev        # the mambagrad program's flags
  nlohmann-json3-dev  # safetensors headers, configs
  libfmt-dev
  curl                # downloads the corpus where the checkout's copy is missing (and its tests)
  clang libclang-rt-dev libomp-dev  # the fuzz preset: libFuzzer harnesses (tests/fuzz/)
)

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_deps: this script needs apt-get (Debian/Ubuntu). Install these yourself: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages are already installed"
else
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_deps: run as root, or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "install_deps: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The presets need CMake 3.25 (Debian 12, Ubuntu 24.04; Ubuntu 22.04 ships 3.22: use pip's cmake there).
version=$(cmake --version | head -1 | awk '{print $3}')
if [[ "$(printf '%s\n' 3.25 "$version" | sort -V | head -1)" != 3.25 ]]; then
  echo "install_deps: cmake $version is older than 3.25; install a newer one (e.g. 'pip install cmake')" >&2
  exit 1
fi

if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "install_deps: nvcc found; the CUDA backend will be built"
else
  echo "install_deps: no nvcc; building CPU-only (install the CUDA toolkit for the GPU backend)"
fi
