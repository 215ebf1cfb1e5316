#!/usr/bin/env bash
# Fuzzes grace-init's argument parser (grace_init::cli::parse) with cargo-fuzz for a bounded time.
# Not run in CI: run it by hand after changing src/cli.rs, src/duration.rs or src/signals.rs.
#
#   scripts/fuzz.sh [SECONDS]      default 60
#
# cargo-fuzz needs the nightly toolchain (libFuzzer and the address sanitizer). New inputs go to
# fuzz/corpus/cli_parse (not committed); the seeds in fuzz/seeds/cli_parse are read too. A crash is saved under
# fuzz/artifacts/cli_parse/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac

if ! command -v rustup >/dev/null 2>&1; then
  echo "fuzz.sh: rustup not found: cargo-fuzz needs a nightly toolchain managed by rustup" >&2
  exit 1
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly toolchain is not installed, and cargo-fuzz needs it." >&2
  echo "fuzz.sh: install it with 'rustup toolchain install nightly' where the Rust distribution server can be" >&2
  echo "fuzz.sh: reached (only package registries are reachable on some machines), then run this again." >&2
  exit 1
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is listed but 'cargo +nightly' does not run" >&2
  exit 1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

mkdir -p fuzz/corpus/cli_parse
echo "fuzz.sh: fuzzing cli_parse for ${seconds}s with $(cargo fuzz --version) on $(cargo +nightly --version)"
exec cargo +nightly fuzz run cli_parse fuzz/corpus/cli_parse fuzz/seeds/cli_parse -- \
  -max_total_time="$seconds" -max_len=512 -dict=fuzz/cli_parse.dict -print_final_stats=1
