"""The files a fresh clone relies on: environment.yml matches pyproject.toml, make targets exist."""

from __future__ import annotations

import os
import re
import stat
import tomllib

import pytest
import yaml

from conftest import ROOT


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml__parses_and_pins_python_3_11():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "aws-link-runbook"
    assert "python=3.11" in env["dependencies"]


def test_environment_yml__lists_exactly_the_dependencies_of_pyproject_and_its_test_extra():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    project = _pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    listed = [spec for spec in pip if spec != "-e ."]
    assert sorted(listed) == sorted(wanted), "environment.yml and pyproject.toml disagree"
    assert "-e ." in pip  # the package itself, so the `runbook` command exists


def test_pyproject__declares_the_runbook_console_script_and_the_test_extra():
    project = _pyproject()["project"]
    assert project["scripts"]["runbook"] == "runbook.cli:entry"
    assert {_requirement_name(s) for s in project["optional-dependencies"]["test"]} >= {"pytest"}


def test_ci_run__is_executable_and_calls_make_test():
    script = ROOT / ".ci" / "run"
    assert os.stat(script).st_mode & stat.S_IXUSR
    assert re.search(r"^make test\b", script.read_text(), re.MULTILINE)


def test_makefile__has_the_two_commands_of_the_readme():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make run" in first_block and "make test" in first_block


@pytest.mark.parametrize("marker, function", [
    ("operator-policy", "operator_policy"),
    ("operator-policy-rotate", "rotate_operator_policy"),
    ("operator-policy-unlink", "unlink_operator_policy"),
])
def test_readme__shows_the_operator_policies_the_library_defines(marker, function):
    import json

    from runbook import operator

    readme = (ROOT / "README.md").read_text()
    block = readme.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    shown = json.loads(block.strip().removeprefix("```json").removesuffix("```"))
    assert shown == getattr(operator, function)()
