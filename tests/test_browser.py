"""Sections 01 and 02 walked through in JupyterLab, in a real Chromium driven by Playwright.

The test starts JupyterLab itself (127.0.0.1, a free port, a temporary root
holding a copy of the notebooks, no token) with ``RUNBOOK_HOME`` pointing at a
fresh home, so the kernel gets a sandbox of its own; then it checks that
sandbox through the library. Debian's ``chromium`` is used because
Playwright's own browser download does not work here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ARTIFACTS, PRODUCED, ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
USER = "walkthrough-user"
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI; .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {process.returncode}:\n"
                                 + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url + "api/status", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)  # the server is not listening yet; nothing to wait on but time
    raise AssertionError("JupyterLab did not answer in time:\n" + log.read_text()[-3000:])


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def jupyterlab(fresh_home, tmp_path):
    """A JupyterLab of this test's own on a copy of notebooks/; yields its URL."""
    _require_chromium()  # before starting anything
    root = tmp_path / "lab"
    shutil.copytree(ROOT / "notebooks", root)
    jupyter_dirs = tmp_path / "jupyter"
    port = _free_port()
    env = {**os.environ, "RUNBOOK_HOME": str(fresh_home),
           "JUPYTER_CONFIG_DIR": str(jupyter_dirs / "config"),
           "JUPYTER_RUNTIME_DIR": str(jupyter_dirs / "runtime"),
           "JUPYTER_DATA_DIR": str(jupyter_dirs / "data"),
           "JUPYTERLAB_SETTINGS_DIR": str(jupyter_dirs / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter_dirs / "workspaces")}
    env.pop("RUNBOOK_RUN_DIR", None)
    # No "official Jupyter news?" toast over the page (and no fetch for it).
    news = jupyter_dirs / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    # Trusted, as a person trusts a run's notebook, so JupyterLab renders its stored widgets.
    notebooks = [str(p) for p in sorted(root.glob("*.ipynb"))]
    subprocess.run([sys.executable, "-m", "jupyter", "trust", *notebooks],
                   env=env, check=True, capture_output=True)
    log = tmp_path / "jupyterlab.log"
    PRODUCED.append(tmp_path)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={root}",
             "--allow-root", "--LabApp.extension_manager=readonly",
             # the test starts the kernel over the REST API, which has no XSRF cookie
             "--ServerApp.disable_check_xsrf=True",
             "--IdentityProvider.token=", "--ServerApp.password=",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_server(url, process, log, time.monotonic() + 60)
        yield url
    finally:
        _stop(process)


def _open_session(url: str, path: str) -> None:
    """Start the notebook's kernel through the REST API, so the page joins it.

    Left to itself, a freshly started JupyterLab sometimes starts two kernels
    for a notebook and drops one, and the first cells run into the dropped one.
    """
    body = json.dumps({"path": path, "type": "notebook", "name": path,
                       "kernel": {"name": "python3"}}).encode()
    request = urllib.request.Request(url + "api/sessions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201, answer.read()


def _cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def test_walkthrough_in_jupyterlab__validates_as_typed_previews_the_policy_creates_the_user(
        jupyterlab, fresh_home, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2200})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            _open_session(jupyterlab, "01_create_user.ipynb")
            page.goto(jupyterlab + "lab/tree/01_create_user.ipynb")
            expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
                   ).to_have_count(1)

            # Opened, the notebook shows the form of the run that made its outputs.
            stored = _cell(page, 3).locator(".widget-text", has=page.locator(
                "label", has_text=re.compile(r"^user_name$"))).locator("input")
            expect(stored).to_have_value("dockercloud-user")
            page.screenshot(path=str(ARTIFACTS / "browser-01-opened.png"))

            # Run the parameters cell and the form cell, as a person would.
            _cell(page, 2).locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")
            page.keyboard.press("Shift+Enter")
            expect(_cell(page, 3).locator(".jp-InputPrompt")).to_have_text("[2]:")
            field = page.locator(".widget-text", has=page.locator(
                "label", has_text=re.compile(r"^user_name$"))).locator("input")
            expect(field).to_have_value("dockercloud-user")

            field.fill("docker cloud")
            problem = page.get_by_text(re.compile(r"user_name='docker cloud': ' ' at position 6"
                                                  r" is not allowed"))
            expect(problem).to_be_visible()
            form_view = _cell(page, 3).locator(".jp-OutputArea-output")
            form_view.screenshot(path=str(ARTIFACTS / "browser-01-form.png"))

            field.fill(USER)
            expect(problem).to_have_count(0)

            # Run everything below the form: plan and apply read the form as it is now.
            _cell(page, 5).locator(".cm-content").click()
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item",
                         has_text="Run Selected Cell and All Below").click()

            outcome = _cell(page, 7).locator(".jp-OutputArea-output")
            expect(outcome).to_contain_text("created")
            expect(outcome).to_contain_text(USER)
            expect(outcome).to_contain_text(re.compile(r"AKIA\*{12}[A-Z0-9]{4}"))
            page.screenshot(path=str(ARTIFACTS / "browser-01-applied.png"), full_page=True)

            # Section 02: the policy preview follows the region limit and the PassRole ARN.
            _open_session(jupyterlab, "02_create_policy.ipynb")
            page.goto(jupyterlab + "lab/tree/02_create_policy.ipynb?reset")  # 01 closed
            form_02 = _cell(page, 3).locator(".jp-OutputArea-output")
            expect(form_02).to_contain_text("Policy document")  # the stored form, as run
            _cell(page, 2).locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")
            page.keyboard.press("Shift+Enter")
            expect(_cell(page, 3).locator(".jp-InputPrompt")).to_have_text("[2]:")
            expect(form_02).not_to_contain_text("ec2:Region")
            form_02.locator(".widget-checkbox", has_text="limit EC2 to one region"
                            ).locator("input").check()
            form_02.locator(".widget-dropdown", has=page.locator(
                "label", has_text=re.compile(r"^limit_region$"))).locator("select"
                                                                    ).select_option("eu-west-1")
            form_02.locator(".widget-text", has=page.locator(
                "label", has_text=re.compile(r"^pass_role_arn$"))).locator("input").fill(
                "arn:aws:iam::123456789012:role/ecsInstanceRole")
            expect(form_02).to_contain_text('"ec2:Region": "eu-west-1"')
            expect(form_02).to_contain_text("arn:aws:iam::123456789012:role/ecsInstanceRole")
            expect(form_02).to_contain_text('"iam:PassRole"')
            # Validation of that document: no error or warning, the ec2:Region info only.
            findings = form_02.locator("table", has_text="severity")
            expect(findings).to_contain_text("aws:RequestedRegion")
            expect(findings.locator("td", has_text=re.compile(r"^(error|warning)$"))).to_have_count(0)
            form_02.screenshot(path=str(ARTIFACTS / "browser-02-form.png"))
        finally:
            browser.close()

    # The kernel's sandbox is the one under this test's RUNBOOK_HOME.
    monkeypatch.setenv("RUNBOOK_HOME", str(fresh_home))
    monkeypatch.delenv("RUNBOOK_RUN_DIR", raising=False)
    from runbook import params, users
    from runbook.context import Context

    iam = Context(params.CreateUserParams.from_values({})).client("iam")
    assert users.get_user(iam, USER)["UserName"] == USER
    assert len(users.list_keys(iam, USER)) == 1
