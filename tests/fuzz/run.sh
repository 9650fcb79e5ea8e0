#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS [HARNESS...]: runs each libFuzzer harness (default: all of them) for
# SECONDS under ASan + UBSan, two at a time, starting from a scratch copy of its committed seeds
# (tests/fuzz/corpus/<harness>/; what it discovers is not committed), with the dictionary for its
# format. Prints one line per harness: seconds, executions, coverage (edges), features and corpus
# size. Exits non-zero if any harness found a failure; the input that triggers it is kept as
# BUILD_DIR/fuzz-artifacts/<harness>/crash-* (or leak-, timeout-, oom-) and its log beside it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1 seconds=$2
shift 2
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(fuzz_safetensors fuzz_mamba_config fuzz_char_tokenizer fuzz_checkpoint fuzz_cli fuzz_bpe_tokenizer
                                  fuzz_hf_config)
export OMP_NUM_THREADS=1  # the harnesses run one input at a time; a thread pool only adds noise

dictionary() {
  case $1 in
    fuzz_cli) echo "$here/cli.dict" ;;
    fuzz_char_tokenizer) echo "" ;;
    *) echo "$here/json.dict" ;;
  esac
}

run_one() {
  local name=$1 bin="$build/tests/fuzz/$1" work="$build/fuzz-work/$1" artifacts="$build/fuzz-artifacts/$1"
  rm -rf "$work" && mkdir -p "$work" "$artifacts" && cp "$here/corpus/$name"/* "$work/"
  local dict args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                   -artifact_prefix="$artifacts/")
  dict=$(dictionary "$name")
  [[ -n $dict ]] && args+=(-dict="$dict")
  "$bin" "${args[@]}" "$work" >"$artifacts/log.txt" 2>&1
  local rc=$?
  local done_line execs
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$artifacts/log.txt" | tail -1)
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$artifacts/log.txt")
  if ((rc == 0)); then
    printf '%-20s %4ss  %10s execs  %s\n' "$name" "$seconds" "${execs:-?}" \
      "$(sed -nE 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+\/[0-9]+[a-zA-Z]+).*/\1/p' <<<"$done_line")"
  else
    echo "$name: FAILED (exit $rc); log and reproducer in $artifacts:"
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$artifacts/log.txt" | head -5
  fi
  return $rc
}

status=0
for ((i = 0; i < ${#harnesses[@]}; i += 2)); do  # two at a time: one per core
  pids=()
  for name in "${harnesses[@]:i:2}"; do
    run_one "$name" >"$build/fuzz-artifacts.$name.summary" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for name in "${harnesses[@]:i:2}"; do cat "$build/fuzz-artifacts.$name.summary"; rm -f "$build/fuzz-artifacts.$name.summary"; done
done
exit $status
