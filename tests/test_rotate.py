"""Key rotation: new key, into the profile, proven, old key off, then gone; and crash recovery.

Library tests share one sandbox with names of their own. The crash tests kill
a real process (``RUNBOOK_CRASH_AT``, SIGKILL) at each named point of a
rotation, then rerun it: the rotation finishes, and the old key is never
deactivated or deleted before the new key has answered as the service user.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import figure

from runbook import audit, rotate, users
from runbook import params as P
from runbook.context import Context
from runbook.errors import StepError
from runbook.secrets import mask_key_id, scan_tree
from runbook.sinks import SharedCredentialsProfile

_ids = itertools.count(1)


@pytest.fixture
def names(shared_home, tmp_path, monkeypatch):
    # A log of this test's own: the new key's client logs there too, not in ctx.audit.records.
    monkeypatch.setenv("RUNBOOK_RUN_DIR", str(tmp_path))
    n = next(_ids)
    return {"user_name": f"rot-user-{n}", "credentials_profile": f"rot-{n}",
            "credentials_file": str(tmp_path / "credentials")}


def link(names):
    """Section 01 for these names; returns the ID of the key the profile now holds."""
    p = P.CreateUserParams.from_values(names)
    users.plan_user(Context(p), p).apply()
    return held(names).access_key_id


def held(names):
    return SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"]).read()


def rotate_now(names, **extra):
    """Rotate in this process; returns the context, the plan, the outcome and its audit records."""
    p = P.RotateParams.from_values({**names, **extra})
    ctx = Context(p)
    start = len(audit.read(ctx.audit.path))
    plan = rotate.plan_rotate(ctx, p)
    try:
        outcome = plan.apply()
    finally:
        ctx.records = audit.read(ctx.audit.path)[start:]
    return ctx, plan, outcome


def keys_of(ctx, user_name):
    return {k["AccessKeyId"]: k["Status"] for k in users.list_keys(ctx.client("iam"), user_name)}


def mutations(records):
    return [(r["operation"], r["params"].get("AccessKeyId")) for r in records
            if audit.is_mutating(r)]


def proof_index(records, user_arn):
    """Where the first GetCallerIdentity signed by the service user's key answered."""
    return next(i for i, r in enumerate(records) if r["operation"] == "GetCallerIdentity"
                and r["caller_arn"] == user_arn and r["http_status"] == 200)


def journal_path(shared_home, user_name):
    return shared_home / "journal" / f"rotate-123456789012-{user_name}.json"


def test_rotate__replaces_the_profiles_key_and_deletes_the_old_one_after_proving_the_new(
        names, shared_home):
    old = link(names)
    ctx, plan, outcome = rotate_now(names)
    new = held(names).access_key_id
    assert new != old
    assert keys_of(ctx, names["user_name"]) == {new: "Active"}
    records = ctx.records
    assert mutations(records) == [("CreateAccessKey", None),
                                  ("UpdateAccessKey", mask_key_id(old)),
                                  ("DeleteAccessKey", mask_key_id(old))]
    user_arn = f"arn:aws:iam::123456789012:user/{names['user_name']}"
    update = next(i for i, r in enumerate(records) if r["operation"] == "UpdateAccessKey")
    assert proof_index(records, user_arn) < update
    assert records[update]["params"]["Status"] == "Inactive"
    assert outcome.found["old_access_key_id"] == mask_key_id(old)
    assert outcome.found["deleted_access_key_id"] == mask_key_id(old)
    assert outcome.found["access_key_id"] == mask_key_id(new)
    assert not journal_path(shared_home, names["user_name"]).exists()


def test_rotate__blocks_with_the_fix__when_the_user_already_has_two_keys(names):
    old = link(names)
    ctx = Context(P.RotateParams.from_values(names))
    other = ctx.client("iam").create_access_key(UserName=names["user_name"])["AccessKey"]
    del other["SecretAccessKey"]  # nobody keeps it: that is the point of the test
    before = len(audit.read(ctx.audit.path))
    with pytest.raises(StepError) as caught:
        rotate_now(names)
    assert mutations(audit.read(ctx.audit.path)[before:]) == []  # no third key was asked for
    message = str(caught.value)
    assert f"{names['user_name']} already has 2 access keys and IAM allows 2" in message
    assert mask_key_id(other["AccessKeyId"]) in message
    assert (f"aws iam delete-access-key --user-name {names['user_name']} "
            "--access-key-id <its id>") in message
    assert keys_of(ctx, names["user_name"]) == {old: "Active", other["AccessKeyId"]: "Active"}
    assert held(names).access_key_id == old


def test_rotate__blocks__when_the_user_does_not_exist(names):
    with pytest.raises(StepError) as caught:
        rotate_now(names)
    assert "no such user; run 01_create_user first" in str(caught.value)


def test_rotate__blocks__when_the_profile_holds_no_key_of_the_user(names):
    link(names)
    SharedCredentialsProfile(names["credentials_file"], names["credentials_profile"]).remove()
    with pytest.raises(StepError) as caught:
        rotate_now(names)
    assert "holds no key; rotation replaces the key the profile holds" in str(caught.value)


def test_rotate__dry_run__plans_the_four_steps_in_order_and_changes_nothing(names, shared_home):
    old = link(names)
    ctx, plan, outcome = rotate_now(names, dry_run=True)
    assert [(c.action, c.name) for c in plan.changes] == [
        ("create", "(new)"), ("verify", "(new)"),
        ("update", mask_key_id(old)), ("delete", mask_key_id(old))]
    assert outcome.outcome == "planned"
    assert mutations(ctx.records) == []
    assert keys_of(ctx, names["user_name"]) == {old: "Active"}
    assert not journal_path(shared_home, names["user_name"]).exists()


_CRASH = """
import json, sys
from runbook import params as P, rotate
from runbook.context import Context
p = P.RotateParams.from_values(json.loads(sys.argv[1]))
rotate.plan_rotate(Context(p), p).apply()
"""

# point -> (the old key's status right after the crash, the rerun's mutating calls)
CRASH_POINTS = {
    "atomic-write-before-rename": ("Active", ["CreateAccessKey", "UpdateAccessKey",
                                              "DeleteAccessKey"]),
    "after-create-access-key": ("Active", ["DeleteAccessKey", "CreateAccessKey",
                                           "UpdateAccessKey", "DeleteAccessKey"]),
    "rotate-after-new-key-saved": ("Active", ["UpdateAccessKey", "DeleteAccessKey"]),
    "rotate-after-proven": ("Active", ["UpdateAccessKey", "DeleteAccessKey"]),
    "rotate-after-deactivate": ("Inactive", ["DeleteAccessKey"]),
    "rotate-after-delete-old": (None, []),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_rotate__killed_at_each_point__a_rerun_finishes_and_the_old_key_outlives_the_proof(
        point, names, shared_home, tmp_path):
    figure("crash points tried")
    old = link(names)
    crashed_dir = tmp_path / "crashed"
    crashed_dir.mkdir()
    env = {**os.environ, "RUNBOOK_HOME": str(shared_home), "RUNBOOK_CRASH_AT": point,
           "RUNBOOK_RUN_DIR": str(crashed_dir)}
    done = subprocess.run([sys.executable, "-c", _CRASH, json.dumps(names)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]

    old_status, rerun_calls = CRASH_POINTS[point]
    ctx = Context(P.RotateParams.from_values(names))
    assert keys_of(ctx, names["user_name"]).get(old) == old_status
    crashed = audit.read(crashed_dir / "audit.jsonl")

    ctx, plan, outcome = rotate_now(names)
    new = held(names).access_key_id
    assert new != old
    assert keys_of(ctx, names["user_name"]) == {new: "Active"}
    assert [op for op, _ in mutations(ctx.records)] == rerun_calls
    assert not journal_path(shared_home, names["user_name"]).exists()
    # Across both processes: nothing touched the old key before the new one answered.
    records = crashed + ctx.records
    user_arn = f"arn:aws:iam::123456789012:user/{names['user_name']}"
    touched_old = [i for i, r in enumerate(records) if audit.is_mutating(r)
                   and r["operation"] in ("UpdateAccessKey", "DeleteAccessKey")
                   and r["params"].get("AccessKeyId") == mask_key_id(old)]
    assert touched_old and min(touched_old) > proof_index(records, user_arn)
    # The key deleted as an orphan (if any) is never the old one.
    if point == "after-create-access-key":
        assert mutations(ctx.records)[0] != ("DeleteAccessKey", mask_key_id(old))
        assert outcome.found["deleted_orphan_key"] != mask_key_id(old)
    figure("crash points recovered")


def test_rotate__journal__holds_key_ids_only_and_is_private(names, shared_home, tmp_path):
    link(names)
    env = {**os.environ, "RUNBOOK_HOME": str(shared_home),
           "RUNBOOK_CRASH_AT": "rotate-after-proven", "RUNBOOK_RUN_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", _CRASH, json.dumps(names)], env=env,
                   capture_output=True, timeout=120)
    path = journal_path(shared_home, names["user_name"])
    entries = json.loads(path.read_text())
    assert set(entries) == {"old_key_id", "new_key_id", "user_id", "started_at"}
    assert entries["new_key_id"] == held(names).access_key_id
    assert held(names).secret_access_key not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    rotate_now(names)  # leave the account rotated for the secret scan's sake


@pytest.mark.e2e
def test_runbook_rotate__killed_after_the_new_key_is_saved__a_rerun_finishes(
        fresh_home, runbook_cli):
    figure("crash points tried")
    assert runbook_cli("run", home=fresh_home).returncode == 0
    profile = SharedCredentialsProfile(fresh_home / "sandbox" / "credentials", "dockercloud")
    old = profile.read().access_key_id
    crashed = runbook_cli("rotate", home=fresh_home,
                          extra_env={"RUNBOOK_CRASH_AT": "rotate-after-new-key-saved"})
    assert crashed.returncode != 0
    new = profile.read().access_key_id
    assert new != old  # the kernel died with the new key saved, the old one still Active
    result = runbook_cli("rotate", home=fresh_home)
    assert result.returncode == 0, result.stderr
    section = result.section("rotate_access_key")
    assert section["outcome"] == "updated"
    assert section["resumed"].startswith("finishing the rotation started ")
    assert section["access_key_id"] == mask_key_id(new)
    assert section["deleted_access_key_id"] == mask_key_id(old)
    ops = [r["operation"] for r in result.audit if audit.is_mutating(r)]
    assert ops == ["UpdateAccessKey", "DeleteAccessKey"]
    assert profile.read().access_key_id == new
    secret = profile.read().secret_access_key
    assert scan_tree(result.run_dir, (secret,)) == []
    assert secret not in result.stdout + result.stderr + crashed.stdout + crashed.stderr
    figure("crash points recovered")


@pytest.mark.e2e
def test_runbook_rotate__a_parameter_rotation_does_not_take__exits_2_before_any_sandbox(
        fresh_home, runbook_cli):
    result = runbook_cli("rotate", "-p", "policy_name", "x", home=fresh_home)
    assert result.returncode == 2
    assert "policy_name='x': is not used here, only by 02_create_policy" in result.stderr
    assert not (fresh_home / "sandbox" / "state.json").exists()


def test_rotate__a_journal_of_a_rotation_whose_keys_are_gone__is_closed_and_a_fresh_one_runs(
        names, shared_home):
    old = link(names)
    ctx = Context(P.RotateParams.from_values(names))
    journal = rotate.RotationJournal(ctx.account_id, names["user_name"])
    # As a rotation killed after its new key was saved, whose user was since unlinked
    # and linked again: neither of its keys exists any more.
    journal.path.write_text(json.dumps({"old_key_id": "AKIA" + "OLDOLDOLDOLDOLD1",
                                        "new_key_id": "AKIA" + "NEWNEWNEWNEWNEW2",
                                        "started_at": "2026-01-01T00:00:00+00:00"}))
    ctx, plan, outcome = rotate_now(names)
    assert outcome.found["stale_journal_closed"] == journal.path.name
    assert "resumed" not in outcome.found
    new = held(names).access_key_id
    assert new != old and keys_of(ctx, names["user_name"]) == {new: "Active"}
    assert not journal.path.exists()


def test_rotate__an_unreadable_journal__is_named_with_its_fix(names, shared_home):
    link(names)
    ctx = Context(P.RotateParams.from_values(names))
    journal = rotate.RotationJournal(ctx.account_id, names["user_name"])
    journal.path.write_text("{not json")
    with pytest.raises(StepError) as caught:
        rotate_now(names)
    assert caught.value.code == "BadJournal" and journal.path.name in str(caught.value)
    journal.end()


def test_rotate__closes_a_key_journal_left_open__so_a_key_made_later_by_hand_is_never_taken(
        names, shared_home):
    old = link(names)
    ctx = Context(P.RotateParams.from_values(names))
    iam = ctx.client("iam")
    user = users.get_user(iam, names["user_name"])
    key_journal = users.KeyJournal(ctx.account_id, names["user_name"])
    key_journal.begin(user["UserId"], [old])  # a creation interrupted before it made a key
    rotate_now(names)
    assert not key_journal.path.exists()
    by_hand = iam.create_access_key(UserName=names["user_name"])["AccessKey"]["AccessKeyId"]
    p = P.CreateUserParams.from_values(names)
    users.plan_user(Context(p), p).apply()
    assert by_hand in keys_of(ctx, names["user_name"])
    iam.delete_access_key(UserName=names["user_name"], AccessKeyId=by_hand)
