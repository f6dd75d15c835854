"""An operator without a permission the link needs: the AWS error, the action, and what was done.

The sandbox's operator gets the README's least-privilege policy minus one
action. moto checks IAM actions against ``Resource: "*"`` only (it does not
know an IAM call's resource ARN), so the resources are widened.
"""

from __future__ import annotations

import json

import pytest

from runbook.operator import operator_policy

pytestmark = pytest.mark.e2e


def start_narrow_operator(home, runbook_cli, tmp_path, without: str) -> None:
    document = operator_policy()
    for statement in document["Statement"]:
        statement["Resource"] = "*"
        statement["Action"] = [a for a in statement["Action"] if a != without]
    path = tmp_path / "operator.json"
    path.write_text(json.dumps(document))
    assert runbook_cli("sandbox", "start", "--operator-policy", str(path),
                       home=home).returncode == 0


def test_operator_denied_a_read__fails_that_section_with_the_code_and_the_action(
        fresh_home, runbook_cli, tmp_path):
    start_narrow_operator(fresh_home, runbook_cli, tmp_path, "iam:ListAttachedUserPolicies")
    result = runbook_cli("run", home=fresh_home)
    assert result.returncode == 1
    assert "section 03_attach_policy failed: AccessDenied: " in result.stderr
    assert "iam:ListAttachedUserPolicies" in result.stderr
    assert "03_attach_policy.ipynb" in result.stderr
    run = result.run
    assert run["status"] == "failed"
    assert [(s["name"], s["outcome"]) for s in run["sections"]] == [
        ("01_create_user", "created"), ("02_create_policy", "created"),
        ("03_attach_policy", "failed")]
    assert run["sections"][0]["done"] == ["create IAM user dockercloud-user",
                                          "create access key (new)"]
    assert run["sections"][1]["done"] == ["create managed policy dockercloud-policy"]
    failed = run["sections"][2]
    assert failed["done"] == []
    error = failed["error"]
    assert (error["code"], error["operation"], error["change"]) == (
        "AccessDenied", "ListAttachedUserPolicies", "plan")
    assert "not authorized to perform: iam:ListAttachedUserPolicies" in error["message"]
    assert run["not_run"] == ["04_add_credentials", "05_verify_link"]
    denied = [r for r in result.audit if r["error_code"] == "AccessDenied"]
    assert [(r["operation"], r["http_status"], r["attempts"]) for r in denied] == [
        ("ListAttachedUserPolicies", 403, 1)]  # not retried: a denial is not transient
    assert "AttachUserPolicy" not in [r["operation"] for r in result.audit]


def test_operator_denied_a_write__fails_at_that_change_and_says_nothing_was_done(
        fresh_home, runbook_cli, tmp_path):
    start_narrow_operator(fresh_home, runbook_cli, tmp_path, "iam:CreatePolicy")
    result = runbook_cli("run", home=fresh_home)
    assert result.returncode == 1
    assert "section 02_create_policy failed: AccessDenied: " in result.stderr
    assert "iam:CreatePolicy" in result.stderr
    run = result.run
    assert [(s["name"], s["outcome"]) for s in run["sections"]] == [
        ("01_create_user", "created"), ("02_create_policy", "failed")]
    failed = run["sections"][1]
    assert failed["done"] == []
    assert (failed["error"]["code"], failed["error"]["operation"], failed["error"]["change"]) == (
        "AccessDenied", "CreatePolicy", "create managed policy dockercloud-policy")
    assert run["not_run"] == ["03_attach_policy", "04_add_credentials", "05_verify_link"]


def test_sandbox_start__with_another_operator_policy_while_one_runs__refuses(fresh_home,
                                                                            runbook_cli,
                                                                            tmp_path):
    assert runbook_cli("sandbox", "start", home=fresh_home).returncode == 0  # admin operator
    path = tmp_path / "narrow.json"
    path.write_text(json.dumps(operator_policy()))
    refused = runbook_cli("sandbox", "start", "--operator-policy", str(path), home=fresh_home)
    assert refused.returncode == 1
    assert "a sandbox already runs" in refused.stderr and "runbook sandbox stop" in refused.stderr


def _operator_request(record: dict, account: str):
    """The IAM request an audited operator call makes: action, resource ARN, condition keys.

    moto checks the operator's permissions against ``Resource: "*"`` only, so
    the README's resource-scoped policies are checked here, with the
    runbook's own IAM evaluator, against what each call really names.
    """
    from runbook.evaluate import Request

    params = record["params"]
    iam = f"arn:aws:iam::{account}"
    action = f"{record['service']}:{record['operation']}"
    context = {}
    if record["operation"] in ("AttachUserPolicy", "DetachUserPolicy"):
        context["iam:PolicyARN"] = params["PolicyArn"]
    if record["operation"] in ("RemoveUserFromGroup", "AddUserToGroup"):
        resource = f"{iam}:group/{params['GroupName']}"
    elif "SerialNumber" in params and record["operation"] == "DeleteVirtualMFADevice":
        resource = params["SerialNumber"]
    elif "UserName" in params:
        resource = f"{iam}:user/{params['UserName']}"
    elif "PolicyArn" in params:
        resource = params["PolicyArn"]
    elif record["operation"] == "CreatePolicy":
        resource = f"{iam}:policy{params.get('Path', '/')}{params['PolicyName']}"
    elif "InstanceProfileName" in params:
        resource = f"{iam}:instance-profile/{params['InstanceProfileName']}"
    elif "PolicySourceArn" in params:
        resource = params["PolicySourceArn"]
    else:
        resource = "*"
    return Request(action, resource, context)


def _operator_calls(result) -> list[dict]:
    # GetCallerIdentity needs no permission; the service user's own calls are not the operator's.
    return [r for r in result.audit if r["caller_arn"].endswith(":user/runbook-operator")
            and r["operation"] != "GetCallerIdentity"]


def test_readme_operator_policies__allow_every_call_of_a_link_rotate_and_unlink__as_scoped(
        fresh_home, runbook_cli):
    from runbook.evaluate import Request, evaluate
    from runbook.operator import rotate_operator_policy, unlink_operator_policy

    jobs = [("run", operator_policy()), ("rotate", rotate_operator_policy()),
            ("unlink", unlink_operator_policy())]
    for command, policy in jobs:
        result = runbook_cli(command, *(["--confirm"] if command == "unlink" else []),
                             "-p", "account_id", "123456789012", home=fresh_home)
        assert result.returncode == 0, result.stderr
        calls = _operator_calls(result)
        assert calls, command
        for record in calls:
            request = _operator_request(record, "123456789012")
            decision = evaluate({"operator": policy}, request)
            assert decision.allowed, (command, request, decision.reason)
    # ... and no more than the service user and its policy: the scoping bites.
    link = operator_policy()
    other_user = Request("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/admin")
    other_policy = Request("iam:AttachUserPolicy",
                           "arn:aws:iam::123456789012:user/dockercloud-user",
                           {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"})
    assert not evaluate({"operator": link}, other_user).allowed
    assert not evaluate({"operator": link}, other_policy).allowed
