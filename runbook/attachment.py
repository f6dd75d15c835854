"""Section 03: attach the managed policy to the service user."""

from __future__ import annotations

from typing import Any

from .context import Context
from .params import AttachParams
from .plan import Change, Plan, planner
from .users import get_user


def attached_policy_arns(iam: Any, user_name: str) -> list[str]:
    pages = iam.get_paginator("list_attached_user_policies").paginate(UserName=user_name)
    return [p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]]


@planner
def plan_attach(ctx: Context, p: AttachParams) -> Plan:
    """Return what section 03 would change: attach ``policy_name`` to ``user_name``.

    In a dry run a missing user or policy is expected (01 and 02 would make
    them); otherwise it blocks the plan with the section to run first.
    """
    ctx.refuse_operator_as_service_user(p.user_name)
    iam = ctx.client("iam")
    arn = ctx.arn("iam", f"policy/{p.policy_name}")
    found: dict[str, Any] = {"user_name": p.user_name, "policy_arn": arn}
    user = get_user(iam, p.user_name)
    try:
        iam.get_policy(PolicyArn=arn)
        policy_exists = True
    except iam.exceptions.NoSuchEntityException:
        policy_exists = False
    missing = [what for what, ok in (("user " + p.user_name, user),
                                     ("policy " + p.policy_name, policy_exists)) if not ok]
    if missing:
        if p.dry_run:
            change = Change("create", "policy attachment", f"{p.policy_name} -> {p.user_name}",
                            f"once {' and '.join(missing)} exist (sections 01 and 02)")
        else:
            change = Change("blocked", "policy attachment", f"{p.policy_name} -> {p.user_name}",
                            f"{' and '.join(missing)} not found; run 01_create_user and "
                            "02_create_policy first")
        return Plan(ctx.section, [change], dry_run=p.dry_run, found=found)
    if arn in attached_policy_arns(iam, p.user_name):
        change = Change("unchanged", "policy attachment", f"{p.policy_name} -> {p.user_name}",
                        "already attached")
    else:
        change = Change("create", "policy attachment", f"{p.policy_name} -> {p.user_name}",
                        "attach the managed policy",
                        apply=lambda: iam.attach_user_policy(UserName=p.user_name,
                                                             PolicyArn=arn) and None)
    return Plan(ctx.section, [change], dry_run=p.dry_run, found=found)
