#!/usr/bin/env bash
# fuzz.sh [DURATION]: run every fuzz target of the module for DURATION each (default 10s), one at a time.
# Targets are found with `go test -list '^Fuzz'` in every package, so new ones are picked up by themselves.
# A failing input is written under the package's testdata/fuzz/ by go test: commit it as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
d=${1:-10s}
GO=${GO:-go}
failed=() ran=0
for pkg in $($GO list ./...); do
  if ! out=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
    echo "$out"; failed+=("$pkg (test binary does not build)"); continue
  fi
  targets=$(grep '^Fuzz' <<<"$out" || true)
  for f in $targets; do
    echo "== $pkg $f ($d)"
    ran=$((ran + 1))
    # -run '^$' skips the unit tests; -parallel keeps to the 2 cores CI has.
    if ! $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$d" -parallel 2 "$pkg"; then failed+=("$pkg $f"); fi
  done
done
echo "fuzz: $ran targets, ${#failed[@]} failed"
if ((${#failed[@]})); then printf 'FAILED: %s\n' "${failed[@]}"; exit 1; fi
