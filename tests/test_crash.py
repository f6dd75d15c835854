"""The shown-once secret: a process killed inside either window loses no key to nobody.

``RUNBOOK_CRASH_AT`` (see ``runbook.crashpoints``) makes the section's kernel
SIGKILL itself at the named point; ``runbook run`` and the kernel inherit it
from the environment. The rerun then runs without it.
"""

from __future__ import annotations

import json

import boto3
import pytest

from conftest import figure
from runbook import audit, users
from runbook import params as P
from runbook.context import Context
from runbook.errors import StepError
from runbook.secrets import mask_key_id
from runbook.sinks import SharedCredentialsProfile
PREVIOUS = ("[other]\naws_access_key_id = AKIAOTHEREXAMPLE0001\n"
            "aws_secret_access_key = kept-as-it-was\n\n")


def iam_of(home):
    state = json.loads((home / "sandbox" / "state.json").read_text())
    return boto3.client("iam", endpoint_url=state["endpoint"], region_name="us-east-1",
                        aws_access_key_id=state["operator_access_key_id"],
                        aws_secret_access_key=state["operator_secret_access_key"])


def key_ids(home, user="dockercloud-user"):
    return [k["AccessKeyId"] for k in
            iam_of(home).list_access_keys(UserName=user)["AccessKeyMetadata"]]


def held(home):
    return SharedCredentialsProfile(home / "sandbox" / "credentials", "dockercloud").read()


def temp_files(home):
    return sorted((home / "sandbox").glob(".credentials.*.tmp"))


def assert_recovered(rerun, home, orphan):
    """The rerun said it found the orphan, deleted it, and left one key that the profile holds."""
    assert rerun.returncode == 0, rerun.stderr
    section = rerun.section("01_create_user")
    assert section["outcome"] == "created"
    assert section["deleted_orphan_key"] == mask_key_id(orphan)
    assert f"delete access key {mask_key_id(orphan)}" in section["done"]
    notebook = (rerun.run_dir / "01_create_user.ipynb").read_text()
    assert "made by an interrupted run whose secret was never saved; nobody holds it" in notebook
    ops = [r["operation"] for r in rerun.audit if audit.is_mutating(r)]
    assert ops[:2] == ["DeleteAccessKey", "CreateAccessKey"]
    assert key_ids(home) == [held(home).access_key_id] != [orphan]
    assert not (home / "journal").exists() or list((home / "journal").iterdir()) == []
    assert temp_files(home) == []


@pytest.mark.e2e
def test_killed_after_create_access_key__the_rerun_deletes_the_key_nobody_holds(fresh_home,
                                                                               runbook_cli):
    assert runbook_cli("sandbox", "start", home=fresh_home).returncode == 0
    figure("crash points tried")
    crashed = runbook_cli("run", home=fresh_home,
                          extra_env={"RUNBOOK_CRASH_AT": "after-create-access-key"})
    assert crashed.returncode == 1
    assert crashed.run["sections"][0]["error"]["code"] == "KernelDied"
    assert "section 01_create_user failed: KernelDied" in crashed.stderr
    orphans = key_ids(fresh_home)
    assert len(orphans) == 1  # AWS made the key; its secret died with the kernel
    assert held(fresh_home) is None
    assert len(list((fresh_home / "journal").iterdir())) == 1  # the window is marked

    rerun = runbook_cli("run", home=fresh_home)
    assert_recovered(rerun, fresh_home, orphans[0])
    assert [s["outcome"] for s in rerun.run["sections"]] == [
        "created", "created", "created", "unchanged", "unchanged"]
    figure("crash points recovered")


@pytest.mark.e2e
def test_killed_inside_the_atomic_sink_write__the_old_file_stays_whole(fresh_home, runbook_cli):
    assert runbook_cli("sandbox", "start", home=fresh_home).returncode == 0
    credentials = fresh_home / "sandbox" / "credentials"
    credentials.write_text(PREVIOUS)
    credentials.chmod(0o600)
    figure("crash points tried")
    crashed = runbook_cli("run", home=fresh_home,
                          extra_env={"RUNBOOK_CRASH_AT": "atomic-write-before-rename:credentials"})
    assert crashed.returncode == 1
    assert credentials.read_text() == PREVIOUS  # the previous content, whole
    assert len(temp_files(fresh_home)) == 1  # killed between fsync and rename, as intended
    orphans = key_ids(fresh_home)
    assert len(orphans) == 1

    rerun = runbook_cli("run", home=fresh_home)
    assert_recovered(rerun, fresh_home, orphans[0])
    text = credentials.read_text()
    assert text.startswith(PREVIOUS.strip())  # the other profile is intact
    assert "[dockercloud]" in text
    figure("crash points recovered")


# --- the journal's judgement, in the library (shared sandbox, names of their own) ---

@pytest.fixture
def user_params(shared_home, tmp_path, request):
    name = "journal-" + request.node.name[-40:].replace("_", "-").strip("-")[:40]
    return {"user_name": name, "credentials_profile": "p", "credentials_file":
            str(tmp_path / "credentials")}


def plan_and_apply(values):
    p = P.CreateUserParams.from_values(values)
    ctx = Context(p)
    plan = users.plan_user(ctx, p)
    return ctx, plan, plan.apply()


def open_window(ctx, user_name, **overrides):
    """Write the journal exactly as _create_key does, then make the key 'the dead run' got."""
    iam = ctx.client("iam")
    user = iam.get_user(UserName=user_name)["User"]
    before = [k["AccessKeyId"] for k in users.list_keys(iam, user_name)]
    journal = users.KeyJournal(ctx.account_id, user_name)
    journal.begin(user["UserId"], before)
    record = {**json.loads(journal.path.read_text()), **overrides}
    journal.path.write_text(json.dumps(record))
    return journal, iam.create_access_key(UserName=user_name)["AccessKey"]["AccessKeyId"]


def test_journal__when_the_local_clock_is_hours_ahead__still_finds_the_orphan(user_params):
    ctx, _, _ = plan_and_apply(user_params)
    SharedCredentialsProfile(user_params["credentials_file"], "p").remove()
    iam = ctx.client("iam")
    for key in users.list_keys(iam, user_params["user_name"]):
        iam.delete_access_key(UserName=user_params["user_name"], AccessKeyId=key["AccessKeyId"])
    # A clock three hours fast wrote the journal: AWS's CreateDate is "before" it.
    journal, orphan = open_window(ctx, user_params["user_name"],
                                  requested_at="2999-01-01T00:00:00+00:00")
    _, plan, outcome = plan_and_apply(user_params)
    assert [(c.action, c.kind) for c in plan.changes] == [
        ("unchanged", "IAM user"), ("delete", "access key"), ("create", "access key")]
    assert outcome.found["deleted_orphan_key"] == mask_key_id(orphan)
    assert orphan not in [k["AccessKeyId"] for k in users.list_keys(iam, user_params["user_name"])]
    assert not journal.path.exists()


def test_journal__with_the_windows_key_saved_in_the_sink__keeps_it_and_closes(user_params):
    ctx, _, _ = plan_and_apply(user_params)
    held = SharedCredentialsProfile(user_params["credentials_file"], "p").read()
    # Died after the sink write, before the journal was closed: the key made in the
    # window is the one the profile holds, and must not be taken for an orphan.
    journal = users.KeyJournal(ctx.account_id, user_params["user_name"])
    user = ctx.client("iam").get_user(UserName=user_params["user_name"])["User"]
    journal.begin(user["UserId"], [])
    _, plan, outcome = plan_and_apply(user_params)
    assert outcome.outcome == "unchanged"
    assert [c.action for c in plan.changes] == ["unchanged", "unchanged"]
    assert [k["AccessKeyId"] for k in users.list_keys(ctx.client("iam"),
                                                      user_params["user_name"])] == [
        held.access_key_id]
    assert not journal.path.exists()


def test_journal__of_a_user_since_deleted_and_recreated__is_stale_and_deletes_nothing(
        user_params):
    ctx, _, _ = plan_and_apply(user_params)
    SharedCredentialsProfile(user_params["credentials_file"], "p").remove()
    # The journal belongs to an earlier user of the same name (another UserId).
    journal, other = open_window(ctx, user_params["user_name"], user_id="AIDAEARLIERUSER00001")
    with pytest.raises(StepError) as caught:
        plan_and_apply(user_params)
    assert "already has 2 access keys" in str(caught.value)
    keys = [k["AccessKeyId"] for k in users.list_keys(ctx.client("iam"),
                                                      user_params["user_name"])]
    assert other in keys and len(keys) == 2  # nothing deleted on a stale journal's word
    assert not journal.path.exists()
