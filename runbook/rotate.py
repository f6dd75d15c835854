"""Rotate the service user's access key: new key, into the sinks, proven, old key off, then gone.

The order is the safety: the old key is deactivated only after the new one has
answered ``sts:GetCallerIdentity`` as the service user, and deleted only after
that. A small journal (``<home>/journal/rotate-<account>-<user>.json``, key IDs
only, never a secret) says which key is old and which is new, so a rerun after
a crash at any point finishes the rotation instead of starting another:

- died before the new key's secret reached the profile: that key is held by
  nobody, so it is deleted and a fresh one is made (the old key is untouched);
- died after: the new key is proven, then the old one is deactivated and deleted.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from . import crashpoints, paths, readiness
from .context import Context
from .errors import StepError
from .files import atomic_write_text
from .params import RotateParams
from .plan import Change, Plan, planner
from .secrets import mask_key_id
from .users import (MAX_KEYS, KeyJournal, _create_key, _delete_key, credential_sinks,
                    get_user, list_keys, settle_key_journal)

# A key made in the second before the journal was written still belongs to this rotation.
_CLOCK_SKEW = timedelta(seconds=5)


class RotationJournal:
    """The rotation in progress for one user: the old key's ID, then the new one's."""

    def __init__(self, account_id: str, user_name: str):
        folder = paths.home() / "journal"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"rotate-{account_id}-{user_name}.json"

    def read(self) -> dict[str, Any] | None:
        """The journal's entries, or None when no rotation is in progress.

        Raises :class:`StepError` naming the file when it is not a journal.
        """
        if not self.path.exists():
            return None
        try:
            entries = json.loads(self.path.read_text())
            if isinstance(entries, dict) and isinstance(entries.get("old_key_id"), str) \
                    and isinstance(entries.get("started_at"), str):
                datetime.fromisoformat(entries["started_at"])
                return entries
        except (OSError, ValueError):
            pass
        raise StepError(f"the rotation journal {self.path} is unreadable",
                        code="BadJournal", fix="if no rotation is in progress, delete the file "
                        "and rerun; it holds key IDs only")

    def stale(self, entries: dict[str, Any], user: dict[str, Any], keys: set[str]) -> bool:
        """True when the journal is of another rotation than this user can finish.

        The user was deleted and made again (another UserId), or neither the old
        key nor the new one exists any more (e.g. the link was undone since).
        """
        if entries.get("user_id") not in (None, user.get("UserId")):
            return True
        return entries["old_key_id"] not in keys and entries.get("new_key_id") not in keys

    def begin(self, old_key_id: str, user_id: str) -> None:
        atomic_write_text(self.path, json.dumps({
            "old_key_id": old_key_id, "new_key_id": None, "user_id": user_id,
            "started_at": datetime.now(timezone.utc).isoformat()}))

    def record_new(self, new_key_id: str) -> None:
        entries = self.read() or {}
        entries["new_key_id"] = new_key_id
        atomic_write_text(self.path, json.dumps(entries))

    def end(self) -> None:
        self.path.unlink(missing_ok=True)


@planner
def plan_rotate(ctx: Context, p: RotateParams) -> Plan:
    """Read IAM, the profile and the journal; return the rotation's remaining steps.

    A fresh rotation needs the user, the profile holding one of the user's
    keys, and room for a second key; otherwise the plan is blocked with the
    fix. With a journal left by an interrupted rotation, the plan finishes it.
    """
    ctx.refuse_operator_as_service_user(p.user_name)
    iam = ctx.client("iam")
    user = get_user(iam, p.user_name)
    sinks = credential_sinks(ctx, p.user_name, p.credentials_profile, p.csv_path)
    profile = sinks[0]
    found: dict[str, Any] = {"user_name": p.user_name,
                             "credentials_profile": p.credentials_profile}
    if user is None:
        return Plan(ctx.section, [Change("blocked", "IAM user", p.user_name,
                                         "no such user; run 01_create_user first")],
                    dry_run=p.dry_run, found=found)

    keys = {k["AccessKeyId"]: k for k in list_keys(iam, p.user_name)}
    held = profile.read()
    held_id = held.access_key_id if held else None
    changes: list[Change] = []
    # A key whose creation was interrupted before its secret was saved (users._create_key).
    key_orphans = settle_key_journal(ctx, p.user_name, user, list(keys.values()), {held_id},
                                     p.dry_run)
    for number, key in enumerate(key_orphans, 1):
        changes.append(Change(
            "delete", "access key", mask_key_id(key["AccessKeyId"]),
            "made by an interrupted run whose secret was never saved; nobody holds it",
            apply=_delete_key(iam, p.user_name, key["AccessKeyId"],
                              KeyJournal(ctx.account_id, p.user_name)
                              if number == len(key_orphans) else None)))
        del keys[key["AccessKeyId"]]
    journal = RotationJournal(ctx.account_id, p.user_name)
    entries = journal.read()
    if entries is not None and journal.stale(entries, user, set(keys)):
        found["stale_journal_closed"] = journal.path.name
        if not p.dry_run:
            journal.end()
        entries = None

    if entries is None:
        if held_id not in keys:
            what = (f"holds key {mask_key_id(held_id)}, which is not a key of {p.user_name}"
                    if held_id else "holds no key")
            return Plan(ctx.section, [Change(
                "blocked", "access key", p.user_name,
                f"{profile.describe()} {what}; rotation replaces the key the profile holds. "
                "Run 01_create_user with this profile first")], dry_run=p.dry_run, found=found)
        if len(keys) >= MAX_KEYS:
            other = next(k for k in keys if k != held_id)
            return Plan(ctx.section, [Change(
                "blocked", "access key", ", ".join(map(mask_key_id, keys)),
                f"{p.user_name} already has {len(keys)} access keys and IAM allows {MAX_KEYS}, "
                f"so there is no room for the new one. Delete the key that {profile.describe()} "
                f"does not hold ({mask_key_id(other)}): aws iam list-access-keys --user-name "
                f"{p.user_name}; aws iam delete-access-key --user-name {p.user_name} "
                "--access-key-id <its id>; then rerun")], dry_run=p.dry_run, found=found)
        old_id, new_id = held_id, None
    else:
        old_id, new_id = entries["old_key_id"], entries.get("new_key_id")
        found["resumed"] = f"finishing the rotation started {entries['started_at']}"
        if new_id is None and held_id not in (None, old_id) and held_id in keys:
            new_id = held_id  # died after the profile got the key, before the journal did
        if new_id is not None and held_id != new_id:
            # The new key's secret is not in the profile: nobody holds it.
            new_id = None
        if new_id is None:
            started = datetime.fromisoformat(entries["started_at"]) - _CLOCK_SKEW
            orphans = [k for k in keys.values() if k["AccessKeyId"] != old_id
                       and k["AccessKeyId"] != held_id and k["CreateDate"] >= started]
            for key in orphans:
                changes.append(Change(
                    "delete", "access key", mask_key_id(key["AccessKeyId"]),
                    "made by the interrupted rotation; its secret never reached the profile",
                    apply=_delete(iam, p.user_name, key["AccessKeyId"])))
            others = [k for k in keys if k != old_id and k not in
                      {o["AccessKeyId"] for o in orphans}]
            if others:
                changes.append(Change(
                    "blocked", "access key", ", ".join(map(mask_key_id, others)),
                    f"{p.user_name} has a key that is neither the old one nor this rotation's; "
                    f"IAM allows {MAX_KEYS}. Delete it (aws iam delete-access-key --user-name "
                    f"{p.user_name} --access-key-id <its id>) and rerun"))

    found["old_access_key_id"] = mask_key_id(old_id)
    state = {"new": new_id}
    where = "; ".join(s.describe() for s in sinks)
    if new_id is None:
        changes.append(Change("create", "access key", "(new)", f"secret saved at once to {where}",
                              apply=_create(ctx, iam, user, sinks, journal, old_id, list(keys),
                                            state, fresh=entries is None)))
    else:
        found["access_key_id"] = mask_key_id(new_id)
    changes.append(Change("verify", "access key", mask_key_id(new_id) if new_id else "(new)",
                          f"answers sts:GetCallerIdentity as {p.user_name} before the old "
                          "key is touched", apply=_prove(ctx, user["Arn"], profile, state)))
    old = keys.get(old_id)
    if old is not None and old["Status"] == "Active":
        changes.append(Change("update", "access key", mask_key_id(old_id),
                              "deactivate the old key, now that the new one works",
                              apply=_deactivate(iam, p.user_name, old_id)))
    if old is not None:
        changes.append(Change("delete", "access key", mask_key_id(old_id),
                              "delete the old key; the rotation is done",
                              apply=_delete_old(iam, p.user_name, old_id, journal)))
    else:
        changes.append(Change("delete", "rotation journal", str(journal.path.name),
                              "the old key is already gone; the rotation is done",
                              apply=lambda: journal.end() or {}))
    return Plan(ctx.section, changes, dry_run=p.dry_run, found=found)


def _delete(iam: Any, user_name: str, key_id: str):
    def delete() -> dict[str, Any]:
        iam.delete_access_key(UserName=user_name, AccessKeyId=key_id)
        return {"deleted_orphan_key": mask_key_id(key_id)}
    return delete


def _create(ctx: Context, iam: Any, user: dict[str, Any], sinks: list,
            journal: RotationJournal, old_id: str, keys_before: list[str],
            state: dict[str, Any], fresh: bool):
    def create() -> dict[str, Any]:
        if fresh:
            journal.begin(old_id, user["UserId"])
        # Section 01's own path: the secret goes from the answer straight into the sinks.
        facts = _create_key(ctx, iam, {"user": user}, user["UserName"], sinks, keys_before)
        new_id = sinks[0].read().access_key_id
        crashpoints.reached("rotate-after-new-key-saved")
        journal.record_new(new_id)
        state["new"] = new_id
        return facts
    return create


def _prove(ctx: Context, user_arn: str, profile: Any, state: dict[str, Any]):
    def prove() -> dict[str, Any]:
        held = profile.read()
        if held is None or held.access_key_id != state["new"]:
            raise StepError(f"{profile.describe()} no longer holds the new key "
                            f"{mask_key_id(state['new'])}; the old key was left as it is",
                            fix="put the new key back in the profile, or delete it, and rerun")
        sts = ctx.key_client(held, "sts", audit_as=user_arn)
        ready = readiness.wait_for_key(sts, user_arn)
        crashpoints.reached("rotate-after-proven")
        return {"new_key_proven_after_attempts": ready.attempts}
    return prove


def _deactivate(iam: Any, user_name: str, key_id: str):
    def deactivate() -> dict[str, Any]:
        iam.update_access_key(UserName=user_name, AccessKeyId=key_id, Status="Inactive")
        crashpoints.reached("rotate-after-deactivate")
        return {}
    return deactivate


def _delete_old(iam: Any, user_name: str, key_id: str, journal: RotationJournal):
    def delete() -> dict[str, Any]:
        iam.delete_access_key(UserName=user_name, AccessKeyId=key_id)
        crashpoints.reached("rotate-after-delete-old")
        journal.end()
        return {"deleted_access_key_id": mask_key_id(key_id)}
    return delete
