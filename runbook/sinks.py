"""Credential sinks: where the shown-once secret goes the moment AWS returns it.

A registry of small classes, one per format. Every write is atomic (temporary
file, fsync, rename) with mode 0600, so a crash leaves the old file whole.
"""

from __future__ import annotations

import configparser
import csv
import io
import re
from abc import ABC, abstractmethod
from pathlib import Path

from .errors import StepError
from .files import atomic_write_text
from .secrets import Credentials


class CredentialSink(ABC):
    """A place that holds one access key pair."""

    kind: str = ""

    @abstractmethod
    def read(self) -> Credentials | None:
        """The key pair held here, or None."""

    @abstractmethod
    def write(self, credentials: Credentials) -> None:
        """Store ``credentials``, atomically, readable by the owner only."""

    @abstractmethod
    def remove(self) -> bool:
        """Forget the key pair. True when there was one."""

    @abstractmethod
    def describe(self) -> str:
        """Where the key lives, in words a person can follow."""


SINKS: dict[str, type[CredentialSink]] = {}


def register(cls: type[CredentialSink]) -> type[CredentialSink]:
    SINKS[cls.kind] = cls
    return cls


_KEY_OPTIONS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                "aws_security_token")
_HEADER = re.compile(r"\s*\[([^\]]*)\]")


def _option_name(line: str) -> str | None:
    """The option a ``name = value`` line sets (lower case), or None for other lines."""
    if not line.strip() or line[0].isspace() or line.lstrip().startswith(("#", ";")):
        return None
    for separator in ("=", ":"):
        if separator in line:
            return line.split(separator, 1)[0].strip().lower()
    return None


@register
class SharedCredentialsProfile(CredentialSink):
    """A profile in an AWS shared-credentials file (``~/.aws/credentials`` format).

    Writing edits the file as text: the profile's key lines are replaced (a
    session token there, which would not belong to the new key, goes too),
    and every other line, comments and other profiles included, stays as it
    was. A file that does not parse, or that is an AWS *config* file
    (``[profile NAME]`` sections), is refused and left alone; the refusal
    names line numbers, never a line, since any line may hold a secret.
    """

    kind = "shared-credentials"

    def __init__(self, path: Path | str, profile: str):
        self.path = Path(path)
        self.profile = profile

    def _text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise StepError(f"{self.path} cannot be read as a credentials file: {reason}",
                            fix="repair or move the file, then rerun") from None

    def _load(self, text: str) -> configparser.RawConfigParser:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text, source=str(self.path))
        except configparser.Error as err:
            raise StepError(f"{self.path} is not a readable credentials file: {_where(err)} "
                            "(no line of it is quoted here: any of them may hold a secret)",
                            fix="repair or move the file, then rerun") from None
        config_like = [name for name in parser.sections() if name.startswith("profile ")]
        if config_like:
            raise StepError(
                f"{self.path} looks like an AWS config file, not a credentials file: it has "
                f"[{config_like[0]}]; credentials files name profiles without 'profile '",
                fix="name the shared-credentials file (e.g. ~/.aws/credentials) in "
                    "credentials_file")
        return parser

    def read(self) -> Credentials | None:
        parser = self._load(self._text())
        if not parser.has_section(self.profile):
            return None
        section = parser[self.profile]
        key_id = section.get("aws_access_key_id")
        secret = section.get("aws_secret_access_key")
        if not key_id or not secret:
            return None
        return Credentials(key_id.strip(), secret.strip())

    def _section(self, lines: list[str]) -> tuple[int, int] | None:
        """``(header, end)`` line indexes of the profile's section (end exclusive), or None."""
        start = None
        for number, line in enumerate(lines):
            header = _HEADER.match(line)
            if header is None:
                continue
            if start is not None:
                return start, number
            if header.group(1).strip() == self.profile:
                start = number
        return (start, len(lines)) if start is not None else None

    def write(self, credentials: Credentials) -> None:
        text = self._text()
        self._load(text)
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        pair = [f"aws_access_key_id = {credentials.access_key_id}\n",
                f"aws_secret_access_key = {credentials.secret_access_key}\n"]
        found = self._section(lines)
        if found is None:
            lines += (["\n"] if lines and lines[-1].strip() else []) + [f"[{self.profile}]\n"] + pair
        else:
            start, end = found
            body, dropping = [], False
            for line in lines[start + 1:end]:
                if dropping and line.strip() and line[0].isspace():
                    continue  # the continuation of a dropped value
                dropping = _option_name(line) in _KEY_OPTIONS
                if not dropping:
                    body.append(line)
            lines[start + 1:end] = pair + body
        self._save("".join(lines))

    def remove(self) -> bool:
        text = self._text()
        self._load(text)
        lines = text.splitlines(keepends=True)
        found = self._section(lines)
        if found is None:
            return False
        start, end = found
        # Comments and blank lines just above the next header belong to that profile.
        while end > start + 1 and (not lines[end - 1].strip()
                                   or lines[end - 1].lstrip().startswith(("#", ";"))):
            end -= 1
        if end < len(lines):
            while end < len(lines) and not lines[end].strip():
                end += 1
        del lines[start:end]
        self._save("".join(lines))
        return True

    def _save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, text)

    def describe(self) -> str:
        return f"profile [{self.profile}] in {self.path}"


def _where(err: configparser.Error) -> str:
    """What is wrong with a credentials file, by line number only."""
    if isinstance(err, configparser.MissingSectionHeaderError):
        return f"line {err.lineno} comes before any [profile] header"
    if isinstance(err, configparser.ParsingError):
        numbers = ", ".join(str(number) for number, _ in err.errors)
        return f"line(s) {numbers} are not 'name = value' lines"
    if isinstance(err, configparser.DuplicateSectionError):
        return f"profile [{err.section}] appears twice (line {err.lineno})"
    if isinstance(err, configparser.DuplicateOptionError):
        return f"{err.option} appears twice in [{err.section}] (line {err.lineno})"
    return type(err).__name__


@register
class ConsoleCsv(CredentialSink):
    """A CSV in the layout of the IAM console's "Download Credentials" file.

    ``aws configure import --csv file://PATH`` reads it back into a profile.
    """

    kind = "csv"
    HEADER = ["User name", "Password", "Access key ID", "Secret access key", "Console login link"]

    def __init__(self, path: Path | str, user_name: str, account_id: str):
        self.path = Path(path)
        self.user_name = user_name
        self.account_id = account_id

    def foreign(self) -> str | None:
        """Why the file at ``path`` must not be replaced (it is not a credentials CSV), or None."""
        if not self.path.exists():
            return None
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle), [])
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            return f"{self.path} exists and cannot be read as a CSV ({type(err).__name__})"
        if header != self.HEADER:
            return (f"{self.path} exists and is not a credentials CSV (its first row is not "
                    f"{', '.join(self.HEADER)}); writing the key there would replace it")
        return None

    def read(self) -> Credentials | None:
        if not self.path.exists() or self.foreign():
            return None
        rows = list(csv.DictReader(io.StringIO(self.path.read_text(encoding="utf-8-sig"))))
        for row in rows:
            if row.get("User name") == self.user_name and row.get("Access key ID"):
                return Credentials(row["Access key ID"], row.get("Secret access key", ""))
        return None

    def write(self, credentials: Credentials) -> None:
        reason = self.foreign()
        if reason:
            raise StepError(reason, fix="choose another csv_path, or move that file away")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(self.HEADER)
        writer.writerow([self.user_name, "", credentials.access_key_id,
                         credentials.secret_access_key,
                         f"https://{self.account_id}.signin.aws.amazon.com/console"])
        atomic_write_text(self.path, buffer.getvalue())

    def remove(self) -> bool:
        if not self.path.exists():
            return False
        self.path.unlink()
        return True

    def describe(self) -> str:
        return f"CSV {self.path}"
