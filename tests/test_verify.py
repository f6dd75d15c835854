"""Section 05 against the sandbox: the link check answers as real IAM would.

Each test links a user of its own (01-03 through the library), so they share
one sandbox.
"""

from __future__ import annotations

import itertools
import json

import boto3
import pytest
from botocore.stub import Stubber

from runbook import attachment, audit, policy, users, verify
from runbook import params as P
from runbook.context import Context
from runbook.errors import ParameterError, StepError
from runbook.evaluate import Request
from runbook.policy import validate_document

_ids = itertools.count(1)


@pytest.fixture
def names(shared_home, tmp_path):
    n = next(_ids)
    return {"user_name": f"verify-user-{n}", "credentials_profile": f"verify-{n}",
            "credentials_file": str(tmp_path / "credentials"), "policy_name": f"verify-policy-{n}"}


def link(names, document=None, **policy_values):
    """Sections 01-03 for ``names``; ``document`` is created directly, past validation."""
    user = {k: names[k] for k in ("user_name", "credentials_profile", "credentials_file")}
    p = P.CreateUserParams.from_values(user)
    users.plan_user(Context(p), p).apply()
    p = P.PolicyParams.from_values({"policy_name": names["policy_name"], **policy_values})
    ctx = Context(p)
    if document is None:
        policy.plan_policy(ctx, p).apply()
    else:
        ctx.client("iam").create_policy(PolicyName=names["policy_name"],
                                        PolicyDocument=json.dumps(document))
    p = P.AttachParams.from_values({"user_name": names["user_name"],
                                    "policy_name": names["policy_name"]})
    attachment.plan_attach(Context(p), p).apply()


def verify_plan(names, **extra):
    p = P.VerifyParams.from_values({k: names[k] for k in ("user_name", "credentials_profile",
                                                          "credentials_file")} | extra)
    ctx = Context(p)
    return ctx, verify.plan_verify(ctx, p)


def key_calls(ctx, names, operation):
    """The audited calls the service user's key made (its log is the section's file)."""
    arn = f"arn:aws:iam::123456789012:user/{names['user_name']}"
    return [r for r in audit.read(ctx.audit.path)
            if r["caller_arn"] == arn and r["operation"] == operation]


def moto_regions(ctx, partition="aws"):
    return sorted(r["RegionName"] for r in ctx.client("ec2").describe_regions()["Regions"]
                  if P.partition_of(r["RegionName"]) == partition)


def test_verify__standard_policy__allows_every_region_moto_lists_in_the_partition(names):
    link(names)
    ctx, plan = verify_plan(names)
    outcome = plan.apply()
    assert outcome.outcome == "unchanged"
    expected = moto_regions(ctx)
    assert "us-east-1" in expected and not [r for r in expected if r.startswith(("cn-", "us-gov-"))]
    assert outcome.found["regions_allowed"] == expected
    assert outcome.found["regions_denied"] == []
    assert outcome.found["list_instance_profiles"] is True
    assert isinstance(outcome.found["key_ready_seconds"], float)
    runs = key_calls(ctx, names, "RunInstances")
    assert sorted(r["region"] for r in runs) == expected  # one dry run per region
    assert all(r["params"]["DryRun"] is True and r["error_code"] == "DryRunOperation"
               for r in runs)


def test_verify__limit_region_us_west_2__allows_exactly_us_west_2(names):
    link(names, limit_region="us-west-2")
    ctx, plan = verify_plan(names)
    assert plan.apply().outcome == "unchanged"
    assert plan.found["regions_allowed"] == ["us-west-2"]
    assert plan.found["regions_denied"] == [r for r in moto_regions(ctx) if r != "us-west-2"]
    rows = {row[0]: row for row in plan.region_table().rows}
    assert rows["us-west-2"][1] == "allowed"
    assert rows["eu-west-1"][1:] == ["denied", (
        f"policy evaluation: implicitly denied: {names['policy_name']}#1: StringEquals "
        "ec2:Region ['us-west-2'] does not hold for ec2:Region=eu-west-1")]
    # moto itself said yes everywhere: the evaluator is what limits the region.
    runs = key_calls(ctx, names, "RunInstances")
    assert {r["error_code"] for r in runs} == {"DryRunOperation"}


def test_verify__verify_regions__dry_runs_only_those_regions(names):
    link(names, limit_region="us-west-2")
    ctx, plan = verify_plan(names, verify_regions=["us-west-2", "eu-west-1"])
    assert plan.apply().outcome == "unchanged"
    assert (plan.found["regions_allowed"], plan.found["regions_denied"]) == (
        ["us-west-2"], ["eu-west-1"])
    runs = key_calls(ctx, names, "RunInstances")
    assert sorted(r["region"] for r in runs) == ["eu-west-1", "us-west-2"]


def test_verify__verify_regions_outside_the_partition__is_a_bad_parameter_before_any_call(names):
    with pytest.raises(ParameterError) as caught:
        P.VerifyParams.from_values({"verify_regions": ["us-east-1", "cn-north-1"]})
    assert str(caught.value) == (
        "bad parameter: verify_regions=['us-east-1', 'cn-north-1']: cn-north-1 not in the "
        "'aws' partition of region 'us-east-1'; the account's regions are all in one partition")


def test_verify__one_statement_variant_forced_through__leaves_list_instance_profiles_denied(
        names):
    one_statement = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["ec2:*", "iam:ListInstanceProfiles"], "Resource": "*",
        "Condition": {"StringEquals": {"ec2:Region": "us-west-2"}}}]}
    assert [f.severity for f in validate_document(one_statement)][0] == "error"
    link(names, document=one_statement)
    ctx, plan = verify_plan(names)
    assert plan.found["regions_allowed"] == ["us-west-2"]
    assert plan.found["list_instance_profiles"] is False
    with pytest.raises(StepError) as caught:
        plan.apply()
    assert caught.value.code == "AccessDenied"
    assert ("iam:ListInstanceProfiles: policy evaluation: implicitly denied: "
            f"{names['policy_name']}#1: StringEquals ec2:Region ['us-west-2']: the request has "
            "no ec2:Region") in str(caught.value)
    assert "in a statement without a region condition" in str(caught.value)
    listed = key_calls(ctx, names, "ListInstanceProfiles")
    assert [r["error_code"] for r in listed] == [None]  # moto allowed it; IAM would not


def make_instance_profile(ctx, name):
    iam = ctx.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return role["Arn"]


def test_verify__instance_profile_without_pass_role__fails_with_the_fix(names):
    link(names)
    ctx, _ = verify_plan(names)
    role_arn = make_instance_profile(ctx, f"{names['user_name']}-node")
    ctx, plan = verify_plan(names, instance_profile=f"{names['user_name']}-node")
    assert plan.found["pass_role"] is False and plan.found["role_arn"] == role_arn
    with pytest.raises(StepError) as caught:
        plan.apply()
    assert caught.value.code == "AccessDenied"
    assert f"rerun 02_create_policy with -p pass_role_arn {role_arn}" in str(caught.value)
    assert '"unauthorized operation"' in str(caught.value)


def test_verify__instance_profile_with_pass_role__is_allowed(names):
    user = names["user_name"]
    link(names, pass_role_arn=f"arn:aws:iam::123456789012:role/{user}-node")
    ctx, _ = verify_plan(names)
    make_instance_profile(ctx, f"{user}-node")
    _, plan = verify_plan(names, instance_profile=f"{user}-node")
    assert plan.apply().outcome == "unchanged"
    assert plan.found["pass_role"] is True


def test_verify__dry_run_before_anything_exists__is_planned_and_calls_no_ec2(names):
    ctx, plan = verify_plan(names, dry_run=True)
    outcome = plan.apply()
    assert outcome.outcome == "planned"
    assert outcome.planned == [f"create link check {names['user_name']} "
                               f"({names['credentials_profile']})"]
    assert [r for r in ctx.audit.records if r["service"] == "ec2"] == []


def test_verify__no_user__fails_naming_the_section_to_run(names):
    _, plan = verify_plan(names)
    with pytest.raises(StepError) as caught:
        plan.apply()
    assert caught.value.code == "NoSuchEntity"
    assert f"no user {names['user_name']}; fix: run 01_create_user first" in str(caught.value)


def test_verify__policy_not_attached__denies_every_region_and_fails(names):
    user = {k: names[k] for k in ("user_name", "credentials_profile", "credentials_file")}
    p = P.CreateUserParams.from_values(user)
    users.plan_user(Context(p), p).apply()
    _, plan = verify_plan(names)
    assert plan.found["regions_allowed"] == []
    with pytest.raises(StepError) as caught:
        plan.apply()
    assert caught.value.code == "UnauthorizedOperation"


def test_verify_params__bad_instance_profile__names_parameter_value_and_rule():
    with pytest.raises(ParameterError) as caught:
        P.VerifyParams.from_values({"instance_profile": "my profile"})
    assert str(caught.value) == (
        "bad parameter: instance_profile='my profile': ' ' at position 2 is not allowed; "
        "an instance profile name must be 1-128 characters of A-Z a-z 0-9 and _+=,.@-")


@pytest.mark.parametrize("region, partition", [
    ("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"),
    ("eu-west-9", "aws")])
def test_partition_of__uses_botocore_regions_then_its_patterns(region, partition):
    assert P.partition_of(region) == partition


def test_simulator_judge__sends_the_context_entries_and_reads_the_decision():
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="y")
    user = "arn:aws:iam::123456789012:user/dockercloud-user"
    resource = "arn:aws:ec2:eu-west-1:123456789012:instance/*"
    with Stubber(iam) as stub:
        stub.add_response("simulate_principal_policy", {"EvaluationResults": [{
            "EvalActionName": "ec2:RunInstances", "EvalDecision": "implicitDeny",
            "MatchedStatements": [], "MissingContextValues": []}]}, {
            "PolicySourceArn": user, "ActionNames": ["ec2:RunInstances"],
            "ResourceArns": [resource], "ContextEntries": [
                {"ContextKeyName": "ec2:Region", "ContextKeyValues": ["eu-west-1"],
                 "ContextKeyType": "string"},
                {"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": ["eu-west-1"],
                 "ContextKeyType": "string"}]})
        decision = verify.SimulatorJudge(iam, user)(Request(
            "ec2:RunInstances", resource, {"ec2:Region": "eu-west-1",
                                           "aws:RequestedRegion": "eu-west-1"}))
    assert not decision.allowed and decision.decision == "implicitDeny"


class _AnsweringEc2:
    """An EC2 client double that answers RunInstances with one error code."""

    def __init__(self, code):
        self.code = code

    def run_instances(self, **params):
        assert params["DryRun"] is True
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self.code, "Message": "m"}}, "RunInstances")


@pytest.mark.parametrize("code, judged, allowed, why", [
    ("DryRunOperation", True, True, "dry run succeeded; policy evaluation: allowed by p#1"),
    ("DryRunOperation", False, False, "policy evaluation: implicitly denied: no statement "
                                      "allows ec2:RunInstances"),
    ("UnauthorizedOperation", True, False, "EC2 answered UnauthorizedOperation: m"),
    ("InvalidAMIID.NotFound", True, True, "EC2 refused the placeholder image "
                                          "(InvalidAMIID.NotFound); policy evaluation: "
                                          "allowed by p#1"),
])
def test_dry_run_region__combines_ec2s_answer_with_the_judges(code, judged, allowed, why):
    policies = {"p": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:*" if judged else "s3:*", "Resource": "*"}]}}
    result = verify.dry_run_region(_AnsweringEc2(code), "eu-west-1",
                                   verify.EvaluatorJudge(policies), "*")
    assert (result.allowed, result.why) == (allowed, why)
