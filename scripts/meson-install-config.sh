#!/bin/sh
# scripts/meson-install-config.sh: run by `meson install` (conf/meson.build): copies the example
# configuration into the default config directory, skipping files that already exist there so
# that a reinstall or upgrade never overwrites an edited configuration.
#   meson-install-config.sh DIR FILE...      (DIR absolute; $DESTDIR, when set, is prepended)
set -eu
dir="${DESTDIR:-}$1"
shift
install -d -m 0755 "$dir"
for f in "$@"; do
  name=$(basename "$f")
  if [ -e "$dir/$name" ]; then
    echo "Keeping existing $dir/$name"
  else
    install -m 0644 "$f" "$dir/$name"
    echo "Installing $f to $dir"
  fi
done
