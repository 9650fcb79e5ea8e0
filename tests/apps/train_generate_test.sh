#!/usr/bin/env bash
# train_generate_test.sh MAMBAGRAD DIR: `train` on a tiny model, then `generate` from its checkpoint,
# as a user runs them. Checks exit codes and what they wrote: the files of the run, metrics lines
# at the cadence asked for, and generated text of the length asked for that a fixed seed repeats.
set -uo pipefail
bin=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

"$bin" train --steps 4 --batch 2 --seq-len 16 --d-model 16 --n-layer 1 --eval-every 2 --eval-batches 1 --log-every 2 \
  --out "$dir/run" 2>&1 | tail -2
rc=${PIPESTATUS[0]}
((rc == 0)) || fail "train exited with $rc"
for f in checkpoint.safetensors metrics.jsonl loss.svg; do [[ -s "$dir/run/$f" ]] || fail "train wrote no $f"; done
[[ $(grep -c '"train_loss"' "$dir/run/metrics.jsonl") -eq 2 && $(grep -c '"val_loss"' "$dir/run/metrics.jsonl") -eq 2 ]] ||
  fail "metrics.jsonl should hold train and val losses at steps 2 and 4: $(cat "$dir/run/metrics.jsonl")"
head -c 200 "$dir/run/loss.svg" | grep -q "<svg" || fail "loss.svg is not an SVG"
grep -aq "mambagrad-checkpoint-v1" "$dir/run/checkpoint.safetensors" || fail "the checkpoint lacks its format tag"
ls "$dir/run" | grep -q '\.tmp\.' && fail "a temporary file was left: $(ls "$dir/run")"

generate() {  # generate OUT FLAGS...: the text into OUT, the speed line into $dir/stderr
  local out=$1
  shift
  "$bin" generate --checkpoint "$dir/run/checkpoint.safetensors" --prompt "ROMEO:" --max-new-tokens 20 "$@" \
    >"$out" 2>"$dir/stderr"
}
generate "$dir/first.txt" --top-k 5 --top-p 0.9 --seed 3 || fail "generate exited with $?: $(cat "$dir/stderr")"
generate "$dir/again.txt" --top-k 5 --top-p 0.9 --seed 3 || fail "generate exited with $? the second time"
[[ $(head -c 6 "$dir/first.txt") == "ROMEO:" ]] || fail "the output does not start with the prompt: $(cat "$dir/first.txt")"
bytes=$(wc -c <"$dir/first.txt")
((bytes == 26)) || fail "expected the prompt and 20 new characters (26 bytes), got $bytes: $(cat "$dir/first.txt")"
cmp -s "$dir/first.txt" "$dir/again.txt" || fail "the same seed generated different text"
grep -q "20 new tokens" "$dir/stderr" || fail "no speed line on stderr: $(cat "$dir/stderr")"
echo "generated: $(cat "$dir/first.txt")"
