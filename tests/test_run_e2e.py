"""`runbook run` end to end: papermill, a real kernel per section, the moto server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from conftest import figure
from runbook import audit
from runbook.secrets import scan_tree
from runbook.sinks import SharedCredentialsProfile

pytestmark = pytest.mark.e2e
SECTIONS = ["01_create_user", "02_create_policy", "03_attach_policy", "04_add_credentials",
            "05_verify_link"]


def secret_of(home):
    return SharedCredentialsProfile(home / "sandbox" / "credentials", "dockercloud").read()


def assert_no_secret(result, home):
    held = secret_of(home)
    known = (held.secret_access_key,) if held else ()
    assert scan_tree(result.run_dir, known) == []
    assert not held or held.secret_access_key not in result.stdout + result.stderr


def test_first_run__links_the_account_and_leaves_the_audit_record(fresh_home, runbook_cli):
    result = runbook_cli("run", home=fresh_home)
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in result.run_dir.iterdir())
    assert files == sorted([f"{s}.ipynb" for s in SECTIONS] + ["audit.jsonl", "run.json"])
    run = result.run
    assert run["status"] == "ok" and run["target"] == "sandbox"
    assert run["account"] == "123456789012"
    assert [s["name"] for s in run["sections"]] == SECTIONS
    assert [s["outcome"] for s in run["sections"]] == ["created", "created", "created", "unchanged",
                                                       "unchanged"]
    assert set(run["files"]) == set(files) - {"run.json"}
    ops = [r["operation"] for r in result.audit if audit.is_mutating(r)]
    assert ops == ["CreateUser", "CreateAccessKey", "CreatePolicy", "AttachUserPolicy"]
    # Section 05 checks with the service user's key; every other call is the operator's.
    by_key = [r for r in result.audit if r["caller_arn"].endswith(":user/dockercloud-user")]
    assert {(r["section"], r["operation"]) for r in by_key} == {
        ("05_verify_link", op) for op in ("GetCallerIdentity", "RunInstances",
                                          "ListInstanceProfiles")}
    assert all(r["caller_arn"].endswith(":user/runbook-operator") for r in result.audit
               if r not in by_key)
    # The plain policy allows every region the sandbox lists in the partition, each tried.
    verified = result.section("05_verify_link")
    tried = sorted(r["region"] for r in result.audit if r["operation"] == "RunInstances")
    assert verified["regions_allowed"] == tried and "us-west-2" in tried
    assert verified["regions_denied"] == [] and verified["list_instance_profiles"] is True
    assert not [r for r in tried if r.startswith(("cn-", "us-gov-"))]
    # A headless run names its user and policy: section 03's form lists nothing.
    assert not {"ListUsers", "ListPolicies"} & {r["operation"] for r in result.audit}
    assert stat.S_IMODE((fresh_home / "sandbox" / "credentials").stat().st_mode) == 0o600
    assert_no_secret(result, fresh_home)


def test_first_run__the_written_profile_is_answered_as_the_service_user(fresh_home, runbook_cli):
    assert runbook_cli("run", home=fresh_home).returncode == 0
    url = runbook_cli("sandbox", "status", "--url", home=fresh_home).stdout.strip()
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or "aws"
    env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(fresh_home / "sandbox" / "credentials"),
           "AWS_CONFIG_FILE": os.devnull}
    done = subprocess.run([aws, "--profile", "dockercloud", "--endpoint-url", url, "--region",
                           "us-east-1", "sts", "get-caller-identity"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == "arn:aws:iam::123456789012:user/dockercloud-user"


def test_second_run__makes_no_mutating_call_and_reports_unchanged(fresh_home, runbook_cli):
    first = runbook_cli("run", home=fresh_home)
    key_before = secret_of(fresh_home).access_key_id
    second = runbook_cli("run", home=fresh_home)
    assert second.returncode == 0, second.stderr
    assert [s["outcome"] for s in second.run["sections"]] == ["unchanged"] * 5
    assert [r["operation"] for r in second.audit if audit.is_mutating(r)] == []
    assert secret_of(fresh_home).access_key_id == key_before
    assert first.run_dir != second.run_dir
    assert_no_secret(second, fresh_home)


def test_dry_run__on_an_empty_account__plans_everything_and_changes_nothing(fresh_home,
                                                                            runbook_cli):
    result = runbook_cli("run", "--dry-run", home=fresh_home)
    assert result.returncode == 0, result.stderr
    assert [s["outcome"] for s in result.run["sections"]] == ["planned"] * 5
    assert [r["operation"] for r in result.audit if audit.is_mutating(r)] == []
    assert not (fresh_home / "sandbox" / "credentials").exists()
    after = runbook_cli("run", home=fresh_home)  # the real run still creates everything
    assert [s["outcome"] for s in after.run["sections"]][:3] == ["created"] * 3


def test_run_with_limit_region_and_pass_role__creates_that_document(fresh_home, runbook_cli):
    role = "arn:aws:iam::123456789012:role/ecsInstanceRole"
    result = runbook_cli("run", "-p", "limit_region", "us-west-2", "-p", "pass_role_arn", role,
                         home=fresh_home)
    assert result.returncode == 0, result.stderr
    create = next(r for r in result.audit if r["operation"] == "CreatePolicy")
    document = json.loads(create["params"]["PolicyDocument"])
    assert document["Statement"][0]["Condition"] == {"StringEquals": {"ec2:Region": "us-west-2"}}
    assert document["Statement"][2]["Resource"] == role
    section = result.section("02_create_policy")
    assert section["limit_region"] == "us-west-2" and section["pass_role_arn"] == role
    assert result.section("05_verify_link")["regions_allowed"] == ["us-west-2"]
    # Changing the limit later adds a default version instead of a second policy.
    again = runbook_cli("run", "-p", "limit_region", "eu-west-1", home=fresh_home)
    assert again.section("02_create_policy")["outcome"] == "updated"
    ops = [r["operation"] for r in again.audit if audit.is_mutating(r)]
    assert ops == ["CreatePolicyVersion"]
    assert again.section("05_verify_link")["regions_allowed"] == ["eu-west-1"]


def test_bad_user_name__exits_2_names_the_rule_and_touches_nothing(fresh_home, runbook_cli):
    result = runbook_cli("run", "-p", "user_name", "docker cloud", home=fresh_home)
    assert result.returncode == 2
    assert "user_name='docker cloud'" in result.stderr
    assert "1-64 characters" in result.stderr
    assert result.run_dir is None  # no run folder, so no audit record of any call
    assert not (fresh_home / "sandbox" / "state.json").exists()  # no sandbox was even started


def test_bad_parameter__with_a_running_sandbox__sends_it_no_request(fresh_home, runbook_cli):
    assert runbook_cli("sandbox", "start", home=fresh_home).returncode == 0
    log = fresh_home / "sandbox" / "moto.log"
    before = log.read_text()
    result = runbook_cli("run", "-p", "region", "us-east-1 ", home=fresh_home)
    assert result.returncode == 2 and "region='us-east-1 '" in result.stderr
    assert log.read_text() == before


def test_params_file__with_a_list_at_the_top__exits_2(fresh_home, runbook_cli, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("- user_name: x\n")
    result = runbook_cli("run", "-f", str(params), home=fresh_home)
    assert result.returncode == 2
    assert "must hold a mapping of parameter names to values" in result.stderr


def test_failed_step__exits_1_and_names_section_error_and_notebook(fresh_home, runbook_cli,
                                                                   tmp_path):
    # A profile that holds some other key: section 01 must refuse to overwrite it.
    creds = tmp_path / "credentials"
    creds.write_text("[dockercloud]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                     "aws_secret_access_key = not-a-real-secret\n")
    result = runbook_cli("run", "-p", "credentials_file", str(creds), home=fresh_home)
    assert result.returncode == 1
    assert "section 01_create_user failed" in result.stderr
    assert "01_create_user.ipynb" in result.stderr
    run = result.run
    assert run["status"] == "failed"
    assert run["sections"][-1]["outcome"] == "failed"
    assert len(run["sections"]) == 1  # stopped at the first failure
    assert [r["operation"] for r in result.audit if audit.is_mutating(r)] == []


def test_sandbox_status__prints_the_endpoint_and_stop_stops_it(fresh_home, runbook_cli):
    runbook_cli("sandbox", "start", home=fresh_home)
    status = runbook_cli("sandbox", "status", home=fresh_home)
    assert status.returncode == 0
    assert json.loads(status.stdout)["endpoint"].startswith("http://127.0.0.1:")
    assert "secret" not in status.stdout
    assert runbook_cli("sandbox", "stop", home=fresh_home).returncode == 0
    assert runbook_cli("sandbox", "status", home=fresh_home).returncode == 3


def test_operator_with_only_the_readme_policy__and_no_pick_list_grant__links_the_account(
        fresh_home, runbook_cli, tmp_path):
    from runbook.operator import operator_policy

    # moto checks IAM actions against Resource "*" only (it does not know an IAM
    # call's resource ARN), so the scoped resources are widened here; the
    # action list is what this test proves complete. FormPickLists only serves
    # section 03's form in JupyterLab; a headless run does without it.
    document = operator_policy()
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "FormPickLists"]
    for statement in document["Statement"]:
        statement["Resource"] = "*"
    policy_file = tmp_path / "operator.json"
    policy_file.write_text(json.dumps(document))
    assert runbook_cli("sandbox", "start", "--operator-policy", str(policy_file),
                       home=fresh_home).returncode == 0
    result = runbook_cli("run", home=fresh_home)
    assert result.returncode == 0, result.stderr
    assert [r for r in result.audit if r["error_code"] == "AccessDenied"] == []


def test_run_with_an_instance_profile_the_user_may_not_pass__exits_1_with_the_fix(
        fresh_home, runbook_cli, monkeypatch):
    from runbook import params as P
    from runbook.context import Context

    monkeypatch.setenv("RUNBOOK_HOME", str(fresh_home))
    iam = Context(P.VerifyParams()).client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "ec2.amazonaws.com"}}]}
    role = iam.create_role(RoleName="node-role", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_instance_profile(InstanceProfileName="node-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="node-profile", RoleName="node-role")
    result = runbook_cli("run", "-p", "instance_profile", "node-profile", home=fresh_home)
    assert result.returncode == 1
    assert "section 05_verify_link failed: AccessDenied: iam:PassRole" in result.stderr
    assert f"-p pass_role_arn {role['Role']['Arn']}" in result.stderr
    verified = result.section("05_verify_link")
    assert verified["outcome"] == "failed" and verified["pass_role"] is False
    assert len(verified["regions_allowed"]) > 1 and result.run["status"] == "failed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_interrupted_in_a_section__records_how_far_it_got_and_a_rerun_finishes(
        signum, fresh_home, tmp_path, runbook_cli):
    figure("crash points tried")
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "runbook", "run", "--out", str(runs)],
        env={**os.environ, "RUNBOOK_HOME": str(fresh_home)}, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("[2/5]"):  # section 02 has begun; interrupt it in a cell
            time.sleep(0.05)
            process.send_signal(signum)
            break
    lines += process.stderr.read().splitlines(keepends=True)
    assert process.wait(timeout=60) == 130, "".join(lines)
    assert "Traceback" not in "".join(lines)
    assert any(line.startswith("run interrupted: ") for line in lines), "".join(lines)
    run_dir = next(runs.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["interrupted"] is True
    assert run["sections"][0]["outcome"] == "created"
    assert run["sections"][-1]["outcome"] == "failed" or run["not_run"]
    assert "05_verify_link" in run["not_run"]
    assert scan_tree(run_dir, (secret_of(fresh_home).secret_access_key,)) == []

    rerun = runbook_cli("run", home=fresh_home)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.section("01_create_user")["outcome"] == "unchanged"
    figure("crash points recovered")


def test_second_run_on_the_same_home_while_one_runs__is_refused_and_changes_nothing(
        fresh_home, tmp_path, runbook_cli):
    import fcntl

    (fresh_home / "run.lock").write_text("pid 4242")
    with open(fresh_home / "run.lock", "r+") as held:  # as a run in progress holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = runbook_cli("run", home=fresh_home)
    assert result.returncode == 1
    assert "another runbook run, rotate or unlink (pid 4242) is using" in result.stderr
    assert result.run_dir is None and not (fresh_home / "sandbox" / "state.json").exists()
    assert runbook_cli("run", "--dry-run", home=fresh_home).returncode == 0  # lock released
