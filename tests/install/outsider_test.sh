#!/bin/bash
# tests/install/outsider_test.sh: plugins written from the installed header and docs alone
# (tests/outsider/), built out of tree against a staged install and run in the staged server.
#   outsider_test.sh BUILD SOURCE SBINDIR DATADIR INCLUDEDIR
# Installs into a temp DESTDIR, builds tests/outsider/greylist.c (C11) and cxx17_headers.cpp
# (C++17) with only `pkg-config --define-prefix --cflags uvsmtpd-plugin`, installs them into the
# pkg-config plugindir, starts the staged uvsmtpd on 127.0.0.1 (port 0) and checks over SMTP:
# the first RCPT gets 450 4.7.1, the same one after the delay 250, the stored message has
# X-Outsider: yes, the greylist note reached the C++ plugin, the timer expires the entry, and
# SIGTERM ends the server within a few seconds.
set -uo pipefail
BUILD=$1 SRC=$2 SBIN=$3 DATADIR=$4 INCDIR=$5
D=$(mktemp -d /tmp/uvsmtpd-outsider.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# 1. A staged install.
if ! out=$(meson install -C "$BUILD" --no-rebuild --destdir "$D" 2>&1); then
  echo "$out"; echo "FAIL: meson install"; exit 1
fi

# 2. Build both plugins with the staged pkg-config file only.
pcr() { PKG_CONFIG_PATH="$D$DATADIR/pkgconfig" PKG_CONFIG_LIBDIR='' pkg-config --define-prefix "$@"; }
cflags=$(pcr --cflags uvsmtpd-plugin | xargs)
plugindir=$(pcr --variable=plugindir uvsmtpd-plugin)
[ "$cflags" = "-I$D$INCDIR" ] && ok "cflags $cflags" || fail "cflags '$cflags', want -I$D$INCDIR"
[[ "$cflags" == *"$SRC"* ]] && fail "cflags point into the source tree: $cflags"
mkdir -p "$D/src" && cp "$SRC/tests/outsider/greylist.c" "$SRC/tests/outsider/cxx17_headers.cpp" "$D/src/"
warn=(-Wall -Wextra -Werror -pedantic -shared -fPIC -fvisibility=hidden)
if (cd "$D/src" && cc -std=c11 "${warn[@]}" $cflags -o greylist.so greylist.c -pthread); then
  ok "greylist.c builds (C11) against the staged header"
else
  fail "greylist.c does not build"
fi
if (cd "$D/src" && c++ -std=c++17 "${warn[@]}" $cflags -o cxx17_headers.so cxx17_headers.cpp); then
  ok "cxx17_headers.cpp builds (C++17) against the staged header"
else
  fail "cxx17_headers.cpp does not build"
fi
for so in greylist cxx17_headers; do
  syms=$(nm -D --defined-only "$D/src/$so.so" 2>/dev/null | awk '{print $3}' | grep -v '^_' | xargs)
  [ "$syms" = uvs_plugin_v1 ] && ok "$so.so exports only uvs_plugin_v1" || fail "$so.so exports: $syms"
  install -m 0755 "$D/src/$so.so" "$plugindir/" || fail "install $so.so into $plugindir"
done
[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }

# 3. A configuration: greylist (1 s delay, entries live 3 s, swept every second), the C++
# plugin, local delivery for @localhost.
C="$D/conf-outsider"
mkdir -p "$C" "$D/run/var/spool"
cat > "$C/uvsmtpd.toml" <<'EOF_TOML'
hostname = "localhost"
listen = ["127.0.0.1:0"]
hook_timeout = 10
shutdown_grace = 30
spool_dir = "var/spool"
[log]
level = "info"
[dns]
reverse_lookup = false
EOF_TOML
cat > "$C/plugins" <<'EOF_PLUGINS'
greylist 1 3 1
cxx17_headers
queue/maildir ./var/mail
rcpt_ok
EOF_PLUGINS
out=$(cd "$D/run" && "$D$SBIN/uvsmtpd" --check-config --config "$C" 2>&1)
[ $? -eq 0 ] && ok "--check-config with both plugins" || fail "--check-config: $out"

# 4. Start the staged server; its plugin dir is found relative to the binary.
log="$D/server.log"
(cd "$D/run" && exec "$D$SBIN/uvsmtpd" --config "$C" 2>"$log") &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then
  cat "$log"; echo "FAIL: the server did not start"; exit 1
fi
ok "server listening on 127.0.0.1:$port"

# One transaction per call; prints the RCPT reply, and the DATA reply when RCPT passed.
smtp() {
  python3 - "$port" <<'EOF_PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=15)
s.ehlo("client.example")
s.mail("sender@example.org")
code, text = s.rcpt("user@localhost")
print(code, text.decode())
if code == 250:
    code, text = s.data(b"Subject: outsider\r\n\r\nhello\r\n")
    print(code, text.decode())
s.quit()
EOF_PY
}

r=$(smtp)
[[ "$r" == "450 4.7.1 Greylisted"* ]] && ok "first RCPT: $r" || fail "first RCPT: $r"
sleep 1.5
r=$(smtp)
[[ "$(head -1 <<<"$r")" == "250 "* && "$(sed -n 2p <<<"$r")" == "250 2.0.0 Queued"* ]] &&
  ok "after the delay: $(xargs <<<"$r")" || fail "after the delay: $r"
msgs=("$D"/run/var/mail/localhost/user/new/*)
if [ "${#msgs[@]}" -eq 1 ] && [ -f "${msgs[0]}" ]; then
  grep -q $'^X-Outsider: yes\r$' "${msgs[0]}" && ok "stored message has X-Outsider: yes" ||
    fail "no X-Outsider: yes in $(cat "${msgs[0]}")"
else
  fail "stored messages: ${msgs[*]}"
fi
grep -q 'cxx17_headers: greylist note: passed' "$log" &&
  ok "the worker's pending_note_set reached the next hook (logged through logv)" ||
  fail "no 'greylist note: passed' line in the log"
# Not seen for 3 s: the 1 s sweep drops the entry, and the key is greylisted again.
sleep 3
for _ in $(seq 50); do grep -q 'greylist: expired 1 entry' "$log" && break; sleep 0.1; done
grep -q 'greylist: expired 1 entry' "$log" && ok "the timer expired the entry" || fail "no expiry logged"
r=$(smtp)
[[ "$r" == "450 4.7.1 Greylisted"* ]] && ok "after expiry: $r" || fail "after expiry: $r"

# 5. SIGTERM: the repeating timer does not hold the server.
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
  fail "still running 5 s after SIGTERM"
else
  wait "$pid"; rc=$?
  [ "$rc" -eq 0 ] && ok "SIGTERM: exit 0 within 5 s" || fail "SIGTERM: exit status $rc"
  pid=
fi

[ "$failures" -eq 0 ] || { echo "--- server log"; cat "$log"; }
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
