//go:build tools

// Package tools pins the container runtime of the test node: containerd with its runc shim
// and ctr, and the CNI loopback plugin. A module of its own, so containerd's dependencies
// leave the k8s.io pins of the control plane's module alone. Built with `go build` by
// e2e/scripts/kube-tools.sh; nothing here is shipped.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
