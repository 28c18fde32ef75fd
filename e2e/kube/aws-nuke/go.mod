module dce-operator.dev/e2e/kube/aws-nuke

go 1.26.0

require (
	github.com/ekristen/aws-nuke/v3 v3.64.1
	github.com/ekristen/libnuke v1.3.0
	github.com/sirupsen/logrus v1.9.4
)

require (
	github.com/mb0/glob v0.0.0-20160210091149-1eb79d2de6c4 // indirect
	golang.org/x/sys v0.25.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
