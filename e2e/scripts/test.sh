#!/usr/bin/env bash
# `make test`: every test of the workspace (unit, controller, control-plane conformance), then
# one summary line totalling all test binaries.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
targets=(--workspace --locked --lib --bins --tests)
# --build-only: compile what the tests run, and run nothing (make test builds it beside the
# Go tools and the images).
if [[ "${1:-}" == --build-only ]]; then
    exec cargo test "${targets[@]}" --no-run
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test "${targets[@]}" --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed;?$/) passed += $i
            if ($(i+1) ~ /^failed;?$/) failed += $i
            if ($(i+1) ~ /^ignored;?$/) ignored += $i
        }
    }
    END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
