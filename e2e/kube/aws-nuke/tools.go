//go:build tools

// Package tools pins the aws-nuke program itself (the module's go.mod and go.sum cover its whole
// build): e2e/scripts/images.sh builds it with `go build github.com/ekristen/aws-nuke/v3` for
// the reset Job's image on the local test node. Test support only.
package tools

import (
	_ "github.com/ekristen/aws-nuke/v3"
)
