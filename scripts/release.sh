#!/usr/bin/env bash
# Builds the release artifacts: static grace-init binaries for Linux on x86_64 and aarch64, and their checksums.
#
#   scripts/release.sh                 # → dist/grace-init-linux-amd64, dist/grace-init-linux-arm64, dist/SHA256SUMS
#   scripts/release.sh --out DIR       # the same into DIR
#   scripts/release.sh --native        # only the build machine's architecture (Dockerfile.example's build stage)
#   scripts/release.sh --check         # build twice, in two directories, fail unless the files are identical,
#                                      # and keep them in dist/ (or --out DIR)
#
# Both binaries are musl (*-unknown-linux-musl), static and non-PIE, with the standard library rebuilt from source
# with panic=immediate-abort (-Zbuild-std), which halves them (README.md's "Install" quotes the sizes). -Zbuild-std is
# unstable: it needs a nightly toolchain, or the pinned stable one with RUSTC_BOOTSTRAP=1, which is what this script
# uses (stable, so two machines with the same rustc build the same bytes; nightly's aarch64-musl std is not always
# published). Needs: rustup with the two musl targets and rust-src (scripts/setup-test-deps.sh adds them). aarch64
# links with rust-lld, which ships with rustup's toolchains: no cross C toolchain is needed.
#
# Reproducible: no timestamps are embedded, SOURCE_DATE_EPOCH is set from the last commit, and every build path
# (the checkout, CARGO_HOME, the toolchain's sources) is remapped, so the bytes do not depend on where or when the
# build ran. `--check` proves it for this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
native=0
check=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift ;;
    --native) native=1 ;;
    --check) check=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$check" = 1 ]; then
  # Two builds from scratch, in target directories and output directories at different paths.
  first=target/release-check/a second=target/release-check/elsewhere/b
  rm -rf target/release-check
  args=(); [ "$native" = 1 ] && args+=(--native)
  RELEASE_TARGET_DIR=target/release-check/build-a "$0" "${args[@]}" --out "$first"
  RELEASE_TARGET_DIR=target/release-check/elsewhere/build-b "$0" "${args[@]}" --out "$second"
  if diff -r "$first" "$second" >&2; then
    echo "release: reproducible: two builds in different directories gave identical files; kept in $out" >&2
    mkdir -p "$out"
    cp "$first"/* "$out"/
  else
    echo "release: NOT reproducible: the two builds differ (above)" >&2
    exit 1
  fi
  exit 0
fi

# Docker's names for the architectures (TARGETARCH), so a Dockerfile can download grace-init-linux-$TARGETARCH.
declare -A arch_of=([x86_64-unknown-linux-musl]=amd64 [aarch64-unknown-linux-musl]=arm64)
if [ "$native" = 1 ]; then
  case "$(uname -m)" in
    x86_64) triples=(x86_64-unknown-linux-musl) ;;
    aarch64|arm64) triples=(aarch64-unknown-linux-musl) ;;
    *) echo "release: no musl target for $(uname -m)" >&2; exit 1 ;;
  esac
else
  triples=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
fi

target_dir=${RELEASE_TARGET_DIR:-target/release-build}
mkdir -p "$out" "$target_dir"
here=$(pwd -P)
sysroot=$(rustc --print sysroot)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
# Nothing of the caller's may change the bytes.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_MAKEFLAGS MAKEFLAGS MFLAGS
flags=(
  -C relocation-model=static
  -Zunstable-options -C panic=immediate-abort
  --remap-path-prefix="$here=/build/grace-init"
  --remap-path-prefix="$(cd "$target_dir" && pwd -P)=/build/target"
  --remap-path-prefix="$cargo_home=/cargo"
  --remap-path-prefix="$sysroot=/rustc"
)

for triple in "${triples[@]}"; do
  name=grace-init-linux-${arch_of[$triple]}
  echo "release: building $name ($triple, $(rustc --version))" >&2
  # The flags go through CARGO_ENCODED_RUSTFLAGS (unit-separated) so the paths may hold spaces.
  CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; echo "${flags[*]}") \
    cargo build --release --locked --target "$triple" -Zbuild-std=std,panic_abort --target-dir "$target_dir"
  cp "$target_dir/$triple/release/grace-init" "$out/$name.tmp.$$"
  mv -f "$out/$name.tmp.$$" "$out/$name"
  if command -v file >/dev/null; then
    verdict=$(file -b "$out/$name")
    case "$verdict" in
      *"statically linked"*) ;;
      *) echo "release: $out/$name is not static: $verdict" >&2; exit 1 ;;
    esac
  fi
  echo "release: $out/$name: $(stat -c %s "$out/$name") bytes" >&2
done

(cd "$out" && rm -f SHA256SUMS && sha256sum -- grace-init-linux-* > SHA256SUMS)
echo "release: $out/SHA256SUMS:" >&2
cat "$out/SHA256SUMS" >&2
