"""Unlink: undo what the link made, in the order IAM requires, and forget the key.

IAM refuses ``DeleteUser`` (``DeleteConflict``) while the user still has
access keys, a login profile, MFA devices, signing certificates, SSH keys,
inline policies, managed-policy attachments or group memberships, so those go
first, in that order. The managed policy goes last, with its non-default
versions before it, and only when nothing else (another user, a group, a role)
still uses it; otherwise it is kept and the plan says who uses it. Then the
profile leaves the credentials file, and the CSV is removed if one is named.

Nothing is deleted unless ``confirm`` is true: without it the plan is shown
and the outcome is ``planned``. Every step reads first, so unlinking an
account that is already unlinked changes nothing.

Service-specific credentials (CodeCommit, Keyspaces) are not handled: the
link never makes them, and moto 5.2 answers their API with a server error.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .attachment import attached_policy_arns
from .context import Context
from .params import UnlinkParams
from .plan import Change, Plan, planner
from .secrets import mask_key_id
from .rotate import RotationJournal
from .sinks import ConsoleCsv, SharedCredentialsProfile
from .users import KeyJournal, get_user, list_keys

NOT_CONFIRMED = ("not given: nothing was deleted. Set confirm=True (runbook unlink --confirm) "
                 "to delete what the plan lists")


def _pages(iam: Any, operation: str, key: str, **kwargs: Any) -> list[dict]:
    pages = iam.get_paginator(operation).paginate(**kwargs)
    return [item for page in pages for item in page[key]]


@planner
def plan_unlink(ctx: Context, p: UnlinkParams) -> Plan:
    """Read the user, the policy and the sinks; return what unlinking would delete, in order.

    The plan is a dry run unless ``p.confirm``; ``found["confirm"]`` says so.
    Raises nothing for missing things: what is already gone is ``unchanged``.
    """
    ctx.refuse_operator_as_service_user(p.user_name)
    iam = ctx.client("iam")
    user = get_user(iam, p.user_name)
    policy_arn = ctx.arn("iam", f"policy/{p.policy_name}")
    found: dict[str, Any] = {"user_name": p.user_name, "policy_arn": policy_arn,
                             "confirm": True if p.confirm else NOT_CONFIRMED}
    user_keys: set[str] = set()
    changes: list[Change] = []
    if user is None:
        changes.append(Change("unchanged", "IAM user", p.user_name, "does not exist"))
    else:
        user_keys = {k["AccessKeyId"] for k in list_keys(iam, p.user_name)}
        # The user's journals go with it: a later user of that name is another user.
        journals = [KeyJournal(ctx.account_id, p.user_name),
                    RotationJournal(ctx.account_id, p.user_name)]
        changes.extend(_user_changes(iam, p.user_name, user_keys, journals))
    changes.extend(_policy_changes(iam, policy_arn, p.policy_name, p.user_name, found))
    changes.extend(_sink_changes(ctx, iam, p, user_keys))
    return Plan(ctx.section, changes, dry_run=p.dry_run or not p.confirm, found=found)


def _user_changes(iam: Any, user: str, keys: set[str], journals: list[Any]) -> list[Change]:
    """Everything that makes IAM refuse DeleteUser, in IAM's order, then DeleteUser.

    Deleting the user also closes ``journals`` (their ``end()``).
    """
    changes = [Change("delete", "access key", mask_key_id(k), f"of {user}",
                      apply=_call(iam.delete_access_key, UserName=user, AccessKeyId=k))
               for k in sorted(keys)]
    try:
        iam.get_login_profile(UserName=user)
        changes.append(Change("delete", "login profile", user, "console password",
                              apply=_call(iam.delete_login_profile, UserName=user)))
    except iam.exceptions.NoSuchEntityException:
        pass
    for device in _pages(iam, "list_mfa_devices", "MFADevices", UserName=user):
        serial = device["SerialNumber"]
        virtual = ":mfa/" in serial  # a hardware token's serial is not an ARN
        changes.append(Change("delete", "MFA device", serial,
                              "deactivate, then delete the virtual device" if virtual else
                              "deactivate (a hardware device is not deleted)",
                              apply=_mfa(iam, user, serial, virtual)))
    for cert in _pages(iam, "list_signing_certificates", "Certificates", UserName=user):
        changes.append(Change("delete", "signing certificate", cert["CertificateId"], "",
                              apply=_call(iam.delete_signing_certificate, UserName=user,
                                          CertificateId=cert["CertificateId"])))
    for ssh in _pages(iam, "list_ssh_public_keys", "SSHPublicKeys", UserName=user):
        changes.append(Change("delete", "SSH public key", ssh["SSHPublicKeyId"], "",
                              apply=_call(iam.delete_ssh_public_key, UserName=user,
                                          SSHPublicKeyId=ssh["SSHPublicKeyId"])))
    for name in _pages(iam, "list_user_policies", "PolicyNames", UserName=user):
        changes.append(Change("delete", "inline policy", name, f"of {user}",
                              apply=_call(iam.delete_user_policy, UserName=user,
                                          PolicyName=name)))
    for arn in attached_policy_arns(iam, user):
        changes.append(Change("delete", "policy attachment", f"{arn.split('/')[-1]} -> {user}",
                              "detach", apply=_call(iam.detach_user_policy, UserName=user,
                                                    PolicyArn=arn)))
    for group in _pages(iam, "list_groups_for_user", "Groups", UserName=user):
        changes.append(Change("delete", "group membership", f"{user} in {group['GroupName']}",
                              "", apply=_call(iam.remove_user_from_group, UserName=user,
                                              GroupName=group["GroupName"])))
    changes.append(Change("delete", "IAM user", user, "nothing of it is left",
                          apply=_call(iam.delete_user, UserName=user,
                                      then=[j.end for j in journals])))
    return changes


def _policy_changes(iam: Any, arn: str, name: str, user: str,
                    found: dict[str, Any]) -> list[Change]:
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        return [Change("unchanged", "managed policy", name, "does not exist")]
    others = []
    for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
        others += [f"user {u['UserName']}" for u in page["PolicyUsers"] if u["UserName"] != user]
        others += [f"group {g['GroupName']}" for g in page["PolicyGroups"]]
        others += [f"role {r['RoleName']}" for r in page["PolicyRoles"]]
    if others:
        found["policy_kept_for"] = others
        return [Change("unchanged", "managed policy", name,
                       f"kept: still attached to {', '.join(others)}")]
    changes = [Change("delete", "policy version", f"{name} {v['VersionId']}",
                      "IAM deletes a policy only without its non-default versions",
                      apply=_call(iam.delete_policy_version, PolicyArn=arn,
                                  VersionId=v["VersionId"]))
               for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]
               if not v["IsDefaultVersion"]]
    changes.append(Change("delete", "managed policy", name, "nothing else uses it",
                          apply=_call(iam.delete_policy, PolicyArn=arn)))
    return changes


def _key_is_gone_or_users(iam: Any, key_id: str, user: str) -> bool:
    """True when ``key_id`` no longer exists in IAM, or is ``user``'s."""
    try:
        return iam.get_access_key_last_used(AccessKeyId=key_id).get("UserName") == user
    except iam.exceptions.NoSuchEntityException:
        return True
    except ClientError:
        return False  # cannot tell (e.g. AccessDenied): keep the profile


def _sink_changes(ctx: Context, iam: Any, p: UnlinkParams, user_keys: set[str]) -> list[Change]:
    profile = SharedCredentialsProfile(ctx.credentials_file(), p.credentials_profile)
    changes = []
    held = profile.read()
    if held is None:
        changes.append(Change("unchanged", "credentials profile", p.credentials_profile,
                              f"{profile.describe()} holds no key"))
    elif held.access_key_id in user_keys or _key_is_gone_or_users(iam, held.access_key_id,
                                                                   p.user_name):
        changes.append(Change("delete", "credentials profile", p.credentials_profile,
                              f"remove key {held.masked_id} from {profile.describe()}",
                              apply=lambda: profile.remove() and {}))
    else:
        changes.append(Change("unchanged", "credentials profile", p.credentials_profile,
                              f"kept: {profile.describe()} holds key {held.masked_id}, which is "
                              f"not {p.user_name}'s"))
    if p.csv_path:
        csv = ConsoleCsv(p.csv_path, p.user_name, ctx.account_id)
        if csv.read() is not None:
            changes.append(Change("delete", "credentials CSV", p.csv_path,
                                  f"holds {p.user_name}'s key",
                                  apply=lambda: csv.remove() and {}))
        else:
            changes.append(Change("unchanged", "credentials CSV", p.csv_path,
                                  f"holds no key of {p.user_name}"))
    return changes


def _call(operation: Any, then: list[Any] = (), **kwargs: Any):
    """``operation(**kwargs)``, then each of ``then``, as a change's apply."""
    def call() -> dict[str, Any]:
        operation(**kwargs)
        for step in then:
            step()
        return {}
    return call


def _mfa(iam: Any, user: str, serial: str, virtual: bool):
    def remove() -> dict[str, Any]:
        iam.deactivate_mfa_device(UserName=user, SerialNumber=serial)
        if virtual:
            iam.delete_virtual_mfa_device(SerialNumber=serial)
        return {}
    return remove
