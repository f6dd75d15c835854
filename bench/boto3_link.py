"""Baseline (b): the throwaway boto3 script a person would write for the same steps.

Run as its own process, as such a script would be. Reads the endpoint and the
operator's sandbox key from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY); never prints the new key.
"""

import json
import sys

import boto3
from botocore.exceptions import ClientError

DOCUMENT = {"Version": "2012-10-17", "Statement": [
    {"Action": ["ec2:*", "iam:ListInstanceProfiles"], "Effect": "Allow", "Resource": "*"}]}


def main(user: str, policy: str) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    arn = iam.create_policy(PolicyName=policy, PolicyDocument=json.dumps(DOCUMENT))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    own = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1")
    del key
    own.client("sts").get_caller_identity()
    own.client("ec2").describe_regions()
    own.client("iam").list_instance_profiles()
    try:
        own.client("ec2").run_instances(ImageId="ami-12c6146b", InstanceType="t2.micro",
                                        MinCount=1, MaxCount=1, DryRun=True)
    except ClientError as err:
        if err.response["Error"]["Code"] != "DryRunOperation":
            raise


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
