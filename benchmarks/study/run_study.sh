#!/usr/bin/env bash
# Runs the whole Mamba-vs-attention study (docs/mamba_vs_attention.md) on 2 threads and writes
# its plots into docs/. About 55 minutes: five 10-minute training runs, then two short parts.
#   benchmarks/study/run_study.sh [build dir, default build/release]
# Set LOCK to a command prefix that serializes CPU-heavy work on a shared machine (LOCK=mgcpu),
# so that each run has the cores to itself; every part is one command under it.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
study="$build/benchmarks/mamba_vs_attention"
lock=${LOCK:-}
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-active}
# 1. Quality per second: equal size (474,880 and 477,792 parameters), the same data, split and
#    batches (32 x 128 tokens), 600 s each; then other GPTs for the same budget.
$lock "$study" quality --label Mamba --model mamba --budget 600
$lock "$study" quality --label GPT --model gpt --budget 600
$lock "$study" quality --label GPT_lr3e-3 --model gpt --budget 600 --lr 3e-3 --min-lr 3e-4
$lock "$study" quality --label GPT_4x128 --model gpt --budget 600 --n-layer 4 --n-embd 128 --n-head 4 --dropout 0.1
$lock "$study" quality --label GPT_4x192 --model gpt --budget 600 --n-layer 4 --n-embd 192 --n-head 6 --dropout 0.1 \
  --lr 1e-3 --min-lr 1e-4 --beta2 0.99
"$study" quality-plot "Mamba (474,880)=out/study/Mamba" "GPT (477,792)=out/study/GPT"
"$study" quality-plot --name mamba_vs_attention_quality_gpts.svg "Mamba=out/study/Mamba" "GPT 3x112=out/study/GPT" \
  "GPT 3x112, lr 3e-3=out/study/GPT_lr3e-3" "GPT 4x128=out/study/GPT_4x128" "GPT 4x192=out/study/GPT_4x192"
# 2. Generation at batch 1 (one thread, as `mambagrad generate` defaults to), positions 1..8192.
OMP_NUM_THREADS=1 $lock "$study" generation --max-position 8192
# 3. Training cost against the sequence length at 8192 tokens per step.
$lock "$study" train-length --tokens 8192
