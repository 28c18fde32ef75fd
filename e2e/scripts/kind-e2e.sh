#!/usr/bin/env bash
# `make kind-e2e`: the e2e suite (e2e/tests/e2e) against a kind cluster instead of the local
# control plane. Needs Docker, kind, kubectl, curl and cargo. See docs/kind.md.
#
#   1. creates the kind cluster $KIND_CLUSTER (default dce-e2e) unless it exists
#   2. builds the operator image and loads it into the cluster
#   3. installs the CRDs, moto (the offline AWS endpoint) and the operator with its RBAC
#   4. runs the suite with DCE_E2E_KUBECONFIG pointing at the cluster, one test at a time
#
# Environment: KIND_CLUSTER, DCE_E2E_IMAGE (skip the build and use this image, which must be
# loadable with `kind load docker-image`), MOTO_IMAGE, MOTO_LOCAL_PORT (default 15000).
# The cluster is left running; `kind delete cluster --name dce-e2e` removes it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
for tool in docker kind kubectl curl cargo; do
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

# 2. Image: a release build in a Rust container, run from a distroless non-root image. The build
# context holds only what the workspace needs to compile.
if [[ -z "${DCE_E2E_IMAGE:-}" ]]; then
    context="$work/image"
    mkdir -p "$context"
    cp -R Cargo.toml Cargo.lock src benches e2e crds "$context/"
    cat >"$context/Dockerfile" <<'EOF'
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dce-operator --bin dce-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dce-operator /usr/local/bin/dce-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dce-operator"]
EOF
    docker build -t "$image" "$context"
fi
kind load docker-image "$image" --name "$cluster"

# 3. CRDs, moto and the operator.
kubectl apply -f crds/
kubectl wait --for=condition=Established crd/accounts.dce.dev crd/leases.dce.dev --timeout=60s
kubectl apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
---
# moto: STS for the operator (and for the tests, through a port-forward).
apiVersion: apps/v1
kind: Deployment
metadata:
  name: moto
  namespace: $namespace
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
  namespace: $namespace
spec:
  selector: {app.kubernetes.io/name: moto}
  ports: [{port: 5000, targetPort: 5000}]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: dce-operator
  namespace: $namespace
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: dce-operator
rules:
  - apiGroups: [dce.dev]
    resources: [accounts, accounts/status, accounts/finalizers, leases, leases/status, leases/finalizers]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [secrets, configmaps]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [namespaces]
    verbs: [get, list, watch]
  - apiGroups: ["", events.k8s.io]
    resources: [events]
    verbs: [create, patch, update]
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch, create, delete, patch]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list, watch, create, update, patch]
  - apiGroups: [authentication.k8s.io]
    resources: [tokenreviews]
    verbs: [create]
  - apiGroups: [authorization.k8s.io]
    resources: [subjectaccessreviews]
    verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: dce-operator
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dce-operator}
subjects:
  - {kind: ServiceAccount, name: dce-operator, namespace: $namespace}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dce-operator
  namespace: $namespace
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: dce-operator}
  template:
    metadata:
      labels: {app.kubernetes.io/name: dce-operator}
    spec:
      serviceAccountName: dce-operator
      containers:
        - name: operator
          image: $image
          imagePullPolicy: IfNotPresent
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: DCE_NAMESPACE, value: $namespace}
            - {name: DCE_STS_ENDPOINT, value: "http://moto.$namespace.svc:5000"}
            # moto accepts any key pair; a real pool uses the pod's own AWS identity.
            - {name: AWS_ACCESS_KEY_ID, value: kind-e2e}
            - {name: AWS_SECRET_ACCESS_KEY, value: kind-e2e}
            - {name: AWS_EC2_METADATA_DISABLED, value: "true"}
            # Reset Jobs run the operator image itself with a command that succeeds: the suite
            # checks the Job mechanics, not aws-nuke.
            - {name: DCE_RESET_MODE, value: job}
            - {name: DCE_RESET_IMAGE, value: $image}
            - {name: DCE_RESET_COMMAND, value: "/usr/local/bin/dce-operator,--version"}
          ports:
            - {name: http, containerPort: 8080}
            - {name: api, containerPort: 8000}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities: {drop: [ALL]}
EOF
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
