"""Section 05: prove the link works the way Docker Cloud checked it.

With the service user's own key, from the credentials profile:

1. key readiness: ``sts:GetCallerIdentity`` until it answers as the user
   (:func:`runbook.readiness.wait_for_key`), timed;
2. Docker Cloud's link check: a dry-run ``RunInstances`` in every region
   ``ec2:DescribeRegions`` lists in the account's partition, in parallel; the
   link is valid when at least one region allows it;
3. ``iam:ListInstanceProfiles`` allowed;
4. with ``instance_profile``: ``iam:PassRole`` on that profile's role, to EC2.

moto ignores ``Condition`` blocks and never checks ``iam:PassRole``, so in the
sandbox each answer is moto's (authentication, unconditional permissions)
combined with :mod:`runbook.evaluate` over the user's effective policies
(attached managed, inline, and its groups'). On ``aws`` the real dry run is
combined with ``iam:SimulatePrincipalPolicy`` given the same context keys.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from .audit import AuditLog
from .context import Context
from .errors import StepError
from .evaluate import ALLOW, Decision, Request, evaluate
from .params import VerifyParams, partition_of
from .plan import Change, Outcome, Plan, Table, planner
from .readiness import wait_for_key
from .sinks import SharedCredentialsProfile
from .users import get_user

MAX_WORKERS = 8  # parallel dry runs: quick, and well inside EC2's request rate limits
DRY_RUN_IMAGE = "ami-12c6146b"  # a well-formed placeholder: the check is about authorization
PASSED_TO = "ec2.amazonaws.com"


# What the service user's key is asked in this section, per service.
KEY_OPERATIONS = {"ec2": frozenset({"RunInstances"})}


def regions_in_partition(ec2: Any, partition: str) -> list[str]:
    """``ec2:DescribeRegions`` for the account, limited to ``partition``, sorted."""
    names = [r["RegionName"] for r in ec2.describe_regions()["Regions"]]
    return sorted(n for n in names if partition_of(n) == partition)


# --- judges: what IAM decides where moto cannot say ---

def effective_policies(iam: Any, user_name: str) -> dict[str, Any]:
    """The user's identity policies by name: attached managed, inline, and its groups'."""
    def managed(attached: list[dict[str, str]]) -> dict[str, Any]:
        found = {}
        for item in attached:
            version = iam.get_policy(PolicyArn=item["PolicyArn"])["Policy"]["DefaultVersionId"]
            found[item["PolicyName"]] = iam.get_policy_version(
                PolicyArn=item["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
        return found

    def pages(method: str, key: str, **kwargs: Any) -> list[Any]:
        return [x for page in iam.get_paginator(method).paginate(**kwargs) for x in page[key]]

    policies = managed(pages("list_attached_user_policies", "AttachedPolicies",
                             UserName=user_name))
    for name in pages("list_user_policies", "PolicyNames", UserName=user_name):
        policies[f"inline:{name}"] = iam.get_user_policy(
            UserName=user_name, PolicyName=name)["PolicyDocument"]
    for group in pages("list_groups_for_user", "Groups", UserName=user_name):
        g = group["GroupName"]
        for name, doc in managed(pages("list_attached_group_policies", "AttachedPolicies",
                                       GroupName=g)).items():
            policies[f"group:{g}:{name}"] = doc
        for name in pages("list_group_policies", "PolicyNames", GroupName=g):
            policies[f"group:{g}:inline:{name}"] = iam.get_group_policy(
                GroupName=g, PolicyName=name)["PolicyDocument"]
    return {k: json.loads(v) if isinstance(v, str) else v for k, v in policies.items()}


class EvaluatorJudge:
    """The sandbox's stand-in for IAM's decision: :func:`runbook.evaluate.evaluate`."""

    source = "policy evaluation"

    def __init__(self, policies: dict[str, Any]):
        self.policies = policies

    def __call__(self, request: Request) -> Decision:
        return evaluate(self.policies, request)


class SimulatorJudge:
    """Real IAM's decision, from ``iam:SimulatePrincipalPolicy`` with context entries."""

    source = "IAM policy simulator"

    def __init__(self, iam: Any, user_arn: str):
        self.iam, self.user_arn = iam, user_arn

    def __call__(self, request: Request) -> Decision:
        entries = [{"ContextKeyName": k, "ContextKeyValues": [v] if isinstance(v, str) else v,
                    "ContextKeyType": "string"} for k, v in request.context.items()]
        result = self.iam.simulate_principal_policy(
            PolicySourceArn=self.user_arn, ActionNames=[request.action],
            ResourceArns=[request.resource], ContextEntries=entries)["EvaluationResults"][0]
        sources = tuple(s.get("SourcePolicyId", "?") for s in result.get("MatchedStatements", []))
        decision = result["EvalDecision"]
        if decision == ALLOW:
            return Decision(ALLOW, f"allowed by {', '.join(sources) or 'a policy'}", sources)
        missing = result.get("MissingContextValues") or []
        why = f"; missing context {', '.join(missing)}" if missing else ""
        return Decision(decision, f"{decision} for {request.action}{why}", sources)


# --- the checks ---

@dataclass
class Check:
    """One line of the link check: what was asked, whether it passed, why."""

    name: str
    subject: str
    passed: bool
    detail: str
    fix: str = ""
    code: str | None = None


@dataclass
class RegionResult:
    region: str
    allowed: bool
    why: str


def _error_code(err: ClientError) -> tuple[str, str]:
    error = err.response.get("Error", {})
    return error.get("Code", ""), error.get("Message", "")


def dry_run_region(ec2: Any, region: str, judge: Callable[[Request], Decision],
                   resource: str) -> RegionResult:
    """Ask EC2 (dry run) and the judge whether the user may launch an instance in ``region``.

    Allowed only when EC2 answers ``DryRunOperation`` and the judge allows
    ``ec2:RunInstances`` with ``ec2:Region`` and ``aws:RequestedRegion`` set.
    """
    try:
        ec2.run_instances(ImageId=DRY_RUN_IMAGE, InstanceType="t2.micro", MinCount=1,
                          MaxCount=1, DryRun=True)
        code, message = "Succeeded", "the call was not a dry run"  # pragma: no cover
    except ClientError as err:
        code, message = _error_code(err)
    # EC2 may check the placeholder image before it gets to authorization; then only the
    # judge can answer, and the table says so.
    image_refused = code.startswith("InvalidAMIID")
    if code != "DryRunOperation" and not image_refused:
        return RegionResult(region, False, f"EC2 answered {code}: {message}".rstrip(": "))
    decision = judge(Request("ec2:RunInstances", resource,
                             {"ec2:Region": region, "aws:RequestedRegion": region}))
    if not decision.allowed:
        return RegionResult(region, False, f"{judge.source}: {decision.reason}")
    ec2_said = f"EC2 refused the placeholder image ({code})" if image_refused else \
        "dry run succeeded"
    return RegionResult(region, True, f"{ec2_said}; {judge.source}: {decision.reason}")


@dataclass(repr=False)  # keep Plan's table repr
class VerifyPlan(Plan):
    """The link check: its checks and the per-region answers. Shows as a check table."""

    checks: list[Check] = field(default_factory=list)
    regions: list[RegionResult] = field(default_factory=list)

    def table(self) -> Table:
        if not self.checks:
            return super().table()
        return Table(f"Link check for {self.section}", ["check", "subject", "result", "detail"],
                     [[c.name, c.subject, "ok" if c.passed else "FAILED",
                       c.detail + (f" (fix: {c.fix})" if c.fix else "")] for c in self.checks])

    def region_table(self) -> Table:
        """Every region of the partition: allowed or denied, and why."""
        return Table("Dry-run RunInstances per region", ["region", "result", "why"],
                     [[r.region, "allowed" if r.allowed else "denied", r.why]
                      for r in self.regions])

    def apply(self) -> Outcome:
        """``unchanged`` when every check passed, ``planned`` when there is nothing to check
        yet (dry run), else ``failed``: shown, then :class:`StepError` with the first reason."""
        failed = [c for c in self.checks if not c.passed]
        if failed:
            first = failed[0]
            return Outcome(self.section, "failed", dict(self.found), [], error={
                "code": first.code or "LinkNotValid",
                "message": f"{first.name}: {first.detail}" + (f"; fix: {first.fix}"
                                                              if first.fix else ""),
                "operation": None}).raise_after_display()
        return super().apply()


@planner
def plan_verify(ctx: Context, p: VerifyParams) -> VerifyPlan:
    """Verify the link with the service user's key; return the checks as a plan.

    Makes no change (the RunInstances calls are dry runs). In a dry run
    before sections 01-04 made the user and key, the plan says so and the
    outcome is ``planned``; otherwise a missing user or key is a failed check.
    """
    iam = ctx.client("iam")
    sink = SharedCredentialsProfile(ctx.credentials_file(), p.credentials_profile)
    held = sink.read()
    user = get_user(iam, p.user_name)
    found: dict[str, Any] = {"user_name": p.user_name}
    name = f"{p.user_name} ({p.credentials_profile})"
    if held is None or user is None:
        missing = (f"user {p.user_name}" if user is None else f"a key in {sink.describe()}")
        if p.dry_run:
            return VerifyPlan(ctx.section, [Change("create", "link check", name,
                                                   f"once sections 01-04 made {missing}")],
                              dry_run=True, found=found)
        check = Check("credentials", name, False, f"no {missing}", "run 01_create_user first",
                      code="NoSuchEntity" if user is None else "NoCredentials")
        return VerifyPlan(ctx.section, [], dry_run=p.dry_run, found=found, checks=[check])

    user_arn = user["Arn"]
    # The key's clients need few operations: one EC2 client per region is made,
    # and a client with all of EC2's 790 methods costs 25 ms to make.
    session = ctx.target.key_session(held, ctx.region, operations=KEY_OPERATIONS)
    log = AuditLog(ctx.audit.path, ctx.section)
    log.caller_arn = user_arn
    log.attach(session)
    key_client = lambda service, region=ctx.region: ctx.target.client(  # noqa: E731
        session, service, region)
    checks: list[Check] = []
    try:
        ready = wait_for_key(key_client("sts"), user_arn)
    except StepError as err:
        checks.append(Check("key readiness", held.masked_id, False, str(err).split("\n")[0],
                            err.fix or "", code=err.code))
        return VerifyPlan(ctx.section, [], dry_run=p.dry_run, found=found, checks=checks)
    found["key_ready_seconds"] = ready.seconds
    checks.append(Check("key readiness", held.masked_id, True,
                        f"STS answers as {user_arn} after {ready.seconds} s "
                        f"({ready.attempts} attempt{'s' if ready.attempts > 1 else ''})"))

    partition = ctx.partition
    judge: Callable[[Request], Decision] = (
        EvaluatorJudge(effective_policies(iam, p.user_name)) if ctx.target.name == "sandbox"
        else SimulatorJudge(iam, user_arn))

    role_arn = None
    if p.instance_profile:
        try:
            profile = iam.get_instance_profile(InstanceProfileName=p.instance_profile)
        except iam.exceptions.NoSuchEntityException:
            profile = None
        roles = profile["InstanceProfile"]["Roles"] if profile else []
        found["instance_profile"] = p.instance_profile
        if not roles:
            checks.append(Check("iam:PassRole", p.instance_profile, False,
                                "no such instance profile" if profile is None else
                                "the instance profile has no role",
                                "create it (with its role) or correct instance_profile",
                                code="NoSuchEntity"))
        else:
            role_arn = roles[0]["Arn"]
            found["role_arn"] = role_arn
            decision = judge(Request("iam:PassRole", role_arn,
                                     {"iam:PassedToService": PASSED_TO,
                                      "aws:RequestedRegion": ctx.region}))
            found["pass_role"] = decision.allowed
            checks.append(Check(
                "iam:PassRole", role_arn, decision.allowed, decision.reason,
                "" if decision.allowed else
                f"launching nodes with {p.instance_profile} fails with \"unauthorized "
                f"operation\": rerun 02_create_policy with -p pass_role_arn {role_arn}",
                code=None if decision.allowed else "AccessDenied"))

    regions = regions_in_partition(ctx.client("ec2"), partition)
    if p.verify_regions:
        missing = sorted(set(p.verify_regions) - set(regions))
        if missing:
            checks.append(Check(
                "regions", ", ".join(missing), False,
                f"{', '.join(missing)}: not among the regions DescribeRegions lists for this "
                f"account in {partition}",
                "drop them from verify_regions, or enable them for the account",
                code="InvalidParameterValue"))
        regions = [r for r in regions if r in p.verify_regions]
    # One client per region. Making a client from a shared session is not thread-safe
    # (using one is), so the workers take turns to make theirs: one makes its client
    # while the others wait for EC2's answer.
    making = threading.Lock()

    def check_region(region: str) -> RegionResult:
        with making:
            ec2 = key_client("ec2", region)
        return dry_run_region(ec2, region, judge,
                              f"arn:{partition}:ec2:{region}:{ctx.account_id}:instance/*")

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(regions) or 1)
                                               ) as pool:
        results = list(pool.map(check_region, regions))
    found["regions_allowed"] = sorted(r.region for r in results if r.allowed)
    found["regions_denied"] = sorted(r.region for r in results if not r.allowed)
    allowed = found["regions_allowed"]
    checks.insert(1, Check(
        "dry-run RunInstances", f"{len(allowed)} of {len(results)} regions ({partition})",
        bool(allowed),
        ("allowed in " + ", ".join(allowed)) if allowed else
        "denied in every region: " + (results[0].why if results else "no regions listed"),
        "" if allowed else "attach the policy (03_attach_policy) and check limit_region",
        code=None if allowed else "UnauthorizedOperation"))

    try:
        key_client("iam").list_instance_profiles(MaxItems=1)
        real, why = True, ""
    except ClientError as err:
        code, message = _error_code(err)
        real, why = False, f"IAM answered {code}: {message}"
    decision = judge(Request("iam:ListInstanceProfiles",
                             f"arn:{partition}:iam::{ctx.account_id}:instance-profile/*",
                             {"aws:RequestedRegion": ctx.region}))
    listed = real and decision.allowed
    found["list_instance_profiles"] = listed
    checks.insert(2, Check(
        "iam:ListInstanceProfiles", p.user_name, listed,
        why or f"{judge.source}: {decision.reason}",
        "" if listed else "allow iam:ListInstanceProfiles in a statement without a region "
                          "condition (rerun 02_create_policy with the runbook's document)",
        code=None if listed else "AccessDenied"))
    found["link_valid"] = all(c.passed for c in checks)
    return VerifyPlan(ctx.section, [Change("unchanged", "link check", name, "verified")],
                      dry_run=p.dry_run, found=found, checks=checks, regions=results)
