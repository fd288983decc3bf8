#!/usr/bin/env bash
# fuzz/run.sh TARGET SECONDS [libFuzzer options...]: runs build-libfuzzer/fuzz_TARGET for SECONDS
# (wall clock, one process = one core) with fuzz/smtp.dict, starting from the checked-in corpus
# fuzz/corpus/TARGET. New corpus entries and crash artifacts go to a scratch directory
# (FUZZ_WORK, default /tmp/uvs-fuzz/TARGET), never into the repository: copy the interesting
# small ones into fuzz/corpus/TARGET by hand (or with -merge=1, see docs/testing.md), and
# reproducers of real bugs into fuzz/crashers/TARGET/.
# Builds the binaries first if they are missing. Prints the CPU time used at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer options...]" >&2
  echo "targets: $(cd "$ROOT/fuzz" && ls fuzz_*.cpp | sed 's/^fuzz_//; s/\.cpp$//' | tr '\n' ' ')" >&2
  exit 2
fi
T="$1"; SECS="$2"; shift 2
BIN="${FUZZ_BIN:-$ROOT/build-libfuzzer}/fuzz_$T"
[ -f "$ROOT/fuzz/fuzz_$T.cpp" ] || { echo "no such target: $T" >&2; exit 2; }
[ -x "$BIN" ] || "$ROOT/fuzz/build-libfuzzer.sh"
WORK="${FUZZ_WORK:-/tmp/uvs-fuzz/$T}"
mkdir -p "$WORK/corpus" "$WORK/artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
echo "==> fuzz_$T for ${SECS}s; new inputs: $WORK/corpus, artifacts: $WORK/artifacts"
TIMEFORMAT="==> fuzz_$T: %R s wall, %U s user + %S s sys CPU"
time "$BIN" -dict="$ROOT/fuzz/smtp.dict" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$WORK/artifacts/" "$@" \
  "$WORK/corpus" "$ROOT/fuzz/corpus/$T"
