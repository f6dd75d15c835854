"""Validate Policy: grammar plus the linter, before any call; errors block creation."""

from __future__ import annotations

import itertools
import json

import pytest

from runbook import params as P
from runbook import policy, validate
from runbook.context import Context
from runbook.errors import StepError
from runbook.policy import PolicyFinding, policy_document, validate_document

ROLE = "arn:aws:iam::123456789012:role/ecsInstanceRole"
ONE_STATEMENT = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["ec2:*", "iam:ListInstanceProfiles"], "Resource": "*",
    "Condition": {"StringEquals": {"ec2:Region": "us-west-2"}}}]}
_ids = itertools.count(1)


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def errors(findings):
    return [f for f in findings if f.severity == "error"]


@pytest.mark.parametrize("document", [
    policy_document(), policy_document("us-west-2"), policy_document(pass_role_arn=ROLE),
    policy_document("eu-west-1", ROLE)], ids=["standard", "region", "pass_role", "both"])
def test_validate_document__the_runbooks_documents__have_no_error_or_warning(document):
    assert [f for f in validate_document(document) if f.severity != "info"] == []


def test_validate_document__typo_in_an_action__is_an_error_with_the_real_action():
    findings = validate_document(doc({"Effect": "Allow", "Action": "ec2:RunInstance",
                                      "Resource": "*"}))
    assert findings == [PolicyFinding("error", "1", "unknown action ec2:RunInstance",
                                      'did you mean "ec2:RunInstances"?')]


def test_validate_document__unknown_service__is_an_error_that_moto_would_accept():
    findings = validate_document(doc({"Effect": "Allow", "Action": "foo:Bar", "Resource": "*"}))
    assert findings == [PolicyFinding("error", "1", "unknown action foo:Bar",
                                      "'foo' is not an AWS service prefix")]


def test_validate_document__one_statement_region_limit__is_an_error_with_the_split_as_fix():
    findings = validate_document(ONE_STATEMENT)
    assert errors(findings) == [PolicyFinding(
        "error", "1", "condition key ec2:Region does not apply to iam:ListInstanceProfiles",
        "iam:ListInstanceProfiles has no region, so ec2:Region never matches it: put it in a "
        "second statement without the condition, as the procedure does")]


def test_validate_document__unscoped_pass_role__is_a_warning_naming_arn_and_passed_to_service():
    findings = validate_document(doc({"Effect": "Allow", "Action": "iam:PassRole",
                                      "Resource": "*"}))
    assert [(f.severity, f.statement) for f in findings] == [("warning", "1")]
    assert "iam:PassedToService" in findings[0].fix and "ec2.amazonaws.com" in findings[0].fix
    assert "role/<name>" in findings[0].fix


def test_validate_document__ec2_region__is_information_recommending_requested_region():
    findings = validate_document(policy_document("us-west-2"))
    assert [(f.severity, f.statement) for f in findings] == [("info", "1")]
    assert "aws:RequestedRegion" in findings[0].what


def test_validate_document__requested_region__has_no_finding():
    assert validate_document(doc({"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
                                  "Condition": {"StringEquals": {
                                      "aws:RequestedRegion": "us-west-2"}}})) == []


@pytest.mark.parametrize("condition, what, fix", [
    ({"StringEquals": {"aws:CurrentTime": "2020"}},
     "Type mismatch: aws:CurrentTime requires a value of type Date but given ['2020']",
     "give aws:CurrentTime an ISO 8601 time such as 2026-12-31T23:59:59Z, with a Date "
     "operator (DateLessThan or DateGreaterThan)"),
    ({"DateLessThan": {"ec2:Region": "2026-01-01T00:00:00Z"}},
     "Type mismatch: DateLessThan requires a value of type Date but given String",
     "DateLessThan compares Date values but the key is of type String: use StringEquals or "
     "StringLike"),
])
def test_validate_document__a_value_or_operator_of_the_wrong_type__is_a_warning_naming_the_fix(
        condition, what, fix):
    document = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*",
        "Condition": condition}]}
    warnings = [f for f in validate_document(document) if f.severity == "warning"]
    assert [(f.what, f.fix) for f in warnings] == [(what, fix)]


def test_validate_document__errors_come_first_then_warnings_then_information():
    findings = validate_document(doc(
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:Region": "us-west-2"}}},
        {"Effect": "Allow", "Action": "ec2:RunInstance", "Resource": "*"}))
    assert [(f.severity, f.statement) for f in findings] == [
        ("error", "3"), ("warning", "1"), ("info", "2")]


def test_validate_document__grammar_errors__are_reported_and_that_statement_is_not_linted():
    findings = validate_document(doc({"Effect": "Permit", "Action": "foo:Bar", "Resource": "*"}))
    assert [f.what for f in findings] == ["Effect is 'Permit'"]


def test_validate_document__json_text__gives_the_same_findings_as_the_dict():
    assert validate_document(json.dumps(ONE_STATEMENT)) == validate_document(ONE_STATEMENT)


def test_validate_document__repeat_call__is_answered_from_the_cache():
    validate_document(ONE_STATEMENT)
    before = validate._lint_statement.cache_info()
    again = validate_document(ONE_STATEMENT)
    after = validate._lint_statement.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    assert again == validate_document(ONE_STATEMENT)


def test_findings_table__shows_severity_statement_what_and_fix():
    table = policy.findings_table(validate_document(ONE_STATEMENT))
    assert table.headers == ["severity", "statement", "what", "how to fix"]
    assert table.rows[0][:3] == ["error", "1", "condition key ec2:Region does not apply to "
                                                "iam:ListInstanceProfiles"]


def test_plan_policy__typo_in_an_action__never_reaches_iam(shared_home):
    name = f"typo-policy-{next(_ids)}"
    p = P.PolicyParams.from_values({"policy_name": name})
    ctx = Context(p)
    bad = doc({"Effect": "Allow", "Action": ["ec2:RunInstance"], "Resource": "*"})
    with pytest.raises(StepError) as caught:
        policy.plan_policy(ctx, p, bad)
    assert caught.value.code == "MalformedPolicyDocument"
    assert "statement 1: unknown action ec2:RunInstance" in str(caught.value)
    assert 'To fix: did you mean "ec2:RunInstances"?' in str(caught.value)
    assert [r for r in ctx.audit.records if r["service"] == "iam"] == []


def test_plan_policy__a_warning__does_not_block_creation(shared_home):
    name = f"warned-policy-{next(_ids)}"
    p = P.PolicyParams.from_values({"policy_name": name})
    ctx = Context(p)
    warned = doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})
    outcome = policy.plan_policy(ctx, p, warned).apply()
    assert outcome.outcome == "created"
    assert ctx.client("iam").get_policy(PolicyArn=ctx.arn("iam", f"policy/{name}"))


def test_validate_document__a_second_process__answers_from_the_disk_cache_without_parliament(
        tmp_path):
    import os
    import subprocess
    import sys

    code = ("import json, sys; from runbook import policy; "
            "found = policy.validate_document(policy.policy_document('us-west-2')); "
            "print(json.dumps([[f.severity, f.what] for f in found])); "
            "print('parliament' in sys.modules)")
    env = {**os.environ, "RUNBOOK_HOME": str(tmp_path)}
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True).stdout.splitlines()
                     for _ in range(2))
    assert first[1] == "True" and second[1] == "False"
    assert first[0] == second[0] and "aws:RequestedRegion" in first[0]
    assert list((tmp_path / "cache").glob("lint-*.json"))
