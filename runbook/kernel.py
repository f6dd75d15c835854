"""Kernel side of the warm kernel: what the engine runs between two sections.

The engine (:mod:`runbook.engine`) calls :func:`begin_section` silently
(nothing of it lands in a notebook) before each section, so that a section
starts as it would in a fresh kernel: an empty user namespace, execution
counts from 1, no widget of an earlier section alive, and the run's
environment for this section. What stays is what makes the kernel warm: the
imported modules.

``python -m runbook.kernel [--preload=a,b] -f CONNECTION_FILE`` starts the
kernel itself: ipykernel's own launcher, less its debugger, importing the
library before it answers (see :func:`main`).
"""

from __future__ import annotations

import gc
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


def preload(modules: list[str], log: Any = None) -> None:
    """Import ``modules`` now, so sections start warm; one that fails is reported, not raised.

    A name ``module:function`` also calls that function with no arguments
    (data every section reads, such as botocore's region lists). A failure's
    traceback goes to ``log`` (default stderr; the run's kernel.log); the
    section that needs it fails again with the same traceback, in its notebook.
    """
    import importlib
    import traceback

    for name in modules:
        module, _, function = name.partition(":")
        try:
            imported = importlib.import_module(module)
            if function:
                getattr(imported, function)()
        except Exception:  # noqa: BLE001 - see the docstring
            traceback.print_exc(file=log or sys.stderr)


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


def _end_with_parent() -> None:
    """Exit as soon as the run that started this kernel is gone, from the very start.

    The run names itself in ``JPY_PARENT_PID``. ipykernel's own watcher
    starts only once the kernel is set up, and if the run died while the
    kernel booted it waits instead for init (pid 1) to adopt the kernel,
    which never happens where a subreaper adopts orphans (``systemd --user``,
    some CI runners): the kernel would live on. This checks every half second.
    """
    named = os.environ.get("JPY_PARENT_PID", "")
    if not named.isdigit():
        return
    parent = int(named)
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    import threading

    threading.Thread(target=watch, name="runbook-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """Start an IPython kernel without the debugger: ``ipykernel_launcher`` minus debugpy.

    ipykernel imports debugpy at start (a twentieth of a second, on every
    run's critical path) to offer JupyterLab's visual debugger; a headless
    run never attaches one. Marked missing, debugpy is not imported and
    ipykernel starts without its debugger, as it does wherever debugpy is
    not installed.

    ``--preload=a,b`` (first, before ipykernel's own options) imports those
    modules once the kernel is set up and before it answers its first
    request, so a client that sees it ready sees it warm. A module that fails
    to import is reported on stderr (the run's kernel.log) and the kernel
    starts anyway: the section that imports it fails with the traceback.
    """
    _end_with_parent()
    args = list(sys.argv[1:] if argv is None else argv)
    modules: list[str] = []
    if args and args[0].startswith("--preload="):
        modules = [name for name in args.pop(0).split("=", 1)[1].split(",") if name]
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    # As ipykernel_launcher does: the working directory does not shadow modules.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    from ipykernel.kernelapp import IPKernelApp

    # Once initialised, the kernel sends stderr to the notebook being run; a
    # failed preload belongs in the kernel's own log, the stderr it began with.
    with open(os.dup(2), "w", closefd=True) as log:
        # What kernelapp.launch_new_instance() does, with the preload in between.
        app = IPKernelApp.instance()
        app.initialize(args)
        preload(modules, log)
    # Everything imported so far lives as long as the kernel: frozen, the
    # garbage collector never scans it again (a tenth of a second of full
    # collections over a run's sections, otherwise). What the sections make
    # is collected as usual.
    gc.freeze()
    app.start()


if __name__ == "__main__":
    main()
