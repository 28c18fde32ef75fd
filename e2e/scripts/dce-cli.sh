#!/usr/bin/env bash
# Builds DCE's own client, dce-cli, unmodified from its source in shared/third_party/dce-cli (laid
# out beside the project, read-only in CI) into e2e/kube/bin, for the tests that drive the real
# client against the operator. Test support only.
#
# Idempotent: a stamp records the source the binary was built from; when it matches it does
# nothing. Without the source it skips (exit 0), except in CI, where the tests need the client.
set -euo pipefail

script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo="$(cd "$(dirname "$script")/../.." && pwd)"
source_dir="$repo/../shared/third_party/dce-cli"
bin="${DCE_KUBE_BIN_DIR:-$repo/e2e/kube/bin}"
stamp="$bin/.dce-cli.sha256"

if [[ ! -f "$source_dir/go.mod" ]]; then
    message="dce-cli: its source is missing (expected shared/third_party/dce-cli beside the project)"
    if [[ "${CI:-}" == true ]]; then
        echo "$message; CI needs it" >&2
        exit 1
    fi
    echo "$message; skipped, the dce-cli tests will skip too" >&2
    exit 0
fi

sources_hash() {
    (cd "$source_dir" && find . -type f -print | LC_ALL=C sort | xargs -d '\n' sha256sum
        sha256sum <"$script") | sha256sum | cut -d' ' -f1
}

want="$(sources_hash)"
if [[ -x "$bin/dce-cli" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

command -v go >/dev/null || { echo "dce-cli: Go is needed to build dce-cli" >&2; exit 1; }
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# A writable copy: `-mod=mod` completes go.sum. (Its root holds a script named `dce`, so the
# binary is written elsewhere.)
cp -r "$source_dir" "$work/src"
chmod -R u+w "$work/src"
# The version `dce version` prints, as upstream's build stamps it from `git describe` (the
# source has no git tree): the latest release in its changelog.
version="$(sed -n 's/^## \(v[0-9][0-9.]*\)$/\1/p' "$source_dir/CHANGELOG.md" | head -n1)"
mkdir -p "$bin"
start=$SECONDS
echo "dce-cli: building $version into $bin" >&2
(cd "$work/src" && GOFLAGS=-mod=mod go build \
    -ldflags="-s -w -X github.com/Optum/dce-cli/cmd.version=$version" -o "$bin/dce-cli" .)
echo "$want" >"$stamp"
echo "dce-cli: built in $((SECONDS - start)) s" >&2
