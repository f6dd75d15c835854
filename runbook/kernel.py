"""Kernel side of the warm kernel: what the engine runs between two sections.

The engine (:mod:`runbook.engine`) calls :func:`begin_section` silently
(nothing of it lands in a notebook) before each section, so that a section
starts as it would in a fresh kernel: an empty user namespace, execution
counts from 1, no widget of an earlier section alive, and the run's
environment for this section. What stays is what makes the kernel warm: the
imported modules.

``python -m runbook.kernel -f CONNECTION_FILE`` starts the kernel itself:
ipykernel's own launcher, less its debugger (see :func:`main`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Names a section may leave in os.environ that the next one must not see.
SECTION_ENV = ("RUNBOOK_SECTION", "RUNBOOK_RUN_DIR", "RUNBOOK_CALLER_IDENTITY", "RUNBOOK_HOME",
               "RUNBOOK_SANDBOX_ENDPOINT")


def begin_section(environ: dict[str, str]) -> None:
    """Reset the kernel for a new section and set its environment.

    ``environ`` holds the section's ``RUNBOOK_*`` values; any of
    :data:`SECTION_ENV` not in it is removed.
    """
    shell = _shell()
    if shell is not None:
        # new_session=True also restarts the execution count at 1.
        shell.reset(new_session=True, aggressive=False)
    _close_widgets()
    for name in SECTION_ENV:
        if name not in environ:
            os.environ.pop(name, None)
    os.environ.update(environ)


def preload(modules: list[str]) -> None:
    """Import ``modules`` now, while the runner does other work, so sections start warm."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - a kernel always has IPython
        return None
    return get_ipython()


def _close_widgets() -> None:
    """Close every widget an earlier section left open (their comms, their state)."""
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover
        return
    ipywidgets.Widget.close_all()


def main() -> None:
    """Start an IPython kernel without the debugger: ``ipykernel_launcher`` minus debugpy.

    ipykernel imports debugpy at start (a twentieth of a second, on every
    run's critical path) to offer JupyterLab's visual debugger; a headless
    run never attaches one. Marked missing, debugpy is not imported and
    ipykernel starts without its debugger, as it does wherever debugpy is
    not installed.
    """
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    # As ipykernel_launcher does: the working directory does not shadow modules.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
