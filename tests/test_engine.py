"""The warm-kernel engine: one kernel per run, and sections that share nothing but imports."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from runbook import engine
from runbook.run import _import_papermill


def notebook(path, *sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def outputs(path):
    nb = nbformat.read(path, as_version=4)
    return [[o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in c.outputs]
            for c in nb.cells]


@pytest.fixture
def warm(tmp_path):
    kernel = engine.WarmKernel(tmp_path, {})
    kernel.start()
    yield kernel
    kernel.shutdown()
    kernel.save_log(tmp_path)


def run(papermill, warm, source, out, section, record=None):
    warm.begin_section({"RUNBOOK_SECTION": section})
    return papermill.execute_notebook(str(source), str(out), engine_name=engine.ENGINE_NAME,
                                      warm_kernel=warm, record_path=record or out,
                                      request_save_on_cell_execute=False, progress_bar=False,
                                      kernel_name=engine.KERNEL_NAME)


def test_warm_kernel__the_next_section_sees_no_variable_widget_or_environment_of_the_last(
        warm, tmp_path):
    papermill = _import_papermill()
    first = notebook(tmp_path / "a.ipynb",
                     "import os, ipywidgets\nleaked = 41\nslider = ipywidgets.IntSlider()\n"
                     "os.environ['RUNBOOK_CALLER_IDENTITY'] = 'from a'\n"
                     "print(os.getpid())")
    second = notebook(tmp_path / "b.ipynb",
                      "import os\nfrom ipywidgets.widgets.widget import _instances\n"
                      "print('leaked' in globals(), 'slider' in globals(), len(_instances),\n"
                      "      os.environ.get('RUNBOOK_CALLER_IDENTITY'),"
                      " os.environ['RUNBOOK_SECTION'], os.getpid())")
    run(papermill, warm, first, tmp_path / "a.out.ipynb", "a")
    run(papermill, warm, second, tmp_path / "b.out.ipynb", "b")
    pid = outputs(tmp_path / "a.out.ipynb")[0][0].strip()
    assert outputs(tmp_path / "b.out.ipynb")[0][0].split() == [
        "False", "False", "0", "None", "b", pid]  # same kernel, nothing carried over


def test_warm_kernel__each_section_counts_its_cells_from_one(warm, tmp_path):
    papermill = _import_papermill()
    source = notebook(tmp_path / "a.ipynb", "1", "2")
    for name in ("one", "two"):
        run(papermill, warm, source, tmp_path / f"{name}.ipynb", name)
        cells = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4).cells
        assert [c.execution_count for c in cells] == [1, 2]


def test_warm_engine__a_kernel_that_dies__leaves_the_cells_that_ran_on_disk(warm, tmp_path):
    papermill = _import_papermill()
    source = notebook(tmp_path / "a.ipynb", "print('before the crash')",
                      "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print('never')")
    out = tmp_path / "a.out.ipynb"
    with pytest.raises(Exception) as caught:
        run(papermill, warm, source, out, "a")
    assert type(caught.value).__name__ == "DeadKernelError"
    assert outputs(out)[0] == ["before the crash\n"]
    assert outputs(out)[2] == []


def test_kernel_spec__is_this_interpreter_whatever_the_machine_has_installed():
    import sys

    spec = engine.kernel_spec_manager().get_kernel_spec("python3")
    assert spec.argv[:3] == [sys.executable, "-m", "runbook.kernel"]
    assert engine.kernel_argv("{connection_file}") == spec.argv


def run_on_a_kernel_with(preload, tmp_path, source):
    """Run ``source`` as one section on a kernel started with ``preload``; return its log."""
    papermill = _import_papermill()
    kernel = engine.WarmKernel(tmp_path, {})
    kernel.start(preload=preload)
    try:
        run(papermill, kernel, notebook(tmp_path / "a.ipynb", source), tmp_path / "a.out.ipynb",
            "a")
    finally:
        kernel.shutdown()
        log = kernel.save_log(tmp_path)
    return log


def test_warm_kernel__is_ready_with_its_preloaded_modules_already_imported(tmp_path):
    run_on_a_kernel_with(["runbook.context", "runbook.forms"], tmp_path,
                         "import sys\nprint('runbook.forms' in sys.modules, "
                         "'runbook.context' in sys.modules)")
    assert outputs(tmp_path / "a.out.ipynb")[0] == ["True True\n"]


def test_warm_kernel__a_preload_that_fails__is_logged_and_the_kernel_starts_anyway(tmp_path):
    log = run_on_a_kernel_with(["runbook_no_such_module", "runbook.context"], tmp_path,
                               "import sys\nprint('runbook.context' in sys.modules)")
    assert outputs(tmp_path / "a.out.ipynb")[0] == ["True\n"]  # the next module still loaded
    assert "No module named 'runbook_no_such_module'" in log.read_text()


def test_warm_kernel__ends_by_itself_when_the_process_that_started_it_is_killed(tmp_path):
    """A run killed with SIGKILL cannot shut its kernel down; the kernel must not linger."""
    import os
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom runbook import engine\n"
         f"k = engine.WarmKernel({str(tmp_path)!r}, {{}})\n"
         "k.start(); k.ready(); print(k.process.pid, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    kernel_pid = int(parent.stdout.readline())
    folders = set(tmp_folders())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(kernel_pid, 0)
        except ProcessLookupError:
            break
        # Reap it if it became our child's orphan under this process (it is not ours).
        time.sleep(0.2)
    else:
        os.kill(kernel_pid, signal.SIGKILL)
        pytest.fail("the kernel outlived the process that started it by 30 s")
    # Its private folder (connection key, sockets) is left; the next run removes it.
    [left] = [f for f in folders if f.name.startswith(f"runbook-kernel-{parent.pid}-")]
    assert left.exists()
    assert str(left) in engine.remove_abandoned_folders() and not left.exists()


def tmp_folders():
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir()).glob("runbook-kernel-*")


def test_kernel_folders__of_a_run_still_running__are_kept(tmp_path):
    import os
    import tempfile

    mine = tempfile.mkdtemp(prefix=f"runbook-kernel-{os.getpid()}-")
    try:
        assert mine not in engine.remove_abandoned_folders()
        assert os.path.isdir(mine)
    finally:
        os.rmdir(mine)


def test_warm_kernel__shut_down_while_it_boots__raises_nothing_in_any_thread(tmp_path):
    """A bad parameter stops the run's kernel a moment after it was started.

    With a heartbeat channel, that shutdown raced the heartbeat thread, which
    printed a ZMQError traceback to the terminal about one time in three.
    """
    import threading

    errors = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(repr(args.exc_value))
    try:
        for attempt in range(6):
            kernel = engine.WarmKernel(tmp_path, {})
            kernel.start(preload=["runbook.context"])
            kernel.shutdown()
            kernel.save_log(None)
    finally:
        threading.excepthook = previous
    assert errors == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("Thread-")
            and not t.daemon] == []


def test_warm_kernel__runs_without_the_debugger_a_headless_run_never_attaches(warm, tmp_path):
    papermill = _import_papermill()
    source = notebook(tmp_path / "a.ipynb",
                      "import sys\nprint(sys.modules.get('debugpy'))")
    run(papermill, warm, source, tmp_path / "a.out.ipynb", "a")
    assert outputs(tmp_path / "a.out.ipynb")[0] == ["None\n"]


def test_run_record__a_signal_while_it_is_written__waits_until_it_is_done():
    import os
    import signal

    from runbook.run import _deferred_signals

    written = []
    with pytest.raises(KeyboardInterrupt):
        with _deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("run.json")  # not cut short by either signal
    assert written == ["run.json"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_warm_kernel__ends_when_its_run_dies_while_it_boots__even_under_a_subreaper(tmp_path):
    """Under a subreaper (systemd --user, some CI runners) an orphan is never adopted by pid 1.

    The process below becomes a subreaper, starts a "run" that launches a
    kernel and is killed at once, while the kernel still boots; the kernel,
    now this process's child, must end by itself.
    """
    import subprocess
    import sys
    import textwrap

    run = tmp_path / "run.py"
    run.write_text(textwrap.dedent(f"""
        import time
        from runbook import engine
        kernel = engine.WarmKernel({str(tmp_path)!r}, {{}})
        kernel.start(preload=["runbook.context"])
        print(kernel.process.pid, flush=True)
        time.sleep(600)
        """))
    reaper = tmp_path / "reaper.py"
    reaper.write_text(textwrap.dedent(f"""
        import ctypes, os, signal, subprocess, sys, time
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        run = subprocess.Popen([sys.executable, {str(run)!r}], stdout=subprocess.PIPE, text=True)
        kernel = int(run.stdout.readline())
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if os.waitpid(kernel, os.WNOHANG)[0]:  # the orphaned kernel is ours now
                print("ended")
                break
            time.sleep(0.1)
        else:
            os.kill(kernel, signal.SIGKILL)
            os.waitpid(kernel, 0)
            print("lingered")
        """))
    result = subprocess.run([sys.executable, str(reaper)], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "ended", result.stderr
