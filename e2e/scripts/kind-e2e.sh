#!/usr/bin/env bash
# `make kind-e2e`: the e2e suite (e2e/tests/e2e) against a kind cluster instead of the local
# control plane. Needs Docker, kind, kubectl, helm, curl and cargo. See docs/kind.md.
#
#   1. creates the kind cluster $KIND_CLUSTER (default dce-e2e) unless it exists
#   2. builds the operator image from the Dockerfile and loads it into the cluster
#   3. installs moto (the offline AWS endpoint), then the operator with the Helm chart
#   4. runs the suite with DCE_E2E_KUBECONFIG pointing at the cluster, one test at a time
#
# Environment: KIND_CLUSTER, DCE_E2E_IMAGE (skip the build and use this image, which must be
# loadable with `kind load docker-image`), MOTO_IMAGE, MOTO_LOCAL_PORT (default 15000).
# The cluster is left running; `kind delete cluster --name dce-e2e` removes it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
for tool in docker kind kubectl helm curl cargo; do
    command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done

cluster="${KIND_CLUSTER:-dce-e2e}"
image="${DCE_E2E_IMAGE:-dce-operator:e2e}"
moto_image="${MOTO_IMAGE:-docker.io/motoserver/moto:5.1.4}"
moto_port="${MOTO_LOCAL_PORT:-15000}"
namespace=dce-system

work="$(mktemp -d)"
forward_pid=""
cleanup() {
    if [[ -n "$forward_pid" ]]; then kill "$forward_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1. Cluster, with a kubeconfig of its own (the user's ~/.kube/config is not touched).
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kind get kubeconfig --name "$cluster" >"$work/kubeconfig"
export KUBECONFIG="$work/kubeconfig"

# 2. Image: the repository's Dockerfile (a static release build on a distroless base).
if [[ -z "${DCE_E2E_IMAGE:-}" ]]; then
    docker build -t "$image" .
fi
kind load docker-image "$image" --name "$cluster"

# 3. moto (the offline AWS endpoint), then the operator with the Helm chart, which also installs
# the CRDs and the operator's RBAC.
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$namespace" -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: moto
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: moto}
  template:
    metadata:
      labels: {app.kubernetes.io/name: moto}
    spec:
      containers:
        - name: moto
          image: $moto_image
          ports: [{containerPort: 5000}]
          readinessProbe:
            httpGet: {path: /moto-api/, port: 5000}
---
apiVersion: v1
kind: Service
metadata:
  name: moto
spec:
  selector: {app.kubernetes.io/name: moto}
  ports: [{port: 5000, targetPort: 5000}]
---
# moto accepts any key pair; a real pool uses a workload identity (serviceAccount.annotations).
apiVersion: v1
kind: Secret
metadata:
  name: kind-e2e-aws
stringData:
  AWS_ACCESS_KEY_ID: kind-e2e
  AWS_SECRET_ACCESS_KEY: kind-e2e
EOF
# Reset Jobs run the operator image itself with a command that succeeds: the suite checks the
# Job mechanics, not aws-nuke.
helm upgrade --install dce-operator charts/dce-operator --namespace "$namespace" \
    --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
    --set config.stsEndpoint="http://moto.$namespace.svc:5000" \
    --set config.iamEndpoint="http://moto.$namespace.svc:5000" \
    --set aws.credentialsSecret=kind-e2e-aws \
    --set reset.mode=job --set reset.image="$image" \
    --set-json 'reset.command=["/usr/local/bin/dce-operator","--version"]' \
    --set-json 'extraEnv=[{"name":"AWS_EC2_METADATA_DISABLED","value":"true"}]'
kubectl rollout status -n "$namespace" deployment/moto --timeout=180s
kubectl rollout status -n "$namespace" deployment/dce-operator --timeout=180s

# The tests check the credentials the operator hands out against the same moto.
kubectl port-forward -n "$namespace" svc/moto "$moto_port:5000" >"$work/port-forward.log" 2>&1 &
forward_pid=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" 2>/dev/null && break
    sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" || {
    echo "kind-e2e: port-forward to moto failed:" >&2
    cat "$work/port-forward.log" >&2
    exit 1
}

# 4. The suite. Its tests share the operator's account pool: one at a time.
DCE_E2E_KUBECONFIG="$KUBECONFIG" \
DCE_E2E_STS_ENDPOINT="http://127.0.0.1:$moto_port" \
DCE_E2E_OPERATOR_NAMESPACE="$namespace" \
DCE_E2E_OPERATOR_DEPLOYMENT=dce-operator \
    cargo test -p dce-e2e --test e2e -- --test-threads=1
