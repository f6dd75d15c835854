"""Plan, then apply: the skeleton every section shares.

A section reads AWS and returns a :class:`Plan` (a list of :class:`Change`).
The plan shows as a table; :meth:`Plan.apply` makes the changes (none when
``dry_run``) and returns an :class:`Outcome`, which shows as a summary and
carries its facts in the output's metadata, where ``runbook run`` finds them.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .errors import RunbookError, StepError

ACTIONS = ("create", "update", "delete", "verify", "unchanged", "blocked")
F = TypeVar("F", bound=Callable[..., "Plan"])


def error_record(err: Exception, change: str) -> dict[str, Any]:
    """What ``run.json`` says about a failure: AWS code, message, operation, and what was tried.

    ``err`` is a botocore ``ClientError`` (the AWS answer), another botocore
    error (no answer: the code is the exception's name) or a RunbookError.
    """
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        attempts = err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        message = error.get("Message") or ""
        if attempts > 1:
            message += f" (gave up after {attempts} attempts)"
        return {"code": error.get("Code"), "message": message,
                "operation": err.operation_name, "change": change, "attempts": attempts}
    return {"code": getattr(err, "code", None) or type(err).__name__,
            "message": getattr(err, "detail", None) or str(err),
            "operation": getattr(err, "operation", None), "change": change,
            **({"fix": err.fix} if getattr(err, "fix", None) else {})}


def planner(fn: F) -> F:
    """Decorate a section's ``plan_*(ctx, p, ...)``: an error while it reads AWS is recorded.

    The wrapped function returns the plan as before. When AWS refuses a read
    (e.g. ``AccessDenied`` on ``GetUser``) or a check fails, the section's
    outcome is shown as ``failed`` with the error's code, message and
    operation (so ``runbook run`` finds them in the notebook), and
    :class:`StepError` is raised with that code.
    """
    @functools.wraps(fn)
    def plan(ctx: Any, *args: Any, **kwargs: Any) -> "Plan":
        try:
            return fn(ctx, *args, **kwargs)
        except (ClientError, BotoCoreError, RunbookError) as err:
            Outcome(ctx.section, "failed", {}, [],
                    error=error_record(err, "plan")).raise_after_display()
            raise  # unreachable: raise_after_display raises
    return plan  # type: ignore[return-value]


@dataclass
class Change:
    """One thing a section would do. ``apply`` does it and may return facts to record."""

    action: str          # create | update | delete | verify | unchanged | blocked
    kind: str            # what it is, in the domain: "IAM user", "access key", ...
    name: str
    detail: str = ""
    apply: Callable[[], dict[str, Any] | None] | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")


def _table_text(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _table_html(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Table:
    """A small table that shows as HTML in JupyterLab and as text elsewhere."""

    def __init__(self, title: str, headers: list[str], rows: list[list[str]]):
        self.title, self.headers, self.rows = title, headers, rows

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self.title)}</b></p>" + _table_html(self.headers, self.rows)

    def __repr__(self) -> str:
        return f"{self.title}\n{_table_text(self.headers, self.rows)}"


@dataclass
class Plan:
    """What a section would change, in order. Shows as a table."""

    section: str
    changes: list[Change]
    dry_run: bool = False
    found: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(c.action in ("create", "update", "delete") for c in self.changes)

    @property
    def blocked(self) -> list[Change]:
        return [c for c in self.changes if c.action == "blocked"]

    def table(self) -> Table:
        title = f"Plan for {self.section}" + (" (dry run: nothing will be applied)"
                                              if self.dry_run else "")
        return Table(title, ["action", "resource", "name", "detail"],
                     [[c.action, c.kind, c.name, c.detail] for c in self.changes])

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def __repr__(self) -> str:
        return repr(self.table())

    def apply(self) -> "Outcome":
        """Make the planned changes in order and return the outcome.

        With ``dry_run`` nothing is called. A blocked change, or an AWS error,
        ends the section: the outcome is ``failed``, lists what was done, and
        :class:`StepError` is raised after it is shown.
        """
        done: list[str] = []
        found = dict(self.found)
        if self.blocked:
            first = self.blocked[0]
            return Outcome(self.section, "failed", found, done,
                           error={"code": None, "message": first.detail,
                                  "operation": None}).raise_after_display()
        if self.dry_run:
            return Outcome(self.section, "planned" if self.changed else "unchanged", found, done,
                           planned=[f"{c.action} {c.kind} {c.name}" for c in self.changes
                                    if c.action != "unchanged"])
        for change in self.changes:
            if change.action == "unchanged" or change.apply is None:
                continue
            try:
                facts = change.apply() or {}
            except (ClientError, BotoCoreError, RunbookError) as err:
                return Outcome(self.section, "failed", found, done, error=error_record(
                    err, f"{change.action} {change.kind} {change.name}")).raise_after_display()
            found.update(facts)
            done.append(f"{change.action} {change.kind} {change.name}")
        actions = {c.action for c in self.changes}
        outcome = ("created" if "create" in actions else
                   "updated" if actions & {"update", "delete"} else "unchanged")
        return Outcome(self.section, outcome, found, done)


@dataclass
class Outcome:
    """How a section ended. ``runbook run`` reads it from the output metadata."""

    section: str
    outcome: str     # created | updated | unchanged | planned | failed
    found: dict[str, Any]
    done: list[str]
    planned: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        record = {"name": self.section, "outcome": self.outcome, "done": self.done, **self.found}
        if self.planned:
            record["planned"] = self.planned
        if self.error:
            record["error"] = self.error
        return record

    def _rows(self) -> list[list[str]]:
        rows = [["outcome", self.outcome]]
        rows += [["done", d] for d in self.done]
        rows += [["would", p] for p in self.planned]
        rows += [[k, _show(v)] for k, v in self.found.items()]
        if self.error:
            rows += [["error", f"{self.error.get('code') or ''} {self.error.get('message')}".strip()]]
        return rows

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        table = Table(f"Outcome of {self.section}", ["field", "value"], self._rows())
        data = {"text/plain": repr(table), "text/html": table._repr_html_()}
        return data, {"runbook": {"outcome": self.record()}}

    def __repr__(self) -> str:
        return repr(Table(f"Outcome of {self.section}", ["field", "value"], self._rows()))

    def raise_after_display(self) -> "Outcome":
        """Show the failed outcome (so the notebook records it), then raise."""
        try:
            from IPython.display import display

            display(self)
        except ImportError:  # pragma: no cover - IPython ships with the kernel
            pass
        error = self.error or {}
        raise StepError(f"{self.section} failed: {error.get('code') or ''} "
                        f"{error.get('message')}".replace("  ", " "),
                        code=error.get("code"), operation=error.get("operation"),
                        fix=error.get("fix"))


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)
