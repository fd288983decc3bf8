# scripts/lib.sh: shared by scripts/run and scripts/test: install what is missing (Debian 12),
# configure and build a meson build directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages the build and the tests need.
DEB_PACKAGES=(g++ meson ninja-build pkg-config cmake python3 swaks
              libuv1-dev libtomlplusplus-dev doctest-dev libssl-dev libc-ares-dev
              groff-base   # groff: tests/install renders the man pages
              openssl libnet-ssleay-perl   # TLS tests: certificates, s_client, swaks --tls
              libcrypt-dev                 # auth/passwd_file: yescrypt, bcrypt, SHA512-CRYPT
              dovecot-core msmtp           # AUTH tests: a real SASL back end, a real client
              postfix                      # delivery_postfix: a real destination MTA (own config in a temp dir)
              bind9-dnsutils               # dig: the fake_mx suite reads the DNS stub's answers
              prometheus)                  # promtool: the metrics tests check the exposition format

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
  local missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    as_root apt-get update -qq
    # Servers the tests need (dovecot) are started by the tests themselves, with their own
    # configuration: keep apt from starting the system instance (policy-rc.d, exit 101 = deny).
    local policy=/usr/sbin/policy-rc.d had_policy=0
    if [ -e "$policy" ]; then had_policy=1; else
      printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
      as_root chmod 755 "$policy"
    fi
    # postfix's postinst asks what kind of mail system this is: "No configuration" writes no
    # /etc/postfix/main.cf (the tests start their own instance with their own config).
    if [[ " ${missing[*]} " == *" postfix "* ]]; then
      echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ "$had_policy" = 1 ] || as_root rm -f "$policy"
  fi
}

# setup_dir DIR [meson options...]: configure DIR once.
setup_dir() {
  local dir="$1"; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
  fi
}

# build_dir DIR [meson options...]: configure (once) and compile everything, quietly.
build_dir() {
  local dir="$1"; shift
  setup_dir "$dir" "$@"
  ninja -C "$dir" >/dev/null || { ninja -C "$dir"; exit 1; }
}
