#!/usr/bin/env bash
# full_disk_test.sh MAMBAGRAD DIR: a checkpoint that does not fit (a file-size limit, as a full
# disk would do) ends `train` with one error line that names the file and the cause, and leaves
# the previous checkpoint byte for byte (still loading) and no temporary file.
set -uo pipefail
bin=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

flags=(--batch 2 --seq-len 16 --d-model 32 --n-layer 2 --eval-every 100 --eval-batches 1 --log-every 100)
"$bin" train "${flags[@]}" --steps 2 --out "$dir/run" >/dev/null 2>&1 || fail "the first run failed"
cp "$dir/run/checkpoint.safetensors" "$dir/before.safetensors"
size=$(stat -c %s "$dir/before.safetensors")
# Half the checkpoint's size (ulimit -f counts 1024-byte blocks); the program itself must turn the
# limit's SIGXFSZ into an error (apps/main.cpp), so the signal is left at its default here.
err=$( (ulimit -f $((size / 2048)) && exec "$bin" train --resume --steps 4 --out "$dir/run") 2>&1 >/dev/null)
rc=$?
echo "$err"
((rc == 1)) || fail "exit code $rc, expected 1"
[[ $(grep -c '^error:' <<<"$err") -eq 1 && $(tail -1 <<<"$err") == error:* ]] || fail "expected one error line, last"
grep -q "File too large" <<<"$err" && grep -q "checkpoint.safetensors" <<<"$err" ||
  fail "the error should name the file and the cause"
cmp "$dir/before.safetensors" "$dir/run/checkpoint.safetensors" || fail "the previous checkpoint changed"
ls "$dir/run" | grep -q '\.tmp\.' && fail "a temporary file was left: $(ls "$dir/run")"
"$bin" generate --checkpoint "$dir/run/checkpoint.safetensors" --max-new-tokens 5 >/dev/null 2>&1 ||
  fail "the previous checkpoint does not load"
echo "one clear error; the previous checkpoint is intact and loads"
