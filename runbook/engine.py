"""The warm-kernel papermill engine: one kernel for all the sections of a run.

papermill starts a fresh kernel per notebook, which costs about a second of
process start and imports each time. A run instead starts one kernel ahead of
time (while it validates, finds the sandbox and checks the operator), preloads
the library in it, and lends it to papermill for each section through the
``runbook-warm`` engine, registered in papermill's engine registry. Between two
sections :func:`runbook.kernel.begin_section` resets the kernel (empty
namespace, execution count 1, widgets closed, the section's environment), so
sections share imported modules and nothing else. Each section still leaves
its own executed notebook. papermill's save after every cell start and end
(two full JSON dumps per cell, a third of a run's time) is off: the notebook
is written when the section ends, when a cell fails (papermill), and when the
kernel dies or a cell times out (this engine). Every AWS call is in the audit
log the moment it returns either way.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from .errors import RunbookError

ENGINE_NAME = "runbook-warm"
KERNEL_NAME = "python3"
START_TIMEOUT = 60  # seconds for the kernel to answer its first kernel_info


class KernelError(RunbookError):
    """The run's kernel did not start, died, or refused to reset between sections."""


class RunbookKernelSpecManager(KernelSpecManager):
    """Always this interpreter's ipykernel, whatever kernelspecs the machine has.

    A user-wide ``python3`` kernelspec may point at another Python, without
    the runbook installed; a run must execute with the same installation as
    the ``runbook`` command that started it. The kernel starts through
    :func:`runbook.kernel.main` (ipykernel without its debugger).
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "runbook.kernel", "-f", "{connection_file}",
                  # No history database: a headless run never reads it back.
                  "--HistoryManager.enabled=False",
                  # No Out[] cache: resetting it runs a full gc.collect() per section.
                  "--InteractiveShell.cache_size=0"],
            display_name="Python 3 (runbook)", language="python", metadata={})


class WarmKernel:
    """A kernel started once for a run, reused by every section, then shut down.

    ``start()`` launches the process and returns at once; ``ready()`` waits for
    it. ``begin_section(environ)`` resets it for the next section. Kernel
    output that is not a notebook's (its own warnings) goes to ``log_path``,
    which :meth:`save_log` copies into the run folder after :meth:`shutdown`.
    """

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd = Path(cwd)
        self.env = dict(env)
        # IPC sockets in a private folder: no TCP port open to other local users,
        # and an absolute path, since the kernel runs in another directory.
        self._sockets = tempfile.mkdtemp(prefix="runbook-kernel-")
        # The kernel starts before the run folder exists; save_log() copies it there.
        self.log_path = Path(self._sockets) / "kernel.log"
        self.km = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc",
                                     ip=os.path.join(self._sockets, "k"),
                                     kernel_spec_manager=RunbookKernelSpecManager())
        self.kc: Any = None
        self._log: Any = None
        self._ready = False

    def start(self, preload: list[str] = ()) -> None:
        """Launch the kernel process and queue the import of ``preload``; return at once.

        The kernel boots and imports while the caller goes on; :meth:`ready`
        waits for both. A module that fails to import here fails again, with
        its traceback, in the section that imports it.
        """
        self._log = open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                         "ab")
        run_sync(self.km.start_kernel)(cwd=str(self.cwd), env=self.env,
                                        stdout=self._log, stderr=self._log)
        self.kc = self.km.client()
        # No heartbeat channel: this client's parent is the kernel manager, which
        # answers "is it alive" from the process itself. The heartbeat thread only
        # races a shutdown that comes while the kernel boots (a bad parameter),
        # recreating its socket on a closing context ("Too many open files").
        self.kc.start_channels(hb=False)
        if preload:
            self.kc.execute(f"__import__('runbook.kernel').kernel.preload({list(preload)!r})",
                            silent=True, store_history=False, allow_stdin=False)
        self._ready = False

    def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the kernel answers. Raises :class:`KernelError` if it does not."""
        if self._ready:
            return
        try:
            run_sync(self.kc.wait_for_ready)(timeout=timeout)
        except RuntimeError as err:
            raise KernelError(f"the kernel did not start: {err}; see {self.log_path}") from None
        self._ready = True

    def run_silently(self, code: str, timeout: float = 120) -> None:
        """Execute ``code`` without output or history. Raises :class:`KernelError` on error."""
        self.ready()
        reply = run_sync(self.kc.execute_interactive)(
            code, silent=True, store_history=False, allow_stdin=False, timeout=timeout)
        content = reply["content"]
        if content.get("status") != "ok":
            raise KernelError(f"the kernel refused to prepare the section: "
                              f"{content.get('ename')}: {content.get('evalue')}")

    def begin_section(self, environ: dict[str, str]) -> None:
        """Reset the kernel for a section and give it the section's environment."""
        # No name is bound in the user namespace: the reset would take it away.
        self.run_silently("__import__('runbook.kernel').kernel.begin_section("
                          f"__import__('json').loads({json.dumps(environ)!r}))")

    @property
    def alive(self) -> bool:
        return bool(run_sync(self.km.is_alive)())

    def shutdown(self) -> None:
        """Stop the kernel (at once: a finished run has nothing left in it to save)."""
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            process = getattr(self.km.provisioner, "process", None)
            if process is not None and process.poll() is None:
                # shutdown_kernel(now=True) kills the process group too, but then polls
                # for the end every 0.1 s; waiting on the process is a tenth of that.
                run_sync(self.km.provisioner.kill)()
                process.wait(timeout=START_TIMEOUT)
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
        finally:
            if self._log is not None:
                self._log.close()

    def save_log(self, folder: Path | None) -> Path | None:
        """Copy what the kernel printed to ``folder/kernel.log`` (nothing when it was quiet).

        Call after :meth:`shutdown`; removes the kernel's private folder. With
        ``folder`` None the log is only removed.
        """
        try:
            if folder is not None and self.log_path.exists() and self.log_path.stat().st_size:
                target = Path(folder) / "kernel.log"
                shutil.copyfile(self.log_path, target)
                os.chmod(target, 0o600)
                return target
            return None
        finally:
            shutil.rmtree(self._sockets, ignore_errors=True)


def register() -> None:
    """Add the ``runbook-warm`` engine to papermill's registry (idempotent)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.iorw import write_ipynb
    from papermill.utils import merge_kwargs, remove_args

    class WarmEngine(NBClientEngine):
        """papermill's nbclient engine, on a kernel the run lends it (``warm_kernel=``)."""

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None,
                                     start_timeout: int = 60, execution_timeout: Any = None,
                                     **kwargs: Any) -> Any:
            warm: WarmKernel = kwargs.pop("warm_kernel")
            record_path = kwargs.pop("record_path", None)
            warm.ready()
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            client = PapermillNotebookClient(nb_man, km=warm.km, **final)
            client.kc = warm.kc  # reuse the run's client: no new channels per section
            try:
                return client.execute()
            except BaseException:
                # papermill writes the notebook itself when a cell fails; a dead kernel
                # or a timeout would leave none, so keep what ran so far.
                if record_path is not None:
                    write_ipynb(nb_man.nb, str(record_path))
                raise

    papermill_engines.register(ENGINE_NAME, WarmEngine)
