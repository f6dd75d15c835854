"""nbval: the committed notebooks, re-executed in order on a fresh sandbox, give their outputs.

The reference outputs come from ``make notebooks`` (a fresh sandbox, in
section order); ``nbval_sanitize.cfg`` names what legitimately differs from
run to run (key ids, unique ids, timestamps, ports, paths).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import PRODUCED, ROOT


@pytest.mark.e2e
def test_nbval__committed_notebooks_reproduce_their_reference_outputs(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    PRODUCED.append(tmp_path)
    env = {**os.environ, "RUNBOOK_HOME": str(home)}
    env.pop("RUNBOOK_RUN_DIR", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval", str(ROOT / "notebooks"),
             "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
             "-p", "no:cacheprovider", "-q", "-o", "addopts="],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run([sys.executable, "-m", "runbook", "sandbox", "stop"], env=env,
                       capture_output=True)
    (tmp_path / "nbval.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
