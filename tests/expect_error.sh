#!/usr/bin/env bash
# Runs a command that must fail cleanly on bad input: a non-zero exit that is not a signal (a
# crash), and exactly one line of output, starting with "error:". Prints the output either way.
out=$("$@" 2>&1)
rc=$?
echo "$out"
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == error:* ]]
