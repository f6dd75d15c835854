"""Where the runbook keeps its state, its runs and its notebooks."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_dir() -> Path:
    """The source checkout the package runs from, or the current directory."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").exists() and (candidate / "notebooks").is_dir():
        return candidate
    return Path.cwd()


def home() -> Path:
    """``$RUNBOOK_HOME``, else ``.runbook/`` in the project checkout.

    Sandbox state, the default sandbox credentials file and interactive audit
    logs live here. It is created mode 0700.
    """
    path = Path(os.environ.get("RUNBOOK_HOME") or project_dir() / ".runbook")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


# The link's sections, in the order a run executes them (rotate and unlink have one each).
SECTIONS = ["01_create_user", "02_create_policy", "03_attach_policy", "04_add_credentials",
            "05_verify_link"]


def notebooks_dir() -> Path:
    """The section notebooks: ``$RUNBOOK_NOTEBOOKS`` or ``notebooks/`` of the checkout."""
    return Path(os.environ.get("RUNBOOK_NOTEBOOKS") or project_dir() / "notebooks")


def missing_notebooks(sections: list[str]) -> list[str]:
    """The notebooks of ``sections`` that :func:`notebooks_dir` lacks (file names)."""
    folder = notebooks_dir()
    return [f"{name}.ipynb" for name in sections if not (folder / f"{name}.ipynb").is_file()]


def runs_dir() -> Path:
    return project_dir() / "runs"


def sandbox_dir() -> Path:
    path = home() / "sandbox"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
