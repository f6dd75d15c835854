"""The secret scan every run folder gets: which lines it reports, and how."""

from __future__ import annotations

import random

from runbook.secrets import SECRET_SHAPED, looks_like_secret, scan_text

# Secret-shaped values made when the tests run, so that no key-like literal is in the file:
# 40 characters of mixed case and digits, and an access key ID's shape.
SECRET = "/".join(["Xy7" * 4, "Qz9" * 4, "Wv3" * 4 + "kj"])
KEY_ID = "AK" + "IA" + "Z" * 16


def _line_by_line(text, known=()):
    """The scan as a reader would do it: each line on its own, a known secret first."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        if any(s and s in line for s in known):
            hits.append((number, "secret"))
        elif any(looks_like_secret(m.group()) for m in SECRET_SHAPED.finditer(line)):
            hits.append((number, "secret-shaped"))
    return hits


def test_scan_text__reports_each_line_with_a_secret_once__known_secrets_first():
    text = (f"a\nb {SECRET} c\r\nplain\x85x {SECRET[::-1]}\n\n"
            f"known {SECRET} and {SECRET[::-1]}\n")
    assert scan_text(text, (SECRET,)) == [(2, "secret"), (4, "secret-shaped"), (6, "secret")]
    assert scan_text(text) == [(2, "secret-shaped"), (4, "secret-shaped"), (6, "secret-shaped")]
    assert scan_text("") == [] and scan_text("no secret here", ("",)) == []


def test_scan_text__finds_what_a_line_by_line_scan_finds__on_any_mix_of_lines():
    pieces = [SECRET, SECRET[::-1], SECRET.lower(), "x" * 40, KEY_ID, "a/b+c=",
              " ", "\n", "\r\n", "\r", "\x0b", "\x85", "\u2028", '"', "=", "0123456789" * 4]
    chooser = random.Random(20261204)
    for _ in range(500):
        text = "".join(chooser.choice(pieces) for _ in range(chooser.randint(0, 30)))
        assert scan_text(text, (SECRET,)) == _line_by_line(text, (SECRET,)), repr(text)
        assert scan_text(text) == _line_by_line(text), repr(text)
