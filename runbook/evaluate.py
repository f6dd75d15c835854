"""A small evaluator of IAM's identity-policy logic, for where moto is silent.

moto ignores every ``Condition`` and never checks ``iam:PassRole``, so in the
sandbox section 05 asks this module what real IAM would decide. It follows
AWS's documented evaluation logic for identity policies in one account:

* an explicit ``Deny`` that matches wins over everything;
* otherwise a matching ``Allow`` allows;
* otherwise the request is implicitly denied.

A statement matches when its ``Action``/``NotAction``, ``Resource``/``NotResource``
and every condition match. Supported condition operators: ``StringEquals``,
``StringNotEquals``, ``StringEqualsIgnoreCase``, ``StringNotEqualsIgnoreCase``,
``StringLike``, ``StringNotLike``, ``ArnEquals``, ``ArnLike``, ``ArnNotEquals``,
``ArnNotLike``, ``Bool``, ``Null``, the ``Numeric*`` family, their ``IfExists``
forms and the ``ForAnyValue:``/``ForAllValues:`` set prefixes. An operator it
does not know makes an Allow statement not match and a Deny statement match
(the cautious reading), and the decision says so. Policy variables
(``${aws:username}``) are not substituted. Not modelled: resource policies,
permission boundaries, SCPs, session policies (none of which the runbook sets).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
            "ArnNotLike", "NumericNotEquals"}


@dataclass(frozen=True)
class Request:
    """One API request as IAM sees it: action, resource ARN and the condition context.

    ``context`` maps condition keys (any case) to a string or a list of strings.
    """

    action: str
    resource: str = "*"
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """IAM's answer: ``allowed``, ``explicitDeny`` or ``implicitDeny``, and why."""

    decision: str
    reason: str
    matched: tuple[str, ...] = ()  # "policy-name#statement" that decided it

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # IAM wildcards: * any run of characters (may be empty), ? exactly one character.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def glob_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """True when ``value`` matches the IAM wildcard ``pattern`` (``*`` and ``?``)."""
    return _glob(pattern, case_sensitive).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """IAM action matching: case-insensitive, wildcards anywhere (``ec2:Describe*s``)."""
    return glob_match(pattern, action, case_sensitive=False)


def arn_matches(pattern: str, arn: str) -> bool:
    """``ArnLike``: each of the six colon-separated parts matched on its own."""
    if pattern == "*":
        return True
    p_parts, a_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(p_parts) != 6 or len(a_parts) != 6:
        return False
    return all(glob_match(p, a) for p, a in zip(p_parts, a_parts))


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _lookup(context: dict[str, Any], key: str) -> list[str] | None:
    lowered = {k.lower(): v for k, v in context.items()}
    if key.lower() not in lowered or lowered[key.lower()] is None:
        return None
    return [str(v) for v in _list(lowered[key.lower()])]


def _one(base: str, expected: str, actual: str) -> bool:
    """Does one context value match one policy value under the (positive) operator ``base``?"""
    if base in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if base in ("StringLike", "StringNotLike"):
        return glob_match(expected, actual)
    if base in ("ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"):
        return arn_matches(expected, actual)
    if base == "Bool":
        return actual.lower() == str(expected).lower()
    if base.startswith("Numeric"):
        try:
            a, e = float(actual), float(expected)
        except ValueError:
            return False
        return {"NumericEquals": a == e, "NumericNotEquals": a == e, "NumericLessThan": a < e,
                "NumericLessThanEquals": a <= e, "NumericGreaterThan": a > e,
                "NumericGreaterThanEquals": a >= e}[base]
    raise KeyError(base)


class UnsupportedCondition(Exception):
    """A condition operator this evaluator does not model."""


def condition_matches(operator: str, key: str, values: Any, context: dict[str, Any]) -> bool:
    """Whether one ``operator: {key: values}`` entry holds for ``context``.

    Raises :class:`UnsupportedCondition` for an operator it does not model.
    """
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base[:-len("IfExists")] if if_exists else base
    expected = [str(v) if not isinstance(v, bool) else str(v).lower() for v in _list(values)]
    actual = _lookup(context, key)
    if base == "Null":
        # "Null": true means the key must be absent; false, present.
        return (actual is None) == (expected[0].lower() == "true")
    known = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
             "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike", "ArnEquals", "ArnLike",
             "ArnNotEquals", "ArnNotLike", "Bool", "NumericEquals", "NumericNotEquals",
             "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan",
             "NumericGreaterThanEquals"}
    if base not in known or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedCondition(operator)
    negated = base in _NEGATED
    if actual is None:
        # A missing key: IfExists forms and ForAllValues hold; negated operators hold (nothing
        # equals the value); the rest fail.
        return if_exists or qualifier == "ForAllValues" or negated
    hit = lambda a: any(_one(base, e, a) for e in expected)  # noqa: E731
    if qualifier == "ForAllValues":
        return all((not hit(a)) if negated else hit(a) for a in actual)
    if qualifier == "ForAnyValue":
        return any((not hit(a)) if negated else hit(a) for a in actual)
    matched = any(hit(a) for a in actual)
    return not matched if negated else matched


def statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy document (a dict, or its JSON), as a list."""
    if isinstance(document, str):
        document = json.loads(document)
    found = document.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def statement_matches(statement: dict[str, Any], request: Request) -> tuple[bool, str]:
    """Whether ``statement`` applies to ``request``; the second item says why not (or '')."""
    if "NotAction" in statement:
        if any(action_matches(p, request.action) for p in _list(statement["NotAction"])):
            return False, f"{request.action} is in NotAction"
    elif not any(action_matches(p, request.action) for p in _list(statement.get("Action", []))):
        return False, f"Action does not cover {request.action}"
    if "NotResource" in statement:
        if any(arn_matches(p, request.resource) for p in _list(statement["NotResource"])):
            return False, f"{request.resource} is in NotResource"
    elif not any(arn_matches(p, request.resource) or p == request.resource
                 for p in _list(statement.get("Resource", []))):
        return False, f"Resource does not cover {request.resource}"
    for operator, block in (statement.get("Condition") or {}).items():
        for key, values in block.items():
            try:
                ok = condition_matches(operator, key, values, request.context)
            except UnsupportedCondition:
                # Cautious: an unknown condition never grants, and always denies.
                return statement.get("Effect") == "Deny", f"{operator} is not modelled"
            if not ok:
                shown = _lookup(request.context, key)
                if shown is None:
                    return False, f"{operator} {key} {_list(values)}: the request has no {key}"
                return False, (f"{operator} {key} {_list(values)} does not hold for "
                               f"{key}={shown[0] if len(shown) == 1 else shown}")
    return True, ""


def evaluate(policies: dict[str, Any], request: Request) -> Decision:
    """Decide ``request`` against ``policies`` (name -> document or JSON text).

    Returns a :class:`Decision`: ``explicitDeny`` when a matching Deny exists,
    else ``allowed`` when a matching Allow exists, else ``implicitDeny`` with
    the reason the closest Allow statement did not match.
    """
    allows, denies, misses = [], [], []
    for name, document in policies.items():
        for number, statement in enumerate(statements(document), 1):
            label = f"{name}#{statement.get('Sid') or number}"
            ok, why = statement_matches(statement, request)
            if ok:
                (denies if statement.get("Effect") == "Deny" else allows).append(label)
            elif statement.get("Effect") == "Allow" and not why.startswith("Action does not"):
                misses.append(f"{label}: {why}")
    if denies:
        return Decision(EXPLICIT_DENY, f"explicitly denied by {', '.join(denies)}", tuple(denies))
    if allows:
        return Decision(ALLOW, f"allowed by {', '.join(allows)}", tuple(allows))
    reason = "; ".join(misses) if misses else f"no statement allows {request.action}"
    return Decision(IMPLICIT_DENY, f"implicitly denied: {reason}")
