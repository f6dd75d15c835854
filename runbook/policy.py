"""Section 02: the service user's managed policy.

:func:`policy_document` builds the document the procedure gives (standard,
region-limited, with or without PassRole); :func:`validate_document` checks it
against the IAM policy grammar and lints it before any call; :func:`plan_policy` creates
the policy or adds a new default version when the document changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .context import Context
from .errors import StepError
from .params import PolicyParams, parse_role_arn
from .plan import Change, Plan, planner, Table

VERSION = "2012-10-17"
MAX_VERSIONS = 5  # IAM keeps at most five versions of a managed policy


def policy_document(limit_region: str | None = None,
                    pass_role_arn: str | None = None) -> dict[str, Any]:
    """The service user's policy, as the procedure gives it.

    Without ``limit_region``: one statement allowing ``ec2:*`` and
    ``iam:ListInstanceProfiles``. With it: ``ec2:*`` under ``StringEquals``
    ``ec2:Region`` and ``iam:ListInstanceProfiles`` in a statement of its own
    (that action has no region, so the condition would never match it). With
    ``pass_role_arn``: ``iam:PassRole`` on that role only, to EC2 only.
    """
    if limit_region is None:
        statements: list[dict[str, Any]] = [{
            "Action": ["ec2:*", "iam:ListInstanceProfiles"],
            "Effect": "Allow",
            "Resource": "*",
        }]
    else:
        statements = [
            {"Action": ["ec2:*"], "Effect": "Allow", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:Region": limit_region}}},
            {"Action": ["iam:ListInstanceProfiles"], "Effect": "Allow", "Resource": "*"},
        ]
    if pass_role_arn is not None:
        parse_role_arn(pass_role_arn)
        statements.append({
            "Sid": "PassRoleToEc2",
            "Action": ["iam:PassRole"],
            "Effect": "Allow",
            "Resource": pass_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        })
    return {"Version": VERSION, "Statement": statements}


@dataclass(frozen=True)
class PolicyFinding:
    """One thing a policy check found. ``error`` blocks creation; the rest inform."""

    severity: str   # error | warning | info
    statement: str  # "1", "2", ... or "document"
    what: str
    fix: str


CONDITION_OPERATORS = {
    f"{base}{suffix}"
    for base in ("StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
                 "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike", "NumericEquals",
                 "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
                 "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals",
                 "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
                 "Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals", "ArnLike",
                 "ArnNotEquals", "ArnNotLike")
    for suffix in ("", "IfExists")
} | {"Null"}
_STATEMENT_KEYS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                   "Resource", "NotResource", "Condition"}


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_grammar(document: Any) -> list[PolicyFinding]:
    """Check ``document`` (a dict or JSON text) against IAM's identity-policy grammar.

    Returns findings; any ``error`` means IAM would reject the document or
    the runbook should not create it.
    """
    findings: list[PolicyFinding] = []
    add = lambda sev, st, what, fix: findings.append(PolicyFinding(sev, st, what, fix))
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as err:
            add("error", "document", f"not JSON: {err.msg} at line {err.lineno} "
                f"column {err.colno}", "fix the JSON syntax")
            return findings
    if not isinstance(document, dict):
        add("error", "document", "the document must be a JSON object", "wrap it in { }")
        return findings
    if document.get("Version") != VERSION:
        add("error", "document", f"Version is {document.get('Version')!r}",
            f'use "Version": "{VERSION}" (older versions lack policy variables)')
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        add("error", "document", f"unknown top-level keys: {', '.join(sorted(unknown))}",
            "remove them")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        add("error", "document", "Statement is missing or empty", "add at least one statement")
        return findings
    sids = set()
    for number, st in enumerate(statements, 1):
        where = str(number)
        if not isinstance(st, dict):
            add("error", where, "a statement must be a JSON object", "wrap it in { }")
            continue
        extra = set(st) - _STATEMENT_KEYS
        if extra:
            add("error", where, f"unknown keys: {', '.join(sorted(extra))}", "remove them")
        if st.get("Effect") not in ("Allow", "Deny"):
            add("error", where, f"Effect is {st.get('Effect')!r}", 'use "Allow" or "Deny"')
        if ("Action" in st) == ("NotAction" in st):
            add("error", where, "needs exactly one of Action or NotAction", "add Action")
        if ("Resource" in st) == ("NotResource" in st):
            add("error", where, "needs exactly one of Resource or NotResource",
                'add "Resource": "*" or an ARN')
        if "Principal" in st or "NotPrincipal" in st:
            add("error", where, "an identity policy has no Principal",
                "remove Principal (it belongs in resource and trust policies)")
        for action in _strings(st.get("Action", st.get("NotAction", []))):
            if not isinstance(action, str) or (action != "*" and (
                    action.count(":") != 1 or not all(action.split(":")))):
                add("error", where, f"action {action!r} is not service:Action",
                    'write actions as "service:ActionName", e.g. "ec2:RunInstances"')
        for resource in _strings(st.get("Resource", st.get("NotResource", []))):
            if not isinstance(resource, str) or (resource != "*" and
                                                 not resource.startswith("arn:")):
                add("error", where, f"resource {resource!r} is neither * nor an ARN",
                    "use * or a full ARN")
        condition = st.get("Condition", {})
        if not isinstance(condition, dict):
            add("error", where, "Condition must be an object", "use {operator: {key: value}}")
            condition = {}
        for operator, block in condition.items():
            base = operator.split(":", 1)[-1]  # ForAnyValue:/ForAllValues: prefixes
            if base not in CONDITION_OPERATORS:
                add("error", where, f"unknown condition operator {operator!r}",
                    "use an IAM condition operator such as StringEquals")
            if not isinstance(block, dict) or not block:
                add("error", where, f"{operator} needs a {{key: value}} object", "add the key")
        sid = st.get("Sid")
        if sid is not None:
            if not isinstance(sid, str) or not sid.isalnum():
                add("error", where, f"Sid {sid!r} must be letters and digits only", "rename it")
            elif sid in sids:
                add("error", where, f"Sid {sid!r} is used twice", "make Sids unique")
            sids.add(sid)
    if len(json.dumps(document, separators=(",", ":"))) > 6144:
        add("error", "document", "longer than IAM's 6,144-character limit for managed policies",
            "shorten the document")
    return findings


def validate_document(document: Any) -> list[PolicyFinding]:
    """Everything "Validate Policy" finds in ``document`` (a dict or JSON text).

    Returns the grammar findings of :func:`check_grammar`, then the linter's
    (:func:`runbook.validate.lint`: unknown actions, condition keys that do
    not apply, unscoped PassRole, ...) for the statements the grammar
    accepted. Any ``error`` blocks creation. Pure: no AWS call, same document,
    same list.
    """
    findings = check_grammar(document)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return findings
    if not isinstance(document, dict) or not isinstance(document.get("Statement"),
                                                        (list, dict)):
        return findings
    from .validate import lint  # parliament loads AWS's action list: only when needed

    skip = frozenset(f.statement for f in findings if f.severity == "error")
    return findings + lint(document, skip)


def findings_table(findings: list[PolicyFinding]) -> Table:
    """The findings as a table: severity, statement, what, how to fix."""
    rows = [[f.severity, f.statement, f.what, f.fix] for f in findings] or [
        ["ok", "", "no findings", ""]]
    return Table("Policy validation", ["severity", "statement", "what", "how to fix"], rows)


def canonical(document: Any) -> str:
    """A comparable form: sorted keys, single strings as one-item lists."""
    def norm(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: norm(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if key in ("Action", "NotAction", "Resource", "NotResource") and isinstance(value, str):
            return [value]
        return value
    if isinstance(document, str):
        document = json.loads(document)
    return json.dumps(norm(document), sort_keys=True)


@planner
def plan_policy(ctx: Context, p: PolicyParams, document: dict[str, Any] | None = None) -> Plan:
    """Return what section 02 would change for ``document`` (default: built from ``p``).

    Raises :class:`StepError` (code ``MalformedPolicyDocument``) before any
    call when :func:`validate_document` has an error finding; warnings and
    information do not block.
    """
    document = document or policy_document(p.limit_region, p.pass_role_arn)
    errors = [f for f in validate_document(document) if f.severity == "error"]
    if errors:
        raise StepError("the policy document has errors: " +
                        "; ".join(f"statement {f.statement}: {f.what}" for f in errors),
                        code="MalformedPolicyDocument", fix=errors[0].fix)
    iam = ctx.client("iam")
    arn = ctx.arn("iam", f"policy/{p.policy_name}")
    text = json.dumps(document, indent=2)
    found: dict[str, Any] = {"policy_arn": arn, "limit_region": p.limit_region,
                             "pass_role_arn": p.pass_role_arn}
    try:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
    except iam.exceptions.NoSuchEntityException:
        policy = None
    if policy is None:
        change = Change("create", "managed policy", p.policy_name, "version v1 (default)",
                        apply=lambda: _create_policy(iam, p.policy_name, arn, text, document))
        return Plan(ctx.section, [change], dry_run=p.dry_run, found=found)

    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    found["default_version"] = policy["DefaultVersionId"]
    if canonical(current["PolicyVersion"]["Document"]) == canonical(document):
        return Plan(ctx.section, [Change("unchanged", "managed policy", p.policy_name,
                                         f"default version {policy['DefaultVersionId']} "
                                         "has this document")],
                    dry_run=p.dry_run, found=found)

    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    changes = []
    if len(versions) >= MAX_VERSIONS:
        # Ties in CreateDate (it has second resolution) go to the lower version number.
        oldest = min((v for v in versions if not v["IsDefaultVersion"]),
                     key=lambda v: (v["CreateDate"], int(v["VersionId"].lstrip("v"))))
        changes.append(Change("delete", "policy version", f"{p.policy_name} {oldest['VersionId']}",
                              f"IAM keeps {MAX_VERSIONS} versions; the oldest non-default goes",
                              apply=lambda: _delete_version(iam, arn, oldest["VersionId"])))
    changes.append(Change("update", "managed policy", p.policy_name,
                          f"new default version replaces {policy['DefaultVersionId']}",
                          apply=lambda: {"default_version": iam.create_policy_version(
                              PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)
                              ["PolicyVersion"]["VersionId"]}))
    return Plan(ctx.section, changes, dry_run=p.dry_run, found=found)


def _create_policy(iam: Any, name: str, arn: str, text: str,
                   document: dict[str, Any]) -> dict[str, Any]:
    try:
        created = iam.create_policy(PolicyName=name, PolicyDocument=text,
                                    Description="Lets the node-deployment service manage EC2 "
                                                "(AWS link runbook)")["Policy"]
        return {"default_version": created["DefaultVersionId"]}
    except iam.exceptions.EntityAlreadyExistsException:
        # A retry whose first answer was lost: done, if the policy holds this document.
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
        stored = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
        if canonical(stored["PolicyVersion"]["Document"]) != canonical(document):
            raise
        return {"default_version": policy["DefaultVersionId"]}


def _delete_version(iam: Any, arn: str, version_id: str) -> None:
    try:
        iam.delete_policy_version(PolicyArn=arn, VersionId=version_id)
    except iam.exceptions.NoSuchEntityException:
        pass  # a retried delete whose first answer was lost: it is gone either way
