#!/usr/bin/env bash
# Creates (or refreshes) the Python virtualenv that provides `moto_server`, the offline AWS
# endpoint used by the tests, and the `aws` CLI. Idempotent: when the installed packages already
# match the pinned requirements it does nothing.
#
# Usage: e2e/scripts/venv.sh            (venv at <repo>/.venv)
#        DCE_VENV=/some/dir e2e/scripts/venv.sh
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/../.." && pwd)"
venv="${DCE_VENV:-$repo_root/.venv}"
requirements="$script_dir/requirements.txt"
python="${PYTHON:-python3}"

# The stamp records which requirements the venv was built from; any change to the pins
# (or a venv recreated by hand) triggers a reinstall.
stamp="$venv/.dce-requirements.sha256"
want="$(sha256sum <"$requirements" | cut -d' ' -f1)"

if [[ -x "$venv/bin/moto_server" && -x "$venv/bin/aws" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

run_quietly() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "venv.sh: failed: $*" >&2
        exit 1
    fi
}

if [[ ! -x "$venv/bin/python" ]]; then
    run_quietly "$python" -m venv "$venv"
fi
run_quietly "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
    --requirement "$requirements"

echo "$want" >"$stamp"
