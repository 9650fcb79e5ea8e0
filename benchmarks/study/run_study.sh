#!/usr/bin/env bash
# Runs the whole Mamba-vs-attention study (docs/mamba_vs_attention.md) on 2 threads and writes
# its plots into docs/. About 55 minutes: five 10-minute training runs, then two short parts.
#   benchmarks/study/run_study.sh [build dir, default build/release]
# Part 4, parts 2 and 3 on a GPU (a CUDA build; about a minute, at most ~4 with the timeouts):
#   benchmarks/study/run_study.sh BUILD_DIR gpu DIR [PLOT_DIR]   the JSON, Markdown tables and the
#                                                      GPU's name into DIR, the plots into PLOT_DIR
#                                                      (default DIR; `report` remakes them anyway)
#   benchmarks/study/run_study.sh BUILD_DIR report DIR  then, on any machine: the fits, tables
#                                                      (into DIR) and plots (into docs/) again from
#                                                      DIR's JSON alone (the H200's are kept in
#                                                      benchmarks/study/h200/)
# Set LOCK to a command prefix that serializes CPU-heavy work on a shared machine (LOCK=mgcpu),
# so that each run has the cores to itself; every part is one command under it.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
study="$build/benchmarks/mamba_vs_attention"
lock=${LOCK:-}
mode=${2:-cpu}
if [ "$mode" = gpu ]; then
  # 4. On the GPU: config A's Mamba and a GPT of its width (--models a, the default on a GPU).
  #    Generation to position 8192 (Mamba from a CUDA graph, the GPT op by op, then Mamba op by
  #    op), then training at 16,384 tokens per step, L = 256..8192. Each part rewrites its JSON
  #    after every model (and length), so one cut short by its timeout keeps what it measured.
  dir=${3:?"gpu mode: name the output directory"}
  where=(--out "$dir" --svg-dir "${4:-$dir}")
  mkdir -p "$dir"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$dir/gpu.txt" 2>&1 || true
  status=0
  timeout "${GENERATION_TIMEOUT:-150}" "$study" "${where[@]}" generation --device cuda \
    --max-position 8192 --window 128 --repeats 3 || status=1
  timeout "${TRAIN_LENGTH_TIMEOUT:-80}" "$study" "${where[@]}" train-length --device cuda \
    --tokens 16384 --repeats 10 --warmup 3 || status=1
  exit $status
fi
if [ "$mode" = report ]; then
  dir=${3:?"report mode: name the directory with generation_cuda.json and train_length_cuda.json"}
  files=()
  for part in generation train_length; do [ -f "$dir/${part}_cuda.json" ] && files+=("$dir/${part}_cuda.json"); done
  [ ${#files[@]} -gt 0 ] || { echo "run_study.sh: no *_cuda.json in $dir" >&2; exit 1; }
  "$study" --out "$dir" --svg-dir docs report "${files[@]}"
  exit 0
fi
[ "$mode" = cpu ] || { echo "run_study.sh: unknown mode '$mode' (expected cpu, gpu or report)" >&2; exit 2; }
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
