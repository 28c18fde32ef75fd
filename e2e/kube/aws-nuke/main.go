// Command aws-nuke-config-check loads an aws-nuke configuration with aws-nuke's own parser
// (ekristen/aws-nuke v3) and answers, for each resource given, whether the configuration's
// filters keep it. Test support only: it checks the configuration the operator generates.
//
// Usage: aws-nuke-config-check <config> <account> [<ResourceType> <property>=<value>[,...]]...
//
// It exits non-zero when the file does not parse, the account may not be nuked (blocklisted,
// not listed, or not allowed to skip the alias check) or a filter is invalid; otherwise it
// prints one line per resource: "kept" or "removed".
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ekristen/aws-nuke/v3/pkg/config"
	libconfig "github.com/ekristen/libnuke/pkg/config"
	"github.com/sirupsen/logrus"
)

// properties is one resource as aws-nuke's filters see it.
type properties map[string]string

func (p properties) GetProperty(key string) (string, error) {
	// The empty key is the resource's string form.
	return p[key], nil
}

func main() {
	if len(os.Args) < 3 || len(os.Args)%2 == 0 {
		fmt.Fprintln(os.Stderr, "usage: aws-nuke-config-check <config> <account> [<ResourceType> <property>=<value>[,...]]...")
		os.Exit(64)
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	log := logrus.NewEntry(logger)
	cfg, err := config.New(libconfig.Options{Path: os.Args[1], Log: log})
	if err != nil {
		fail("parse", err)
	}
	account := os.Args[2]
	// As the reset Job runs it: --no-alias-check, and an account without an alias.
	if err := cfg.ValidateAccount(account, nil, true); err != nil {
		fail("account", err)
	}
	filters, err := cfg.Filters(account)
	if err != nil {
		fail("filters", err)
	}
	if err := filters.Validate(); err != nil {
		fail("filters", err)
	}
	for i := 3; i < len(os.Args); i += 2 {
		resource := properties{}
		for _, pair := range strings.Split(os.Args[i+1], ",") {
			key, value, _ := strings.Cut(pair, "=")
			resource[key] = value
		}
		kept, err := filters.Match(os.Args[i], resource, log)
		if err != nil {
			fail("match", err)
		}
		if kept {
			fmt.Println("kept")
		} else {
			fmt.Println("removed")
		}
	}
}

func fail(stage string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", stage, err)
	os.Exit(1)
}
