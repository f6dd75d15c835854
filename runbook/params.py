"""Typed, validated parameters: one model per section, plus the shared ones.

Every rule lives here once. The CLI checks a whole run with
:func:`validate_run` before anything touches AWS; a notebook checks its own
section with ``MODEL.from_values(...)``; the widget forms call
:func:`check` per field as a person types. All three say the same words.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from .errors import ParameterError

TARGETS = ("sandbox", "aws")

_IAM_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]+")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]+")
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>[0-9]{12}):role"
    r"(?P<path>/(?:[\x21-\x7e]+/)?)(?P<name>[A-Za-z0-9_+=,.@-]{1,64})"
)
_ROLE_PATH_MAX = 512  # IAM's limit on a path, slashes included


@functools.lru_cache(maxsize=1)
def data_loader() -> Any:
    """This process's one botocore data loader, which keeps what it parsed.

    The region lists here and every session of :func:`runbook.targets.new_session`
    read botocore's data through it, so its endpoint data (about 30 ms of
    JSON) and each service model are parsed once per process. It is the
    loader a botocore session would make (``AWS_DATA_PATH`` included).
    """
    import botocore.session

    return botocore.session.Session().get_component("data_loader")


@functools.lru_cache(maxsize=1)
def partitions() -> tuple[dict[str, Any], ...]:
    """botocore's partitions ('aws', 'aws-cn', ...), from its endpoint data, read once."""
    return tuple(data_loader().load_data("endpoints")["partitions"])


@functools.lru_cache(maxsize=1)
def known_regions() -> tuple[str, ...]:
    """Every EC2 region in botocore's own endpoint data, across partitions.

    The regions of each partition that have an EC2 endpoint: what boto3's
    ``Session.get_available_regions("ec2", partition)`` lists, read straight
    from the data (a boto3 session costs a tenth of a second to make).
    """
    regions: set[str] = set()
    for partition in partitions():
        endpoints = partition["services"].get("ec2", {}).get("endpoints", {})
        regions.update(set(partition["regions"]) & set(endpoints))
    return tuple(sorted(regions))


def partition_of(region: str) -> str | None:
    """The partition botocore puts ``region`` in (its region list, then its pattern)."""
    for partition in partitions():
        if region in partition.get("regions", {}):
            return partition["partition"]
    for partition in partitions():
        if re.fullmatch(partition["regionRegex"], region):
            return partition["partition"]
    return None


# --- rules: each returns None when the value is fine, else the rule it broke ---

def _not_a_string(value: Any, kind: str) -> str:
    """The rule for a value that should have been a string (YAML turned it into something else)."""
    rule = f"must be {kind} string, not {type(value).__name__}"
    if isinstance(value, bool):
        rule += " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
    elif isinstance(value, (int, float)):
        rule += " (YAML reads it as a number: quote the value)"
    return rule


def _iam_name(kind: str, limit: int) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if not isinstance(value, str):
            return _not_a_string(value, kind)
        what = f"{kind} must be 1-{limit} characters of A-Z a-z 0-9 and _+=,.@-"
        if not value:
            return f"is empty; {what}"
        if len(value) > limit:
            return f"is {len(value)} characters long; {what}"
        bad = next((c for c in value if not _IAM_NAME.fullmatch(c)), None)
        if bad is not None:
            return f"{bad!r} at position {value.index(bad)} is not allowed; {what}"
        return None
    return rule


def _optional(rule: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def optional_rule(value: Any) -> str | None:
        return None if value is None else rule(value)
    return optional_rule


def _target(value: Any) -> str | None:
    if value not in TARGETS:
        return "must be one of 'sandbox' (the embedded moto sandbox) or 'aws' (a real account)"
    return None


def _region(value: Any) -> str | None:
    if not isinstance(value, str):
        return _not_a_string(value, "a region name")
    if value != value.strip():
        return "has leading or trailing whitespace; write the region name alone, e.g. 'us-east-1'"
    if value not in known_regions():
        close = difflib.get_close_matches(value, known_regions(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"is not an EC2 region in botocore's region data{hint}"
    return None


def _region_list(value: Any) -> str | None:
    """Regions as a list, or one string of names separated by commas (as ``-p`` gives it)."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        return "must be a list of region names, or names separated by commas"
    for position, name in enumerate(names):
        problem = _region(name)
        if problem:
            return f"item {position + 1} ({name!r}) {problem}"
    if len(set(names)) != len(names):
        return "names a region twice"
    return None


def _bool(value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"must be true or false, not {type(value).__name__} {value!r}"
    return None


def _profile_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return _not_a_string(value, "a profile name")
    what = "a credentials profile name is 1-64 characters of A-Z a-z 0-9 and _+=,.@-"
    if not value or len(value) > 64:
        return f"has {len(value)} characters; {what}"
    bad = next((c for c in value if not _PROFILE_NAME.fullmatch(c)), None)
    if bad is not None:
        return f"{bad!r} at position {value.index(bad)} is not allowed; {what}"
    if value == "DEFAULT":
        return ("is the section name the credentials file format keeps for values every "
                "profile shares; choose another name (profile names are case-sensitive: "
                "'default' is fine)")
    return None


def _file_path(value: Any) -> str | None:
    """A file the runbook may create or replace: its directory exists; it is none of a
    directory, a device, a FIFO or a socket (followed through symlinks)."""
    if not isinstance(value, (str, os.PathLike)):
        return _not_a_string(value, "a file path")
    text = os.fspath(value)
    if not text:
        return "is empty; name a file"
    if text != text.strip():
        return "must be a file path without leading or trailing whitespace"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "contains a control character; name a file with a printable path"
    if text.endswith("/"):
        return "ends with '/', which names a directory; name a file"
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        return "starts with '~user' for a user this machine does not know"
    try:
        real = Path(os.path.realpath(path, strict=False))
        path.resolve()  # os.path.realpath leaves a symlink loop as it is; this raises
    except RuntimeError:
        return "is a symlink loop; name a file, or a symlink to one"
    except OSError as err:
        return f"cannot be followed: {err.strerror or err}"
    system = ("/dev/", "/proc/", "/sys/")
    if os.path.abspath(path).startswith(system) or str(real).startswith(system):
        return "is under /dev, /proc or /sys; name a file of your own"
    if len(real.name.encode()) > 255:
        return f"has a file name of {len(real.name.encode())} bytes; at most 255"
    if real.is_dir():
        return "is a directory; name a file"
    if real.exists() and not real.is_file():
        return ("is not a regular file (a device, FIFO or socket); name a file the runbook "
                "may replace")
    parent = real.parent
    if not parent.exists():
        return f"its directory {str(path.parent)!r} does not exist"
    if not parent.is_dir():
        return f"{str(path.parent)!r} is not a directory"
    return None


def _csv_path(value: Any) -> str | None:
    problem = _file_path(value)
    if problem:
        return problem
    if not Path(os.fspath(value)).name.lower().endswith(".csv") or \
            Path(os.fspath(value)).name.lower() == ".csv":
        return "must name a .csv file (the console's credentials download layout)"
    return None


def _account_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return "must be a 12-digit AWS account ID string"
    if isinstance(value, int):
        if value >= 0 and len(str(value)) == 12:
            return None  # restored to a string by normalise()
        return (f"arrived as the number {value} ({len(str(abs(value)))} digits); an account "
                "ID is 12 digits, and a YAML number drops leading zeros: quote it in the "
                "params file, e.g. account_id: \"012345678901\" (-p account_id 012345678901 "
                "keeps it a string)")
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{12}", value):
        return "must be exactly 12 digits 0-9 (an AWS account ID), as a string"
    return None


def parse_role_arn(value: str) -> dict[str, str]:
    """Split an IAM role ARN into partition, account, path and name.

    Raises ``ValueError`` with the rule when ``value`` is not a role ARN.
    """
    if "*" in value or "?" in value:
        # IAM's path grammar allows them, but in a policy's Resource they are wildcards.
        raise ValueError("must name one role, no wildcards (* or ?) anywhere: arn:<partition>:"
                         "iam::<12-digit account>:role/[path/]<name>")
    match = _ROLE_ARN.fullmatch(value)
    if match and len(match["path"]) > _ROLE_PATH_MAX:
        raise ValueError(f"has a role path of {len(match['path'])} characters; IAM allows "
                         f"at most {_ROLE_PATH_MAX}")
    if not match:
        raise ValueError(
            "must be an IAM role ARN: arn:<aws|aws-cn|aws-us-gov>:iam::<12-digit account>:"
            "role/[path/]<name>, no wildcards, name 1-64 characters of A-Z a-z 0-9 and _+=,.@-"
        )
    return match.groupdict()


def _role_arn(value: Any) -> str | None:
    if not isinstance(value, str):
        return _not_a_string(value, "a role ARN")
    try:
        parse_role_arn(value)
    except ValueError as err:
        return str(err)
    return None


def _aws_profile(value: Any) -> str | None:
    if not isinstance(value, str) or not value or value != value.strip():
        return "must be the name of a profile in your AWS config or credentials file"
    return None


def _confirm(value: Any) -> str | None:
    return _bool(value)


# --- the models ---

def param(default: Any, rule: Callable[[Any], str | None], doc: str) -> Any:
    """A model field with its rule and a one-line description (used by the forms)."""
    return field(default=default, metadata={"rule": rule, "doc": doc})


@dataclass(frozen=True)
class Common:
    """Parameters every section takes."""

    target: str = param("sandbox", _target, "where to act: 'sandbox' (embedded moto) or 'aws'")
    aws_profile: str | None = param(None, _optional(_aws_profile),
                                    "AWS profile for the operator (target 'aws' only)")
    region: str = param("us-east-1", _region, "region of the API clients")
    dry_run: bool = param(False, _bool, "plan only: make no change")
    account_id: str | None = param(None, _optional(_account_id),
                                   "refuse to act unless the operator is in this account")

    section: ClassVar[str] = ""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_values(cls, values: dict[str, Any] | None = None, **kwargs: Any):
        """Validate ``values`` (a mapping, e.g. ``globals()``) and return the model.

        Only this model's names are read from ``values``; ``kwargs`` override.
        Raises :class:`ParameterError` naming every bad parameter.
        """
        merged = {}
        for name in cls.names():
            if values is not None and name in values:
                merged[name] = values[name]
        merged.update(kwargs)
        unknown = sorted(set(kwargs) - set(cls.names()))
        problems = [(n, kwargs[n], unknown_rule(n, cls.names())) for n in unknown]
        for f in dataclasses.fields(cls):
            if f.name in merged:
                problem = f.metadata["rule"](merged[f.name])
                if problem:
                    problems.append((f.name, merged[f.name], problem))
        if not problems:
            problems.extend(cross_checks({**defaults(cls), **merged}))
        if problems:
            raise ParameterError(problems)
        return cls(**{k: normalise(k, v) for k, v in merged.items()})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CreateUserParams(Common):
    section: ClassVar[str] = "01_create_user"
    user_name: str = param("dockercloud-user", _iam_name("an IAM user name", 64),
                           "the service user: 01 creates it, 03 attaches the policy to it, "
                           "04 and 05 check its key, unlink deletes it")
    credentials_profile: str = param("dockercloud", _profile_name,
                                     "the profile in the credentials file that holds the service "
                                     "user's key")
    credentials_file: str | None = param(None, _optional(_file_path),
                                         "the shared-credentials file of that profile (default: "
                                         "sandbox .runbook/sandbox/credentials, aws "
                                         "~/.aws/credentials)")
    csv_path: str | None = param(None, _optional(_csv_path),
                                 "a console-style CSV of the key too (01 and rotate write "
                                 "it, unlink removes it)")


@dataclass(frozen=True)
class PolicyParams(Common):
    section: ClassVar[str] = "02_create_policy"
    policy_name: str = param("dockercloud-policy", _iam_name("an IAM policy name", 128),
                             "the service user's managed policy: 02 creates or updates "
                             "it, 03 attaches it, unlink deletes it")
    limit_region: str | None = param(None, _optional(_region),
                                     "allow EC2 only in this region")
    pass_role_arn: str | None = param(None, _optional(_role_arn),
                                      "allow iam:PassRole on this role ARN")


@dataclass(frozen=True)
class AttachParams(Common):
    section: ClassVar[str] = "03_attach_policy"
    user_name: str = CreateUserParams.__dataclass_fields__["user_name"].default
    policy_name: str = PolicyParams.__dataclass_fields__["policy_name"].default


@dataclass(frozen=True)
class HandoverParams(Common):
    section: ClassVar[str] = "04_add_credentials"
    user_name: str = "dockercloud-user"
    credentials_profile: str = "dockercloud"
    credentials_file: str | None = None


@dataclass(frozen=True)
class VerifyParams(Common):
    section: ClassVar[str] = "05_verify_link"
    user_name: str = "dockercloud-user"
    credentials_profile: str = "dockercloud"
    credentials_file: str | None = None
    instance_profile: str | None = param(None, _optional(_iam_name("an instance profile name",
                                                                   128)),
                                         "also check that the user may pass this instance "
                                         "profile's role (iam:PassRole)")
    verify_regions: list[str] | None = param(
        None, _optional(_region_list),
        "dry-run RunInstances only in these regions (default: every region of the partition)")


# Fields shared by name carry the same rule and doc in every model.
def _reuse_fields(cls: type, source: type, names: list[str]) -> None:
    for name in names:
        cls.__dataclass_fields__[name].metadata = source.__dataclass_fields__[name].metadata


_reuse_fields(AttachParams, CreateUserParams, ["user_name"])
_reuse_fields(AttachParams, PolicyParams, ["policy_name"])
_reuse_fields(HandoverParams, CreateUserParams,
              ["user_name", "credentials_profile", "credentials_file"])
_reuse_fields(VerifyParams, CreateUserParams,
              ["user_name", "credentials_profile", "credentials_file"])

SECTION_MODELS: dict[str, type[Common]] = {
    m.section: m for m in (CreateUserParams, PolicyParams, AttachParams, HandoverParams,
                           VerifyParams)
}

ALL_NAMES: tuple[str, ...] = tuple(dict.fromkeys(
    n for model in SECTION_MODELS.values() for n in model.names()))


@dataclass(frozen=True)
class RotateParams(Common):
    """Rotate the service user's access key (``notebooks/rotate_access_key.ipynb``)."""

    section: ClassVar[str] = "rotate_access_key"
    user_name: str = "dockercloud-user"
    credentials_profile: str = "dockercloud"
    credentials_file: str | None = None
    csv_path: str | None = None


@dataclass(frozen=True)
class UnlinkParams(Common):
    """Undo the link (``notebooks/unlink.ipynb``); nothing is deleted without ``confirm``."""

    section: ClassVar[str] = "unlink"
    user_name: str = "dockercloud-user"
    policy_name: str = "dockercloud-policy"
    credentials_profile: str = "dockercloud"
    credentials_file: str | None = None
    csv_path: str | None = None
    confirm: bool = param(False, _confirm, "really delete: without it the plan is shown and "
                                           "nothing is deleted")


def register_model(model: type[Common], reuse: dict[type, list[str]] | None = None) -> None:
    """Add a section model (later sections and the rotate/unlink notebooks use this)."""
    for source, names in (reuse or {}).items():
        _reuse_fields(model, source, names)
    SECTION_MODELS[model.section] = model
    global ALL_NAMES
    ALL_NAMES = tuple(dict.fromkeys([*ALL_NAMES, *model.names()]))


def defaults(model: type[Common]) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(model)}


def rule_for(name: str) -> Callable[[Any], str | None]:
    for model in SECTION_MODELS.values():
        if name in model.__dataclass_fields__:
            return model.__dataclass_fields__[name].metadata["rule"]
    raise KeyError(name)


def check(name: str, value: Any) -> str | None:
    """The rule ``value`` breaks for parameter ``name``, or None. The forms call this."""
    return rule_for(name)(value)


def unknown_rule(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Why ``name`` is refused where only ``known`` are taken: another command's, or a typo."""
    owners = [section for section, model in SECTION_MODELS.items() if name in model.names()]
    if owners:
        return (f"is not used here, only by {', '.join(owners)} (this command takes: "
                f"{', '.join(sorted(known))})")
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"is not a parameter of this runbook{hint} (known: {', '.join(sorted(known))})"


def names_of(sections: list[str]) -> tuple[str, ...]:
    """The parameters ``sections`` take, each once, in order."""
    return tuple(dict.fromkeys(n for s in sections for n in SECTION_MODELS[s].names()))


def normalise(name: str, value: Any) -> Any:
    if name == "account_id" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:012d}"
    if name in ("credentials_file", "csv_path") and value is not None:
        # Absolute here, where the value was given: a run's notebooks execute in
        # notebooks/, where a relative path would name another file.
        return os.path.abspath(Path(os.fspath(value)).expanduser())
    if name == "verify_regions" and isinstance(value, str):
        return value.split(",")
    if name == "verify_regions" and isinstance(value, tuple):
        return list(value)
    return value


def cross_checks(values: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Rules that join two parameters. Run only when every single value passed."""
    problems = []
    target = values.get("target", "sandbox")
    profile = values.get("aws_profile")
    if profile is not None and target != "aws":
        problems.append(("aws_profile", profile,
                         "is only used with target 'aws'; add --target aws or drop it"))
    elif profile is not None:
        import botocore.session

        available = botocore.session.Session().available_profiles
        if profile not in available:
            listed = ", ".join(sorted(available)) or "none"
            problems.append(("aws_profile", profile,
                             f"is not a profile in your AWS config or credentials files "
                             f"(found: {listed})"))
    csv_path = values.get("csv_path")
    cred_file = values.get("credentials_file")
    if csv_path and cred_file and _same_file(csv_path, cred_file):
        problems.append(("csv_path", csv_path, "must not be the same file as credentials_file"))
    problems.extend(_partition_checks(values))
    return problems


def _same_file(a: Any, b: Any) -> bool:
    real = lambda v: os.path.realpath(Path(os.fspath(v)).expanduser())  # noqa: E731
    return real(a) == real(b)


def _partition_checks(values: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Regions that cannot work together: one account lives in one partition."""
    region = values.get("region", "us-east-1")
    home = partition_of(region)
    problems = []
    if values.get("target", "sandbox") == "sandbox" and home != "aws":
        problems.append(("region", region, f"is in the {home!r} partition; the sandbox is an "
                         "account in 'aws' (use e.g. us-east-1)"))
        return problems
    limit = values.get("limit_region")
    if limit and partition_of(limit) != home:
        problems.append(("limit_region", limit, f"is in the {partition_of(limit)!r} partition, "
                         f"but region {region!r} is in {home!r}: the account lives in one "
                         "partition, and EC2 would be allowed nowhere it can reach"))
    arn = values.get("pass_role_arn")
    if arn and parse_role_arn(arn)["partition"] != home:
        problems.append(("pass_role_arn", arn, f"is a role in the "
                         f"{parse_role_arn(arn)['partition']!r} partition, but region "
                         f"{region!r} is in {home!r}: the user could never pass it"))
    chosen = normalise("verify_regions", values.get("verify_regions")) or []
    others = [r for r in chosen if partition_of(r) != home]
    if others:
        problems.append(("verify_regions", values["verify_regions"],
                         f"{', '.join(others)} not in the {home!r} partition of region "
                         f"{region!r}; the account's regions are all in one partition"))
    return problems


def validate_run(values: dict[str, Any], sections: list[str]) -> dict[str, Common]:
    """Check every parameter of a run for ``sections`` before anything happens.

    Returns the validated model per section. Raises :class:`ParameterError`
    listing every problem, unknown names included.
    """
    known = names_of(sections)
    problems = [(n, v, unknown_rule(n, known)) for n, v in values.items() if n not in known]
    models: dict[str, Common] = {}
    seen: set[str] = set()
    for section in sections:
        model = SECTION_MODELS[section]
        subset = {k: v for k, v in values.items() if k in model.names()}
        try:
            models[section] = model.from_values(subset)
        except ParameterError as err:
            for problem in err.problems:
                if problem[0] not in seen:
                    seen.add(problem[0])
                    problems.append(problem)
    if problems:
        raise ParameterError(problems)
    return models


_CREDENTIAL_FIELDS = ["user_name", "credentials_profile", "credentials_file", "csv_path"]
register_model(RotateParams, reuse={CreateUserParams: _CREDENTIAL_FIELDS})
register_model(UnlinkParams, reuse={CreateUserParams: _CREDENTIAL_FIELDS,
                                    PolicyParams: ["policy_name"]})
