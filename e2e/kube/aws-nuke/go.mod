module dce-operator.dev/e2e/kube/aws-nuke

go 1.26.0

require (
	github.com/ekristen/aws-nuke/v3 v3.64.1
	github.com/ekristen/libnuke v1.3.0
	github.com/sirupsen/logrus v1.9.4
)

require (
	github.com/aws/aws-sdk-go v1.55.8 // indirect
	github.com/aws/aws-sdk-go-v2 v1.41.2 // indirect
	github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream v1.7.5 // indirect
	github.com/aws/aws-sdk-go-v2/config v1.28.11 // indirect
	github.com/aws/aws-sdk-go-v2/credentials v1.17.71 // indirect
	github.com/aws/aws-sdk-go-v2/feature/ec2/imds v1.16.33 // indirect
	github.com/aws/aws-sdk-go-v2/internal/configsources v1.4.18 // indirect
	github.com/aws/aws-sdk-go-v2/internal/endpoints/v2 v2.7.18 // indirect
	github.com/aws/aws-sdk-go-v2/internal/ini v1.8.1 // indirect
	github.com/aws/aws-sdk-go-v2/internal/v4a v1.3.27 // indirect
	github.com/aws/aws-sdk-go-v2/service/amp v1.36.0 // indirect
	github.com/aws/aws-sdk-go-v2/service/apigateway v1.28.12 // indirect
	github.com/aws/aws-sdk-go-v2/service/appsync v1.42.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/bedrockagentcorecontrol v1.14.1 // indirect
	github.com/aws/aws-sdk-go-v2/service/cloudfront v1.44.12 // indirect
	github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs v1.63.2 // indirect
	github.com/aws/aws-sdk-go-v2/service/docdb v1.41.7 // indirect
	github.com/aws/aws-sdk-go-v2/service/docdbelastic v1.15.5 // indirect
	github.com/aws/aws-sdk-go-v2/service/dsql v1.1.2 // indirect
	github.com/aws/aws-sdk-go-v2/service/ec2 v1.239.0 // indirect
	github.com/aws/aws-sdk-go-v2/service/ecs v1.54.6 // indirect
	github.com/aws/aws-sdk-go-v2/service/efs v1.35.4 // indirect
	github.com/aws/aws-sdk-go-v2/service/eks v1.74.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/iam v1.38.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/inspector2 v1.44.12 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/accept-encoding v1.13.0 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/checksum v1.4.8 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/presigned-url v1.13.1 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/s3shared v1.18.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/lakeformation v1.46.6 // indirect
	github.com/aws/aws-sdk-go-v2/service/lambda v1.87.1 // indirect
	github.com/aws/aws-sdk-go-v2/service/mgn v1.37.6 // indirect
	github.com/aws/aws-sdk-go-v2/service/neptunegraph v1.17.6 // indirect
	github.com/aws/aws-sdk-go-v2/service/networkfirewall v1.53.0 // indirect
	github.com/aws/aws-sdk-go-v2/service/ram v1.34.19 // indirect
	github.com/aws/aws-sdk-go-v2/service/route53profiles v1.4.17 // indirect
	github.com/aws/aws-sdk-go-v2/service/route53resolver v1.41.5 // indirect
	github.com/aws/aws-sdk-go-v2/service/s3 v1.72.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/s3control v1.52.7 // indirect
	github.com/aws/aws-sdk-go-v2/service/shield v1.34.18 // indirect
	github.com/aws/aws-sdk-go-v2/service/ssmquicksetup v1.3.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/sso v1.25.6 // indirect
	github.com/aws/aws-sdk-go-v2/service/ssooidc v1.30.4 // indirect
	github.com/aws/aws-sdk-go-v2/service/sts v1.34.1 // indirect
	github.com/aws/aws-sdk-go-v2/service/textract v1.40.17 // indirect
	github.com/aws/aws-sdk-go-v2/service/transfer v1.55.5 // indirect
	github.com/aws/smithy-go v1.24.2 // indirect
	github.com/benbjohnson/clock v1.3.0 // indirect
	github.com/fatih/color v1.18.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/gotidy/ptr v1.4.0 // indirect
	github.com/jmespath/go-jmespath v0.4.0 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/mb0/glob v0.0.0-20160210091149-1eb79d2de6c4 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/stevenle/topsort v0.2.0 // indirect
	github.com/urfave/cli/v3 v3.6.2 // indirect
	go.uber.org/ratelimit v0.3.1 // indirect
	golang.org/x/sync v0.19.0 // indirect
	golang.org/x/sys v0.25.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
