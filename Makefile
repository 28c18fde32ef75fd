# dce-operator — see README.md. `make dev` brings up a local deployment; `make test` runs everything.

SHELL := /bin/bash
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
IMAGE ?= dce-operator:$(VERSION)
VENV ?= $(CURDIR)/.venv
export DCE_VENV := $(VENV)

.PHONY: all build dev dev-node test test-build unit crds manifests image images venv kube-tools dce-cli browser moto bench bench-facade bench-cli soak storm kind-e2e fmt lint clean-dev

all: build

build:
	$(CARGO) build --workspace --bins

## dev: real control plane (etcd, kube-apiserver, kube-controller-manager) + moto + federation stub + CRDs + operator + sample accounts
dev: venv kube-tools
	e2e/scripts/dev.sh

## dev-node: as root, the chart on two real nodes (kubelet, containerd) from the local image, resets by aws-nuke against moto
dev-node: venv kube-tools images
	e2e/scripts/dev.sh --node

## test: unit, controller, facade, packaging and end-to-end tests on a real control plane + moto, the chart on a real node, and sign-in through a real OIDC provider in headless Chromium (what CI runs)
# The browser is installed first: its apt-get and kube-tools' (runc) cannot run at once.
test: browser
	$(MAKE) --no-print-directory -j3 venv kube-tools dce-cli images test-build
	e2e/scripts/test.sh

# The tests' compilation alone; make test runs it beside the Go builds and the images, which on
# 2 cores fills the cores each leaves idle while it links.
test-build:
	e2e/scripts/test.sh --build-only

## unit: the pure tests only (no servers)
unit:
	$(CARGO) test --workspace --lib

## crds: regenerate crds/*.yaml from the Rust types (the test suite fails on drift)
crds:
	$(CARGO) run --quiet --bin crdgen -- crds

## manifests: regenerate config/operator/ and config/rbac/ from the Helm chart (the test suite fails on drift)
manifests: venv kube-tools
	DCE_UPDATE_CONFIG=1 $(CARGO) test --test packaging config_is_the_rendered_chart

## image: build the container image $(IMAGE) (needs a Docker engine; CI has none, so it is not run there)
image:
	docker build -t $(IMAGE) .

## images: the operator, pause and aws-nuke images of the local test node as OCI archives in e2e/kube/images, no engine needed (`ctr -n k8s.io images import`; IMAGES=operator, pause and/or aws-nuke for a subset)
images:
	e2e/scripts/images.sh $(IMAGES)

## venv: project-local Python venv with moto_server and the aws CLI (idempotent)
venv:
	e2e/scripts/venv.sh

## kube-tools: build etcd, kube-apiserver, kube-controller-manager, kubectl, Helm, an aws-nuke config checker and a test OIDC provider from Go modules into e2e/kube/bin (idempotent; test support only)
kube-tools:
	e2e/scripts/kube-tools.sh

## dce-cli: build DCE's own client, unmodified, from ../shared/third_party/dce-cli into e2e/kube/bin for the tests that drive it (idempotent; skipped without the source, except in CI)
dce-cli:
	e2e/scripts/dce-cli.sh

## browser: as root, install Debian's headless Chromium, chromedriver and certutil for the sign-in tests (idempotent)
browser:
	e2e/scripts/browser.sh

## moto: run moto_server on 127.0.0.1:5000 in the foreground (for development)
moto: venv
	$(VENV)/bin/moto_server -H 127.0.0.1 -p $${MOTO_PORT:-5000}

## bench: operator against a real control plane + moto (BENCH_LEASES, BENCH_IN_FLIGHT, BENCH_IDLE_SECONDS; BENCH_KUBECONFIG for another cluster, BENCH_OPERATOR_BIN for another build)
bench: venv kube-tools
	$(CARGO) bench --bench lifecycle

## soak: the full soak test (SOAK_CYCLES create/bulk-delete cycles of Accounts and Leases, the operator killed and restarted every SOAK_RESTART_EVERY), with its figures
soak: venv kube-tools
	DCE_SOAK_CYCLES=$${SOAK_CYCLES:-50} DCE_SOAK_RESTART_EVERY=$${SOAK_RESTART_EVERY:-5} $(CARGO) test --workspace --test soak -- --nocapture

## storm: the one-account-per-lease scenarios (a 500-lease storm then deletes, 20 SIGKILLs, two replicas with leader changes, a planted claim), STORM_ROUNDS times each in a row (default 10), with their figures
storm: venv kube-tools
	DCE_STORM_ROUNDS=$${STORM_ROUNDS:-10} $(CARGO) test --workspace --test one_account_per_lease -- --nocapture --test-threads=1

## bench-facade: REST facade throughput and latency (BENCH_CACHED_LEASES, BENCH_CLIENTS, BENCH_SECONDS, BENCH_POSTS)
bench-facade: venv kube-tools
	$(CARGO) bench --bench facade

## bench-cli: wall time of DCE's own client against a local deployment (the chart, HTTPS, sign-in): p50 and p90 of `dce accounts list` and `dce leases list` beside `dce version` (BENCH_CLI_RUNS, default 20; DCE_OPERATOR_BIN for another operator build)
bench-cli: venv kube-tools dce-cli
	$(CARGO) test --test dce_cli dce_cli_command_times -- --ignored --nocapture

## kind-e2e: the same e2e suite on a kind cluster (needs Docker, kind, kubectl; see docs/kind.md)
kind-e2e:
	e2e/scripts/kind-e2e.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-dev:
	rm -rf .dev
