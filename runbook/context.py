"""The context a section runs in: target, audited session, caller, where things go."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

from . import paths, targets
from .audit import AuditLog
from .errors import StepError
from .params import Common
from .secrets import Credentials

# botocore's DEBUG log prints response bodies, CreateAccessKey's secret included.
for _name in ("botocore", "boto3", "urllib3"):
    if logging.getLogger(_name).getEffectiveLevel() < logging.INFO:
        logging.getLogger(_name).setLevel(logging.INFO)


def audit_path() -> Path:
    """``$RUNBOOK_RUN_DIR/audit.jsonl`` in a run; else an interactive log under the home."""
    run_dir = os.environ.get("RUNBOOK_RUN_DIR")
    if run_dir:
        return Path(run_dir) / "audit.jsonl"
    folder = paths.home() / "audit"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / "interactive.jsonl"


class Context:
    """Everything a section needs to talk to AWS, with every call audited.

    ``Context(params)`` connects to ``params.target`` (starting the sandbox
    if needed). Nothing is called until a client is used.
    """

    def __init__(self, params: Common, section: str | None = None):
        self.params = params
        self.section = section or os.environ.get("RUNBOOK_SECTION") or params.section
        self.dry_run = params.dry_run
        self.region = params.region
        self.target = targets.get(params.target)
        self.audit = AuditLog(audit_path(), self.section)
        self.session = self.target.operator_session(params.aws_profile, params.region)
        self.audit.attach(self.session)
        self._clients: dict[tuple[str, str], Any] = {}
        # A run checks the operator once and hands the answer to each section.
        handed = os.environ.get("RUNBOOK_CALLER_IDENTITY")
        if handed and os.environ.get("RUNBOOK_RUN_DIR"):
            self.__dict__["identity"] = self._checked(json.loads(handed))
        self.audit.caller_arn = self.identity["Arn"]

    def client(self, service: str, region: str | None = None) -> Any:
        """An audited client of the operator's session, cached per service and region."""
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = self.target.client(self.session, service, key[1])
        return self._clients[key]

    @functools.cached_property
    def identity(self) -> dict[str, str]:
        """The operator's ``GetCallerIdentity``; refuses the wrong account.

        Raises :class:`StepError` when ``account_id`` was given and the
        credentials belong to another account.
        """
        found = self.client("sts").get_caller_identity()
        return self._checked(found)

    def _checked(self, found: dict[str, Any]) -> dict[str, str]:
        expected = getattr(self.params, "account_id", None)
        if expected and found["Account"] != expected:
            raise StepError(
                f"the operator credentials are for account {found['Account']}, "
                f"but account_id={expected!r}; nothing was changed",
                code="WrongAccount",
                fix="use credentials for the intended account or correct account_id")
        return {"Account": found["Account"], "Arn": found["Arn"], "UserId": found["UserId"]}

    def refuse_operator_as_service_user(self, user_name: str) -> None:
        """Raise :class:`StepError` when ``user_name`` is the operator this context acts as.

        A section that creates keys for, attaches to, rotates or deletes the
        service user would otherwise do it to the operator itself (a typo away:
        unlinking would delete the operator's own key mid-run).
        """
        arn = self.identity["Arn"]
        kind, _, path_name = arn.split(":", 5)[-1].partition("/")
        # IAM user names are unique regardless of case: "Admin" is "admin".
        if kind == "user" and path_name.rsplit("/", 1)[-1].lower() == user_name.lower():
            raise StepError(
                f"user_name {user_name!r} is the operator this runbook acts as ({arn}); "
                "nothing was changed", code="ServiceUserIsOperator",
                fix="give the service user a name of its own (default dockercloud-user)")

    @property
    def account_id(self) -> str:
        return self.identity["Account"]

    @property
    def partition(self) -> str:
        return self.identity["Arn"].split(":")[1]

    def arn(self, service: str, resource: str) -> str:
        """An ARN in the caller's partition and account, e.g. ``arn("iam", "user/x")``."""
        return f"arn:{self.partition}:{service}::{self.account_id}:{resource}"

    def credentials_file(self) -> Path:
        """The shared-credentials file the parameters name, or the target's default."""
        named = getattr(self.params, "credentials_file", None)
        return Path(named) if named else self.target.default_credentials_file()

    def key_client(self, credentials: Credentials, service: str, region: str | None = None,
                   audit_as: str | None = None) -> Any:
        """An audited client that signs with ``credentials`` (the service user's key)."""
        session = self.target.key_session(credentials, region or self.region)
        log = AuditLog(self.audit.path, self.section)
        log.caller_arn = audit_as
        log.attach(session)
        return self.target.client(session, service, region or self.region)
