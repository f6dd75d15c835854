"""Transient and persistent AWS faults, injected by a real proxy in front of moto.

See ``faultproxy.py`` for why a proxy. The retry policy under test is
``runbook.targets.CLIENT_CONFIG`` (standard mode, five attempts in all).
"""

from __future__ import annotations

import pytest

from conftest import figure
from faultproxy import FaultProxy
from runbook import audit, sandbox
from runbook import params as P
from runbook.context import Context
from runbook.sinks import SharedCredentialsProfile

SECTIONS = ["01_create_user", "02_create_policy", "03_attach_policy", "04_add_credentials"]
SEEN_AS = {  # what botocore reports for the first, failed attempt of each kind
    "503": (503, "ServiceUnavailable"),
    "Throttling": (400, "Throttling"),
    "RequestLimitExceeded": (400, "RequestLimitExceeded"),
    "reset": (None, "ConnectionClosedError"),
}


@pytest.fixture
def proxy_on_shared(shared_home):
    sandbox.start()
    proxy = FaultProxy.install(shared_home)
    yield proxy
    proxy.uninstall()


@pytest.mark.parametrize("kind", list(SEEN_AS))
def test_a_call__failing_once__is_retried_and_the_audit_log_shows_the_retry(proxy_on_shared,
                                                                            kind):
    proxy_on_shared.fail("ListUsers", kind)
    figure("faults injected")
    ctx = Context(P.CreateUserParams.from_values({}))
    ctx.client("iam").list_users()
    record = [r for r in ctx.audit.records if r["operation"] == "ListUsers"][-1]
    status, code = SEEN_AS[kind]
    assert record["attempts"] == 2 and record["http_status"] == 200
    assert record["error_code"] is None
    assert record["retried"] == [{"attempt": 1, "http_status": status, "error": code}]
    assert audit.read(ctx.audit.path)[-1] == record  # the same record is on disk
    figure("faults survived")


def test_create_access_key__answers_lost_every_time__fails_and_the_rerun_cleans_up(
        proxy_on_shared, tmp_path):
    from runbook import users
    from runbook.errors import StepError

    values = {"user_name": "faults-lost-keys", "credentials_profile": "lost",
              "credentials_file": str(tmp_path / "credentials")}
    p = P.CreateUserParams.from_values(values)
    proxy_on_shared.fail("CreateAccessKey", "reset", times=None, when="after")
    with pytest.raises(StepError) as caught:
        users.plan_user(Context(p), p).apply()
    injected = proxy_on_shared.injected
    figure("faults injected", injected)
    iam = Context(p).client("iam")
    made = users.list_keys(iam, "faults-lost-keys")
    # Each lost answer left a key behind, until IAM's two-key limit (its answer lost too).
    assert caught.value.code == "ConnectionClosedError" and injected == 5, len(made)
    assert len(made) == 2, len(made)
    proxy_on_shared.clear()
    ctx = Context(p)
    plan = users.plan_user(ctx, p)
    assert [(c.action, c.kind) for c in plan.changes] == [
        ("unchanged", "IAM user"), ("delete", "access key"), ("delete", "access key"),
        ("create", "access key")]
    outcome = plan.apply()
    keys = [k["AccessKeyId"] for k in users.list_keys(iam, "faults-lost-keys")]
    held = SharedCredentialsProfile(values["credentials_file"], "lost").read()
    assert outcome.outcome == "created" and keys == [held.access_key_id]
    assert not set(keys) & {k["AccessKeyId"] for k in made}
    figure("faults survived", injected)


def _start_behind_proxy(home, runbook_cli) -> FaultProxy:
    assert runbook_cli("sandbox", "start", home=home).returncode == 0
    return FaultProxy.install(home)


def test_run__with_every_call_failing_once__completes_and_logs_each_retry(fresh_home,
                                                                          runbook_cli):
    proxy = _start_behind_proxy(fresh_home, runbook_cli)
    # Reads fail before moto sees them; mutations fail after moto acted (the answer
    # is lost), so the retry meets what the first attempt did.
    faults = {
        "GetCallerIdentity": ("503", "before"), "GetUser": ("Throttling", "before"),
        "ListAccessKeys": ("RequestLimitExceeded", "before"), "CreateUser": ("reset", "after"),
        "CreateAccessKey": ("reset", "after"), "GetPolicy": ("503", "before"),
        "CreatePolicy": ("503", "after"), "ListAttachedUserPolicies": ("reset", "before"),
        "AttachUserPolicy": ("Throttling", "after"),
    }
    try:
        for operation, (kind, when) in faults.items():
            proxy.fail(operation, kind, when=when)
        result = runbook_cli("run", home=fresh_home)
    finally:
        proxy.uninstall()
    figure("faults injected", proxy.injected)
    assert proxy.injected == len(faults)
    assert result.returncode == 0, result.stderr
    assert [s["outcome"] for s in result.run["sections"]] == [
        "created", "created", "created", "unchanged", "unchanged"]
    for operation, (kind, _) in faults.items():
        first = next(r for r in result.audit if r["operation"] == operation)
        assert first["attempts"] == 2, (operation, first)
        assert first["retried"][0]["error"] == SEEN_AS[kind][1], (operation, first)
    # The lost CreateAccessKey answer made a key nobody got: it was deleted at once.
    key_id = SharedCredentialsProfile(fresh_home / "sandbox" / "credentials",
                                      "dockercloud").read().access_key_id
    ops = [r["operation"] for r in result.audit if audit.is_mutating(r)]
    assert ops == ["CreateUser", "CreateAccessKey", "DeleteAccessKey", "CreatePolicy",
                   "AttachUserPolicy"]
    section = result.section("01_create_user")
    assert len(section["deleted_lost_keys"]) == 1
    assert section["deleted_lost_keys"][0] != section["access_key_id"]
    assert section["access_key_id"].endswith(key_id[-4:])
    figure("faults survived", proxy.injected)


def test_run__with_a_persistent_fault__fails_clearly_and_a_rerun_finishes(fresh_home,
                                                                          runbook_cli):
    proxy = _start_behind_proxy(fresh_home, runbook_cli)
    try:
        proxy.fail("CreatePolicy", "503", times=None)
        failed = runbook_cli("run", home=fresh_home)
        proxy.clear()
        again = runbook_cli("run", home=fresh_home)
    finally:
        proxy.uninstall()
    figure("faults injected", proxy.injected)
    assert failed.returncode == 1, failed.stderr
    assert proxy.injected == 5  # every attempt botocore made
    assert ("section 02_create_policy failed: ServiceUnavailable: Service is unavailable "
            "(injected by the test) (gave up after 5 attempts)") in failed.stderr
    run = failed.run
    assert run["status"] == "failed"
    assert [(s["name"], s["outcome"]) for s in run["sections"]] == [
        ("01_create_user", "created"), ("02_create_policy", "failed")]
    error = run["sections"][1]["error"]
    assert (error["code"], error["operation"], error["attempts"]) == (
        "ServiceUnavailable", "CreatePolicy", 5)
    assert run["not_run"] == ["03_attach_policy", "04_add_credentials", "05_verify_link"]
    create = [r for r in failed.audit if r["operation"] == "CreatePolicy"]
    assert len(create) == 1 and create[0]["attempts"] == 5
    assert create[0]["http_status"] == 503 and len(create[0]["retried"]) == 4
    assert again.returncode == 0, again.stderr
    assert [s["outcome"] for s in again.run["sections"]] == [
        "unchanged", "created", "created", "unchanged", "unchanged"]
    assert [r["operation"] for r in again.audit if audit.is_mutating(r)] == [
        "CreatePolicy", "AttachUserPolicy"]
    figure("faults survived", proxy.injected)
