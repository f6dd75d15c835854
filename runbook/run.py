"""A run: the sections in order with papermill, into an audited run folder.

``execute()`` validates every parameter before anything else (a bad value
raises :class:`ParameterError` and nothing is started or called), then runs
each section's notebook with papermill on one warm kernel (see
:mod:`runbook.engine`; each section still starts from an empty namespace),
reads the outcome the section recorded in its output, stops at the first
failure, writes ``run.json`` with the SHA-256 of every file, and scans the
folder for secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets as pysecrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__, engine, paths, sandbox
from .errors import ParameterError, RunbookError, SandboxError
from .params import Common, validate_run
from .secrets import Finding, scan_text, scan_tree
from .sinks import SharedCredentialsProfile

SECTIONS = paths.SECTIONS
SECTION_TIMEOUT = 900  # seconds a cell may run before the section fails (a hung call)
_VERSIONED = ("boto3", "botocore", "moto", "papermill", "nbclient", "ipykernel", "ipywidgets",
              "nbformat")


@dataclass
class RunResult:
    run_dir: Path
    status: str
    sections: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 ok; 130 interrupted (SIGINT or SIGTERM), as a shell reports Ctrl-C; else 1."""
        if self.interrupted:
            return 130
        return 0 if self.status == "ok" else 1


def new_run_dir(parent: Path | None = None) -> Path:
    """``<parent>/<UTC timestamp>-<6 hex>/``, created empty (parent default ``runs/``)."""
    parent = Path(parent) if parent else paths.runs_dir()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = parent / f"{stamp}-{pysecrets.token_hex(3)}"
    run_dir.mkdir(parents=True, mode=0o700)
    return run_dir


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_outcome(notebook_path: Path) -> dict[str, Any] | None:
    """The last outcome a section recorded in its outputs' metadata, or None."""
    if not notebook_path.exists():
        return None
    _hide_format_checkers()
    import nbformat

    return outcome_in(nbformat.read(notebook_path, as_version=4))


def outcome_in(notebook: Any) -> dict[str, Any] | None:
    """The last outcome a section recorded in an executed notebook's outputs, or None."""
    found = None
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            outcome = output.get("metadata", {}).get("runbook", {}).get("outcome")
            if outcome:
                found = dict(outcome)
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "runbook": __version__}
    for name in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def known_secrets(ctx: Any, models: dict[str, Common]) -> tuple[str, ...]:
    """Secrets this run could have leaked: the service key's and the operator's."""
    found = set()
    for model in models.values():
        profile = getattr(model, "credentials_profile", None)
        if profile:
            named = getattr(model, "credentials_file", None)
            path = Path(named) if named else ctx.target.default_credentials_file()
            with contextlib.suppress(RunbookError, OSError):
                held = SharedCredentialsProfile(path, profile).read()
                if held:
                    found.add(held.secret_access_key)
    operator = ctx.session.get_credentials()
    if operator is not None:
        found.add(operator.get_frozen_credentials().secret_key)
    return tuple(s for s in found if s)


# jsonschema's optional format checkers, which jupyter-events installs; idna is
# not among them (requests uses it).
_FORMAT_CHECKER_MODULES = ("rfc3987_syntax", "fqdn", "rfc3987", "rfc3986_validator",
                           "rfc3339_validator", "webcolors", "jsonpointer", "uri_template",
                           "isoduration")


def _hide_format_checkers() -> None:
    """Spare this process what jsonschema spends on format checks it never makes.

    nbformat imports jsonschema, which imports the optional modules of its
    format checkers when they are installed (jupyter-events pulls them in):
    ``rfc3987_syntax`` alone compiles 38 grammars at import (about a second
    of CPU), and the others together take a few hundredths more. No notebook
    schema uses those formats, and nbformat validates with fastjsonschema.
    Only this process is affected, and only modules nothing imported yet.
    """
    for name in _FORMAT_CHECKER_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def _import_papermill() -> Any:
    """Import papermill (quickly: see :func:`_hide_format_checkers`), the warm engine registered."""
    _hide_format_checkers()
    import papermill

    engine.register()
    return papermill


def _section_error(section: str, err: BaseException) -> dict[str, Any]:
    """What run.json says of a section that raised instead of recording its outcome."""
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        return {"code": None, "message": f"{err.ename}: {err.evalue}", "cell": err.cell_index}
    if isinstance(err, DeadKernelError):
        return kernel_died(section)
    return {"code": type(err).__name__, "message": str(err)}


@contextlib.contextmanager
def _one_run_at_a_time(home: Path) -> Iterator[None]:
    """Hold ``<home>/run.lock`` for a run; raise RunbookError if another run holds it.

    Two runs on one home would plan against the same account and profile at
    once (both could see no key and make one each). The lock goes with the
    process, however it ends.
    """
    import fcntl

    path = home / "run.lock"
    with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "another process"
            raise RunbookError(f"another runbook run, rotate or unlink ({holder}) is using "
                               f"{home}; wait for it to end, then rerun") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def execute(values: dict[str, Any], *, sections: list[str] | None = None,
            out: Path | None = None, progress: Callable[[str], None] | None = None,
            kernel: engine.WarmKernel | None = None) -> RunResult:
    """Run ``sections`` (default: all) with ``values`` and return the result.

    Raises :class:`ParameterError` before anything starts when a value is bad,
    and :class:`RunbookError` when another run uses the same runbook home.
    AWS failures do not raise: the result says ``failed``, names the section,
    the AWS error and the executed notebook.

    The sections share one warm kernel (see :mod:`runbook.engine`), started
    before the sandbox and the operator are checked so that both overlap:
    ``kernel``, from :func:`runbook.engine.start_kernel` (default: one
    started here). This function shuts it down, however it ends.
    """
    sections = sections or list(SECTIONS)
    home = paths.home()
    # The kernel boots while this process validates, imports boto3 and
    # papermill, finds the sandbox and checks the operator.
    kernel = kernel or engine.start_kernel()
    with contextlib.ExitStack() as held:
        try:
            models = validate_run(values, sections)
            from .context import Context  # noqa: F401 - here, not between run folder and record

            held.enter_context(_one_run_at_a_time(home))
            try:
                run_dir = new_run_dir(out)
            except OSError as err:
                raise ParameterError([("--out", str(out), f"cannot hold a run folder: "
                                                          f"{err.strerror or err}")]) from None
        except BaseException:
            kernel.shutdown()
            kernel.save_log(None)  # refused before it began: no run folder, nothing kept
            raise
        try:
            return _execute(kernel, models, sections, home, run_dir,
                            progress or (lambda line: None))
        except BaseException:
            # An interrupt before _execute's own record-keeping began; it shuts the
            # kernel down itself otherwise (both calls are safe twice).
            kernel.shutdown()
            kernel.save_log(run_dir)
            raise


def _execute(kernel: engine.WarmKernel, models: dict[str, Common], sections: list[str],
             runbook_home: Path, run_dir: Path, say: Callable[[str], None]) -> RunResult:
    """The run proper, on a started kernel, with validated parameters and the home's lock."""
    from .context import Context

    home = str(runbook_home)

    first = models[sections[0]]
    started = datetime.now(timezone.utc)
    say(f"run folder: {run_dir}")
    base_env = {"RUNBOOK_HOME": home, "RUNBOOK_RUN_DIR": str(run_dir)}
    results: list[dict[str, Any]] = []
    status, message = "ok", ""
    identity: dict[str, str] = {}
    ctx = None
    interrupted = False
    try:
        try:
            if first.target == "sandbox":
                state = sandbox.start()
                base_env["RUNBOOK_SANDBOX_ENDPOINT"] = state["endpoint"]
                say(f"sandbox: {state['endpoint']} (account {state['account_id']})")
            with _environ(RUNBOOK_RUN_DIR=str(run_dir), RUNBOOK_SECTION="run", RUNBOOK_HOME=home):
                ctx = Context(first, section="run")
                identity = ctx.identity
        except SandboxError as err:
            status, message = "failed", f"the sandbox did not start: {err}"
        except RunbookError as err:
            status, message = "failed", f"operator check failed: {err}"
        except Exception as err:  # botocore: no credentials, AccessDenied, ...
            status, message = "failed", f"operator check failed: {type(err).__name__}: {err}"
            if type(err).__name__ == "NoCredentialsError":
                message += ("; give the operator credentials: --aws-profile NAME, AWS_PROFILE, "
                            "the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment, or "
                            "`aws configure` / `aws sso login`")
        if status == "ok":
            papermill = _import_papermill()
            try:
                kernel.ready()
            except engine.KernelError as err:
                status, message = "failed", str(err)

        for number, section in enumerate(sections if status == "ok" else [], 1):
            notebook_in = paths.notebooks_dir() / f"{section}.ipynb"
            notebook_out = run_dir / f"{section}.ipynb"
            clock = time.monotonic()
            say(f"[{number}/{len(sections)}] {section} ...")
            error = None
            executed = None
            try:
                kernel.begin_section({**base_env, "RUNBOOK_SECTION": section,
                                      "RUNBOOK_CALLER_IDENTITY": json.dumps(identity)})
                executed = papermill.execute_notebook(
                    str(notebook_in), str(notebook_out),
                    parameters=models[section].as_dict(), engine_name=engine.ENGINE_NAME,
                    warm_kernel=kernel, record_path=notebook_out,
                    request_save_on_cell_execute=False, cwd=str(paths.notebooks_dir()),
                    kernel_name=engine.KERNEL_NAME, progress_bar=False, log_output=False,
                    report_mode=False, execution_timeout=SECTION_TIMEOUT)
            except Exception as err:  # the notebook failed, or its kernel died
                error = _section_error(section, err)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see cli.main)
                interrupted = True
                _quiet_abandoned_cell()
                error = {"code": "Interrupted", "message": f"interrupted during {section}; "
                         "rerun to finish the job (what was done is found and kept)"}
            found = outcome_in(executed) if executed is not None else read_outcome(notebook_out)
            record = found or {"name": section, "outcome": "failed"}
            record["seconds"] = round(time.monotonic() - clock, 2)
            if interrupted and record["outcome"] != "failed":
                # Its outcome was recorded before the interrupt: that is what it did.
                error = None
                record["interrupted_after"] = True
            if error and record["outcome"] != "failed":
                record["outcome"] = "failed"
            if record["outcome"] == "failed":
                record.setdefault("error", error or {"code": None, "message": "unknown"})
            results.append(record)
            say(f"[{number}/{len(sections)}] {section}: {record['outcome']} "
                f"({record['seconds']} s)")
            where = f"\nexecuted notebook: {notebook_out}" if notebook_out.exists() else ""
            if record.get("interrupted_after"):
                status = "failed"
                message = (f"interrupted after {section} was {record['outcome']}; rerun to "
                           "do the rest")
                break
            if record["outcome"] == "failed":
                err = record["error"]
                status = "failed"
                message = (f"section {section} failed: "
                           f"{(err.get('code') or '') + ': ' if err.get('code') else ''}"
                           f"{err.get('message')}{where}")
                if interrupted:
                    message = f"{err['message']}{where}"
                break
    except KeyboardInterrupt:  # between sections: starting the sandbox, checking the operator
        interrupted = True
        status, message = "failed", "interrupted before the next section began; rerun to finish"
    finally:
        # The record is written whatever happened above, and nothing interrupts its writing.
        with _deferred_signals():
            escaping = sys.exc_info()[1]
            if escaping is not None:  # a fault of the runbook itself: say so, keep the record
                status = "failed"
                message = f"the run stopped on an unexpected {type(escaping).__name__}: {escaping}"
            kernel.shutdown()
            kernel.save_log(run_dir)  # only when the kernel printed something of its own
            known = known_secrets(ctx, models) if ctx else ()
            summary = {
                "status": status,
                "message": message,
                "target": first.target,
                "region": first.region,
                "dry_run": first.dry_run,
                "account": identity.get("Account"),
                "caller": identity.get("Arn"),
                "versions": versions(),
                "parameters": {k: v for m in models.values() for k, v in m.as_dict().items()},
                "sections": results,
                "not_run": not_run(sections, results),
                "interrupted": interrupted,
                "started": started.isoformat(timespec="seconds"),
            }
            _record(run_dir, summary, known)
    return RunResult(run_dir, summary["status"], results, summary["message"], interrupted)


def _record(run_dir: Path, summary: dict[str, Any], known: tuple[str, ...]) -> None:
    """Write run.json and scan the folder; a finding fails the run (written again so)."""
    findings = _finish(run_dir, summary, known)
    if findings:
        summary["status"] = "failed"
        summary["message"] = (f"secret scan found {len(findings)} secret-looking value(s): " +
                              "; ".join(str(f) for f in findings[:5]))
        _finish(run_dir, summary, known)
    else:
        _trust(run_dir)


class _deferred_signals:
    """Hold SIGINT, SIGTERM and SIGHUP while a run writes its record; act on them after.

    A run that finished its sections, or was interrupted in one, always gets
    its run.json, hashes and secret scan; an interrupt that comes meanwhile
    raises KeyboardInterrupt once they are written. Only the main thread can
    hold signals; elsewhere this does nothing.
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __enter__(self) -> "_deferred_signals":
        self.caught: list[int] = []
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self.caught.append(signum)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.caught and exc[0] is None:
            raise KeyboardInterrupt


def _quiet_abandoned_cell() -> None:
    """Keep asyncio from printing the traceback of the cell an interrupt abandoned.

    The interrupted cell's task ends with ``DeadKernelError`` when the kernel
    is shut down, and nobody awaits it any more; asyncio would log that as
    "Task exception was never retrieved" with a traceback, after the run's
    own message. The run folder already says the section was interrupted.
    """
    import logging

    from nbclient.exceptions import DeadKernelError

    def abandoned(record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, DeadKernelError)
                    and str(record.msg).startswith("Task exception was never retrieved"))

    logging.getLogger("asyncio").addFilter(abandoned)


def kernel_died(section: str) -> dict[str, Any]:
    """The error record of a section whose kernel was killed (OOM, SIGKILL, a crash point)."""
    return {"code": "KernelDied", "message": f"the kernel running {section} died; rerun to "
            "finish the job (a key made in the window is found and replaced)"}


def not_run(sections: list[str], results: list[dict[str, Any]]) -> list[str]:
    """The sections of the run that never started (after a failure), in order."""
    ran = {r.get("name") for r in results}
    return [s for s in sections if s not in ran]


def _trust(run_dir: Path) -> None:
    """Trust the run's own notebooks, so JupyterLab renders their forms (issue 4)."""
    import sqlite3

    from .notary import trust_notebooks

    # An unwritable notary database costs only the rendering, not the run.
    with contextlib.suppress(OSError, sqlite3.Error):
        trust_notebooks(run_dir)


def _finish(run_dir: Path, summary: dict[str, Any], known: tuple[str, ...]) -> list:
    """Write run.json with the hash of every other file; return the secret-scan findings."""
    summary["ended"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for path in run_dir.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o600)  # papermill writes the notebooks 0644; the folder is 0700
    summary["files"] = {str(p.relative_to(run_dir)): sha256(p)
                        for p in sorted(run_dir.rglob("*"))
                        if p.is_file() and p.name != "run.json"}
    findings = scan_tree(run_dir, known)
    summary["secret_scan"] = {"findings": [str(f.path.relative_to(run_dir)) + f":{f.line}"
                                           for f in findings]}
    path = run_dir / "run.json"
    text = json.dumps(summary, indent=2, default=str) + "\n"
    path.write_text(text)
    os.chmod(path, 0o600)
    written = [Finding(path, line, kind) for line, kind in scan_text(text, known)]
    return findings + [f for f in written if f not in findings]
