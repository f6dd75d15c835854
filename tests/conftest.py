"""Shared fixtures: isolated runbook homes with their own sandboxes, and the CLI.

Every sandbox a test starts is stopped when it ends. Every folder the suite
writes is scanned for secrets at the end (see ``test_zz_secret_scan.py``).

The figures report (issue 5): tests count what they tried and what held with
:func:`figure`; ``pytest_terminal_summary`` prints the counts at the end of
every run (``make test`` included). A "survived/refused/recovered" count is
added only after the test's assertions passed, so a failure shows as a gap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PRODUCED: list[Path] = []  # folders the suite wrote, for the final secret scan
FIGURES: dict[str, int | None] = {
    "faults injected": 0, "faults survived": 0,
    "bad inputs tried": 0, "bad inputs refused": 0,
    "crash points tried": 0, "crash points recovered": 0,
    "secret-scan hits": None,  # set by test_zz_secret_scan.py; None: the scan did not run
}


def figure(name: str, count: int = 1) -> None:
    """Add ``count`` to the figure ``name`` of the report (``secret-scan hits`` is set)."""
    if name == "secret-scan hits":
        FIGURES[name] = count
    else:
        FIGURES[name] += count


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the figures: faults, bad inputs, crash points, secret-scan hits."""
    f = FIGURES
    hits = f["secret-scan hits"]
    lines = [
        f"faults injected: {f['faults injected']:4}   survived: {f['faults survived']}",
        f"bad inputs tried: {f['bad inputs tried']:3}   refused (exit 2, parameter named, "
        f"no AWS call): {f['bad inputs refused']}",
        f"crash points tried: {f['crash points tried']:2}   recovered by a rerun: "
        f"{f['crash points recovered']}",
        f"secret-scan hits: {'not scanned' if hits is None else hits}" +
        ("" if not hits else "   (must be 0)"),
    ]
    terminalreporter.section("runbook figures")
    for line in lines:
        terminalreporter.write_line(line)


def _stop_sandbox(home: Path) -> None:
    subprocess.run([sys.executable, "-m", "runbook", "sandbox", "stop"],
                   env={**os.environ, "RUNBOOK_HOME": str(home)}, capture_output=True)


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory):
    """One runbook home (and sandbox) for the library tests; names keep tests apart."""
    home = tmp_path_factory.mktemp("shared-home")
    old = os.environ.get("RUNBOOK_HOME")
    os.environ["RUNBOOK_HOME"] = str(home)
    PRODUCED.append(home)
    yield home
    _stop_sandbox(home)
    if old is None:
        os.environ.pop("RUNBOOK_HOME", None)
    else:
        os.environ["RUNBOOK_HOME"] = old


@pytest.fixture
def fresh_home(tmp_path):
    """A runbook home of its own: a test that needs an empty account starts here."""
    home = tmp_path / "home"
    home.mkdir()
    PRODUCED.append(tmp_path)
    yield home
    _stop_sandbox(home)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path | None

    @property
    def run(self) -> dict:
        return json.loads((self.run_dir / "run.json").read_text())

    @property
    def audit(self) -> list[dict]:
        path = self.run_dir / "audit.jsonl"
        return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []

    def section(self, name: str) -> dict:
        return next(s for s in self.run["sections"] if s["name"] == name)


@pytest.fixture
def runbook_cli(tmp_path):
    """Run ``runbook ...`` as a user would, in a subprocess; find the run folder it made."""
    runs = tmp_path / "runs"

    def invoke(*args: str, home: Path, extra_env: dict | None = None) -> CliResult:
        before = set(runs.iterdir()) if runs.exists() else set()
        command = [sys.executable, "-m", "runbook", *args]
        if args and args[0] in ("run", "rotate", "unlink") and "--out" not in args:
            command += ["--out", str(runs)]
        env = {**os.environ, "RUNBOOK_HOME": str(home), **(extra_env or {})}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        after = set(runs.iterdir()) if runs.exists() else set()
        new = sorted(after - before)
        return CliResult(done.returncode, done.stdout, done.stderr, new[-1] if new else None)

    PRODUCED.append(tmp_path)
    return invoke


def pytest_sessionfinish(session, exitstatus):
    """A sandbox a test left running is stopped here, and the suite fails for it.

    Fixtures stop their sandboxes; this catches one started some other way
    (a subprocess that outlived its test), so `make test` never leaves a
    moto server behind.
    """
    from runbook import sandbox as sb

    leftovers = []
    for folder in PRODUCED:
        for state in folder.rglob("sandbox/state.json"):
            pid = json.loads(state.read_text()).get("pid")
            if pid and sb.pid_alive(pid):
                leftovers.append(str(state.parent.parent))
                _stop_sandbox(state.parent.parent)
    if leftovers:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"sandboxes left running by tests (stopped now): {', '.join(leftovers)}", red=True)
        session.exitstatus = 1
