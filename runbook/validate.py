"""Policy linting: what real IAM would reject or never allow, found before any call.

moto accepts documents that IAM refuses (an action such as ``foo:Bar``), so
the runbook checks for itself. :func:`lint` runs parliament (a maintained
IAM policy linter that carries AWS's action and condition-key lists) over
each statement and adds the runbook's own rules:

* an unknown action or service prefix: ``error`` (with the closest real action);
* a condition key that does not apply to an action of the same statement
  (``ec2:Region`` on ``iam:ListInstanceProfiles``): ``error``, since IAM would
  then never allow that action;
* ``iam:PassRole`` on ``Resource: "*"``: ``warning``;
* ``ec2:Region`` where ``aws:RequestedRegion`` is the recommended key: ``info``.

Pure and deterministic: no AWS call, findings in statement order. parliament
is imported on first use (0.3-0.8 s: it loads AWS's action list); results
are cached per statement in memory, so a live preview re-checking a document
only pays for the statements that changed, and on disk (``<home>/cache/``,
keyed by the statement, parliament's version and this module's source), so a
run whose statements were linted before does not import parliament at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import importlib.metadata
import json
import re
import warnings
from pathlib import Path
from typing import Any

from . import paths
from .files import atomic_write_text
from .policy import PolicyFinding

# Keys that only exist for requests made to a region; IAM actions have none.
_REGIONAL_KEYS = ("ec2:region",)
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@functools.lru_cache(maxsize=1)
def _parliament() -> Any:
    """parliament, imported once (it reads its ~10 MB action list at import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pkg_resources import warns on new setuptools
        import parliament
    return parliament


@functools.lru_cache(maxsize=64)
def _service_actions(prefix: str) -> tuple[str, ...]:
    for service in _parliament().iam_definition:
        if service["prefix"] == prefix:
            return tuple(p["privilege"] for p in service["privileges"])
    return ()


@functools.lru_cache(maxsize=1)
def _prefixes() -> tuple[str, ...]:
    return tuple(sorted({s["prefix"] for s in _parliament().iam_definition}))


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _unknown_action_fix(action: str) -> str:
    prefix, _, name = action.partition(":")
    known = _service_actions(prefix.lower())
    if not known:
        close = difflib.get_close_matches(prefix.lower(), _prefixes(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{prefix!r} is not an AWS service prefix{hint}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f'did you mean "{prefix}:{close[0]}"?'
    return f"use an action of {prefix} from the AWS service authorization reference"


@functools.lru_cache(maxsize=1)
def _cache_version() -> str:
    """What a cached finding depends on besides the statement: parliament and these rules."""
    source = Path(__file__).read_bytes()
    return f"{importlib.metadata.version('parliament')}-{hashlib.sha256(source).hexdigest()[:16]}"


def _cache_path(number: int, statement_json: str) -> Path:
    key = hashlib.sha256(f"{_cache_version()}\n{number}\n{statement_json}".encode()).hexdigest()
    return paths.home() / "cache" / f"lint-{key[:32]}.json"


def _parliament_findings(number: int, statement_json: str) -> list[PolicyFinding]:
    """parliament's findings for one statement, from the disk cache when it has them."""
    path = _cache_path(number, statement_json)
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return [PolicyFinding(**f) for f in json.loads(path.read_text())]
    found = _run_parliament(number, statement_json)
    if not any("could not check" in f.what for f in found):  # never cache a linter crash
        with contextlib.suppress(OSError):
            path.parent.mkdir(mode=0o700, exist_ok=True)
            atomic_write_text(path, json.dumps([dataclasses.asdict(f) for f in found]))
    return found


def _run_parliament(number: int, statement_json: str) -> list[PolicyFinding]:
    statement = json.loads(statement_json)
    where = str(number)
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    try:
        analysed = _parliament().analyze_policy_string(text)
    except Exception as err:  # a linter crash must not hide the document's other findings
        return [PolicyFinding("warning", where, f"the linter could not check this statement "
                              f"({type(err).__name__})", "check it by hand")]
    found: list[PolicyFinding] = []
    seen: set[tuple[str, str]] = set()
    for f in analysed.findings:
        detail = str(f.detail or "")
        if (f.issue, detail) in seen:
            continue
        seen.add((f.issue, detail))
        if f.issue in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX"):
            action = f.location.get("string", detail.split()[-1]) if isinstance(
                f.location, dict) else detail.split()[-1]
            found.append(PolicyFinding("error", where, f"unknown action {action}",
                                       _unknown_action_fix(action)))
        elif f.issue == "UNKNOWN_CONDITION_FOR_ACTION":
            # detail: "Unknown condition ec2:Region for action iam:ListInstanceProfiles"
            words = detail.split()
            key, action = words[2], words[-1]
            fix = (f"move {action} to a statement of its own without this condition "
                   f"(IAM would never allow it here)")
            if key.lower() in _REGIONAL_KEYS:
                fix = (f"{action} has no region, so {key} never matches it: put it in a "
                       "second statement without the condition, as the procedure does")
            found.append(PolicyFinding("error", where,
                                       f"condition key {key} does not apply to {action}", fix))
        elif f.issue in ("MISMATCHED_TYPE", "MISMATCHED_TYPE_BUT_USABLE",
                         "MISMATCHED_TYPE_OPERATION_TO_NULL", "BAD_PATTERN_FOR_MFA"):
            what = ": ".join(part for part in (f.title, detail) if part) or f.issue
            found.append(PolicyFinding("warning", where, what, _type_fix(detail)))
    return found


# Condition operators by the type of value they compare (parliament's type names).
_OPERATORS_BY_TYPE = {
    "String": "StringEquals or StringLike", "Arn": "ArnEquals or ArnLike",
    "Date": "DateLessThan or DateGreaterThan", "Number": "NumericEquals or NumericLessThan",
    "Bool": "Bool", "Ip": "IpAddress",
}
_VALUE_EXAMPLES = {"Date": "an ISO 8601 time such as 2026-12-31T23:59:59Z",
                   "Bool": '"true" or "false"', "Number": "a number such as 3600",
                   "Ip": "a CIDR block such as 203.0.113.0/24"}


def _type_fix(detail: str) -> str:
    """The fix for parliament's "Type mismatch: X requires a value of type T but given G"."""
    match = re.match(r"Type mismatch: (\S+) requires a value of type (\w+) but given (.+)$",
                     detail)
    if not match:
        return "use the condition operator that matches the key's type"
    subject, wanted, given = match.groups()
    if ":" in subject:  # a condition key given a value of the wrong form
        example = _VALUE_EXAMPLES.get(wanted, f"a {wanted} value")
        return f"give {subject} {example}, with a {wanted} operator " \
               f"({_OPERATORS_BY_TYPE.get(wanted, wanted)})"
    # an operator of one type on a key of another: the key's type decides
    return (f"{subject} compares {wanted} values but the key is of type {given}: use "
            f"{_OPERATORS_BY_TYPE.get(given, given + ' operators')}")


def _own_findings(number: int, statement: dict[str, Any]) -> list[PolicyFinding]:
    where = str(number)
    found: list[PolicyFinding] = []
    actions = [a for a in _strings(statement.get("Action", [])) if isinstance(a, str)]
    resources = _strings(statement.get("Resource", []))
    passes_role = any(a == "*" or a.lower() in ("iam:*", "iam:passrole", "iam:pass*")
                      for a in actions)
    if statement.get("Effect") == "Allow" and passes_role and "*" in resources:
        found.append(PolicyFinding(
            "warning", where, 'iam:PassRole on Resource "*" lets the user hand any role to '
            "any service", 'scope it to the instance role\'s ARN (arn:aws:iam::<account>:role/'
            '<name>) and add "Condition": {"StringEquals": {"iam:PassedToService": '
            '"ec2.amazonaws.com"}}'))
    condition = statement.get("Condition")
    if isinstance(condition, dict):
        keys = {k for block in condition.values() if isinstance(block, dict) for k in block}
        if any(k.lower() == "ec2:region" for k in keys):
            found.append(PolicyFinding(
                "info", where, "ec2:Region limits EC2 only; aws:RequestedRegion is the key AWS "
                "recommends today", "consider aws:RequestedRegion (it applies to every "
                "regional service), keeping the same value"))
    return found


@functools.lru_cache(maxsize=256)
def _lint_statement(number: int, statement_json: str) -> tuple[PolicyFinding, ...]:
    statement = json.loads(statement_json)
    return tuple(_parliament_findings(number, statement_json) + _own_findings(number, statement))


def lint(document: dict[str, Any], skip: frozenset[str] = frozenset()) -> list[PolicyFinding]:
    """Findings of the linter for ``document`` (a dict), statement by statement.

    Statements numbered in ``skip`` (e.g. those with grammar errors) are left
    out. Returns errors first, then warnings, then information, each in
    statement order. Never calls AWS; the same document gives the same list.
    """
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    found: list[PolicyFinding] = []
    for number, statement in enumerate(statements, 1):
        if isinstance(statement, dict) and str(number) not in skip:
            found.extend(_lint_statement(number, json.dumps(statement, sort_keys=True)))
    return sorted(found, key=lambda f: _SEVERITY_ORDER[f.severity])
