#!/usr/bin/env bash
# `make test`: every test of the workspace (unit, controller, control-plane conformance), then
# one summary line totalling all test binaries.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log"
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
