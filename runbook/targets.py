"""Targets: where a run acts. A small registry, like papermill's engines.

``sandbox`` is the embedded moto server (see :mod:`runbook.sandbox`); ``aws``
is a real account through the standard credential chain. Only the ``aws``
target ever builds a session without a fixed local endpoint.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from . import sandbox
from .errors import RunbookError, SandboxError
from .params import data_loader
from .secrets import Credentials

# Standard mode, not legacy: it retries throttling (Throttling, RequestLimitExceeded, ...),
# 5xx answers and reset or dropped connections, with jittered exponential backoff
# (at most 20 s a wait) and a retry quota that stops a client hammering an outage.
# `total_max_attempts` counts the first try (botocore's `max_attempts` counts retries
# only, so `max_attempts: 5` would mean six tries): five tries ride out a burst of
# throttling (worst case about 15 s of waiting) without hiding a persistent fault,
# which then fails the step with the AWS error and a rerun finishes the job.
# A retried mutation can act twice when the first answer was lost after AWS acted:
# section 01 cleans up a doubled CreateAccessKey (users._create_key) and treats
# EntityAlreadyExists on a retried CreateUser/CreatePolicy as done.
CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 5},
                       connect_timeout=10, read_timeout=60)


# What the operator asks EC2, all of it: the regions to verify (section 05). The
# operator policy grants no more of EC2 either (runbook.operator); a client with
# EC2's 830 methods would cost about 30 ms more to make, for nothing.
OPERATOR_OPERATIONS = {"ec2": frozenset({"DescribeRegions"})}


class OperationsLoader:
    """botocore's data loader, but a service's model offers only some of its operations.

    Making a client builds one Python method per operation of the service's
    model (about 25 ms for EC2's 830), and the client's first error answer
    (a dry run's ``DryRunOperation``) makes it look through every shape for
    modelled exceptions (about 10 ms for EC2's 4,400). Both are paid per
    client, and section 05 makes one EC2 client per region. Clients made
    through this loader have ``operations`` only, and the shapes those reach
    plus the service's exception shapes; each kept shape is the real model's,
    less its documentation.
    The cut-down models are kept in the runbook home (see :func:`pruned_model`).
    Everything but :meth:`load_service_model` is the shared loader's.
    """

    _models: dict[tuple, dict[str, Any]] = {}

    def __init__(self, loader: Any, operations: dict[str, frozenset[str]]):
        self._loader = loader
        self._operations = operations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def load_service_model(self, service_name: str, type_name: str,
                           api_version: str | None = None) -> Any:
        keep = self._operations.get(service_name)
        if type_name != "service-2" or keep is None:
            return self._loader.load_service_model(service_name, type_name, api_version)
        key = (service_name, api_version, keep)
        if key not in self._models:
            self._models[key] = pruned_model(self._loader, service_name, api_version, keep)
        return self._models[key]


# Part of a kept model's name: a change to what a cut-down model keeps must not
# read the models an earlier runbook kept.
PRUNED_FORMAT = 3


def pruned_model(loader: Any, service: str, api_version: str | None,
                 keep: frozenset[str]) -> dict[str, Any]:
    """``service``'s model cut down to ``keep``, from ``<home>/cache/models`` when it is there.

    The full model of EC2 is 3 MB of gzipped JSON, about 60 ms to read, for a
    cut-down model of 63 KB. The cut-down model is kept under a name made of
    the runbook's format, botocore's version, the operations, and the path,
    size and time of every model file botocore would read for the service
    (an upgrade or a model in ~/.aws/models is a new name). A kept model that
    is not exactly what was written (see :func:`_read_kept`) is made again;
    one that cannot be written costs time only.
    """
    import hashlib
    import json

    import botocore

    from . import paths
    from .files import atomic_write_text

    version = api_version or loader.determine_latest_version(service, "service-2")
    sources = []
    for name in ["service-2"] + [f"service-2.{extra}-extras" for extra in loader.extras_types]:
        for base in loader.search_paths:
            for extension in (".json", ".json.gz"):
                path = os.path.join(base, service, version, name + extension)
                try:
                    found = os.stat(path)
                except OSError:
                    continue
                sources.append([path, found.st_size, found.st_mtime_ns])
    identity = json.dumps([PRUNED_FORMAT, botocore.__version__, service, version, sorted(keep),
                           sources])
    kept = (paths.home() / "cache" / "models" /
            f"{service}-{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json")
    model = _read_kept(kept)
    if model is not None and set(model.get("operations", ())) == keep:
        return model
    model = _prune(loader.load_service_model(service, "service-2", api_version), service, keep)
    text = json.dumps(model)
    try:
        kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A symlink in its place is replaced, never followed.
        atomic_write_text(kept, hashlib.sha256(text.encode()).hexdigest() + "\n" + text,
                          follow_symlinks=False)
    except OSError:
        pass
    return model


KEPT_MODEL_LIMIT = 8 * 1024 * 1024  # bytes; EC2's cut-down model is 63 KB


def _read_kept(path: Path) -> dict[str, Any] | None:
    """A kept model, or None when there is none, or it is not exactly what was written.

    It must be a regular file (not a symlink, FIFO or device), at most
    :data:`KEPT_MODEL_LIMIT`, whose first line is the SHA-256 of the rest,
    a JSON model.
    """
    import hashlib
    import json
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_size > KEPT_MODEL_LIMIT:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(KEPT_MODEL_LIMIT + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    digest, _, body = data.partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        return None
    try:
        model = json.loads(body)
    except ValueError:
        return None
    if not (isinstance(model, dict) and isinstance(model.get("operations"), dict)
            and isinstance(model.get("shapes"), dict)):
        return None
    return model


def _prune(model: dict[str, Any], service: str, keep: frozenset[str]) -> dict[str, Any]:
    """``model`` with the operations ``keep``, the shapes they reach and the exception shapes.

    Without the documentation: clients never read it but for docstrings, it
    is most of a model's size, and its URLs look like secrets to the scan
    every runbook folder passes (``docs.aws.amazon.com/AWSEC2/latest/...``).
    """
    missing = keep - set(model["operations"])
    if missing:
        raise ValueError(f"{service} has no operation {sorted(missing)}")
    operations = {name: model["operations"][name] for name in sorted(keep)}
    shapes = model["shapes"]
    roots = [name for name, shape in shapes.items() if shape.get("exception")]
    for operation in operations.values():
        roots += [operation[k]["shape"] for k in ("input", "output") if k in operation]
        roots += [error["shape"] for error in operation.get("errors", [])]
    return _undocumented({**model, "operations": operations,
                          "shapes": {name: shapes[name] for name in _reached(shapes, roots)}})


def _undocumented(value: Any) -> Any:
    """``value`` (a model, or part of one) without its ``documentation`` texts, copied."""
    if isinstance(value, dict):
        return {k: _undocumented(v) for k, v in value.items()
                if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [_undocumented(v) for v in value]
    return value


def _reached(shapes: dict[str, Any], roots: list[str]) -> set[str]:
    """The names of ``roots`` and of every shape they refer to, however deep."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        stack += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
        stack += [member["shape"] for member in shape.get("members", {}).values()]
    return seen


def new_session(operations: dict[str, frozenset[str]] | None = None,
                **kwargs: Any) -> boto3.Session:
    """A boto3 session that shares parsed service models with every other one in this process.

    A fresh session parses the JSON models of each service it makes a client
    for (iam and ec2 cost 50-150 ms each); a section makes several sessions
    (operator, service user, one per region thread), so they share botocore's
    data loader (:func:`runbook.params.data_loader`), whose caches hold the
    parsed models. ``operations`` (e.g.
    ``{"ec2": frozenset({"RunInstances"})}``) limits the clients of those
    services to those operations (see :class:`OperationsLoader`). ``kwargs``
    go to :class:`boto3.Session` (credentials, ``profile_name``, ``region_name``).
    """
    core = botocore.session.Session()
    loader = data_loader()
    core.register_component("data_loader",
                            OperationsLoader(loader, operations) if operations else loader)
    session = boto3.Session(botocore_session=core, **kwargs)
    # boto3 appends its own data folder to the loader's search path per session.
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


class Target(ABC):
    """Builds sessions and clients for one kind of destination."""

    name: str = ""

    @abstractmethod
    def operator_session(self, aws_profile: str | None, region: str) -> boto3.Session:
        """A session for the person or pipeline running the runbook."""

    @abstractmethod
    def default_credentials_file(self) -> Path:
        """The shared-credentials file the key goes to when none is named."""

    def endpoint_url(self) -> str | None:
        return None

    def key_session(self, credentials: Credentials, region: str,
                    operations: dict[str, frozenset[str]] | None = None) -> boto3.Session:
        """A session that signs with ``credentials`` (the service user's key).

        ``operations`` limits its clients of some services to some operations
        (faster to make; see :func:`new_session`).
        """
        session = new_session(operations, aws_access_key_id=credentials.access_key_id,
                              aws_secret_access_key=credentials.secret_access_key,
                              region_name=region)
        self.guard(session)
        return session

    def guard(self, session: boto3.Session) -> None:
        """Hook for targets that must keep requests somewhere."""

    def client(self, session: boto3.Session, service: str, region: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=self.endpoint_url(),
                              config=CLIENT_CONFIG)


TARGETS: dict[str, type[Target]] = {}


def register(cls: type[Target]) -> type[Target]:
    TARGETS[cls.name] = cls
    return cls


def get(name: str) -> Target:
    try:
        return TARGETS[name]()
    except KeyError:
        raise RunbookError(f"unknown target {name!r}; known: {', '.join(TARGETS)}") from None


@register
class SandboxTarget(Target):
    """The embedded moto sandbox; started on first use, left running for the next kernel."""

    name = "sandbox"

    def __init__(self) -> None:
        expected = os.environ.get("RUNBOOK_SANDBOX_ENDPOINT")
        if expected:
            # Inside a run: only the sandbox the run began with has what the earlier
            # sections made; a new one would start empty (and forget their keys).
            state = sandbox.read_state()
            if state is None or state["endpoint"] != expected:
                raise SandboxError(
                    f"the sandbox this run began with ({expected}) is gone (stopped or died), "
                    "and with it what the earlier sections made; rerun: `runbook run` starts "
                    "a new sandbox and does every step again")
            self.state = state
        else:
            self.state = sandbox.start()

    def endpoint_url(self) -> str:
        return self.state["endpoint"]

    def operator_session(self, aws_profile: str | None, region: str) -> boto3.Session:
        session = new_session(
            OPERATOR_OPERATIONS,
            aws_access_key_id=self.state["operator_access_key_id"],
            aws_secret_access_key=self.state["operator_secret_access_key"],
            region_name=region)
        self.guard(session)
        return session

    def default_credentials_file(self) -> Path:
        return sandbox.credentials_file()

    def guard(self, session: boto3.Session) -> None:
        endpoint = self.endpoint_url()

        def refuse_elsewhere(request: Any, **_: Any) -> None:
            # Belt and braces: a sandbox session must never reach a real endpoint.
            if not request.url.startswith(endpoint + "/") and request.url != endpoint:
                raise RunbookError(f"sandbox session tried to reach {request.url}; refused")

        session.events.register_first("before-send.*.*", refuse_elsewhere)


@register
class AwsTarget(Target):
    """A real AWS account: the standard credential chain, or ``aws_profile``."""

    name = "aws"

    def operator_session(self, aws_profile: str | None, region: str) -> boto3.Session:
        return new_session(OPERATOR_OPERATIONS, profile_name=aws_profile, region_name=region)

    def default_credentials_file(self) -> Path:
        return Path("~/.aws/credentials").expanduser()
