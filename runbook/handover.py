"""Section 04: what the deployment service's "Add credentials" form asked for.

Docker Cloud's form took two fields, ``Access Key ID`` and ``Secret Access
Key``. This section reads the pair back from the credentials profile,
confirms with IAM that the key is the service user's and Active, and says
where each field's value is. The secret stays in the profile.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .params import HandoverParams
from .plan import Change, Plan, planner, Table
from .sinks import SharedCredentialsProfile
from .users import get_user, list_keys


@planner
def plan_handover(ctx: Context, p: HandoverParams) -> Plan:
    """Check the key in the profile against IAM. Changes nothing in AWS.

    The plan is blocked (with the fix) when the profile holds no key, or a
    key that is not the user's, or one that is not Active.
    """
    iam = ctx.client("iam")
    sink = SharedCredentialsProfile(ctx.credentials_file(), p.credentials_profile)
    held = sink.read()
    found: dict[str, Any] = {"user_name": p.user_name, "credentials_profile": p.credentials_profile,
                             "credentials_file": str(sink.path)}
    name = f"{p.credentials_profile} ({p.user_name})"
    if held is None:
        action = "create" if p.dry_run else "blocked"
        detail = ("once 01_create_user has saved a key" if p.dry_run else
                  f"{sink.describe()} holds no key; run 01_create_user first")
        return Plan(ctx.section, [Change(action, "credentials handover", name, detail)],
                    dry_run=p.dry_run, found=found)
    found["access_key_id"] = held.masked_id
    user = get_user(iam, p.user_name)
    keys = {k["AccessKeyId"]: k for k in list_keys(iam, p.user_name)} if user else {}
    key = keys.get(held.access_key_id)
    if key is None:
        change = Change("blocked", "credentials handover", name,
                        f"key {held.masked_id} in {sink.describe()} is not a key of "
                        f"{p.user_name}; rerun 01_create_user with the same profile")
    elif key["Status"] != "Active":
        change = Change("blocked", "credentials handover", name,
                        f"key {held.masked_id} is {key['Status']}; activate it or rotate it")
    else:
        found["key_status"] = key["Status"]
        found["user_arn"] = user["Arn"]
        change = Change("unchanged", "credentials handover", name,
                        f"key {held.masked_id} is {p.user_name}'s and Active")
    return Plan(ctx.section, [change], dry_run=p.dry_run, found=found)


def form_fields(p: HandoverParams, credentials_file: str, masked_id: str | None) -> Table:
    """Which value goes in which field of the "Add credentials" form, and where it is."""
    env = f"AWS_SHARED_CREDENTIALS_FILE={credentials_file}"
    return Table("Add credentials: Amazon Web Services", ["form field", "value", "read it with"], [
        ["Access Key ID", masked_id or "(not yet created)",
         f"{env} aws configure get aws_access_key_id --profile {p.credentials_profile}"],
        ["Secret Access Key", "(kept in the profile, never shown)",
         f"{env} aws configure get aws_secret_access_key --profile {p.credentials_profile}"],
    ])
