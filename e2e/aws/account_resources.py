"""Resources in one AWS account, made and listed with the AWS SDK for Python (boto3, from the
test venv): what a lease holder leaves behind, and what a reset left.

    account_resources.py [--assume <role arn>] populate <count> <prefix>   # makes resources
    account_resources.py [--assume <role arn>] inventory                    # lists them
    account_resources.py [--assume <role arn>] role <name>                  # makes one role

Credentials, region and endpoint come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL), as for any AWS client;
with --assume, from assuming that role first (e.g. an account's admin role). Each prints one
JSON object: resource type (aws-nuke's names) to a sorted list of names.
Test support only.
"""

import io
import json
import os
import sys
import zipfile

import boto3

TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
READ_ONLY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)


SESSION = None


def start_session(role_arn):
    """The session every client uses (boto3 reads AWS_DEFAULT_REGION; the operator's Secrets and
    Jobs set AWS_REGION)."""
    global SESSION
    SESSION = boto3.session.Session(region_name=os.environ.get("AWS_REGION"))
    if role_arn:
        credentials = SESSION.client("sts").assume_role(
            RoleArn=role_arn, RoleSessionName="account-resources"
        )["Credentials"]
        SESSION = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=SESSION.region_name,
        )


def clients():
    return (SESSION.client(service) for service in ("s3", "iam", "ec2", "lambda"))


def lambda_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def populate(count, prefix):
    """Makes `count` resources, cycling through the kinds a lease holder typically leaves."""
    s3, iam, ec2, lam = clients()
    image = ec2.describe_images()["Images"][0]["ImageId"]
    role_arn = None
    made = {}
    kinds = ["bucket", "user", "role", "policy", "instance", "function"]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        name = f"{prefix}-{kind}-{i}"
        if kind == "bucket":
            s3.create_bucket(Bucket=name)
            for key in ("a.txt", "dir/b.txt"):
                s3.put_object(Bucket=name, Key=key, Body=b"left behind")
            made.setdefault("S3Bucket", []).append(name)
        elif kind == "user":
            iam.create_user(UserName=name)
            iam.create_access_key(UserName=name)
            made.setdefault("IAMUser", []).append(name)
        elif kind == "role":
            role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_POLICY)[
                "Role"
            ]["Arn"]
            made.setdefault("IAMRole", []).append(name)
        elif kind == "policy":
            iam.create_policy(PolicyName=name, PolicyDocument=READ_ONLY_POLICY)
            made.setdefault("IAMPolicy", []).append(name)
        elif kind == "instance":
            instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
            made.setdefault("EC2Instance", []).append(instance["InstanceId"])
        else:
            if role_arn is None:
                role_arn = iam.create_role(
                    RoleName=f"{prefix}-function-role", AssumeRolePolicyDocument=TRUST_POLICY
                )["Role"]["Arn"]
                made.setdefault("IAMRole", []).append(f"{prefix}-function-role")
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role_arn,
                Handler="handler.handler",
                Code={"ZipFile": lambda_zip()},
            )
            made.setdefault("LambdaFunction", []).append(name)
    return {kind: sorted(names) for kind, names in made.items()}


def inventory():
    """What the account holds, of the kinds `populate` makes (plus attached role policies)."""
    s3, iam, ec2, lam = clients()
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    attachments = []
    for role in roles:
        for policy in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            attachments.append(f"{role} -> {policy['PolicyName']}")
    instances = [
        instance["InstanceId"]
        for reservation in ec2.describe_instances()["Reservations"]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    held = {
        "S3Bucket": [b["Name"] for b in s3.list_buckets().get("Buckets", [])],
        "IAMUser": [u["UserName"] for u in iam.list_users()["Users"]],
        "IAMRole": roles,
        "IAMRolePolicyAttachment": attachments,
        "IAMPolicy": [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]],
        "EC2Instance": instances,
        "LambdaFunction": [f["FunctionName"] for f in lam.list_functions()["Functions"]],
    }
    return {kind: sorted(names) for kind, names in held.items()}


def main(args):
    role_arn = None
    if args[:1] == ["--assume"] and len(args) > 1:
        role_arn, args = args[1], args[2:]
    start_session(role_arn)
    if args[:1] == ["role"] and len(args) == 2:
        SESSION.client("iam").create_role(RoleName=args[1], AssumeRolePolicyDocument=TRUST_POLICY)
        result = {"IAMRole": [args[1]]}
    elif args[:1] == ["populate"] and len(args) == 3:
        result = populate(int(args[1]), args[2])
    elif args == ["inventory"]:
        result = inventory()
    else:
        sys.exit(__doc__)
    json.dump(result, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
