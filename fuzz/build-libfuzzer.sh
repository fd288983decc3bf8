#!/usr/bin/env bash
# fuzz/build-libfuzzer.sh [OUTDIR]: builds the real libFuzzer binaries (clang, Debian's
# libclang-rt) with ASan+UBSan: OUTDIR/fuzz_<target> for every fuzz/fuzz_<target>.cpp.
# Default OUTDIR: build-libfuzzer/ at the top of the tree. The pure core sources the targets need
# are compiled directly (no meson, no libuv); toml++ is compiled header-only so that the TOML
# parser is instrumented too. Installs clang and libclang-rt-14-dev if they are missing.
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
      server/util/cidr.cpp)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# toml++ debug assertions are compiled out as in the shipped library (built with NDEBUG): one of
# them (parse_key on "[#", "[[[") is a known false precondition upstream (marzer/tomlplusplus#301)
# that release builds turn into a normal parse_error.
FLAGS=(-std=c++20 -g -O1 $SAN -I server -I include -I fuzz -DTOML_HEADER_ONLY=1 -DTOML_SHARED_LIB=0
       "-DTOML_ASSERT(expr)=((void)0)")
# The generated build header is not needed by these targets; its directory is harmless if present.
[ -f build/uvs_build_config.h ] && FLAGS+=(-I build)

mkdir -p "$OUT/obj"
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
  "$CXX" "${FLAGS[@]}" -fsanitize=fuzzer "$t" "${objs[@]}" -o "$OUT/$name"
done
echo "==> built: $(cd "$OUT" && ls fuzz_* | tr '\n' ' ')"
