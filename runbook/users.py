"""Section 01: the service user and its access key.

The key's secret goes from ``CreateAccessKey``'s answer straight into the
credential sinks; the run shows the masked key ID only. A small journal
(``<home>/journal/``) marks the window between asking AWS for a key and
having its secret on disk, so a run that died inside it is recognised.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from . import crashpoints, paths
from .context import Context
from .errors import StepError
from .files import atomic_write_text
from .params import CreateUserParams
from .plan import Change, Plan, planner
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
    """The sinks the parameters name: the profile first, then the CSV if asked for.

    Raises :class:`StepError` (before anything is changed) when ``csv_path``
    names a file that is not a credentials CSV: the key must not replace it.
    """
    sinks: list[CredentialSink] = [SharedCredentialsProfile(ctx.credentials_file(), profile)]
    if csv_path:
        csv_sink = ConsoleCsv(csv_path, user_name, ctx.account_id)
        reason = csv_sink.foreign()
        if reason:
            raise StepError(reason, code="ForeignFile",
                            fix="choose another csv_path, or move that file away")
        sinks.append(csv_sink)
    return sinks


class KeyJournal:
    """Marks "a key was asked for and its secret is not saved yet" for one user.

    The journal records the user's ``UserId`` and the IDs of the keys the user
    had just before ``CreateAccessKey``. A key of that same user that is not
    among them, and that no sink holds, can only have come from the
    interrupted call: nobody holds its secret. No clock is compared: AWS's
    ``CreateDate`` and this machine's clock may disagree by any amount, and a
    ``UserId`` that differs means the user was deleted and made again since
    (the journal is stale).
    """

    def __init__(self, account_id: str, user_name: str):
        folder = paths.home() / "journal"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"{account_id}-{user_name}.json"

    def begin(self, user_id: str, keys_before: list[str]) -> None:
        """Open the window: written (atomically) before ``CreateAccessKey`` is sent."""
        atomic_write_text(self.path, json.dumps({
            "requested_at": datetime.now(timezone.utc).isoformat(),
            "user_id": user_id, "keys_before": sorted(keys_before)}))

    def pending(self) -> dict[str, Any] | None:
        """The open window's record, or None. An unreadable journal counts as none."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "keys_before" in record else None

    def orphans(self, user: dict | None, keys: list[dict], held: set[str]) -> list[dict]:
        """The keys of ``user`` made in the open window that no sink holds (``held`` IDs)."""
        record = self.pending()
        if not record or not user or record.get("user_id") != user.get("UserId"):
            return []
        before = set(record["keys_before"])
        return [k for k in keys if k["AccessKeyId"] not in before
                and k["AccessKeyId"] not in held]

    def end(self) -> None:
        self.path.unlink(missing_ok=True)


def settle_key_journal(ctx: Context, user_name: str, user: dict | None, keys: list[dict],
                       held: set[str | None], dry_run: bool) -> list[dict]:
    """The keys an interrupted key creation left that nobody holds (to delete), or none.

    Every plan that may create or reuse the user's key calls this first
    (section 01, rotate): with no such key, the journal is closed here (not
    in a dry run), so a stale one cannot later mistake a key made by other
    hands for the interrupted run's.
    """
    journal = KeyJournal(ctx.account_id, user_name)
    orphans = journal.orphans(user, keys, {h for h in held if h})
    if not orphans and not dry_run:
        journal.end()  # the window closed, or the journal is stale: nothing to recover
    return orphans


def _two_keys_fix(user_name: str, keys: list[dict]) -> str:
    listed = ", ".join(f"{mask_key_id(k['AccessKeyId'])} ({k['Status']}, created "
                       f"{k['CreateDate']:%Y-%m-%d})" for k in keys)
    inactive = [k for k in keys if k["Status"] != "Active"]
    which = (f"the Inactive key {mask_key_id(inactive[0]['AccessKeyId'])}" if inactive
             else "the key nobody uses any more")
    return (f"{user_name} already has {len(keys)} access keys, IAM's limit of {MAX_KEYS} per "
            f"user, and none of them is in the credentials profile: {listed}. No third key "
            f"was asked for. Delete {which} and rerun: aws iam list-access-keys --user-name "
            f"{user_name}; aws iam delete-access-key --user-name {user_name} --access-key-id "
            "<the key's full ID>")


@planner
def plan_user(ctx: Context, p: CreateUserParams) -> Plan:
    """Read IAM and the sinks; return what section 01 would change.

    A key whose ID is in the profile is reused. Keys that the journal shows
    were made by an interrupted run, and that no sink holds, are deleted (and
    a key is made in their place when the profile holds none). Any other key
    that no sink holds blocks the plan with the fix: AWS shows a secret once.
    """
    ctx.refuse_operator_as_service_user(p.user_name)
    iam = ctx.client("iam")
    user = get_user(iam, p.user_name)
    sinks = credential_sinks(ctx, p.user_name, p.credentials_profile, p.csv_path)
    profile = sinks[0]
    held = profile.read()
    held_ids = {c.access_key_id for c in [held, *(s.read() for s in sinks[1:])] if c}
    all_keys = list_keys(iam, p.user_name) if user else []
    journal = KeyJournal(ctx.account_id, p.user_name)
    orphans = settle_key_journal(ctx, p.user_name, user, all_keys, held_ids, p.dry_run)
    keys = [k for k in all_keys if k not in orphans]
    by_id = {k["AccessKeyId"]: k for k in keys}
    found: dict[str, Any] = {"user_name": p.user_name, "user_arn": user["Arn"] if user else None}
    changes: list[Change] = []
    made = {"user": user}  # _create_user fills it in for _create_key

    if user:
        changes.append(Change("unchanged", "IAM user", p.user_name, "exists"))
    else:
        changes.append(Change("create", "IAM user", p.user_name, "new service user",
                              apply=lambda: _create_user(iam, p.user_name, made)))
    for number, key in enumerate(orphans, 1):
        changes.append(Change(
            "delete", "access key", mask_key_id(key["AccessKeyId"]),
            "made by an interrupted run whose secret was never saved; nobody holds it",
            apply=_delete_key(iam, p.user_name, key["AccessKeyId"],
                              journal if number == len(orphans) else None)))

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
    elif len(keys) >= MAX_KEYS:
        changes.append(Change("blocked", "access key",
                              ", ".join(mask_key_id(k["AccessKeyId"]) for k in keys),
                              _two_keys_fix(p.user_name, keys)))
    elif keys:
        masked = ", ".join(mask_key_id(k["AccessKeyId"]) for k in keys)
        changes.append(Change(
            "blocked", "access key", masked,
            f"{p.user_name} has {len(keys)} key(s) whose secret is not in "
            f"{profile.describe()}, and AWS shows a secret only once. Put that key's pair in "
            f"the profile and rerun, or delete the key (aws iam list-access-keys --user-name "
            f"{p.user_name}; aws iam delete-access-key --user-name {p.user_name} "
            "--access-key-id <id>) and rerun to get a new one"))
    else:
        where = "; ".join(s.describe() for s in sinks)
        before = [k["AccessKeyId"] for k in all_keys]
        changes.append(Change("create", "access key", "(new)", f"secret saved at once to {where}",
                              apply=lambda: _create_key(ctx, iam, made, p.user_name, sinks,
                                                        before)))
    return Plan(ctx.section, changes, dry_run=p.dry_run, found=found)


def _create_user(iam: Any, user_name: str, made: dict[str, Any]) -> dict[str, Any]:
    try:
        user = iam.create_user(UserName=user_name)["User"]
    except iam.exceptions.EntityAlreadyExistsException:
        # The plan saw no user: a retry whose first answer was lost, or a run alongside.
        user = iam.get_user(UserName=user_name)["User"]
    made["user"] = user
    return {"user_arn": user["Arn"]}


def _delete_key(iam: Any, user_name: str, key_id: str, journal: KeyJournal | None = None):
    def delete() -> dict[str, Any]:
        try:
            iam.delete_access_key(UserName=user_name, AccessKeyId=key_id)
        except iam.exceptions.NoSuchEntityException:
            pass  # a retried delete whose first answer was lost: it is gone either way
        if journal:
            journal.end()
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


def _create_key(ctx: Context, iam: Any, made: dict[str, Any], user_name: str,
                sinks: list[CredentialSink], keys_before: list[str]) -> dict[str, Any]:
    """Create a key and put its secret in every sink before anything else happens.

    The journal brackets the call, so a crash before the secret is on disk is
    recognised by the next run. If the first sink cannot be written, the key
    is deleted at once (a key that nobody holds is a liability) and
    :class:`StepError` is raised. If botocore had to retry ``CreateAccessKey``,
    an earlier attempt may have made a key whose answer was lost: any such key
    is deleted before the journal closes.
    """
    journal = KeyJournal(ctx.account_id, user_name)
    journal.begin(made["user"]["UserId"], keys_before)
    # No try/except to close the journal on failure: an attempt whose answer was lost
    # may have made a key; the next run's plan closes the journal when none was made.
    answer = iam.create_access_key(UserName=user_name)
    retries = answer.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    credentials = Credentials(answer["AccessKey"]["AccessKeyId"],
                              answer["AccessKey"]["SecretAccessKey"])
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
    facts: dict[str, Any] = {"access_key_id": credentials.masked_id,
                             "saved_to": [s.describe() for s in sinks]}
    if retries:
        lost = [k["AccessKeyId"] for k in list_keys(iam, user_name)
                if k["AccessKeyId"] not in keys_before
                and k["AccessKeyId"] != credentials.access_key_id]
        for key_id in lost:
            _delete_key(iam, user_name, key_id)()
        if lost:
            facts["deleted_lost_keys"] = [mask_key_id(k) for k in lost]
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
    return facts
