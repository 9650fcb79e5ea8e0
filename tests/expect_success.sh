#!/usr/bin/env bash
# expect_success.sh REGEX COMMAND...: COMMAND must exit 0 and its output (stdout and stderr) must
# match the extended regular expression REGEX (over the whole output: "." also matches a newline).
# Prints the output either way.
regex=$1
shift
out=$("$@" 2>&1)
rc=$?
echo "$out"
((rc == 0)) || { echo "FAIL: exit code $rc"; exit 1; }
grep -Ezq -- "$regex" <<<"$out" || { echo "FAIL: the output does not match: $regex"; exit 1; }
