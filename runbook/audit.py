"""The audit log: one JSON line per AWS API call, written from botocore's event hooks.

Hooks, not wrappers: every client made from an audited session reports its
calls, including retries and calls that never got an answer. ``attempts`` is
how many times botocore sent the request; ``retried`` lists what each failed
attempt before the last one got (HTTP status and error code, or the exception),
so a throttled or reset call that then succeeded is visible as such.
Request parameters are recorded with secrets redacted and key IDs masked;
responses are never recorded, since CreateAccessKey's response holds the secret.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .secrets import mask_key_id

_REDACT = re.compile(r"secret|password|token|privatekey|credential", re.IGNORECASE)
MUTATING_PREFIXES = ("Create", "Delete", "Put", "Update", "Attach", "Detach", "Add", "Remove",
                     "Set", "Tag", "Untag", "Upload", "Enable", "Deactivate", "Resync", "Change",
                     "Reset", "Run", "Terminate", "Start", "Stop", "Modify")


def is_mutating(record: dict[str, Any]) -> bool:
    """True when the call could change AWS state (a DryRun call cannot)."""
    if record.get("params", {}).get("DryRun") is True:
        return False
    return record["operation"].startswith(MUTATING_PREFIXES)


def redact(value: Any, key: str = "") -> Any:
    if _REDACT.search(key):
        return "<redacted>"
    if key in ("AccessKeyId",) and isinstance(value, str):
        return mask_key_id(value)
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return value


class AuditLog:
    """Appends call records to ``path`` (JSON lines, mode 0600).

    ``attach(session)`` registers the hooks on a boto3 session; attach before
    making clients, since a client copies the session's hooks when it is made.
    """

    def __init__(self, path: Path, section: str):
        self.path = Path(path)
        self.section = section
        self.caller_arn: str | None = None
        self.records: list[dict[str, Any]] = []

    def attach(self, session: Any) -> None:
        events = session.events
        events.register("provide-client-params.*.*", self._on_params)
        events.register("before-call.*.*", self._on_start)
        events.register("after-call.*.*", self._on_response)
        events.register("after-call-error.*.*", self._on_exception)
        events.register("needs-retry.*.*", self._on_attempt)

    def _on_attempt(self, attempts: int, request_dict: dict, response: Any = None,
                    caught_exception: Exception | None = None, **_: Any) -> None:
        # botocore asks after every attempt; returning None leaves the decision to its handler.
        context = request_dict.get("context", {})
        context["runbook_attempts"] = attempts
        if caught_exception is not None:
            failure = {"attempt": attempts, "http_status": None,
                       "error": type(caught_exception).__name__}
        elif response is not None and (response[0].status_code >= 400
                                       or (response[1] or {}).get("Error")):
            failure = {"attempt": attempts, "http_status": response[0].status_code,
                       "error": ((response[1] or {}).get("Error") or {}).get("Code")}
        else:
            return
        context.setdefault("runbook_failures", []).append(failure)

    def _on_params(self, params: dict, context: dict, **_: Any) -> None:
        context["runbook_params"] = redact(dict(params))

    def _on_start(self, model: Any, context: dict, **_: Any) -> None:
        context["runbook_started"] = time.monotonic()
        context["runbook_model"] = model

    def _on_response(self, http_response: Any, parsed: dict, model: Any, context: dict,
                     **_: Any) -> None:
        meta = parsed.get("ResponseMetadata", {})
        error = parsed.get("Error") or {}
        arn = parsed.get("Arn") if model.name == "GetCallerIdentity" else None
        if arn and self.caller_arn is None:
            self.caller_arn = arn
        self._write(model, context, http_status=getattr(http_response, "status_code", None),
                    request_id=meta.get("RequestId"), error_code=error.get("Code"),
                    attempts=meta.get("RetryAttempts", 0) + 1, caller_arn=self.caller_arn or arn)

    def _on_exception(self, exception: Exception, context: dict, **_: Any) -> None:
        # botocore passes no model with this event; before-call left it in the context.
        self._write(context["runbook_model"], context, http_status=None, request_id=None,
                    error_code=type(exception).__name__,
                    attempts=context.get("runbook_attempts"), caller_arn=self.caller_arn)

    def _write(self, model: Any, context: dict, **facts: Any) -> None:
        started = context.get("runbook_started", time.monotonic())
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "section": self.section,
            "service": model.service_model.service_name,
            "operation": model.name,
            "region": context.get("client_region"),
            "params": context.get("runbook_params", {}),
            "http_status": facts["http_status"],
            "request_id": facts["request_id"],
            "error_code": facts["error_code"],
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "caller_arn": facts["caller_arn"],
            "attempts": facts["attempts"],
            "retried": [f for f in context.get("runbook_failures", [])
                        if facts["attempts"] is None or f["attempt"] < facts["attempts"]],
        }
        self.records.append(record)
        line = json.dumps(record, default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """The records of an audit log, in order."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
