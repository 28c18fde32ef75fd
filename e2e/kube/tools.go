//go:build tools

// Package tools pins the real Kubernetes parts the tests run. They are built with
// `go build` by e2e/scripts/kube-tools.sh; nothing here is shipped.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
