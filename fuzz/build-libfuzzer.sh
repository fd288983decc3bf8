#!/usr/bin/env bash
# fuzz/build-libfuzzer.sh [OUTDIR]: builds the real libFuzzer binaries (clang, Debian's
# libclang-rt) with ASan+UBSan: OUTDIR/fuzz_<target> for every fuzz/fuzz_<target>.cpp.
# Default OUTDIR: build-libfuzzer/ at the top of the tree. The pure core sources the targets need
# are compiled directly (no meson, no libuv). Installs clang and libclang-rt-14-dev if missing.
# toml++: by default the settings target links Debian's libtomlplusplus.so, the library the server
# ships with (not instrumented: the fuzzer explores our loader). FUZZ_TOML_HEADER_ONLY=1 compiles
# toml++ header-only into the targets instead, instrumented and under ASan/UBSan; that finds
# known upstream toml++ 3.3.0 bugs at once (see docs/testing.md), so it is not the default.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/build-libfuzzer}"
cd "$ROOT"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

CXX="${CXX:-clang++}"
if ! command -v "$CXX" >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "==> installing clang and libclang-rt-14-dev"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev
fi
"$CXX" --version | head -1

# The core sources the targets use (all pure: no sockets, no event loop).
CORE=(server/smtp/command.cpp server/smtp/address.cpp server/smtp/line_reader.cpp
      server/smtp/data_reader.cpp server/config/plugin_lines.cpp server/config/settings.cpp
      server/config/text_file.cpp server/util/cidr.cpp server/queue/queue_entry.cpp
      server/metrics/exposition.cpp server/metrics/http_request.cpp)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
FLAGS=(-std=c++20 -g -O1 $SAN -I server -I include -I fuzz)
if [ "${FUZZ_TOML_HEADER_ONLY:-0}" = 1 ]; then
  # Debug assertions compiled out as in the shipped library (built with NDEBUG): one of them
  # (parse_key on "[#", "[[[") is a false precondition (marzer/tomlplusplus#301) that release
  # builds turn into a normal parse_error.
  FLAGS+=(-DTOML_HEADER_ONLY=1 -DTOML_SHARED_LIB=0 "-DTOML_ASSERT(expr)=((void)0)")
  LIBS=()
  variant=header-only
else
  read -r -a toml_cflags <<< "$(pkg-config --cflags tomlplusplus)"
  read -r -a LIBS <<< "$(pkg-config --libs tomlplusplus)"
  FLAGS+=("${toml_cflags[@]}")
  variant=shared
fi
# The generated build header is not needed by these targets; its directory is harmless if present.
[ -f build/uvs_build_config.h ] && FLAGS+=(-I build)

mkdir -p "$OUT/obj"
# Rebuild everything when the toml++ variant changes.
[ "$(cat "$OUT/obj/variant" 2>/dev/null)" = "$variant" ] || rm -f "$OUT"/obj/*.o
echo "$variant" > "$OUT/obj/variant"
objs=()
for src in "${CORE[@]}"; do
  obj="$OUT/obj/$(basename "${src%.cpp}").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
    echo "  CXX $src"
    "$CXX" "${FLAGS[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
for t in fuzz/fuzz_*.cpp; do
  name="$(basename "${t%.cpp}")"
  echo "  LINK $OUT/$name"
  "$CXX" "${FLAGS[@]}" -fsanitize=fuzzer "$t" "${objs[@]}" "${LIBS[@]}" -o "$OUT/$name"
done
echo "==> built (toml++ $variant): $(cd "$OUT" && ls fuzz_* | tr '\n' ' ')"
