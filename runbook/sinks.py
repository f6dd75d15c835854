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
# As configparser reads a line (its defaults, which botocore uses): a header, or an option
# name before the first "=" or ":".
_HEADER = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<option>.*?)\s*[=:]")


def _entries(lines: list[str]) -> list[tuple[str, str | None, list[str]]]:
    """The lines of a credentials file, grouped as configparser reads them.

    Each entry is ``(kind, name, lines)``: kind ``header`` (name: the
    profile, exactly as configparser has it, spaces included), ``option``
    (name: lower case; its lines include any continuation lines, those
    indented deeper than the option, even after a blank or comment line) or
    ``other`` (blank lines and comments).
    """
    entries: list[tuple[str, str | None, list[str]]] = []
    option_indent = None  # the indent of the option a deeper line would continue
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        remark = not stripped or stripped.startswith(("#", ";"))
        if not remark and option_indent is not None and indent > option_indent:
            # A continuation: it, and the blank or comment lines since its option, are
            # part of that option's value (configparser joins them), in their order.
            last = max(i for i, e in enumerate(entries) if e[0] == "option")
            merged = [text for entry in entries[last:] for text in entry[2]] + [line]
            entries[last:] = [("option", entries[last][1], merged)]
            continue
        if remark:
            entries.append(("other", None, [line]))
            continue
        header = _HEADER.match(stripped)
        if header:
            entries.append(("header", header.group("header"), [line]))
            option_indent = None
            continue
        option = _OPTION.match(stripped)
        entries.append(("option", option.group("option").strip().lower() if option else None,
                        [line]))
        option_indent = indent
    return entries


@register
class SharedCredentialsProfile(CredentialSink):
    """A profile in an AWS shared-credentials file (``~/.aws/credentials`` format).

    Writing edits the file as text, read the way configparser (and so
    botocore) reads it: the profile's key options are replaced, with their
    continuation lines (a session token there, which would not belong to the
    new key, goes too), the new pair goes after the profile's last option,
    and every other line, comments and other profiles included, stays as it
    was, line endings too. A file that does not parse, has a byte-order mark,
    or is an AWS *config* file (``[profile NAME]`` sections), is refused and
    left alone; the refusal names line numbers, never a line or a name in
    it, since any of them may be a secret.
    """

    kind = "shared-credentials"

    def __init__(self, path: Path | str, profile: str):
        self.path = Path(path)
        self.profile = profile

    def _text(self) -> str:
        try:
            if not self.path.exists():
                return ""
            with open(self.path, encoding="utf-8", newline="") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise StepError(f"{self.path} cannot be read as a credentials file: {reason}",
                            fix="repair or move the file, then rerun") from None
        if text.startswith("\ufeff"):
            raise StepError(f"{self.path} starts with a byte-order mark, which the AWS CLI "
                            "and SDKs cannot read", fix="save it as UTF-8 without a BOM")
        return text

    def _load(self, text: str) -> configparser.RawConfigParser:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text, source=str(self.path))
        except configparser.Error as err:
            raise StepError(f"{self.path} is not a readable credentials file: {_where(err)} "
                            "(nothing of it is quoted here: any line may hold a secret)",
                            fix="repair or move the file, then rerun") from None
        config_like = [name for name in parser.sections() if name.startswith("profile ")]
        if config_like:
            raise StepError(
                f"{self.path} looks like an AWS config file, not a credentials file: it has "
                "[profile NAME] sections, and credentials files name profiles without "
                "'profile '", fix="name the shared-credentials file (e.g. ~/.aws/credentials) "
                                  "in credentials_file")
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

    def _section(self, entries: list) -> tuple[int, int] | None:
        """``(header, end)`` entry indexes of the profile's section (end exclusive), or None."""
        start = None
        for number, (kind, name, _) in enumerate(entries):
            if kind != "header":
                continue
            if start is not None:
                return start, number
            if name == self.profile:
                start = number
        return (start, len(entries)) if start is not None else None

    def write(self, credentials: Credentials) -> None:
        text = self._text()
        self._load(text)
        newline = "\r\n" if "\r\n" in text else "\n"
        entries = _entries(text.splitlines(keepends=True))
        if entries and not entries[-1][2][-1].endswith(("\n", "\r")):
            entries[-1][2][-1] += newline
        pair = ("other", None, [f"aws_access_key_id = {credentials.access_key_id}{newline}",
                                f"aws_secret_access_key = {credentials.secret_access_key}"
                                f"{newline}"])
        found = self._section(entries)
        if found is None:
            gap = [("other", None, [newline])] if entries and entries[-1][2][-1].strip() else []
            entries += gap + [("header", self.profile, [f"[{self.profile}]{newline}"]), pair]
        else:
            start, end = found
            body = [e for e in entries[start + 1:end]
                    if not (e[0] == "option" and e[1] in _KEY_OPTIONS)]
            options = [i for i, e in enumerate(body) if e[0] == "option"]
            at = options[-1] + 1 if options else 0  # after the last option: never a continuation
            entries[start + 1:end] = body[:at] + [pair] + body[at:]
        self._save("".join(line for _, _, lines in entries for line in lines))

    def remove(self) -> bool:
        text = self._text()
        self._load(text)
        entries = _entries(text.splitlines(keepends=True))
        found = self._section(entries)
        if found is None:
            return False
        start, end = found
        # Comments and blank lines just above the next header belong to that profile.
        while end > start + 1 and entries[end - 1][0] == "other":
            end -= 1
        while end < len(entries) and entries[end][0] == "other" and \
                not "".join(entries[end][2]).strip():
            end += 1
        del entries[start:end]
        self._save("".join(line for _, _, lines in entries for line in lines))
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
        return f"a profile's header appears a second time at line {err.lineno}"
    if isinstance(err, configparser.DuplicateOptionError):
        return f"a setting appears a second time in its profile at line {err.lineno}"
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
                rows = list(csv.reader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            return f"{self.path} exists and cannot be read as a CSV ({type(err).__name__})"
        if not rows or rows[0] != self.HEADER:
            return (f"{self.path} exists and is not a credentials CSV (its first row is not "
                    f"{', '.join(self.HEADER)}); writing the key there would replace it")
        users = {row[0] for row in rows[1:] if row}
        others = sorted(u for u in users if u and u != self.user_name)
        if others:
            return (f"{self.path} holds the key of another user ({', '.join(others)}); "
                    "writing this user's key there would lose it")
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
