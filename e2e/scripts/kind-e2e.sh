#!/usr/bin/env bash
# `make kind-e2e`: the same e2e suite on a kind cluster. Needs Docker, kind and kubectl.
# Not run in CI here (no Docker engine); for users with Docker.
#
#   1. creates (or reuses) the kind cluster "dce-e2e"
#   2. installs the CRDs and the operator namespace
#   3. runs the controller tests' scenarios against it via KUBECONFIG
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
for tool in docker kind kubectl; do
    command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done
cluster="${KIND_CLUSTER:-dce-e2e}"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
kubectl config use-context "kind-$cluster"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd/accounts.dce.dev crd/leases.dce.dev --timeout=60s
echo "kind-e2e: cluster ready. The image build, Helm install and KUBECONFIG-driven suite land with the packaging work." >&2
exit 1
