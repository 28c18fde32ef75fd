// Command aws-nuke-config-check loads an aws-nuke configuration with aws-nuke's own parser
// (ekristen/aws-nuke v3) and answers, for each resource given, whether the configuration's
// filters keep it. Test support only: it checks the configuration the operator generates.
//
// Usage: aws-nuke-config-check <config> <account> [<ResourceType> <field>=<value>[,...]]...
//
// Each resource is one of aws-nuke's own resource types, built from the fields its lister fills
// (Go field names, unexported ones included; `role.RoleName` reaches into a nested struct,
// `Tags=key:value` adds a tag), so its properties and its string form are aws-nuke's, not the
// caller's. It exits non-zero when the file does not parse, the account may not be nuked
// (blocklisted, not listed, or not allowed to skip the alias check), a filter is invalid or a
// resource cannot be built; otherwise it prints one line per resource: "kept" or "removed".
package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unsafe"

	"github.com/ekristen/aws-nuke/v3/pkg/config"
	"github.com/ekristen/aws-nuke/v3/resources"
	libconfig "github.com/ekristen/libnuke/pkg/config"
	"github.com/ekristen/libnuke/pkg/queue"
	"github.com/ekristen/libnuke/pkg/resource"
	"github.com/sirupsen/logrus"
)

// resourceTypes are the aws-nuke resource types the checks build.
var resourceTypes = map[string]func() resource.Resource{
	"S3Bucket":                func() resource.Resource { return &resources.S3Bucket{} },
	"IAMRole":                 func() resource.Resource { return &resources.IAMRole{} },
	"IAMPolicy":               func() resource.Resource { return &resources.IAMPolicy{} },
	"IAMUser":                 func() resource.Resource { return &resources.IAMUser{} },
	"IAMRolePolicyAttachment": func() resource.Resource { return &resources.IAMRolePolicyAttachment{} },
	"IAMRolePolicy":           func() resource.Resource { return &resources.IAMRolePolicy{} },
	"EC2Instance":             func() resource.Resource { return &resources.EC2Instance{} },
	"LambdaFunction":          func() resource.Resource { return &resources.LambdaFunction{} },
}

func main() {
	if len(os.Args) < 3 || len(os.Args)%2 == 0 {
		fmt.Fprintln(os.Stderr, "usage: aws-nuke-config-check <config> <account> [<ResourceType> <field>=<value>[,...]]...")
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
		item, err := build(os.Args[i], os.Args[i+1])
		if err != nil {
			fail("resource", err)
		}
		kept, err := filters.Match(os.Args[i], item, log)
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

// build makes the aws-nuke resource `kind` with `fields` set, as the queue holds it.
func build(kind, fields string) (*queue.Item, error) {
	newResource, ok := resourceTypes[kind]
	if !ok {
		return nil, fmt.Errorf("unknown resource type %q", kind)
	}
	r := newResource()
	value := reflect.ValueOf(r).Elem()
	// A lister fills every timestamp and nested struct; some properties dereference them.
	allocate(value, 3)
	for _, pair := range strings.Split(fields, ",") {
		path, text, _ := strings.Cut(pair, "=")
		if err := set(value, strings.Split(path, "."), text); err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, path, err)
		}
	}
	return &queue.Item{Resource: r, Type: kind}, nil
}

// settable gives write access to a field, exported or not.
func settable(field reflect.Value) reflect.Value {
	return reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem()
}

// allocate points every nil pointer to a struct or a time (not interfaces: clients) at a zero
// value, `depth` levels down.
func allocate(value reflect.Value, depth int) {
	if depth == 0 {
		return
	}
	for i := 0; i < value.NumField(); i++ {
		field := settable(value.Field(i))
		if field.Kind() != reflect.Pointer || !field.IsNil() || field.Type().Elem().Kind() != reflect.Struct {
			continue
		}
		field.Set(reflect.New(field.Type().Elem()))
		allocate(field.Elem(), depth-1)
	}
}

func set(value reflect.Value, path []string, text string) error {
	field := value.FieldByName(path[0])
	if !field.IsValid() {
		return fmt.Errorf("no field %s", path[0])
	}
	field = settable(field)
	if field.Kind() == reflect.Pointer && field.Type().Elem().Kind() == reflect.Struct {
		if len(path) == 1 {
			return fmt.Errorf("%s is a struct: name one of its fields", path[0])
		}
		return set(field.Elem(), path[1:], text)
	}
	switch {
	case field.Kind() == reflect.String:
		field.SetString(text)
	case field.Kind() == reflect.Pointer && field.Type().Elem().Kind() == reflect.String:
		field.Set(reflect.ValueOf(&text).Convert(field.Type()))
	case field.Kind() == reflect.Map:
		key, tagValue, _ := strings.Cut(text, ":")
		if field.IsNil() {
			field.Set(reflect.MakeMap(field.Type()))
		}
		field.SetMapIndex(reflect.ValueOf(key), reflect.ValueOf(tagValue))
	case field.Kind() == reflect.Slice:
		return appendTag(field, text)
	default:
		return fmt.Errorf("cannot set a %s", field.Type())
	}
	return nil
}

// appendTag adds `key:value` to a slice of AWS SDK tags (structs or pointers to structs with
// Key and Value).
func appendTag(tags reflect.Value, text string) error {
	key, tagValue, _ := strings.Cut(text, ":")
	element := tags.Type().Elem()
	tag := reflect.New(element).Elem()
	target := tag
	if element.Kind() == reflect.Pointer {
		tag = reflect.New(element.Elem())
		target = tag.Elem()
	}
	for name, text := range map[string]string{"Key": key, "Value": tagValue} {
		if err := set(target, []string{name}, text); err != nil {
			return err
		}
	}
	tags.Set(reflect.Append(tags, tag))
	return nil
}

func fail(stage string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", stage, err)
	os.Exit(1)
}
