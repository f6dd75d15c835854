"""The embedded AWS sandbox: moto in server mode on 127.0.0.1, IAM auth enforced.

``start()`` launches ``moto.server`` on a free port in its own session (so it
outlives the kernel or command that started it), bootstraps an operator IAM
user with an admin inline policy and an access key while moto still accepts
unsigned calls, then switches authorization on. From then on every call must
be signed by a key moto knows and allowed by that key's policies, as on AWS.

State lives in ``<home>/sandbox/state.json`` (mode 0600): endpoint, pid,
account and the operator's credentials. Notebooks find the sandbox there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from . import paths
from .errors import SandboxError
from .files import atomic_write_text, pid_alive

OPERATOR_USER = "runbook-operator"
OPERATOR_POLICY_NAME = "runbook-operator-admin"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# Placeholder credentials for the bootstrap calls moto accepts before auth is on.
_BOOTSTRAP_CREDENTIALS = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}


def state_file() -> Path:
    return paths.sandbox_dir() / "state.json"


def credentials_file() -> Path:
    """The default shared-credentials file for keys made in the sandbox."""
    return paths.sandbox_dir() / "credentials"


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    with open(paths.sandbox_dir() / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_file() -> Path:
    return paths.sandbox_dir() / "moto.log"


def _ours(pid: int) -> bool:
    """True when ``pid`` is this home's moto server: a live ``moto.server`` writing to our log.

    A pid in a stale state file may belong to any process by now; only ours
    is ever signalled. Where there is no /proc, a live pid has to do.
    """
    if not pid_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True
    try:
        command = (proc / "cmdline").read_bytes().split(b"\0")
        output = os.readlink(proc / "fd" / "1")
    except OSError:
        return False
    return b"moto.server" in command and \
        output.removesuffix(" (deleted)") == os.path.realpath(log_file())


def strays() -> list[int]:
    """This home's moto servers, whatever the state file says (e.g. one left by a Ctrl-C)."""
    if not Path("/proc/self").exists():
        return []
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and int(entry.name) != os.getpid() and _ours(int(entry.name))]


def _responds(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


_STATE_KEYS = ("endpoint", "pid", "account_id", "operator_arn", "operator_access_key_id",
               "operator_secret_access_key")


def _load_state() -> dict[str, Any] | None:
    """The state file's content, None when there is none. Raises SandboxError when unreadable."""
    path = state_file()
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    except (OSError, ValueError, TypeError) as err:
        reason = f"{type(err).__name__}"
    else:
        pid = state.get("pid") if not missing else None
        if not missing and isinstance(pid, int) and not isinstance(pid, bool) \
                and 0 < pid < 2 ** 31:
            return state
        reason = f"it lacks {', '.join(missing) or 'a process id'}"
    raise SandboxError(f"the sandbox state file {path} is unreadable ({reason}); "
                       "`runbook sandbox stop` clears it and stops this home's moto server")


BUSY_WAIT = 20.0  # seconds to wait for a live sandbox that does not answer (a loaded machine)


def read_state() -> dict[str, Any] | None:
    """The running sandbox's state, or None when none is running.

    A live server of this home that does not answer is waited for (up to
    :data:`BUSY_WAIT` seconds), never replaced: what the account holds would
    be lost with it. Raises :class:`SandboxError` when it still does not
    answer, or when the state file is unreadable.
    """
    state = _load_state()
    if state is None or not _ours(state["pid"]):
        return None
    deadline = time.monotonic() + BUSY_WAIT
    while not _responds(state["endpoint"]):
        if not _ours(state["pid"]):
            return None
        if time.monotonic() > deadline:
            raise SandboxError(
                f"this home's sandbox (pid {state['pid']}) runs but has not answered at "
                f"{state['endpoint']} for {BUSY_WAIT:.0f} s; it is kept, with what it holds. "
                "Rerun when the machine is less busy, or `runbook sandbox stop` to end it")
        time.sleep(0.5)
    return state


def status() -> dict[str, Any] | None:
    """Public facts about the running sandbox (no secret), or None."""
    state = read_state()
    if state is None:
        return None
    return {k: state[k] for k in ("endpoint", "pid", "account_id", "operator_arn", "started")}


def start(operator_policy: dict | None = None) -> dict[str, Any]:
    """Return the running sandbox's state, starting one if none runs.

    ``operator_policy`` replaces the operator's admin policy (tests use a
    narrower one). Raises :class:`SandboxError` when moto does not come up,
    or when ``operator_policy`` is given and the running sandbox's operator
    has another policy (silently reusing it would test the wrong operator).
    """
    with _lock():
        state = read_state()
        if state is not None:
            running = state.get("operator_policy", ADMIN_POLICY)
            if operator_policy is not None and running != operator_policy:
                raise SandboxError(
                    f"a sandbox already runs at {state['endpoint']} with another operator "
                    "policy; stop it first (runbook sandbox stop), then start it with this one")
            return state
        for pid in strays():  # e.g. a server whose start was interrupted
            _kill(pid)
        _clear_stale()
        return _launch(operator_policy or ADMIN_POLICY)


def _clear_stale() -> None:
    """A dead sandbox took its users and keys with it: drop what pointed at them."""
    for name in ("state.json", "credentials", "credentials.csv", "moto.log"):
        with contextlib.suppress(FileNotFoundError):
            (paths.sandbox_dir() / name).unlink()


def _launch(operator_policy: dict) -> dict[str, Any]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(log_file(), "ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True, close_fds=True,
    )
    try:
        return _bootstrap(process, endpoint, operator_policy)
    except BaseException:
        # Interrupted or failed half-way: a server no state file names would be lost.
        _kill(process.pid)
        raise


def _bootstrap(process: subprocess.Popen, endpoint: str,
               operator_policy: dict) -> dict[str, Any]:
    """Wait for moto, make the operator, switch authorization on, write the state file."""
    import boto3

    deadline = time.monotonic() + 60
    while not _responds(endpoint, timeout=1):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SandboxError(f"moto server did not start on {endpoint}; see {log_file()}")
        time.sleep(0.1)

    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       **_BOOTSTRAP_CREDENTIALS)
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                       **_BOOTSTRAP_CREDENTIALS)
    user = iam.create_user(UserName=OPERATOR_USER)["User"]
    iam.put_user_policy(UserName=OPERATOR_USER, PolicyName=OPERATOR_POLICY_NAME,
                        PolicyDocument=json.dumps(operator_policy))
    key = iam.create_access_key(UserName=OPERATOR_USER)["AccessKey"]
    account_id = sts.get_caller_identity()["Account"]
    # From here on moto checks every call's signature and policies.
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise SandboxError("moto refused to switch IAM authorization on")

    state = {
        "endpoint": endpoint,
        "pid": process.pid,
        "account_id": account_id,
        "operator_arn": user["Arn"],
        "operator_policy": operator_policy,
        "operator_access_key_id": key["AccessKeyId"],
        "operator_secret_access_key": key["SecretAccessKey"],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_text(state_file(), json.dumps(state, indent=2))
    return state


def _kill(pid: int) -> None:
    """SIGTERM the server's process group, SIGKILL it after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop() -> bool:
    """Stop this home's sandbox and forget its state. True when one was running.

    Signals only processes that are this home's moto server (see :func:`_ours`),
    found through the state file or, when that is missing or unreadable, by
    looking for them; a stale pid of some other process is left alone.
    """
    with _lock():
        pids = set(strays())
        try:
            state = _load_state()
        except SandboxError:
            state = None
        if state is not None and _ours(state["pid"]):
            pids.add(state["pid"])
        for pid in pids:
            _kill(pid)
        _clear_stale()
        return bool(pids)
