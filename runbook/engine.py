"""The warm-kernel papermill engine: one kernel for all the sections of a run.

papermill starts a fresh kernel per notebook, which costs about a second of
process start and imports each time. A run instead starts one kernel first
thing, before the command imports jupyter_client, papermill or boto3 itself,
so that it boots while the command validates, finds the sandbox and checks
the operator. The kernel imports the library before it answers its first
request, and the run lends it to papermill for each section through the
``runbook-warm`` engine, registered in papermill's engine registry.

Between two sections :func:`runbook.kernel.begin_section` resets the kernel
(empty namespace, execution count 1, widgets closed, the section's
environment), so sections share imported modules and nothing else. Each
section still leaves its own executed notebook. papermill's save after every
cell start and end (two full JSON dumps per cell, a third of a run's time)
is off: the notebook is written when the section ends, when a cell fails
(papermill), and when the kernel dies or a cell times out (this engine).
Every AWS call is in the audit log the moment it returns either way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

from .errors import RunbookError

ENGINE_NAME = "runbook-warm"
KERNEL_NAME = "python3"
START_TIMEOUT = 60  # seconds for the kernel to answer its first kernel_info


# What every section imports, and botocore's region data every form reads: loaded
# by a run's kernel before it answers (see runbook.kernel.preload).
PRELOAD = ["runbook.context", "runbook.forms", "runbook.plan", "runbook.users",
           "runbook.policy", "runbook.attachment", "runbook.handover",
           "runbook.params:partitions"]


class KernelError(RunbookError):
    """The run's kernel did not start, died, or refused to reset between sections."""


def kernel_argv(connection_file: str) -> list[str]:
    """The command that starts a run's kernel: this interpreter's ipykernel, less its debugger.

    A user-wide ``python3`` kernelspec may point at another Python, without
    the runbook installed; a run must execute with the same installation as
    the ``runbook`` command that started it (see :func:`runbook.kernel.main`).
    """
    return [sys.executable, "-m", "runbook.kernel", "-f", connection_file,
            # No history database: a headless run never reads it back.
            "--HistoryManager.enabled=False",
            # No Out[] cache: resetting it runs a full gc.collect() per section.
            "--InteractiveShell.cache_size=0"]


def kernel_spec_manager() -> Any:
    """A jupyter_client KernelSpecManager whose every kernel is :func:`kernel_argv`'s."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class RunbookKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=kernel_argv("{connection_file}"),
                              display_name="Python 3 (runbook)", language="python",
                              metadata={})

    return RunbookKernelSpecManager()


class WarmKernel:
    """A kernel started once for a run, reused by every section, then shut down.

    ``start()`` launches the process and returns at once, without importing
    jupyter_client (a tenth of a second the kernel spends booting instead of
    waiting); ``ready()`` connects to it and waits until it answers.
    ``begin_section(environ)`` resets it for the next section. Kernel output
    that is not a notebook's (its own warnings) goes to ``log_path``, which
    :meth:`save_log` copies into the run folder after :meth:`shutdown`.
    """

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd = Path(cwd)
        self.env = dict(env)
        # IPC sockets in a private folder: no TCP port open to other local users,
        # and an absolute path, since the kernel runs in another directory. Its
        # name holds this process's pid, so that a later run can tell it is
        # abandoned (a run killed with SIGKILL cannot remove it).
        remove_abandoned_folders()
        self._sockets = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
        # The kernel starts before the run folder exists; save_log() copies it there.
        self.log_path = Path(self._sockets) / "kernel.log"
        self.connection_file = os.path.join(self._sockets, "kernel.json")
        self.process: subprocess.Popen | None = None
        self.km: Any = None
        self.kc: Any = None
        self._log: Any = None
        self._ready = False

    def start(self, preload: list[str] = ()) -> None:
        """Launch the kernel process, importing ``preload`` as it boots; return at once.

        The kernel boots and imports while the caller goes on; :meth:`ready`
        waits for both. A module that fails to import here fails again, with
        its traceback, in the section that imports it.
        """
        # What jupyter_client's write_connection_file() writes for an IPC kernel:
        # the sockets are files <ip>-<port> in the private folder, none of them yet.
        info = {"transport": "ipc", "ip": os.path.join(self._sockets, "k"),
                "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
                "hb_port": 5, "key": os.urandom(32).hex(), "signature_scheme": "hmac-sha256",
                "kernel_name": KERNEL_NAME}
        with open(os.open(self.connection_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                  "w") as handle:
            json.dump(info, handle)
        self._log = open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                         "ab")
        argv = kernel_argv(self.connection_file)
        if preload:
            argv[3:3] = [f"--preload={','.join(preload)}"]
        # As jupyter_client's launch_kernel() does on POSIX: a session of its own
        # (its process group is killed whole), and the parent's pid, which
        # ipykernel polls so that the kernel ends if this process dies.
        env = {**self.env, "JPY_PARENT_PID": str(os.getpid())}
        self.process = subprocess.Popen(argv, cwd=str(self.cwd), env=env,
                                        stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=self._log, start_new_session=True)
        self._ready = False

    def _connect(self) -> None:
        """Adopt the launched process into a jupyter_client kernel manager and open channels."""
        if self.kc is not None:
            return
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_client.provisioning import LocalProvisioner

        km = AsyncKernelManager(kernel_name=KERNEL_NAME, connection_file=self.connection_file,
                                kernel_spec_manager=kernel_spec_manager())
        km.load_connection_file(self.connection_file)
        # The provisioner jupyter_client would have made, told about the process
        # it would have launched: is_alive(), kill and interrupt work as usual.
        provisioner = LocalProvisioner(kernel_id=km.kernel_id or "runbook", parent=km,
                                       kernel_spec=km.kernel_spec)
        provisioner.process = self.process
        provisioner.pid = self.process.pid
        provisioner.pgid = self.process.pid  # start_new_session: its own group
        provisioner.connection_info = km.get_connection_info()
        km.provisioner = provisioner
        self.km = km
        self.kc = km.client()
        # No heartbeat channel: this client's parent is the kernel manager, which
        # answers "is it alive" from the process itself. The heartbeat thread only
        # races a shutdown that comes while the kernel boots (a bad parameter),
        # recreating its socket on a closing context ("Too many open files").
        self.kc.start_channels(hb=False)

    def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the kernel answers. Raises :class:`KernelError` if it does not."""
        if self._ready:
            return
        self._connect()
        try:
            run_sync = _run_sync()
            run_sync(self._await_kernel_info)(timeout)
        except RuntimeError as err:
            raise KernelError(f"the kernel did not start: {err} (what it printed is kept as "
                              "kernel.log in the run folder)") from None
        self._ready = True

    async def _await_kernel_info(self, timeout: float) -> None:
        """jupyter_client's wait_for_ready(), less its closing 0.2 s of listening to IOPub.

        Asks kernel_info until the kernel's IOPub publishes "idle" for one of
        the requests: then IOPub is connected (a subscriber misses what was
        published before it joined) and the reply is on the shell channel,
        where it is read. wait_for_ready() then listens to IOPub until it is
        quiet for 0.2 s, to discard what came before; nbclient ignores IOPub
        messages that answer another request anyway.
        """
        deadline = time.monotonic() + timeout
        asked: set[str] = set()
        while True:
            asked.add(self.kc.kernel_info())
            retry = min(deadline, time.monotonic() + 1.0)
            answered = None
            while answered is None and time.monotonic() < retry:
                try:
                    msg = await self.kc.iopub_channel.get_msg(
                        timeout=max(0.0, retry - time.monotonic()))
                except Empty:
                    break
                if (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                        and msg["parent_header"].get("msg_id") in asked):
                    answered = msg["parent_header"]["msg_id"]
            if answered is not None:
                while True:  # replies to this request and any before it, in order
                    try:
                        reply = await self.kc.shell_channel.get_msg(
                            timeout=max(1.0, deadline - time.monotonic()))
                    except Empty:
                        raise RuntimeError("it said it was idle but sent no kernel_info "
                                           "reply") from None
                    if reply["parent_header"].get("msg_id") == answered:
                        self.kc._handle_kernel_info_reply(reply)
                        return
            if self.process.poll() is not None:
                raise RuntimeError(f"the kernel exited with code {self.process.returncode}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no answer in {timeout:g} s")

    def run_silently(self, code: str, timeout: float = 120) -> None:
        """Execute ``code`` without output or history. Raises :class:`KernelError` on error."""
        self.ready()
        reply = _run_sync()(self.kc.execute_interactive)(
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
        return self.process is not None and self.process.poll() is None

    def shutdown(self) -> None:
        """Stop the kernel (at once: a finished run has nothing left in it to save).

        Safe to call more than once, and before :meth:`ready`.
        """
        self._ready = False
        try:
            if self.kc is not None:
                client, self.kc = self.kc, None
                client.stop_channels()
            if self.process is not None and self.process.poll() is None:
                # The whole process group, as jupyter_client's kill does; waiting on
                # the process itself, not polling every 0.1 s as shutdown_kernel() does.
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except OSError:
                    self.process.kill()
                self.process.wait(timeout=START_TIMEOUT)
            # Not km.shutdown_kernel(): it would run the event loop again, where a
            # cell abandoned by an interrupt still holds its KeyboardInterrupt and
            # would raise it in the middle of the run's record. The process is gone;
            # the connection file and sockets go with the folder (save_log).
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


FOLDER_PREFIX = "runbook-kernel-"


def remove_abandoned_folders() -> list[str]:
    """Delete the kernel folders that runs killed outright left in the temp dir; return them.

    A run removes its kernel's folder (connection file with the kernel's
    key, sockets, log) when it ends, but not when it is killed with SIGKILL;
    its kernel then ends by itself (it polls its parent). A folder is
    removed only when it is this user's and the run named in it is gone.
    """
    import re

    from .files import pid_alive

    pattern = re.compile(rf"{re.escape(FOLDER_PREFIX)}(\d+)-[^/]+")
    removed = []
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if not match:
            continue
        path = os.path.join(base, name)
        try:
            if os.lstat(path).st_uid != os.getuid() or pid_alive(int(match.group(1))):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def start_kernel() -> WarmKernel:
    """Launch a run's kernel in the runbook's notebooks folder, preloading :data:`PRELOAD`.

    Returns at once: the kernel boots, about half a second of imports, while
    the caller goes on. ``runbook run`` calls this before it imports the rest
    of itself; :func:`runbook.run.execute` shuts the kernel down.
    """
    from . import paths

    kernel = WarmKernel(paths.notebooks_dir(), {**os.environ, "RUNBOOK_HOME": str(paths.home())})
    try:
        kernel.start(preload=PRELOAD)
    except BaseException:  # an interrupt, or a kernel that cannot be launched at all
        kernel.shutdown()
        kernel.save_log(None)
        raise
    return kernel


def _run_sync() -> Any:
    from jupyter_core.utils import run_sync

    return run_sync


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
