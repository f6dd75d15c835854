"""The library's sections against the sandbox: AWS state after each step, and reruns.

Each test uses names of its own, so they share one sandbox.
"""

from __future__ import annotations

import csv
import itertools
import json
import stat

import pytest

from runbook import attachment, audit, handover, policy, users
from runbook import params as P
from runbook.context import Context
from runbook.errors import StepError
from runbook.sinks import SharedCredentialsProfile

_ids = itertools.count(1)


@pytest.fixture
def names(shared_home, tmp_path):
    n = next(_ids)
    return {"user_name": f"svc-user-{n}", "policy_name": f"svc-policy-{n}",
            "credentials_profile": f"svc-{n}", "credentials_file": str(tmp_path / "credentials")}


def run_section(model, plan_fn, **values):
    p = model.from_values(values)
    ctx = Context(p)
    plan = plan_fn(ctx, p)
    return ctx, plan, plan.apply()


def create_user(names, **extra):
    return run_section(P.CreateUserParams, users.plan_user, user_name=names["user_name"],
                       credentials_profile=names["credentials_profile"],
                       credentials_file=names["credentials_file"], **extra)


def mutating(ctx, since: int) -> list[str]:
    return [r["operation"] for r in ctx.audit.records[since:] if audit.is_mutating(r)]


def test_create_user__makes_the_user_and_one_key_and_saves_it_to_the_profile(names):
    ctx, plan, outcome = create_user(names)
    assert outcome.outcome == "created"
    iam = ctx.client("iam")
    keys = iam.list_access_keys(UserName=names["user_name"])["AccessKeyMetadata"]
    assert len(keys) == 1 and keys[0]["Status"] == "Active"
    held = SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"]).read()
    assert held.access_key_id == keys[0]["AccessKeyId"]
    assert stat.S_IMODE((ctx.credentials_file()).stat().st_mode) == 0o600
    assert outcome.found["access_key_id"] == "AKIA" + "*" * 12 + keys[0]["AccessKeyId"][-4:]


def test_create_user__rerun__reuses_the_key_in_the_profile_and_changes_nothing(names):
    create_user(names)
    ctx, plan, outcome = create_user(names)
    assert outcome.outcome == "unchanged"
    assert mutating(ctx, 0) == []
    assert len(ctx.client("iam").list_access_keys(
        UserName=names["user_name"])["AccessKeyMetadata"]) == 1


def test_create_user__keeps_other_profiles_in_the_credentials_file(names, tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = keep-me\n")
    create_user(names)
    text = path.read_text()
    assert "[other]" in text and "keep-me" in text and f"[{names['credentials_profile']}]" in text


def test_create_user__with_csv_path__writes_the_console_layout_mode_0600(names, tmp_path):
    target = tmp_path / "dockercloud-user.csv"
    ctx, _, _ = create_user(names, csv_path=str(target))
    rows = list(csv.reader(target.read_text().splitlines()))
    assert rows[0] == ["User name", "Password", "Access key ID", "Secret access key",
                       "Console login link"]
    assert rows[1][0] == names["user_name"] and rows[1][2].startswith("AKIA")
    assert rows[1][4] == "https://123456789012.signin.aws.amazon.com/console"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_create_user__csv_path_naming_another_kind_of_file__is_refused_before_any_change(
        names, tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("month,cost\n2026-11,42\n")
    with pytest.raises(StepError) as caught:
        create_user(names, csv_path=str(target))
    assert caught.value.code == "ForeignFile"
    assert target.read_text() == "month,cost\n2026-11,42\n"
    ctx = Context(P.CreateUserParams.from_values({}))
    assert users.get_user(ctx.client("iam"), names["user_name"]) is None


def test_create_user__named_as_the_operator__is_refused_before_any_change(names):
    from runbook.sandbox import OPERATOR_USER

    ctx = Context(P.CreateUserParams.from_values({}))
    keys = ctx.client("iam").list_access_keys(UserName=OPERATOR_USER)["AccessKeyMetadata"]
    with pytest.raises(StepError) as caught:
        create_user(dict(names, user_name=OPERATOR_USER))
    assert caught.value.code == "ServiceUserIsOperator"
    assert "is the operator this runbook acts as" in str(caught.value)
    assert ctx.client("iam").list_access_keys(
        UserName=OPERATOR_USER)["AccessKeyMetadata"] == keys


def test_create_user__blocks__when_the_user_has_a_key_nobody_here_holds(names):
    ctx, _, _ = create_user(names)
    ctx.client("iam").create_access_key(UserName=names["user_name"])  # someone else's key
    SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"]).remove()
    with pytest.raises(StepError):
        create_user(names)
    keys = ctx.client("iam").list_access_keys(UserName=names["user_name"])["AccessKeyMetadata"]
    assert len(keys) == 2  # no third key was asked for


def test_create_user__blocks__when_the_profile_holds_another_users_key(names):
    create_user(names)
    other = dict(names, user_name=names["user_name"] + "-b")
    with pytest.raises(StepError) as caught:
        create_user(other)
    assert "writing there would lose it" in str(caught.value)


def test_create_user__dry_run__plans_without_any_mutating_call(names):
    ctx, plan, outcome = create_user(names, dry_run=True)
    assert outcome.outcome == "planned"
    assert [c.action for c in plan.changes] == ["create", "create"]
    assert mutating(ctx, 0) == []
    assert users.get_user(ctx.client("iam"), names["user_name"]) is None


def test_policy_document__standard__is_the_pages_document():
    assert policy.policy_document() == {
        "Version": "2012-10-17",
        "Statement": [{"Action": ["ec2:*", "iam:ListInstanceProfiles"], "Effect": "Allow",
                       "Resource": "*"}]}


def test_policy_document__region_limited__has_two_statements_as_on_the_page():
    document = policy.policy_document(limit_region="us-west-2")
    ec2, iam = document["Statement"]
    assert ec2 == {"Action": ["ec2:*"], "Effect": "Allow", "Resource": "*",
                   "Condition": {"StringEquals": {"ec2:Region": "us-west-2"}}}
    assert iam == {"Action": ["iam:ListInstanceProfiles"], "Effect": "Allow", "Resource": "*"}


def test_policy_document__pass_role__is_scoped_to_the_role_and_to_ec2():
    arn = "arn:aws:iam::123456789012:role/ecsInstanceRole"
    statement = policy.policy_document(pass_role_arn=arn)["Statement"][-1]
    assert statement["Action"] == ["iam:PassRole"] and statement["Resource"] == arn
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


@pytest.mark.parametrize("document, says", [
    ("{not json", "not JSON"),
    ({"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*",
                                              "Resource": "*"}]}, "Version is '2008-10-17'"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "ec2:*",
                                              "Resource": "*"}]}, "Effect is 'Permit'"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2RunInstances",
                                              "Resource": "*"}]}, "is not service:Action"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*"}]},
     "needs exactly one of Resource or NotResource"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
                                              "Condition": {"StringEqual": {"ec2:Region": "x"}}}]},
     "unknown condition operator 'StringEqual'"),
])
def test_check_grammar__finds_what_iam_would_reject(document, says):
    errors = [f for f in policy.check_grammar(document) if f.severity == "error"]
    assert any(says in f.what for f in errors), errors


def test_create_policy__makes_the_managed_policy_with_the_document(names):
    ctx, _, outcome = run_section(P.PolicyParams, policy.plan_policy,
                                  policy_name=names["policy_name"])
    assert outcome.outcome == "created"
    iam = ctx.client("iam")
    arn = ctx.arn("iam", f"policy/{names['policy_name']}")
    stored = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    assert policy.canonical(stored) == policy.canonical(policy.policy_document())


def test_create_policy__malformed_document__is_refused_before_any_call(names):
    p = P.PolicyParams.from_values({"policy_name": names["policy_name"]})
    ctx = Context(p)
    before = len(ctx.audit.records)
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2",
                                                   "Resource": "*"}]}
    with pytest.raises(StepError) as caught:
        policy.plan_policy(ctx, p, bad)
    assert caught.value.code == "MalformedPolicyDocument"
    assert len(ctx.audit.records) == before


def test_create_policy__changed_document__becomes_the_new_default_version(names):
    run_section(P.PolicyParams, policy.plan_policy, policy_name=names["policy_name"])
    ctx, _, outcome = run_section(P.PolicyParams, policy.plan_policy,
                                  policy_name=names["policy_name"], limit_region="us-west-2")
    assert outcome.outcome == "updated" and outcome.found["default_version"] == "v2"
    ctx2, _, again = run_section(P.PolicyParams, policy.plan_policy,
                                 policy_name=names["policy_name"], limit_region="us-west-2")
    assert again.outcome == "unchanged" and mutating(ctx2, 0) == []


def test_create_policy__with_five_versions__prunes_the_oldest_non_default_first(names):
    regions = ["us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "sa-east-1"]
    run_section(P.PolicyParams, policy.plan_policy, policy_name=names["policy_name"])
    for region in regions[:4]:
        run_section(P.PolicyParams, policy.plan_policy, policy_name=names["policy_name"],
                    limit_region=region)
    ctx, plan, outcome = run_section(P.PolicyParams, policy.plan_policy,
                                     policy_name=names["policy_name"], limit_region=regions[4])
    iam = ctx.client("iam")
    arn = ctx.arn("iam", f"policy/{names['policy_name']}")
    versions = {v["VersionId"]: v for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]}
    assert [c.action for c in plan.changes] == ["delete", "update"]
    assert "v1" not in versions and len(versions) == 5
    assert versions["v6"]["IsDefaultVersion"]
    ops = [r["operation"] for r in ctx.audit.records if audit.is_mutating(r)]
    assert ops == ["DeletePolicyVersion", "CreatePolicyVersion"]


def test_attach__attaches_once_and_a_rerun_changes_nothing(names):
    create_user(names)
    run_section(P.PolicyParams, policy.plan_policy, policy_name=names["policy_name"])
    ctx, _, outcome = run_section(P.AttachParams, attachment.plan_attach,
                                  user_name=names["user_name"], policy_name=names["policy_name"])
    assert outcome.outcome == "created"
    arns = attachment.attached_policy_arns(ctx.client("iam"), names["user_name"])
    assert arns == [ctx.arn("iam", f"policy/{names['policy_name']}")]
    ctx2, _, again = run_section(P.AttachParams, attachment.plan_attach,
                                 user_name=names["user_name"], policy_name=names["policy_name"])
    assert again.outcome == "unchanged" and mutating(ctx2, 0) == []


def test_attach__without_the_policy__blocks_and_names_the_section_to_run(names):
    create_user(names)
    with pytest.raises(StepError) as caught:
        run_section(P.AttachParams, attachment.plan_attach, user_name=names["user_name"],
                    policy_name=names["policy_name"])
    assert "run 01_create_user and 02_create_policy first" in str(caught.value)


def test_handover__confirms_the_profiles_key_is_the_users_and_active(names):
    create_user(names)
    ctx, _, outcome = run_section(P.HandoverParams, handover.plan_handover,
                                  user_name=names["user_name"],
                                  credentials_profile=names["credentials_profile"],
                                  credentials_file=names["credentials_file"])
    assert outcome.outcome == "unchanged"
    assert outcome.found["key_status"] == "Active"
    assert outcome.found["access_key_id"].startswith("AKIA************")


def test_handover__inactive_key__blocks_with_the_fix(names):
    ctx, _, _ = create_user(names)
    held = SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"]).read()
    ctx.client("iam").update_access_key(UserName=names["user_name"],
                                        AccessKeyId=held.access_key_id, Status="Inactive")
    with pytest.raises(StepError) as caught:
        run_section(P.HandoverParams, handover.plan_handover, user_name=names["user_name"],
                    credentials_profile=names["credentials_profile"],
                    credentials_file=names["credentials_file"])
    assert "is Inactive" in str(caught.value)


def test_context__account_id_of_another_account__is_refused_before_any_change(shared_home):
    p = P.CreateUserParams.from_values({"account_id": "000000000000"})
    with pytest.raises(StepError) as caught:
        Context(p)
    assert caught.value.code == "WrongAccount"


def test_audit__records_each_call_with_the_contract_keys_and_no_secret(names):
    ctx, _, _ = create_user(names)
    keys = {"time", "section", "service", "operation", "region", "params", "http_status",
            "request_id", "error_code", "duration_ms", "caller_arn"}
    records = audit.read(ctx.audit.path)
    assert records and all(keys <= set(r) for r in records)
    created = [r for r in records if r["operation"] == "CreateAccessKey"]
    assert created and created[-1]["http_status"] == 200
    held = SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"]).read()
    assert held.secret_access_key not in ctx.audit.path.read_text()
    assert json.dumps(records)  # plain JSON all the way down
