"""Unlink: everything the link made goes, in the order IAM requires, and only with confirm.

moto lets ``DeleteUser`` through while access keys or a login profile remain
(real IAM answers ``DeleteConflict``), so the order is asserted from the audit
log, call by call. Library tests share one sandbox with names of their own.
"""

from __future__ import annotations

import datetime
import itertools
import json

import pytest

from runbook import attachment, audit, policy, unlink, users
from runbook import params as P
from runbook.context import Context
from runbook.errors import ParameterError
from runbook.secrets import mask_key_id, scan_tree
from runbook.sinks import SharedCredentialsProfile

_ids = itertools.count(1)
INLINE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]})


@pytest.fixture
def names(shared_home, tmp_path):
    n = next(_ids)
    return {"user_name": f"unl-user-{n}", "policy_name": f"unl-policy-{n}",
            "credentials_profile": f"unl-{n}", "credentials_file": str(tmp_path / "credentials")}


def link(names, **extra):
    """Sections 01-03 for these names, through the library."""
    for model, plan in ((P.CreateUserParams, users.plan_user),
                        (P.PolicyParams, policy.plan_policy),
                        (P.AttachParams, attachment.plan_attach)):
        values = {k: v for k, v in {**names, **extra}.items() if k in model.names()}
        p = model.from_values(values)
        plan(Context(p), p).apply()
    p = P.UnlinkParams.from_values(names)
    return Context(p)


def unlink_now(names, **extra):
    p = P.UnlinkParams.from_values({**names, **extra})
    ctx = Context(p)
    plan = unlink.plan_unlink(ctx, p)
    return ctx, plan, plan.apply()


def mutating(ctx):
    return [r["operation"] for r in ctx.audit.records if audit.is_mutating(r)]


def profile(names):
    return SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"])


def self_signed_certificate(name: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_unlink__without_confirm__shows_the_plan_and_deletes_nothing(names):
    ctx = link(names)
    key = profile(names).read().access_key_id
    ctx, plan, outcome = unlink_now(names)
    assert outcome.outcome == "planned"
    assert outcome.found["confirm"] == unlink.NOT_CONFIRMED
    assert outcome.planned == [
        f"delete access key {mask_key_id(key)}",
        f"delete policy attachment {names['policy_name']} -> {names['user_name']}",
        f"delete IAM user {names['user_name']}",
        f"delete managed policy {names['policy_name']}",
        f"delete credentials profile {names['credentials_profile']}"]
    assert mutating(ctx) == []
    assert users.get_user(ctx.client("iam"), names["user_name"]) is not None
    assert profile(names).read().access_key_id == key


def test_unlink__deletes_everything_in_the_order_iam_requires(names, tmp_path):
    csv_path = str(tmp_path / "key.csv")
    link(names, csv_path=csv_path)
    user, group = names["user_name"], names["user_name"] + "-group"
    iam = Context(P.UnlinkParams.from_values(names)).client("iam")
    # Everything that makes real IAM refuse DeleteUser, one of each (two keys).
    iam.create_access_key(UserName=user)
    iam.create_login_profile(UserName=user, Password="Unlink-test-0nly!")
    serial = iam.create_virtual_mfa_device(
        VirtualMFADeviceName=user + "-mfa")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(UserName=user, SerialNumber=serial, AuthenticationCode1="123456",
                          AuthenticationCode2="654321")
    iam.upload_signing_certificate(UserName=user, CertificateBody=self_signed_certificate(user))
    iam.upload_ssh_public_key(UserName=user, SSHPublicKeyBody="ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB"
                                                              "AAABAQC7 unlink-test")
    iam.put_user_policy(UserName=user, PolicyName="inline", PolicyDocument=INLINE)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    # A second policy version, which IAM requires to go before the policy.
    p = P.PolicyParams.from_values({"policy_name": names["policy_name"],
                                    "limit_region": "eu-west-1"})
    policy.plan_policy(Context(p), p).apply()

    ctx, plan, outcome = unlink_now(names, csv_path=csv_path, confirm=True)
    assert mutating(ctx) == [
        "DeleteAccessKey", "DeleteAccessKey", "DeleteLoginProfile",
        "DeactivateMFADevice", "DeleteVirtualMFADevice", "DeleteSigningCertificate",
        "DeleteSSHPublicKey", "DeleteUserPolicy", "DetachUserPolicy", "RemoveUserFromGroup",
        "DeleteUser", "DeletePolicyVersion", "DeletePolicy"]
    deleted_version = next(r for r in ctx.audit.records if r["operation"] == "DeletePolicyVersion")
    assert deleted_version["params"]["VersionId"] == "v1"  # v2 is the default
    assert outcome.outcome == "updated"
    assert users.get_user(iam, user) is None
    arn = ctx.arn("iam", f"policy/{names['policy_name']}")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=arn)
    assert serial not in [d["SerialNumber"] for d in
                          iam.list_virtual_mfa_devices()["VirtualMFADevices"]]
    assert iam.get_group(GroupName=group)["Users"] == []  # the group is not ours: it stays
    assert profile(names).read() is None
    assert not (tmp_path / "key.csv").exists()


def test_unlink__rerun_on_an_unlinked_account__changes_nothing(names):
    link(names)
    unlink_now(names, confirm=True)
    ctx, plan, outcome = unlink_now(names, confirm=True)
    assert outcome.outcome == "unchanged"
    assert mutating(ctx) == []
    assert [(c.action, c.kind) for c in plan.changes] == [
        ("unchanged", "IAM user"), ("unchanged", "managed policy"),
        ("unchanged", "credentials profile")]


def test_unlink__keeps_the_policy_and_says_so__when_another_user_uses_it(names):
    link(names)
    other = dict(names, user_name=names["user_name"] + "-b",
                 credentials_profile=names["credentials_profile"] + "-b")
    link(other)
    ctx, plan, outcome = unlink_now(names, confirm=True)
    assert outcome.found["policy_kept_for"] == [f"user {other['user_name']}"]
    assert "DeletePolicy" not in mutating(ctx)
    iam = ctx.client("iam")
    arn = ctx.arn("iam", f"policy/{names['policy_name']}")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert users.get_user(iam, other["user_name"]) is not None
    assert profile(other).read() is not None


def test_unlink__keeps_a_profile_that_holds_another_users_key(names):
    link(names)
    other = dict(names, user_name=names["user_name"] + "-b",
                 credentials_profile=names["credentials_profile"] + "-b")
    link(other)
    # The profile names the other user's key: unlinking this user must not drop it.
    ctx, plan, outcome = unlink_now(names, credentials_profile=other["credentials_profile"],
                                    confirm=True)
    kept = next(c for c in plan.changes if c.kind == "credentials profile")
    assert kept.action == "unchanged"
    assert f"which is not {names['user_name']}'s" in kept.detail
    assert profile(other).read() is not None
    assert users.get_user(ctx.client("iam"), names["user_name"]) is None


def test_unlink__after_a_crash_left_the_profile__removes_the_dead_key_from_it(names):
    link(names)
    held = profile(names).read()
    saved = held.access_key_id, held.secret_access_key
    unlink_now(names, confirm=True)
    # As if the process had died after DeleteUser, before the profile was removed.
    from runbook.secrets import Credentials
    profile(names).write(Credentials(*saved))
    ctx, plan, outcome = unlink_now(names, confirm=True)
    assert mutating(ctx) == []
    assert [c.action for c in plan.changes if c.kind == "credentials profile"] == ["delete"]
    assert profile(names).read() is None


def test_unlink_params__confirm_must_be_a_boolean_and_shares_the_user_name_rule():
    with pytest.raises(ParameterError) as caught:
        P.UnlinkParams.from_values({}, confirm="yes", user_name="docker cloud")
    shared = P.check("user_name", "docker cloud")
    assert caught.value.problems == [
        ("user_name", "docker cloud", shared),
        ("confirm", "yes", "must be true or false, not str 'yes'")]
    assert P.UnlinkParams.from_values({}).confirm is False


@pytest.mark.e2e
def test_runbook_unlink__needs_confirm_then_unlinks_and_a_rerun_changes_nothing(fresh_home,
                                                                              runbook_cli):
    assert runbook_cli("run", home=fresh_home).returncode == 0
    credentials = fresh_home / "sandbox" / "credentials"
    secret = SharedCredentialsProfile(credentials, "dockercloud").read().secret_access_key

    planned = runbook_cli("unlink", "-p", "dry_run", "true", home=fresh_home)
    assert planned.returncode == 0, planned.stderr  # a dry run is a plan asked for: no refusal
    assert planned.section("unlink")["outcome"] == "planned"

    refused = runbook_cli("unlink", home=fresh_home)
    assert refused.returncode == 2
    assert "confirm=False" in refused.stderr and "--confirm" in refused.stderr
    assert "would delete IAM user dockercloud-user" in refused.stderr
    assert refused.section("unlink")["outcome"] == "planned"
    assert [r for r in refused.audit if audit.is_mutating(r)] == []

    done = runbook_cli("unlink", "--confirm", home=fresh_home)
    assert done.returncode == 0, done.stderr
    assert [r["operation"] for r in done.audit if audit.is_mutating(r)] == [
        "DeleteAccessKey", "DetachUserPolicy", "DeleteUser", "DeletePolicy"]
    assert SharedCredentialsProfile(credentials, "dockercloud").read() is None
    for result in (planned, refused, done):
        assert scan_tree(result.run_dir, (secret,)) == []
        assert secret not in result.stdout + result.stderr

    again = runbook_cli("unlink", "-p", "confirm", "true", home=fresh_home)
    assert again.returncode == 0, again.stderr
    assert again.section("unlink")["outcome"] == "unchanged"
    assert [r for r in again.audit if audit.is_mutating(r)] == []


@pytest.mark.e2e
def test_runbook_unlink__bad_confirm__exits_2_before_any_sandbox_starts(fresh_home, runbook_cli):
    result = runbook_cli("unlink", "-p", "confirm", "maybe", home=fresh_home)
    assert result.returncode == 2
    assert "confirm='maybe': must be true or false" in result.stderr
    assert not (fresh_home / "sandbox" / "state.json").exists()


def _widened(document: dict) -> dict:
    # moto checks IAM actions against Resource "*" only (it does not know an IAM
    # call's resource ARN), so the scoped resources are widened; the action
    # lists are what this proves complete.
    document = json.loads(json.dumps(document))
    for statement in document["Statement"]:
        statement["Resource"] = "*"
    return document


def test_operator_with_only_the_readme_policies__rotates_then_unlinks(fresh_home, tmp_path,
                                                                      monkeypatch):
    from runbook import rotate, sandbox
    from runbook.operator import rotate_operator_policy, unlink_operator_policy

    monkeypatch.setenv("RUNBOOK_HOME", str(fresh_home))
    monkeypatch.setenv("RUNBOOK_RUN_DIR", str(tmp_path))
    names = {"user_name": "dockercloud-user", "policy_name": "dockercloud-policy",
             "credentials_profile": "dockercloud", "credentials_file": str(tmp_path / "creds")}
    admin = link(names).client("iam")  # the sandbox's operator is an admin until narrowed
    user = names["user_name"]
    admin.create_login_profile(UserName=user, Password="Unlink-test-0nly!")
    serial = admin.create_virtual_mfa_device(
        VirtualMFADeviceName="operator-test")["VirtualMFADevice"]["SerialNumber"]
    admin.enable_mfa_device(UserName=user, SerialNumber=serial, AuthenticationCode1="123456",
                            AuthenticationCode2="654321")
    admin.put_user_policy(UserName=user, PolicyName="inline", PolicyDocument=INLINE)
    admin.create_group(GroupName="operator-test")
    admin.add_user_to_group(GroupName="operator-test", UserName=user)

    def narrow(document: dict, then_allow_narrowing: bool) -> None:
        document = _widened(document)
        if then_allow_narrowing:  # only so that the test can switch to the next job's policy
            document["Statement"].append({"Effect": "Allow", "Action": "iam:PutUserPolicy",
                                          "Resource": "*"})
        admin.put_user_policy(UserName=sandbox.OPERATOR_USER,
                              PolicyName=sandbox.OPERATOR_POLICY_NAME,
                              PolicyDocument=json.dumps(document))

    log = tmp_path / "audit.jsonl"
    narrow(rotate_operator_policy(), then_allow_narrowing=True)
    start = len(audit.read(log))
    p = P.RotateParams.from_values({k: names[k] for k in P.RotateParams.names() if k in names})
    assert rotate.plan_rotate(Context(p), p).apply().outcome == "created"
    narrow(unlink_operator_policy(), then_allow_narrowing=False)
    ctx, plan, outcome = unlink_now(names, confirm=True)
    records = audit.read(log)[start:]
    assert [r["operation"] for r in records if r["error_code"]] == []
    assert "DeleteUser" in mutating(ctx) and "DeletePolicy" in mutating(ctx)


def test_unlink__of_the_operator_itself__is_refused_and_the_operator_keeps_working(names):
    from runbook.errors import StepError
    from runbook.sandbox import OPERATOR_USER

    with pytest.raises(StepError) as caught:
        unlink_now(dict(names, user_name=OPERATOR_USER), confirm=True)
    assert caught.value.code == "ServiceUserIsOperator"
    ctx = Context(P.UnlinkParams.from_values({}))
    assert ctx.client("sts").get_caller_identity()["Arn"].endswith(f":user/{OPERATOR_USER}")
    assert ctx.client("iam").list_access_keys(UserName=OPERATOR_USER)["AccessKeyMetadata"]


def test_unlink__deleting_the_user__closes_its_key_and_rotation_journals(names):
    from runbook.rotate import RotationJournal
    from runbook.users import KeyJournal

    ctx = link(names)
    journals = [KeyJournal(ctx.account_id, names["user_name"]),
                RotationJournal(ctx.account_id, names["user_name"])]
    for journal in journals:
        journal.path.write_text('{"old_key_id": "x", "keys_before": [], '
                                '"started_at": "2026-01-01T00:00:00+00:00"}')
    unlink_now(names, confirm=True)
    assert [j.path.exists() for j in journals] == [False, False]
