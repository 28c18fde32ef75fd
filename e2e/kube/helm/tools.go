//go:build tools

// Package tools pins the real Helm CLI the chart tests run. Its own module, so that Helm's
// Kubernetes libraries need not match the control plane's release.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
