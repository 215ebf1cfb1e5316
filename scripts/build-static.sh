#!/usr/bin/env bash
# Builds grace-init statically linked, for the benchmarks and the container tests.
#
#   scripts/build-static.sh                      # glibc static (always) + musl (when its target is installed)
#   scripts/build-static.sh --glibc              # only the glibc static binary (what the tests and CI use)
#   scripts/build-static.sh --musl               # only the musl binary; fails if the target is not installed
#
# Outputs (stable paths):
#   target/static/grace-init        glibc, -C target-feature=+crt-static (static-pie); needs nothing downloaded
#   target/static/grace-init-musl   the small musl binary, built by scripts/release.sh --native (the one way to
#                                   build it: stable toolchain, std rebuilt with panic=immediate-abort; needs the
#                                   musl target and rust-src)
#
# Each binary is checked with `file`: the script fails unless it says "statically linked" or "static-pie linked".
set -euo pipefail
cd "$(dirname "$0")/.."

want_glibc=1
want_musl=auto
case "${1:-}" in
  "") ;;
  --glibc) want_musl=0 ;;
  --musl) want_glibc=0; want_musl=1 ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build-static: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

out=target/static
mkdir -p "$out"

# Installs a built binary at its stable path by copy-and-rename, so a copy that is running does not make it
# fail with "Text file busy".
install_bin() {
  cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# Fails unless `file` calls the binary static; prints its size and the verdict.
check_static() {
  local bin=$1 verdict size
  size=$(stat -c %s "$bin")
  if command -v file >/dev/null; then
    verdict=$(file -b "$bin")
    case "$verdict" in
      *"statically linked"*|*"static-pie linked"*) ;;
      *) echo "build-static: $bin is not static: $verdict" >&2; exit 1 ;;
    esac
  else
    verdict="(file(1) not installed: not checked)"
  fi
  printf '%s: %s bytes (%s KiB)\n  %s\n' "$bin" "$size" "$(( (size + 1023) / 1024 ))" "$verdict"
}

if [ "$want_glibc" = 1 ]; then
  triple=x86_64-unknown-linux-gnu
  echo "build-static: building $triple with +crt-static" >&2
  # The target is given explicitly so RUSTFLAGS do not reach build scripts and proc macros (built for the host).
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --target "$triple"
  install_bin "target/$triple/release/grace-init" "$out/grace-init"
  check_static "$out/grace-init"
fi

if [ "$want_musl" != 0 ]; then
  triple=$(uname -m)-unknown-linux-musl
  if command -v rustup >/dev/null && rustup target list --installed | grep -qx "$triple" \
    && rustup component list --installed | grep -q '^rust-src'; then
    echo "build-static: building the musl binary with scripts/release.sh --native" >&2
    RELEASE_TARGET_DIR=target/static-release scripts/release.sh --native --out target/static/release
    install_bin target/static/release/grace-init-linux-* "$out/grace-init-musl"
    check_static "$out/grace-init-musl"
  elif [ "$want_musl" = 1 ]; then
    echo "build-static: needs the $triple target and rust-src (rustup target add $triple; rustup component add rust-src)" >&2
    exit 1
  else
    echo "build-static: skipping musl: needs the $triple target and rust-src" \
      "(rustup target add $triple; rustup component add rust-src)" >&2
  fi
fi
