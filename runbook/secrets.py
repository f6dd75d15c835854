"""Masking and scanning: how the runbook keeps the shown-once secret out of sight."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

# An access key ID: AKIA (long-term) or ASIA (temporary) and 16 more characters.
KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
# A secret access key is 40 characters of base64's alphabet. Requiring both
# cases and a digit keeps hex digests (git SHAs, hashes) out of the net.
SECRET_SHAPED = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def mask_key_id(key_id: str | None) -> str:
    """``AKIA************WXYZ``: the prefix and last four, enough to tell keys apart."""
    if not key_id:
        return "(none)"
    if len(key_id) <= 8:
        return "*" * len(key_id)
    return key_id[:4] + "*" * (len(key_id) - 8) + key_id[-4:]


def looks_like_secret(text: str) -> bool:
    return (any(c.isupper() for c in text) and any(c.islower() for c in text)
            and any(c.isdigit() for c in text))


@dataclass(frozen=True)
class Credentials:
    """An access key pair. Its repr and str never show the secret, nor the whole key id."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={mask_key_id(self.access_key_id)!r}, secret=<hidden>)"

    __str__ = __repr__

    @property
    def masked_id(self) -> str:
        return mask_key_id(self.access_key_id)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str  # "secret" (a known secret) or "secret-shaped"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind} value"


def scan_text(text: str, known: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """``(line, kind)`` for each line holding a known secret or a secret-shaped value.

    One line, one finding: "secret" when a known secret is on it, else
    "secret-shaped". Lines are counted as :meth:`str.splitlines` counts them.
    The text is searched whole (the shape cannot span lines), and split into
    lines only when something is found.
    """
    starts: list[int] = []

    def line_of(offset: int) -> int:
        if not starts:
            at = 0
            for piece in text.splitlines(keepends=True):
                starts.append(at)
                at += len(piece)
        return bisect.bisect_right(starts, offset)

    kinds: dict[int, str] = {}
    for secret in known:
        if not secret:
            continue
        at = text.find(secret)
        while at != -1:
            kinds[line_of(at)] = "secret"
            at = text.find(secret, at + 1)
    for match in SECRET_SHAPED.finditer(text):
        if looks_like_secret(match.group()):
            kinds.setdefault(line_of(match.start()), "secret-shaped")
    return sorted(kinds.items())


def scan_tree(root: Path, known: tuple[str, ...] = ()) -> list[Finding]:
    """Scan every file under ``root``. Findings name file and line, never the value."""
    findings = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        findings.extend(Finding(path, line, kind) for line, kind in scan_text(text, known))
    return findings
