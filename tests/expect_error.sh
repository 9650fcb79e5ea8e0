#!/usr/bin/env bash
# expect_error.sh [--stderr] COMMAND...: COMMAND must fail cleanly on bad input: a non-zero exit
# that is not a signal (a crash or an abort gives 128 + the signal), and exactly one line of
# output, starting with "error:". With --stderr, stdout may hold anything (a lesson's progress)
# and stderr must end in its one "error:" line (notes such as "data: downloading ..." may come
# before it). Prints the output either way.
stderr_only=false
if [[ "${1:-}" == --stderr ]]; then
  stderr_only=true
  shift
fi
if $stderr_only; then
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  echo "$err"
  [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$(printf '%s\n' "$err" | grep -c '^error:')" -eq 1 ] &&
    [[ "$(printf '%s\n' "$err" | tail -1)" == error:* ]]
else
  out=$("$@" 2>&1)
  rc=$?
  echo "$out"
  [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == error:* ]]
fi
