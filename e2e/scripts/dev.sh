#!/usr/bin/env bash
# `make dev`: a working local deployment on loopback — a real control plane (etcd,
# kube-apiserver, kube-controller-manager, built by `make kube-tools`; no kubelet), moto (AWS STS),
# the console federation stub, the CRDs, the operator with its REST API and a few sample
# Accounts. Ctrl-C stops everything.
#
# With DCE_DEV_KUBECONFIG=<path> it targets that cluster instead of starting a control plane.
#
# `make dev-node` (`dev.sh --node`, as root): the operator as users run it instead — the Helm
# chart on two real nodes (kubelet, containerd) from the image `make images` built, with reset
# Jobs running aws-nuke against moto (see e2e/src/bin/dev-node.rs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
# The kubectl of the control plane's release (make kube-tools).
export PATH="$repo/e2e/kube/bin:$PATH"
state="$repo/.dev"
mkdir -p "$state"
api_port="${DCE_DEV_API_PORT:-6443}"
moto_port="${DCE_DEV_MOTO_PORT:-5000}"
metrics_port="${DCE_DEV_METRICS_PORT:-8080}"
rest_port="${DCE_DEV_REST_PORT:-8000}"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# How long each part may take to come up: a loaded 2-core machine can take minutes.
start_deadline="${DCE_DEV_START_SECONDS:-300}"

# wait_until <what> <log> <command...>: runs the command until it succeeds, saying every 10 s
# what is still starting, and gives up after the deadline pointing at the log.
wait_until() {
    local what="$1" log="$2"
    shift 2
    local started=$SECONDS
    until "$@" >/dev/null 2>&1; do
        local waited=$((SECONDS - started))
        if ((waited >= start_deadline)); then
            echo "dev: $what did not come up in ${start_deadline} s; see $log" >&2
            exit 1
        fi
        if ((waited > 0 && waited % 10 == 0)); then
            echo "dev: still waiting for $what (${waited} s)" >&2
        fi
        sleep 1
    done
}

# The same build as `make test` (same packages, targets and so features), so one never
# recompiles the dependency tree for the other.
cargo test --quiet --workspace --locked --lib --bins --tests --no-run

if [[ "${1:-}" == --node ]]; then
    version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
    exec target/debug/dev-node "$version" "$state"
fi

if [[ -n "${DCE_DEV_KUBECONFIG:-}" ]]; then
    export KUBECONFIG="$DCE_DEV_KUBECONFIG"
    echo "dev: using the cluster in $KUBECONFIG"
else
    export KUBECONFIG="$state/kubeconfig"
    rm -f "$KUBECONFIG"
    target/debug/test-control-plane --port "$api_port" --kubeconfig "$KUBECONFIG" >"$state/control-plane.log" 2>&1 &
    pids+=($!)
    wait_until "the control plane" "$state/control-plane.log" test -s "$KUBECONFIG"
fi

"$repo/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
pids+=($!)
wait_until "moto" "$state/moto.log" curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/"

# The console sign-in federation endpoint (for POST /leases/{id}/auth's consoleUrl).
target/debug/federation-stub >"$state/federation.url" 2>"$state/federation.log" &
pids+=($!)
wait_until "the federation stub" "$state/federation.log" test -s "$state/federation.url"
federation_endpoint="$(head -n1 "$state/federation.url")"

# HTTPS for the REST API (dce-cli speaks nothing else), and the proxy that routes the real
# clients' STS calls to moto.
rm -f "$state/sts-proxy.url"
target/debug/dev-tls "$state" "127.0.0.1:$moto_port" >"$state/sts-proxy.url" 2>"$state/dev-tls.log" &
pids+=($!)
wait_until "the TLS setup" "$state/dev-tls.log" test -s "$state/sts-proxy.url"
sts_proxy="$(head -n1 "$state/sts-proxy.url")"

# Server-side apply: objects the control plane created need no last-applied annotation.
apply() { kubectl apply --server-side --force-conflicts --field-manager=dce-dev "$@" >/dev/null; }
apply -k crds/
kubectl wait --for=condition=Established crd/accounts.dce.dev crd/leases.dce.dev --timeout=30s >/dev/null
for namespace in dce-system dce-leases; do
    kubectl create namespace "$namespace" --dry-run=client -o yaml | apply -f -
done
apply -f config/rbac/

AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev \
DCE_STS_ENDPOINT="http://127.0.0.1:$moto_port" \
DCE_COST_EXPLORER_ENDPOINT="http://127.0.0.1:$moto_port" \
DCE_IAM_ENDPOINT="http://127.0.0.1:$moto_port" \
DCE_RESET_MODE=disabled \
DCE_METRICS_ADDR="127.0.0.1:$metrics_port" \
DCE_API_ADDR="127.0.0.1:$rest_port" \
DCE_API_TLS_CERT_FILE="$state/api.crt" \
DCE_API_TLS_KEY_FILE="$state/api.key" \
DCE_API_BASE_PATH=/api \
DCE_API_CALLER_ROLE_ARN=arn:aws:iam::123456789012:role/DCEApiCaller \
DCE_FEDERATION_ENDPOINT="$federation_endpoint" \
    target/debug/dce-operator >"$state/operator.log" 2>&1 &
pids+=($!)
wait_until "the operator" "$state/operator.log" curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/readyz"

apply -f config/samples/accounts.yaml

cat <<MSG

dce-operator is running (logs in .dev/).

  export KUBECONFIG=$KUBECONFIG
  kubectl get dce                                   # accounts (and leases)
  kubectl apply -f config/samples/lease.yaml        # lease an account
  kubectl get leases.dce.dev -n default -w
  kubectl get secret alice-sandbox-aws-credentials -n default -o yaml
  curl -s http://127.0.0.1:$metrics_port/metrics | grep ^dce_

  # the REST API (DCE and AWS-integration) over HTTPS, with the kubeconfig's bearer token:
  token=\$(kubectl config view --raw -o jsonpath='{.users[0].user.token}')
  curl -s --cacert $state/ca.crt -H "Authorization: Bearer \$token" https://127.0.0.1:$rest_port/api/accounts
  curl -s --cacert $state/ca.crt -H "Authorization: Bearer \$token" -d '{"principalId":"bob"}' https://127.0.0.1:$rest_port/api/leases
  curl -s --cacert $state/ca.crt -H "Authorization: Bearer \$token" https://127.0.0.1:$rest_port/api/api/npm.aws_config/1.0/status

  # dce-cli (make dce-cli): sign in at https://127.0.0.1:$rest_port/api/auth (paste the token
  # above), then, in ~/.dce/config.yaml:
  #   api:
  #     host: 127.0.0.1:$rest_port
  #     basepath: /api
  # and in the shell that runs it (trust this deployment's CA; its STS check reaches moto):
  export SSL_CERT_FILE=$state/ca.crt AWS_CA_BUNDLE=$state/ca.crt HTTPS_PROXY=$sts_proxy
  dce auth && dce leases list

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
