#!/usr/bin/env bash
# Builds the real Kubernetes parts the tests and `make dev` run — etcd (embedded from
# go.etcd.io/etcd/server/v3), kube-apiserver, kube-controller-manager and kubectl (from
# k8s.io/kubernetes), the Helm CLI (helm.sh/helm/v4) and a checker of aws-nuke configurations
# built on aws-nuke's own parser — into e2e/kube/bin, from the Go module proxy. Test support
# only: nothing here is shipped in the operator image.
#
# Idempotent: a stamp records the sources the binaries were built from; when they match it
# does nothing. Go's module and build caches make a rebuild after a change cheap.
set -euo pipefail

script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo="$(cd "$(dirname "$script")/../.." && pwd)"
kube="$repo/e2e/kube"
bin="${DCE_KUBE_BIN_DIR:-$kube/bin}"
stamp="$bin/.sources.sha256"
binaries=(etcd kube-apiserver kube-controller-manager kubectl helm aws-nuke-config-check)

sources_hash() {
    (cd "$kube" && find . -path ./bin -prune -o -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print \
        | LC_ALL=C sort | xargs sha256sum; sha256sum <"$script") | sha256sum | cut -d' ' -f1
}

want="$(sources_hash)"
complete=true
for binary in "${binaries[@]}"; do
    [[ -x "$bin/$binary" ]] || complete=false
done
if $complete && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

command -v go >/dev/null || { echo "kube-tools: Go is needed to build the test control plane" >&2; exit 1; }
mkdir -p "$bin"
start=$SECONDS
echo "kube-tools: building ${binaries[*]} into $bin (a cold build takes several minutes)" >&2
# The release the binaries report (a module build has no git tree to stamp it from), and no
# symbol tables or debug info: smaller binaries and faster links.
k8s_version="$(cd "$kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
version_flags=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_flags+=" -X $package.gitVersion=$k8s_version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    version_flags+=" -X $package.gitTreeState=clean"
done
flags=(-ldflags="-s -w$version_flags")
(cd "$kube" && go build "${flags[@]}" -o "$bin/" \
    ./cmd/etcd \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)
helm_version="$(cd "$kube/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v4)"
(cd "$kube/helm" && go build -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
    -o "$bin/" helm.sh/helm/v4/cmd/helm)
(cd "$kube/aws-nuke" && go build -ldflags="-s -w" -o "$bin/aws-nuke-config-check" .)
echo "$want" >"$stamp"
echo "kube-tools: built in $((SECONDS - start)) s" >&2
