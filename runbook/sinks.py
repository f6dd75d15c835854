"""Credential sinks: where the shown-once secret goes the moment AWS returns it.

A registry of small classes, one per format. Every write is atomic (temporary
file, fsync, rename) with mode 0600, so a crash leaves the old file whole.
"""

from __future__ import annotations

import configparser
import csv
import io
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


@register
class SharedCredentialsProfile(CredentialSink):
    """A profile in an AWS shared-credentials file (``~/.aws/credentials`` format).

    Other profiles in the file are kept as they are (comments are not: the
    file is rewritten through configparser).
    """

    kind = "shared-credentials"

    def __init__(self, path: Path | str, profile: str):
        self.path = Path(path)
        self.profile = profile

    def _load(self) -> configparser.RawConfigParser:
        parser = configparser.RawConfigParser()
        if self.path.exists():
            try:
                parser.read_string(self.path.read_text(), source=str(self.path))
            except configparser.Error as err:
                raise StepError(f"{self.path} is not a readable credentials file: {err.message}",
                                fix="repair or move the file, then rerun") from None
        return parser

    def read(self) -> Credentials | None:
        parser = self._load()
        if not parser.has_section(self.profile):
            return None
        section = parser[self.profile]
        key_id = section.get("aws_access_key_id")
        secret = section.get("aws_secret_access_key")
        if not key_id or not secret:
            return None
        return Credentials(key_id.strip(), secret.strip())

    def write(self, credentials: Credentials) -> None:
        parser = self._load()
        if not parser.has_section(self.profile):
            parser.add_section(self.profile)
        parser.set(self.profile, "aws_access_key_id", credentials.access_key_id)
        parser.set(self.profile, "aws_secret_access_key", credentials.secret_access_key)
        self._save(parser)

    def remove(self) -> bool:
        parser = self._load()
        if not parser.remove_section(self.profile):
            return False
        self._save(parser)
        return True

    def _save(self, parser: configparser.RawConfigParser) -> None:
        buffer = io.StringIO()
        parser.write(buffer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, buffer.getvalue())

    def describe(self) -> str:
        return f"profile [{self.profile}] in {self.path}"


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

    def read(self) -> Credentials | None:
        if not self.path.exists():
            return None
        rows = list(csv.DictReader(io.StringIO(self.path.read_text(encoding="utf-8-sig"))))
        for row in rows:
            if row.get("User name") == self.user_name and row.get("Access key ID"):
                return Credentials(row["Access key ID"], row.get("Secret access key", ""))
        return None

    def write(self, credentials: Credentials) -> None:
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
