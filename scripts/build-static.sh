#!/usr/bin/env bash
# Builds a fully static grace-init, ready to copy into any container image.
#
#   scripts/build-static.sh                      # glibc static (always) + musl (when its target is installed)
#   scripts/build-static.sh --glibc              # only the glibc static binary (what the tests and CI use)
#   scripts/build-static.sh --musl               # only the musl binary; fails if the target is not installed
#   scripts/build-static.sh --install-toolchain  # first add the musl target, and nightly with rust-src (rustup)
#
# Outputs (stable paths):
#   target/static/grace-init        glibc, -C target-feature=+crt-static (static-pie); needs nothing downloaded
#   target/static/grace-init-musl   musl (x86_64-unknown-linux-musl), non-PIE. The smallest build: when a nightly
#                                   toolchain with rust-src and the musl target is installed, the standard library
#                                   is rebuilt with panic=immediate-abort (-Zbuild-std), which drops the backtrace
#                                   printer (~370 KB instead of ~730 KB on stable, and half the resident memory).
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
  --install-toolchain)
    rustup target add x86_64-unknown-linux-musl
    rustup toolchain install nightly --profile minimal --component rust-src
    rustup target add x86_64-unknown-linux-musl --toolchain nightly
    ;;
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  triple=x86_64-unknown-linux-musl
  if command -v rustup >/dev/null && rustup target list --installed | grep -qx "$triple"; then
    # musl targets link statically by default; a non-PIE executable needs no self-relocation code.
    if rustup run nightly rustc --version >/dev/null 2>&1 \
      && rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src' \
      && rustup target list --toolchain nightly --installed 2>/dev/null | grep -qx "$triple"; then
      echo "build-static: building $triple with nightly, std rebuilt with panic=immediate-abort" >&2
      RUSTFLAGS="${RUSTFLAGS:-} -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort" \
        cargo +nightly build --release --locked --target "$triple" -Zbuild-std=std,panic_abort \
        --target-dir target/static-nightly
      install_bin "target/static-nightly/$triple/release/grace-init" "$out/grace-init-musl"
    else
      echo "build-static: building $triple with stable (install nightly + rust-src for a build half the size:" \
        "scripts/build-static.sh --install-toolchain)" >&2
      RUSTFLAGS="${RUSTFLAGS:-} -C relocation-model=static" cargo build --release --locked --target "$triple"
      install_bin "target/$triple/release/grace-init" "$out/grace-init-musl"
    fi
    check_static "$out/grace-init-musl"
  elif [ "$want_musl" = 1 ]; then
    echo "build-static: target $triple is not installed (rustup target add $triple)" >&2
    exit 1
  else
    echo "build-static: skipping musl: target $triple is not installed (rustup target add $triple)" >&2
  fi
fi
