"""The sandbox's lifecycle: only its own server is ever signalled, and none is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runbook import sandbox
from runbook.errors import SandboxError


@pytest.fixture
def home(fresh_home, monkeypatch):
    monkeypatch.setenv("RUNBOOK_HOME", str(fresh_home))
    return fresh_home


def _bystander():
    """A process of someone else's, in a session of its own (as the moto server is)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)


def test_stop__with_a_stale_state_file_naming_another_process__leaves_that_process_alone(home):
    other = _bystander()
    try:
        state = {"endpoint": "http://127.0.0.1:9", "pid": other.pid, "account_id": "1" * 12,
                 "operator_arn": "x", "operator_access_key_id": "x",
                 "operator_secret_access_key": "x"}
        (home / "sandbox").mkdir(parents=True, exist_ok=True)
        (home / "sandbox" / "state.json").write_text(json.dumps(state))
        assert sandbox.status() is None
        assert sandbox.stop() is False
        assert other.poll() is None  # still running
        assert not (home / "sandbox" / "state.json").exists()
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("content", ["{not json", "", "[]", "{}", '{"pid": "12"}'])
def test_corrupt_state_file__is_named_with_the_fix_and_stop_clears_it(home, content):
    (home / "sandbox").mkdir(parents=True, exist_ok=True)
    (home / "sandbox" / "state.json").write_text(content)
    with pytest.raises(SandboxError) as caught:
        sandbox.status()
    assert "is unreadable" in str(caught.value) and "runbook sandbox stop" in str(caught.value)
    sandbox.stop()
    assert not (home / "sandbox" / "state.json").exists()


def test_stop__with_a_corrupt_state_file__still_stops_this_homes_server(home):
    pid = sandbox.start()["pid"]
    (home / "sandbox" / "state.json").write_text("{not json")
    assert sandbox.stop() is True
    assert not sandbox.pid_alive(pid)


def test_start__interrupted_while_the_server_boots__leaves_no_server_behind(home, monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        started.append(process.pid)
        return process

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(sandbox, "_bootstrap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sandbox.start()
    assert started and not sandbox.pid_alive(started[0])
    assert sandbox.strays() == []


def test_start__finds_and_stops_a_server_whose_state_was_lost_before_starting_anew(home):
    first = sandbox.start()["pid"]
    (home / "sandbox" / "state.json").unlink()  # as a Ctrl-C before the state was written
    assert sandbox.strays() == [first]
    second = sandbox.start()["pid"]
    deadline = time.monotonic() + 5
    while sandbox.pid_alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second != first and not sandbox.pid_alive(first)
    assert sandbox.strays() == [second]
    os.killpg(second, signal.SIGTERM)  # fresh_home's teardown would too; be quick about it


def test_inside_a_run__a_section_never_starts_a_new_sandbox_in_place_of_the_runs(
        home, monkeypatch):
    from runbook import targets

    endpoint = sandbox.start()["endpoint"]
    monkeypatch.setenv("RUNBOOK_SANDBOX_ENDPOINT", endpoint)
    assert targets.get("sandbox").endpoint_url() == endpoint
    sandbox.stop()  # the run's sandbox died between two sections
    with pytest.raises(SandboxError) as caught:
        targets.get("sandbox")
    assert f"the sandbox this run began with ({endpoint}) is gone" in str(caught.value)
    assert sandbox.read_state() is None  # and no other was started


def test_a_live_sandbox_that_does_not_answer__is_kept_and_named_not_replaced(home, monkeypatch):
    state = sandbox.start()
    monkeypatch.setattr(sandbox, "BUSY_WAIT", 1.0)
    os.kill(state["pid"], signal.SIGSTOP)  # as a machine too busy to let it answer
    try:
        with pytest.raises(SandboxError) as caught:
            sandbox.start()
        assert f"this home's sandbox (pid {state['pid']}) runs but has not answered" in \
            str(caught.value)
        assert sandbox.strays() == [state["pid"]]  # still there
    finally:
        os.kill(state["pid"], signal.SIGCONT)
    assert sandbox.start()["endpoint"] == state["endpoint"]


def test_a_state_file_with_an_impossible_pid__is_unreadable_not_a_traceback(home):
    (home / "sandbox").mkdir(parents=True, exist_ok=True)
    state = {k: "x" for k in sandbox._STATE_KEYS} | {"pid": 99999999999999999999}
    (home / "sandbox" / "state.json").write_text(json.dumps(state))
    with pytest.raises(SandboxError):
        sandbox.status()
    sandbox.stop()
    assert not (home / "sandbox" / "state.json").exists()
