#!/usr/bin/env bash
# Builds the real Kubernetes parts the tests and `make dev` run — etcd (embedded from
# go.etcd.io/etcd/server/v3), kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
# and kubectl (from k8s.io/kubernetes), the test node's container runtime (containerd, its runc
# shim and ctr from github.com/containerd/containerd/v2, the CNI loopback plugin; module
# e2e/kube/node), the Helm CLI (helm.sh/helm/v4), a checker of aws-nuke configurations built
# on aws-nuke's own parser and the OpenID Connect provider of the sign-in tests (e2e/kube/oidc,
# on github.com/zitadel/oidc) — into e2e/kube/bin, from the Go module proxy; and installs
# Debian's runc when it is missing. Test support only: nothing here is shipped in the operator
# image.
#
# Idempotent: a stamp records the sources the binaries were built from; when they match it
# does nothing. Go's module and build caches make a rebuild after a change cheap.
set -euo pipefail

script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo="$(cd "$(dirname "$script")/../.." && pwd)"
kube="$repo/e2e/kube"
bin="${DCE_KUBE_BIN_DIR:-$kube/bin}"
stamp="$bin/.sources.sha256"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl helm
    aws-nuke-config-check containerd containerd-shim-runc-v2 ctr loopback oidc-provider)

# The test node runs containers with Debian's runc.
if ! command -v runc >/dev/null && [[ ! -x /usr/sbin/runc ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "kube-tools: runc is missing; install it as root: apt-get install -y --no-install-recommends runc" >&2
        exit 1
    fi
    echo "kube-tools: installing runc" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc >/dev/null
fi

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

# The node's runtime, a module of its own, builds alongside: Kubernetes' build alone leaves
# cores idle while it links.
build_node_runtime() {
    local node_start=$SECONDS
    local containerd_version
    containerd_version="$(cd "$kube/node" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)"
    (cd "$kube/node" && CGO_ENABLED=0 go build \
        -ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_version" \
        -o "$bin/" \
        github.com/containerd/containerd/v2/cmd/containerd \
        github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
        github.com/containerd/containerd/v2/cmd/ctr \
        github.com/containernetworking/plugins/plugins/main/loopback)
    echo "kube-tools: node runtime built in $((SECONDS - node_start)) s" >&2
}
build_node_runtime &
node_runtime=$!

kubernetes_status=0
(cd "$kube" && go build "${flags[@]}" -o "$bin/" \
    ./cmd/etcd \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kubectl) || kubernetes_status=$?
((kubernetes_status != 0)) || echo "kube-tools: Kubernetes built in $((SECONDS - start)) s" >&2
# Both finish before a failure of either ends the script: no build is left running.
node_runtime_status=0
wait "$node_runtime" || node_runtime_status=$?
((kubernetes_status == 0 && node_runtime_status == 0)) || exit 1
helm_version="$(cd "$kube/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v4)"
(cd "$kube/helm" && go build -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
    -o "$bin/" helm.sh/helm/v4/cmd/helm)
(cd "$kube/aws-nuke" && go build -ldflags="-s -w" -o "$bin/aws-nuke-config-check" .)
(cd "$kube/oidc" && go build -ldflags="-s -w" -o "$bin/oidc-provider" .)
echo "$want" >"$stamp"
echo "kube-tools: built in $((SECONDS - start)) s" >&2
