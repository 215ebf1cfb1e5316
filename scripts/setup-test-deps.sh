#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root):
# - Debian packages: runc and busybox-static for the container end-to-end tests, nginx for the real-server
#   tests, util-linux (unshare, nsenter) and procps, systemd (systemd-socket-activate, for the socket-activation
#   test), and for the benchmark the peer inits (tini, dumb-init, catatonit) and strace (its system-call counts);
# - a Python virtualenv at .venv with the real servers (gunicorn, uvicorn, grpcio) and kubernetes-validate;
# - for the engine and release tests: podman (run with runc), mmdebstrap (a local Debian base image),
#   qemu-user-static (the arm64 binary), the gunicorn wheels Dockerfile.example installs (.venv/wheels, served
#   to the image build locally), and rustup's musl targets and rust-src (scripts/release.sh).
# Idempotent: re-running it only fills in what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(runc busybox-static nginx util-linux procps python3-venv tini dumb-init catatonit strace file systemd
  podman mmdebstrap qemu-user-static)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r scripts/test-requirements.txt
# Debian 12's Python (3.11) is the test image's: these wheels are what its `pip install gunicorn==27.0.1` finds.
.venv/bin/pip download -q --disable-pip-version-check --only-binary=:all: -d .venv/wheels gunicorn==27.0.1

if command -v rustup >/dev/null; then
  rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
  rustup component add rust-src
fi
echo "setup: done"
