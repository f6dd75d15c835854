"""Last test of the suite: nothing the suite produced holds a secret outside a credential sink.

pytest runs test files in name order, so this file runs after every other.
The sinks (shared-credentials files, console CSVs, the sandbox state that
holds the operator key) hold secrets by design; their values become the
known secrets looked for everywhere else, along with any secret-shaped value.
"""

from __future__ import annotations

import configparser
import csv
import json
from pathlib import Path

from conftest import PRODUCED, ROOT, figure
from runbook.secrets import scan_text

SINK_NAMES = {"credentials", "state.json"}


def _is_sink(path: Path) -> bool:
    return path.name in SINK_NAMES or path.suffix == ".csv"


def _secrets_in(path: Path) -> set[str]:
    found: set[str] = set()
    text = path.read_text(errors="replace")
    if path.name == "state.json":
        found.add(json.loads(text).get("operator_secret_access_key", ""))
    elif path.suffix == ".csv":
        found.update(row.get("Secret access key", "") for row in csv.DictReader(text.splitlines()))
    else:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text)
        except configparser.Error:
            return found
        found.update(parser[s].get("aws_secret_access_key", "") for s in parser.sections())
    return {s for s in found if len(s) >= 20}


def _files(roots: list[Path]) -> list[Path]:
    return sorted({p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()})


def test_secret_scan__nothing_the_suite_wrote_holds_a_secret_outside_the_sinks():
    roots = [*PRODUCED, ROOT / "runs", ROOT / ".runbook", ROOT / "notebooks",
             ROOT / "test-artifacts"]
    files = _files(roots)
    known: set[str] = set()
    for path in files:
        if _is_sink(path):
            known |= _secrets_in(path)
    hits = []
    for path in files:
        if _is_sink(path):
            continue
        for line, kind in scan_text(path.read_text(errors="replace"), tuple(known)):
            hits.append(f"{path}:{line}: {kind}")
    figure("secret-scan hits", len(hits))
    assert hits == [], "\n".join(hits[:20])
    assert files, "the suite produced nothing to scan"
