"""IAM's limits: two access keys per user, five versions per managed policy."""

from __future__ import annotations

import json

import boto3
import pytest

from runbook import audit, policy, users
from runbook import params as P
from runbook.context import Context
from runbook.errors import StepError
from runbook.secrets import mask_key_id
from runbook.sinks import SharedCredentialsProfile


def test_user_with_two_keys_one_inactive__gets_the_fix_and_no_third_key(shared_home, tmp_path):
    values = {"user_name": "limits-two-keys", "credentials_profile": "two",
              "credentials_file": str(tmp_path / "credentials")}
    p = P.CreateUserParams.from_values(values)
    ctx = Context(p)
    iam = ctx.client("iam")
    iam.create_user(UserName="limits-two-keys")
    first = iam.create_access_key(UserName="limits-two-keys")["AccessKey"]["AccessKeyId"]
    iam.create_access_key(UserName="limits-two-keys")
    iam.update_access_key(UserName="limits-two-keys", AccessKeyId=first, Status="Inactive")
    since = len(ctx.audit.records)

    plan = users.plan_user(ctx, p)
    assert [c.action for c in plan.changes] == ["unchanged", "blocked"]
    with pytest.raises(StepError) as caught:
        plan.apply()
    message = str(caught.value)
    assert "limits-two-keys already has 2 access keys, IAM's limit of 2 per user" in message
    assert f"Delete the Inactive key {mask_key_id(first)} and rerun" in message
    assert ("aws iam delete-access-key --user-name limits-two-keys --access-key-id "
            "<the key's full ID>") in message
    assert [r["operation"] for r in ctx.audit.records[since:] if audit.is_mutating(r)] == []
    assert len(users.list_keys(iam, "limits-two-keys")) == 2
    assert SharedCredentialsProfile(values["credentials_file"], "two").read() is None


@pytest.mark.e2e
def test_run__policy_with_five_versions__prunes_the_oldest_non_default_then_adds_one(
        shared_home, runbook_cli, tmp_path):
    from runbook import sandbox

    state = sandbox.start()
    iam = boto3.client("iam", endpoint_url=state["endpoint"], region_name="us-east-1",
                       aws_access_key_id=state["operator_access_key_id"],
                       aws_secret_access_key=state["operator_secret_access_key"])
    name = "limits-five-versions"
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(
        policy.policy_document()))["Policy"]["Arn"]
    for region in ["us-west-2", "eu-west-1", "eu-central-1", "ap-south-1"]:
        iam.create_policy_version(PolicyArn=arn, SetAsDefault=True, PolicyDocument=json.dumps(
            policy.policy_document(limit_region=region)))
    # Make v3 the default, so the newest (v5) is not: the oldest non-default is v1.
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v3")
    result = runbook_cli("run", "-p", "policy_name", name, "-p", "user_name", name,
                         "-p", "credentials_profile", name, "-p", "credentials_file",
                         str(tmp_path / "credentials"), "-p", "limit_region", "sa-east-1",
                         home=shared_home)
    assert result.returncode == 0, result.stderr
    assert result.section("02_create_policy")["outcome"] == "updated"
    calls = [(r["operation"], r["params"].get("VersionId")) for r in result.audit
             if r["operation"] in ("DeletePolicyVersion", "CreatePolicyVersion")]
    assert calls == [("DeletePolicyVersion", "v1"), ("CreatePolicyVersion", None)]
    versions = {v["VersionId"]: v["IsDefaultVersion"]
                for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]}
    assert versions == {"v2": False, "v3": False, "v4": False, "v5": False, "v6": True}
    stored = iam.get_policy_version(PolicyArn=arn, VersionId="v6")["PolicyVersion"]["Document"]
    assert policy.canonical(stored) == policy.canonical(
        policy.policy_document(limit_region="sa-east-1"))
