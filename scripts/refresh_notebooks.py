"""Execute the committed notebooks in place against a fresh sandbox (their reference outputs).

nbval compares later executions with these outputs, so they must come from a
fresh sandbox in section order. Papermill's bookkeeping (timings, paths of
this machine) is stripped; widget state is kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# Name order, as nbval runs them: the link sections 01-04, then rotate_access_key, then unlink.
SECTIONS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def strip(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="runbook-reference-") as home:
        env = {**os.environ, "RUNBOOK_HOME": home}
        try:
            for name in SECTIONS:
                path = ROOT / "notebooks" / name
                print("executing", name, flush=True)
                subprocess.run([sys.executable, "-m", "papermill", str(path), str(path),
                                "--cwd", str(ROOT / "notebooks"), "--no-progress-bar"],
                               env=env, check=True)
                strip(path)
        finally:
            subprocess.run([sys.executable, "-m", "runbook", "sandbox", "stop"], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
