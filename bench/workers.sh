#!/usr/bin/env bash
# bench/workers.sh: worker processes (`workers = N`, docs/operations.md) measured on this
# machine: throughput of workers = 2 against workers = 1 with Postfix's smtp-source on the
# durable configuration of bench/run's u_dur (verdict rcpt=OK, queue/maildir: every 250 is
# fsynced), msg/s and the ratio; and how evenly the one shared listening socket spreads
# connections over the workers (10,000 short sessions, counted per worker from the log).
#
#   bench/workers.sh [--no-build] [--quick]
#
# Knobs (environment): BENCH_BUILD_DIR (default build-release, made with -Dbuildtype=release as
# bench/run makes it), BENCH_WORKERS (the N compared with 1, default 2), BENCH_MSGS (messages per
# run, default 10000), BENCH_SESSIONS (parallel smtp-source sessions, default 50),
# BENCH_REPEAT (rounds, default 3; the median is kept), BENCH_SPREAD (sessions of the spread
# count, default 10000). Prints Markdown for bench/RESULTS.md; writes nothing itself. Every
# process it starts is stopped, and its temp dir removed, on any exit.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-release}
BUILD_IT=1 QUICK=0
for arg in "$@"; do
  case $arg in
    --no-build) BUILD_IT=0 ;;
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/workers.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
N=${BENCH_WORKERS:-2}
if ((QUICK)); then d_msgs=1000 d_rep=1 d_spread=1000; else d_msgs=10000 d_rep=3 d_spread=10000; fi
MSGS=${BENCH_MSGS:-$d_msgs}
SESSIONS=${BENCH_SESSIONS:-50}
REPEAT=${BENCH_REPEAT:-$d_rep}
SPREAD=${BENCH_SPREAD:-$d_spread}
PER_SESSION=100  # messages per session in the -d runs

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "bench/workers.sh: $*"; exit 1; }

SMTP_SOURCE=$(command -v smtp-source || true)
[[ -z $SMTP_SOURCE && -x $(postconf -h daemon_directory 2>/dev/null)/smtp-source ]] &&
  SMTP_SOURCE=$(postconf -h daemon_directory)/smtp-source
[[ -n $SMTP_SOURCE ]] || die "smtp-source not found (Debian package postfix)"

if ((BUILD_IT)); then
  if [[ ! -f $BUILD/build.ninja ]]; then
    log "meson setup $BUILD -Dbuildtype=release"
    meson setup "$BUILD" "$ROOT" -Dbuildtype=release >/dev/null
  fi
  log "ninja -C $BUILD (uvsmtpd, verdict, queue/maildir)"
  ninja -C "$BUILD" server/uvsmtpd tests/plugins/verdict.so plugins/queue/maildir.so >/dev/null
fi
UVSMTPD=$BUILD/server/uvsmtpd
[[ -x $UVSMTPD ]] || die "$UVSMTPD is not built (run without --no-build)"

T=$(mktemp -d /tmp/uvsmtpd-bench-workers.XXXXXX)
SERVER=
cleanup() {
  if [[ -n $SERVER ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
mkdir -p "$T/modules/queue"
ln -s "$BUILD/tests/plugins/verdict.so" "$T/modules/verdict.so"
ln -s "$BUILD/plugins/queue/maildir.so" "$T/modules/queue/maildir.so"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start W LEVEL [QUEUE]: uvsmtpd with workers = W, log level LEVEL, on a fresh port (PORT,
# SERVER set); QUEUE "discard" answers OK at queue without storing (bench/run's u_disc).
start() {
  local w=$1 level=$2 queue=${3:-maildir} dir=$T/w$1
  rm -rf "$dir" && mkdir -p "$dir/spool" "$dir/mail"
  # bench/run's uvsmtpd settings (uvs_start) and its u_dur plugins, plus `workers`.
  cat >"$dir/uvsmtpd.toml" <<EOF
hostname = "bench.test"
spool_dir = "$dir/spool"
max_connections = 0
max_connections_per_ip = 0
hook_timeout = 120
shutdown_grace = 1
workers = $w
[log]
level = "$level"
[dns]
reverse_lookup = false
EOF
  if [[ $queue == discard ]]; then
    printf 'verdict rcpt=OK queue=OK\n' >"$dir/plugins"
  else
    printf 'verdict rcpt=OK\nqueue/maildir %s\n' "$dir/mail" >"$dir/plugins"
  fi
  PORT=$(free_port)
  "$UVSMTPD" --config "$dir" --plugin-dir "$T/modules" --listen "127.0.0.1:$PORT" >"$dir/log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$SERVER" 2>/dev/null || die "workers = $w did not start: $(tail -3 "$dir/log")"
    sleep 0.1
  done
  die "workers = $w does not accept on 127.0.0.1:$PORT"
}
stop() { kill "$SERVER"; wait "$SERVER" || true; SERVER=; }

RUN=0
# run W MODE: one timed smtp-source run (MODE 1: one message per session; d: PER_SESSION
# messages per session; x: one per session to the discarding queue) against workers = W;
# prints msg/s. Checks that every message landed in the Maildir (1, d).
run() {
  local w=$1 mode=$2 rcpt t0 t1 got
  RUN=$((RUN + 1))
  rcpt=run$RUN@bench.test
  if [[ $mode == x ]]; then start "$w" warning discard; else start "$w" warning; fi
  local args=(-4 -M bench.test -f bench@bench.test -t "$rcpt" -s "$SESSIONS" -l 1024)
  t0=$(date +%s.%N)
  if [[ $mode != d ]]; then
    "$SMTP_SOURCE" "${args[@]}" -m "$MSGS" "127.0.0.1:$PORT"
  else
    local left=$MSGS per=$((SESSIONS * PER_SESSION))
    while ((left > 0)); do
      local m=$((left < per ? left : per))
      "$SMTP_SOURCE" "${args[@]}" -d -m "$m" "127.0.0.1:$PORT"
      left=$((left - m))
    done
  fi
  t1=$(date +%s.%N)
  got=$(find "$T/w$w/mail" -path '*/new/*' -type f | wc -l)
  stop
  [[ $mode == x ]] || ((got == MSGS)) || die "workers = $w, mode $mode: $got of $MSGS messages in the Maildir"
  awk -v n="$MSGS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A RATES
for r in $(seq "$REPEAT"); do
  for mode in 1 d x; do
    for w in 1 "$N"; do  # alternate within a round: drifting background load hits both
      rate=$(run "$w" "$mode")
      log "round $r, workers = $w, mode $mode: $rate msg/s"
      RATES[$w,$mode]="${RATES[$w,$mode]:-} $rate"
    done
  done
done

# The spread: SPREAD short sessions (one message each) at SESSIONS and at 1 in parallel,
# counted per worker from the accepted-message lines ("info worker K [...] <id>: accepted").
spread() {
  local sessions=$1
  start "$N" info discard
  "$SMTP_SOURCE" -4 -M bench.test -f bench@bench.test -t spread@bench.test -s "$sessions" \
    -l 1024 -m "$SPREAD" "127.0.0.1:$PORT"
  sleep 0.5
  local counts
  counts=$(grep -o 'info worker [0-9]* \[[0-9a-f]*\] [0-9A-Z]*: accepted ' "$T/w$N/log" |
    awk '{ c[$3]++; n++ } END { for (k = 1; k in c; k++) printf "%sworker %d: %d (%.1f %%)", (k > 1 ? ", " : ""), k, c[k], 100 * c[k] / n }')
  stop
  echo "$counts"
}
SPREAD_PAR=$(spread "$SESSIONS")
SPREAD_SEQ=$(spread 1)

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "## Worker processes (\`bench/workers.sh\`, run separately)"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load average at the end $load."
echo "uvsmtpd from \`$BUILD\` with bench/run's \`u_dur\` configuration (\`verdict rcpt=OK\`,"
echo "\`queue/maildir\`: every 250 fsynced), \`[log] level = \"warning\"\`; smtp-source with 1 KiB"
echo "messages, $SESSIONS sessions, $MSGS messages per run, median of $REPEAT rounds (workers = 1 and"
echo "$N alternate within a round). Every run checks that all $MSGS messages are in the Maildir."
echo
echo "| scenario | workers = 1 (msg/s) | workers = $N (msg/s) | ratio |"
echo "|---|---|---|---|"
for mode in 1 d x; do
  # shellcheck disable=SC2086
  one=$(median ${RATES[1,$mode]}) many=$(median ${RATES[$N,$mode]})
  label="1 msg/session"
  [[ $mode == d ]] && label="$PER_SESSION msgs/session"
  [[ $mode == x ]] && label="1 msg/session, discarding queue (\`verdict queue=OK\`: no fsync)"
  ratio=$(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.2f", a / b }')
  echo "| $label | $one (${RATES[1,$mode]# }) | $many (${RATES[$N,$mode]# }) | ${ratio}x |"
done
echo
echo "Spread of $SPREAD short sessions (one message each, discarding queue) over $N workers sharing"
echo "one listening socket, counted from the accepted-message log lines (\`[log] level = \"info\"\`):"
echo
echo "- $SESSIONS sessions in parallel: $SPREAD_PAR"
echo "- one session at a time: $SPREAD_SEQ"
