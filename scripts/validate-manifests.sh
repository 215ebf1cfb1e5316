#!/usr/bin/env bash
# Validates every Kubernetes manifest under examples/kubernetes/ offline, against the JSON schemas that the PyPI
# package kubernetes-validate ships (installed into .venv by scripts/setup-test-deps.sh).
#
#   scripts/validate-manifests.sh                  # every examples/kubernetes/*.yaml, every version below
#   scripts/validate-manifests.sh FILE...          # only these files
#   KUBERNETES_VERSIONS="1.33.0" scripts/validate-manifests.sh
#
# Strict mode: unknown fields (a typo such as `terminationGracePeriod`) are errors. A resource whose kind has no
# schema is an error too (kubernetes-validate itself only warns). The schemas are local files; to prove no network
# is used, the check runs in an empty network namespace when `unshare --net` is allowed (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest version the manifests promise to work on, and the newest the pinned kubernetes-validate knows.
versions=${KUBERNETES_VERSIONS:-"1.30.0 1.37.0"}
validator=.venv/bin/kubernetes-validate
if [ ! -x "$validator" ]; then
  echo "validate-manifests: $validator is missing: run scripts/setup-test-deps.sh" >&2
  exit 1
fi

if [ $# -gt 0 ]; then
  files=("$@")
else
  shopt -s nullglob
  files=(examples/kubernetes/*.yaml examples/kubernetes/*.yml)
  shopt -u nullglob
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "validate-manifests: no manifests found under examples/kubernetes/" >&2
  exit 1
fi

offline=()
if command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
  offline=(unshare --net)
fi

status=0
for version in $versions; do
  # Any line that is not INFO (WARN: no schema for a kind; ERROR; FATAL: unknown version) is a failure.
  if ! output=$("${offline[@]}" "$validator" --strict --kubernetes-version "$version" "${files[@]}" 2>&1); then
    status=1
  fi
  printf '%s\n' "$output"
  if printf '%s\n' "$output" | grep -v '^INFO ' | grep -q .; then
    status=1
  fi
done

if [ $status -ne 0 ]; then
  echo "validate-manifests: FAILED" >&2
else
  echo "validate-manifests: ${#files[@]} files valid against Kubernetes $versions${offline:+ (no network)}" >&2
fi
exit $status
