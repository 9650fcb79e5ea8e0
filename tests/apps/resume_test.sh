#!/usr/bin/env bash
# resume_test.sh MAMBAGRAD DIR: a run interrupted three times (by --time-budget, at steps 1, 2 and
# 3: on and off the metrics cadence) and continued each time with `train --resume` and no other
# flags equals the unbroken run: the same metrics.jsonl line for line (timings aside) and the same
# final checkpoint, byte for byte. Then an explicit new --steps extends the schedule, and the
# progress output says so. Every command must exit 0.
set -uo pipefail
bin=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
run() { echo "+ mambagrad $*"; "$bin" "$@" 2>&1 | tail -3; local rc=${PIPESTATUS[0]}; ((rc == 0)) || fail "exit code $rc"; }

flags=(--steps 12 --batch 4 --seq-len 32 --d-model 16 --n-layer 1 --d-state 4 --warmup 3 --lr 0.01 --min-lr 0.001
       --eval-every 5 --eval-batches 2 --save-every 4 --log-every 2 --seed 5)
run train "${flags[@]}" --out "$dir/unbroken"
run train "${flags[@]}" --time-budget 1e-9 --out "$dir/broken"  # stops after step 1, saving a checkpoint
run train --resume --time-budget 1e-9 --out "$dir/broken"        # step 2
run train --resume --time-budget 1e-9 --out "$dir/broken"        # step 3
run train --resume --out "$dir/broken"                           # on to step 12, as the unbroken run

timeless() { sed -E 's/"(elapsed_s|tokens_per_second)":[-+0-9.eE]+,?//g' "$1"; }
[[ $(wc -l < "$dir/unbroken/metrics.jsonl") -eq 9 ]] || fail "the unbroken run wrote $(wc -l < "$dir/unbroken/metrics.jsonl") metrics lines, expected 9 (6 train, 3 val)"
diff <(timeless "$dir/unbroken/metrics.jsonl") <(timeless "$dir/broken/metrics.jsonl") || fail "the metrics differ"
cmp "$dir/unbroken/checkpoint.safetensors" "$dir/broken/checkpoint.safetensors" || fail "the final checkpoints differ"
out=$("$bin" train --resume --steps 14 --out "$dir/broken" 2>&1) || fail "train --resume --steps 14 exited with $?"
grep -q "resuming .* at step 12 of 14 (given again: steps 12 -> 14: the learning-rate schedule now ends at step 14)" <<<"$out" ||
  fail "the progress output does not say that --steps changed the schedule: $out"
grep -q "done at step 14" <<<"$out" || fail "the extended run did not reach step 14: $out"
echo "the resumed run equals the unbroken one: $(wc -l < "$dir/broken/metrics.jsonl") metrics lines, the same checkpoint"
