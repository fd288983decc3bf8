#!/bin/bash
# tests/install/install_test.sh: installs the build into a temp DESTDIR and checks the result.
#   install_test.sh BUILD SOURCE SBINDIR PLUGINDIR CONFIGDIR EXAMPLEDIR INCLUDEDIR LIBDIR MANDIR UNITDIR DATADIR
# (all but BUILD and SOURCE are the absolute install paths; UNITDIR may be "no").
set -uo pipefail
BUILD=$1 SRC=$2 SBIN=$3 PLUGINDIR=$4 CONFIGDIR=$5 EXAMPLEDIR=$6 INCDIR=$7 LIBDIR=$8 MANDIR=$9
UNITDIR=${10} DATADIR=${11}
D=$(mktemp -d /tmp/uvsmtpd-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
need_file() { if [ -f "$D$1" ]; then ok "installed $1"; else fail "missing $1"; fi; }

# 1. Install.
if ! out=$(meson install -C "$BUILD" --no-rebuild --destdir "$D" 2>&1); then
  echo "$out"; fail "meson install"; exit 1
fi

# 2. Every file.
need_file "$SBIN/uvsmtpd"
need_file "$SBIN/uvsmtpd-sendmail"
[ -x "$D$SBIN/uvsmtpd" ] && [ -x "$D$SBIN/uvsmtpd-sendmail" ] || fail "binaries not executable"
n=0
while IFS= read -r so; do
  rel=${so#"$BUILD/plugins/"}
  need_file "$PLUGINDIR/$rel"
  n=$((n + 1))
done < <(find "$BUILD/plugins" -name '*.so' -type f -not -path '*.so.p/*' | sort)
[ "$n" -ge 8 ] || fail "only $n plugins built?"
need_file "$INCDIR/uvsmtpd/plugin.h"
cmp -s "$SRC/include/uvsmtpd/plugin.h" "$D$INCDIR/uvsmtpd/plugin.h" || fail "plugin.h differs"
# header only: <datadir>/pkgconfig, where `pkg-config --define-prefix` finds the prefix
need_file "$DATADIR/pkgconfig/uvsmtpd-plugin.pc"
[ -e "$D$LIBDIR/pkgconfig/uvsmtpd-plugin.pc" ] && fail "uvsmtpd-plugin.pc also in $LIBDIR/pkgconfig"
for f in $(cd "$SRC/conf" && find . -type f ! -name meson.build ! -name '*.in' | sort); do
  f=${f#./}
  for dir in "$EXAMPLEDIR" "$CONFIGDIR"; do
    need_file "$dir/$f"
    cmp -s "$SRC/conf/$f" "$D$dir/$f" || fail "$dir/$f differs from conf/$f"
  done
done
if [ "$UNITDIR" != no ]; then
  unit="$D$UNITDIR/uvsmtpd.service"
  need_file "$UNITDIR/uvsmtpd.service"
  grep -qx "ExecStart=$SBIN/uvsmtpd --config $CONFIGDIR" "$unit" || fail "unit ExecStart: $(grep ExecStart= "$unit")"
  grep -q '@' "$unit" && fail "unsubstituted @VAR@ in the unit"
fi
for page in man8/uvsmtpd.8 man5/uvsmtpd.toml.5 man8/uvsmtpd-sendmail.8; do
  need_file "$MANDIR/$page"
  # 3. The man pages render without warnings and carry this install's paths.
  warn=$(groff -man -Tutf8 -ww -z "$D$MANDIR/$page" 2>&1)
  [ -z "$warn" ] && ok "groff -ww $page" || fail "groff warnings in $page: $warn"
  grep -q '@[A-Z]*@' "$D$MANDIR/$page" && fail "unsubstituted @VAR@ in $page"
done
grep -q "$CONFIGDIR" "$D$MANDIR/man8/uvsmtpd.8" || fail "uvsmtpd.8 does not name $CONFIGDIR"
# Accurate: every option of --help is in uvsmtpd(8), every key of the example uvsmtpd.toml in
# uvsmtpd.toml(5).
for o in $("$D$SBIN/uvsmtpd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  grep -q -- "${o//-/\\\\-}" "$D$MANDIR/man8/uvsmtpd.8" || fail "uvsmtpd.8 does not document $o"
done
for k in $(sed -n 's/^\[*\([a-z_]*\)\]* *=.*/\1/p; s/^\[\([a-z_]*\)\]$/\1/p' "$SRC/conf/uvsmtpd.toml" | sort -u); do
  grep -q "$k" "$D$MANDIR/man5/uvsmtpd.toml.5" || fail "uvsmtpd.toml.5 does not document $k"
done

# 4. The pkg-config file: the installed include dir, a plugin source compiles with it.
# (PKG_CONFIG_LIBDIR empty: nothing from the system's .pc directories.)
pc() { PKG_CONFIG_SYSROOT_DIR="$D" PKG_CONFIG_PATH="$D$DATADIR/pkgconfig" PKG_CONFIG_LIBDIR= pkg-config "$@"; }
cflags=$(pc --cflags uvsmtpd-plugin | xargs)
[ "$cflags" = "-I$D$INCDIR" ] && ok "pkg-config --cflags: $cflags" || fail "pkg-config --cflags gave '$cflags', want -I$D$INCDIR"
[ "$(pc --variable=plugindir uvsmtpd-plugin)" = "$D$PLUGINDIR" ] || fail "plugindir: $(pc --variable=plugindir uvsmtpd-plugin)"
printf '#include <uvsmtpd/plugin.h>\nint main(void) { return UVS_ABI_MAJOR > 0 ? 0 : 1; }\n' > "$D/t.c"
cc $cflags -fsyntax-only "$D/t.c" && ok "compiles against the installed header" || fail "cannot compile against the installed header"
# Relocated: --define-prefix takes the prefix from where the .pc file is, so the include path
# and plugindir (${libdir}-relative) resolve inside the DESTDIR tree, multiarch libdir or not.
pcr() { PKG_CONFIG_PATH="$D$DATADIR/pkgconfig" PKG_CONFIG_LIBDIR= pkg-config --define-prefix "$@"; }
rcflags=$(pcr --cflags uvsmtpd-plugin | xargs)
[ "$rcflags" = "-I$D$INCDIR" ] && ok "pkg-config --define-prefix --cflags: $rcflags" || fail "pkg-config --define-prefix --cflags gave '$rcflags', want -I$D$INCDIR"
rplugindir=$(pcr --variable=plugindir uvsmtpd-plugin)
[ "$rplugindir" = "$D$PLUGINDIR" ] && ok "pkg-config --define-prefix plugindir: $rplugindir" || fail "pkg-config --define-prefix plugindir gave '$rplugindir', want $D$PLUGINDIR"
# A small plugin built with only that, installed into that plugindir.
cat > "$D/pkgtest.c" <<'EOF_C'
#include <uvsmtpd/plugin.h>
static int init(uvs_plugin *self, const uvs_api *api) {
  api->log(self, NULL, UVS_LOG_NOTICE, "pkgtest: built with pkg-config --define-prefix");
  return 0;
}
UVS_PLUGIN("pkgtest", "1.0", init, NULL);
EOF_C
if cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden $rcflags -o "$D/pkgtest.so" "$D/pkgtest.c" &&
   install -m 0755 "$D/pkgtest.so" "$rplugindir/"; then
  ok "a plugin builds and installs with pkg-config --define-prefix"
else
  fail "cannot build or install a plugin with pkg-config --define-prefix"
fi

# 5. The installed binaries run and use the installed directories. The example config's
# spool_dir is relative ("var/spool"): it must exist where the server runs.
mkdir -p "$D/var/spool"
out=$(cd "$D" && "$D$SBIN/uvsmtpd" --check-config --config "$D$CONFIGDIR" --plugin-dir "$D$PLUGINDIR" 2>&1)
[ $? -eq 0 ] && ok "installed uvsmtpd --check-config" || fail "installed --check-config: $out"
# No --plugin-dir: the plugin dir relative to the binary as installed, so the tree under $D
# (relocated) loads its own plugins, never the build's although the build tree exists.
out=$(cd "$D" && "$D$SBIN/uvsmtpd" --check-config --config "$D$CONFIGDIR" 2>&1)
[ $? -eq 0 ] && ok "relocated uvsmtpd --check-config without --plugin-dir" || fail "relocated --check-config without --plugin-dir: $out"
[[ "$out" == *"$BUILD"* ]] && fail "installed binary used the build tree: $out"
# Only $D$PLUGINDIR has pkgtest.so (installed there through pkg-config above).
cp -r "$D$CONFIGDIR" "$D/conf-pkgtest"
echo pkgtest > "$D/conf-pkgtest/plugins"
out=$(cd "$D" && "$D$SBIN/uvsmtpd" --check-config --config "$D/conf-pkgtest" 2>&1)
if [ $? -eq 0 ] && [[ "$out" == *"pkgtest: built with pkg-config --define-prefix"* ]]; then
  ok "relocated binary defaults to $D$PLUGINDIR"
else
  fail "relocated binary's default plugin dir: $out"
fi
out=$(cd "$D" && "$D$SBIN/uvsmtpd" --list-plugins --config "$D/conf-pkgtest" 2>&1)
[[ "$out" == *"$D$PLUGINDIR"* && "$out" != *"$BUILD"* ]] && ok "--list-plugins names $D$PLUGINDIR" || fail "--list-plugins: $out"
# A copy of the binary on its own (no plugin dir next to it) falls back to the configured one.
mkdir -p "$D/alone" && cp "$D$SBIN/uvsmtpd" "$D/alone/"
out=$("$D/alone/uvsmtpd" --check-config --config "$D$CONFIGDIR" 2>&1)
if [ -d "$PLUGINDIR" ]; then
  echo "note: $PLUGINDIR exists on this machine: the fallback plugin dir check is skipped"
elif [[ "$out" == *"cannot find $PLUGINDIR/"* ]]; then
  ok "a lone copy of the binary defaults to $PLUGINDIR"
else
  fail "a lone copy's default plugin dir: $out"
fi
# No --config: the installed config dir.
out=$(cd "$D" && "$D$SBIN/uvsmtpd" --check-config 2>&1)
[[ "$out" == *"$CONFIGDIR"* ]] && ok "installed binary defaults to $CONFIGDIR" || fail "default config dir: $out"
# The build tree's binary keeps ./conf and the build's plugins.
mkdir -p "$SRC/var/spool"  # as scripts/run makes it (var/ is not tracked)
out=$(cd "$SRC" && "$BUILD/server/uvsmtpd" --check-config 2>&1)
[[ "$out" == *"configuration OK (conf,"* ]] && ok "build binary defaults to ./conf and build plugins" || fail "build binary: $out"
out=$("$D$SBIN/uvsmtpd-sendmail" -S 127.0.0.1:1 root </dev/null 2>&1)
[ $? -eq 75 ] && ok "installed uvsmtpd-sendmail runs" || fail "installed uvsmtpd-sendmail: $out"

# 6. A reinstall keeps an edited configuration (the example copy is refreshed).
echo "# edited" >> "$D$CONFIGDIR/relayclients"
echo "# edited" >> "$D$EXAMPLEDIR/relayclients"
meson install -C "$BUILD" --no-rebuild --destdir "$D" >/dev/null 2>&1 || fail "second meson install"
grep -q "# edited" "$D$CONFIGDIR/relayclients" && ok "reinstall keeps $CONFIGDIR/relayclients" || fail "reinstall overwrote $CONFIGDIR/relayclients"
cmp -s "$SRC/conf/relayclients" "$D$EXAMPLEDIR/relayclients" || fail "reinstall did not refresh the example"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
