"""Section 01: the service user and its access key.

The key's secret goes from ``CreateAccessKey``'s answer straight into the
credential sinks; the run shows the masked key ID only. A small journal
(``<home>/journal/``) marks the window between asking AWS for a key and
having its secret on disk, so a run that died inside it is recognised.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from . import crashpoints, paths
from .context import Context
from .errors import StepError
from .files import atomic_write_text
from .params import CreateUserParams
from .plan import Change, Plan
from .secrets import Credentials, mask_key_id
from .sinks import ConsoleCsv, CredentialSink, SharedCredentialsProfile

MAX_KEYS = 2  # IAM's limit of access keys per user


def get_user(iam: Any, user_name: str) -> dict | None:
    """The user, or None when IAM has no such user."""
    try:
        return iam.get_user(UserName=user_name)["User"]
    except iam.exceptions.NoSuchEntityException:
        return None


def list_keys(iam: Any, user_name: str) -> list[dict]:
    pages = iam.get_paginator("list_access_keys").paginate(UserName=user_name)
    return [key for page in pages for key in page["AccessKeyMetadata"]]


def credential_sinks(ctx: Context, user_name: str, profile: str,
                     csv_path: str | None = None) -> list[CredentialSink]:
    """The sinks the parameters name: the profile first, then the CSV if asked for."""
    sinks: list[CredentialSink] = [SharedCredentialsProfile(ctx.credentials_file(), profile)]
    if csv_path:
        sinks.append(ConsoleCsv(csv_path, user_name, ctx.account_id))
    return sinks


class KeyJournal:
    """Marks 'a key was asked for and its secret is not saved yet' for one user."""

    def __init__(self, account_id: str, user_name: str):
        folder = paths.home() / "journal"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"{account_id}-{user_name}.json"

    def begin(self) -> None:
        atomic_write_text(self.path, json.dumps(
            {"requested_at": datetime.now(timezone.utc).isoformat()}))

    def pending_since(self) -> datetime | None:
        if not self.path.exists():
            return None
        return datetime.fromisoformat(json.loads(self.path.read_text())["requested_at"])

    def end(self) -> None:
        self.path.unlink(missing_ok=True)


def plan_user(ctx: Context, p: CreateUserParams) -> Plan:
    """Read IAM and the sinks; return what section 01 would change.

    A key whose ID is in the profile is reused. Keys that a journal shows were
    made by an interrupted run, and that no sink holds, are deleted and
    replaced. Any other key that no sink holds blocks the plan with the fix.
    """
    iam = ctx.client("iam")
    user = get_user(iam, p.user_name)
    sinks = credential_sinks(ctx, p.user_name, p.credentials_profile, p.csv_path)
    profile = sinks[0]
    held = profile.read()
    keys = list_keys(iam, p.user_name) if user else []
    by_id = {k["AccessKeyId"]: k for k in keys}
    found: dict[str, Any] = {"user_name": p.user_name, "user_arn": user["Arn"] if user else None}
    changes: list[Change] = []

    if user:
        changes.append(Change("unchanged", "IAM user", p.user_name, "exists"))
    else:
        changes.append(Change("create", "IAM user", p.user_name, "new service user",
                              apply=lambda: _create_user(iam, p.user_name)))

    if held and held.access_key_id in by_id:
        key = by_id[held.access_key_id]
        found["access_key_id"] = held.masked_id
        if key["Status"] != "Active":
            changes.append(Change("blocked", "access key", held.masked_id,
                                  f"the key in {profile.describe()} is {key['Status']}; activate it "
                                  f"(aws iam update-access-key --user-name {p.user_name} "
                                  "--access-key-id <id> --status Active) or delete it and rerun"))
        else:
            changes.append(Change("unchanged", "access key", held.masked_id,
                                  f"Active, held in {profile.describe()}"))
        for sink in sinks[1:]:
            if (sink.read() or Credentials("", "")).access_key_id != held.access_key_id:
                changes.append(Change("update", sink.kind, str(getattr(sink, "path", "")),
                                      f"copy key {held.masked_id} from the profile",
                                      apply=_copy_key(profile, sink)))
            else:
                changes.append(Change("unchanged", sink.kind, str(getattr(sink, "path", "")),
                                      f"holds {held.masked_id}"))
    elif held:
        changes.append(Change(
            "blocked", "credentials profile", p.credentials_profile,
            f"{profile.describe()} already holds key {held.masked_id}, which is not a key of "
            f"{p.user_name}; writing there would lose it. Choose another credentials_profile "
            "or credentials_file, or remove that profile yourself"))
    else:
        journal = KeyJournal(ctx.account_id, p.user_name) if user else None
        since = journal.pending_since() if journal else None
        orphans = [k for k in keys if since and
                   k["CreateDate"] >= since - timedelta(seconds=5)]
        for key in orphans:
            changes.append(Change(
                "delete", "access key", mask_key_id(key["AccessKeyId"]),
                "made by an interrupted run whose secret was never saved; nobody holds it",
                apply=_delete_key(iam, p.user_name, key["AccessKeyId"])))
        others = [k for k in keys if k not in orphans]
        if others:
            masked = ", ".join(mask_key_id(k["AccessKeyId"]) for k in others)
            changes.append(Change(
                "blocked", "access key", masked,
                f"{p.user_name} has {len(others)} key(s) whose secret is not in "
                f"{profile.describe()}, and AWS shows a secret only once. Put that key's pair in "
                f"the profile and rerun, or delete the key (aws iam list-access-keys --user-name "
                f"{p.user_name}; aws iam delete-access-key --user-name {p.user_name} "
                "--access-key-id <id>) and rerun to get a new one"
                + (f"; IAM allows {MAX_KEYS} keys per user" if len(others) >= MAX_KEYS else "")))
        else:
            where = "; ".join(s.describe() for s in sinks)
            changes.append(Change("create", "access key", "(new)", f"secret saved at once to {where}",
                                  apply=lambda: _create_key(ctx, iam, p.user_name, sinks)))
    return Plan(ctx.section, changes, dry_run=p.dry_run, found=found)


def _create_user(iam: Any, user_name: str) -> dict[str, Any]:
    user = iam.create_user(UserName=user_name)["User"]
    return {"user_arn": user["Arn"]}


def _delete_key(iam: Any, user_name: str, key_id: str):
    def delete() -> dict[str, Any]:
        iam.delete_access_key(UserName=user_name, AccessKeyId=key_id)
        return {"deleted_orphan_key": mask_key_id(key_id)}
    return delete


def _copy_key(source: CredentialSink, sink: CredentialSink):
    def copy() -> dict[str, Any]:
        held = source.read()
        if held is None:
            raise StepError(f"{source.describe()} no longer holds a key")
        sink.write(held)
        return {}
    return copy


def _create_key(ctx: Context, iam: Any, user_name: str,
                sinks: list[CredentialSink]) -> dict[str, Any]:
    """Create a key and put its secret in every sink before anything else happens.

    If the first sink cannot be written, the key is deleted at once (a key
    that nobody holds is a liability) and :class:`StepError` is raised.
    """
    journal = KeyJournal(ctx.account_id, user_name)
    journal.begin()
    answer = iam.create_access_key(UserName=user_name)["AccessKey"]
    credentials = Credentials(answer["AccessKeyId"], answer["SecretAccessKey"])
    del answer
    crashpoints.reached("after-create-access-key")
    try:
        sinks[0].write(credentials)
    except Exception as err:
        iam.delete_access_key(UserName=user_name, AccessKeyId=credentials.access_key_id)
        journal.end()
        raise StepError(f"could not save the new key to {sinks[0].describe()} "
                        f"({type(err).__name__}: {err}); the key was deleted again",
                        fix="make the credentials file writable and rerun") from None
    journal.end()
    failed = []
    for sink in sinks[1:]:
        try:
            sink.write(credentials)
        except OSError as err:
            failed.append(f"{sink.describe()}: {err.strerror}")
    if failed:
        raise StepError(f"key {credentials.masked_id} is saved in {sinks[0].describe()}, but not "
                        f"in {'; '.join(failed)}", fix="fix that path and rerun; the rerun "
                        "copies the key from the profile")
    return {"access_key_id": credentials.masked_id,
            "saved_to": [s.describe() for s in sinks]}
