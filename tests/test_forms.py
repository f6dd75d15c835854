"""The widget forms: live validation in the library's words, the region limit,
section 02's policy preview, section 03's pick-lists, and the widget state an
executed notebook keeps.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import subprocess
import sys

import ipywidgets as w
import nbformat
import pytest

from conftest import PRODUCED, ROOT
from runbook import forms, policy, run, sandbox
from runbook import params as P
from runbook.context import Context
from runbook.errors import ParameterError
from runbook.operator import operator_policy
from runbook.secrets import scan_text
from runbook.sinks import SharedCredentialsProfile

_ids = itertools.count(1)
ARN = "arn:aws:iam::123456789012:role/ecsInstanceRole"


def test_form__shows_the_librarys_rule_under_the_field__when_an_invalid_user_name_is_typed():
    form = forms.SectionForm(P.CreateUserParams, {})
    form.fields["user_name"].value = "docker cloud"
    with pytest.raises(ParameterError) as caught:
        P.CreateUserParams.from_values({"user_name": "docker cloud"})
    assert form.message("user_name") == str(caught.value)
    assert html.escape(str(caught.value)) in form.messages["user_name"].value
    assert form.problems() == caught.value.problems


def test_form__clears_the_message_and_gives_the_new_value__when_a_valid_name_is_typed():
    form = forms.SectionForm(P.CreateUserParams, {})
    form.fields["user_name"].value = "docker cloud"
    form.fields["user_name"].value = "walkthrough-user"
    assert form.messages["user_name"].value == ""
    assert form.params().user_name == "walkthrough-user"


def test_form__headless__its_values_are_the_parameters_without_any_callback():
    values = {"user_name": "svc-from-papermill", "dry_run": True, "region": "eu-west-1",
              "csv_path": None, "unrelated_global": 3}
    form = forms.SectionForm(P.CreateUserParams, values)
    p = form.params()
    assert (p.user_name, p.dry_run, p.region, p.csv_path) == (
        "svc-from-papermill", True, "eu-west-1", None)
    assert all(m.value == "" for m in form.messages.values())
    assert isinstance(form.fields["dry_run"], w.Checkbox)
    assert isinstance(form.fields["region"], w.Dropdown)
    assert form.fields["region"].options == P.known_regions()


def test_form__raises_parameter_error_naming_the_field__when_the_parameters_cell_breaks_a_rule():
    with pytest.raises(ParameterError) as caught:
        forms.SectionForm(P.CreateUserParams, {"user_name": "x" * 65})
    assert caught.value.problems[0][0] == "user_name"
    assert "is 65 characters long" in str(caught.value)


def test_form__region_limit__applies_only_while_its_box_is_ticked():
    form = forms.SectionForm(P.PolicyParams, {"region": "eu-central-1"})
    assert form.limit_toggle.value is False and form.fields["limit_region"].disabled
    assert form.params().limit_region is None
    form.limit_toggle.value = True
    assert not form.fields["limit_region"].disabled
    assert form.params().limit_region == "eu-central-1"  # starts at the client region
    form.fields["limit_region"].value = "ap-south-1"
    assert form.params().limit_region == "ap-south-1"
    form.limit_toggle.value = False
    assert form.params().limit_region is None


def test_form__policy_preview__follows_the_region_limit_and_the_passrole_arn():
    form = forms.SectionForm(P.PolicyParams, {})
    assert form.document() == policy.policy_document()
    assert "ec2:Region" not in form.preview.value and "no findings" in form.preview.value
    form.limit_toggle.value = True
    form.fields["limit_region"].value = "eu-west-1"
    assert form.document() == policy.policy_document("eu-west-1", None)
    assert "ec2:Region" in form.preview.value and "eu-west-1" in form.preview.value
    form.fields["pass_role_arn"].value = ARN
    assert form.document() == policy.policy_document("eu-west-1", ARN)
    assert "iam:PassRole" in form.preview.value and ARN in form.preview.value
    assert form.findings() == policy.validate_document(policy.policy_document("eu-west-1", ARN))
    assert "aws:RequestedRegion" in form.preview.value  # the info finding shows in the preview


def test_form__policy_preview__asks_for_a_fix_and_keeps_no_document__when_the_arn_is_invalid():
    form = forms.SectionForm(P.PolicyParams, {})
    form.fields["pass_role_arn"].value = "arn:aws:iam::123456789012:role/*"
    assert form.document() is None and form.findings() == []
    assert "fix the fields marked above" in form.preview.value
    assert "iam:PassRole" not in form.preview.value
    rule = P.check("pass_role_arn", "arn:aws:iam::123456789012:role/*")
    assert html.escape(rule) in form.messages["pass_role_arn"].value


def test_form__section_03__offers_the_targets_users_and_policies(shared_home):
    n = next(_ids)
    user, policy_name = f"form-user-{n}", f"form-policy-{n}"
    ctx = Context(P.AttachParams.from_values({}))
    iam = ctx.client("iam")
    iam.create_user(UserName=user)
    iam.create_policy(PolicyName=policy_name,
                      PolicyDocument=json.dumps(policy.policy_document()))
    form = forms.SectionForm(P.AttachParams, {"user_name": user, "policy_name": policy_name})
    assert isinstance(form.fields["user_name"], w.Dropdown)
    assert isinstance(form.fields["policy_name"], w.Dropdown)
    assert (user, user) in form.fields["user_name"].options
    assert (policy_name, policy_name) in form.fields["policy_name"].options
    assert form.params().user_name == user and form.pick_list_note == ""
    log = [json.loads(line) for line in
           (shared_home / "audit" / "interactive.jsonl").read_text().splitlines()]
    assert {"ListUsers", "ListPolicies"} <= {
        r["operation"] for r in log if r["section"] == "03_attach_policy"}


def test_form__section_03__keeps_a_name_the_target_lacks_selectable(shared_home):
    form = forms.SectionForm(P.AttachParams, {"user_name": "not-created-yet"})
    assert form.fields["user_name"].value == "not-created-yet"
    assert form.fields["user_name"].label == "not-created-yet (not in the account yet)"
    assert form.params().user_name == "not-created-yet"


def test_form__section_03__falls_back_to_text_fields__when_the_operator_may_not_list(
        fresh_home, monkeypatch):
    monkeypatch.setenv("RUNBOOK_HOME", str(fresh_home))
    narrow = operator_policy()
    narrow["Statement"] = [s for s in narrow["Statement"] if s["Sid"] != "FormPickLists"]
    for statement in narrow["Statement"]:
        statement["Resource"] = "*"  # moto matches IAM actions against "*" only
    sandbox.start(operator_policy=narrow)
    form = forms.SectionForm(P.AttachParams, {"user_name": "typed-user"})
    assert isinstance(form.fields["user_name"], w.Text)
    assert isinstance(form.fields["policy_name"], w.Text)
    assert "(AccessDenied)" in form.pick_list_note
    assert form.params().user_name == "typed-user"


def _stored_fields(state: dict) -> dict[str, str]:
    """What each field showed, from stored widget state: a text's value, a list's label."""
    shown = {}
    for model in state.values():
        fields = model["state"]
        if model["model_name"] == "TextModel":
            shown[fields["description"]] = fields["value"]
        elif model["model_name"] == "DropdownModel" and fields.get("index") is not None:
            shown[fields["description"]] = fields["_options_labels"][fields["index"]]
    return shown


@pytest.mark.e2e
def test_executed_section_01__keeps_the_form_in_its_widget_state_and_no_secret(
        shared_home, tmp_path):
    n = next(_ids)
    user, profile = f"state-user-{n}", f"state-{n}"
    credentials = tmp_path / "credentials"
    out = tmp_path / "01_create_user.ipynb"
    PRODUCED.append(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RUNBOOK_RUN_DIR"}
    subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks/01_create_user.ipynb"),
                    str(out), "-p", "user_name", user, "-p", "credentials_profile", profile,
                    "-p", "credentials_file", str(credentials), "--cwd", str(ROOT / "notebooks"),
                    "--no-progress-bar"], env=env, check=True, capture_output=True, timeout=300)
    notebook = nbformat.read(out, as_version=4)
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = _stored_fields(state)
    assert shown["user_name"] == user and shown["credentials_profile"] == profile
    assert shown["region"] == "us-east-1"
    secret = SharedCredentialsProfile(credentials, profile).read().secret_access_key
    assert scan_text(json.dumps(state, indent=1), known=(secret,)) == []


@pytest.mark.e2e
def test_run__trusts_its_notebooks_so_jupyterlab_renders_the_stored_form(
        shared_home, runbook_cli, tmp_path):
    from nbformat.sign import NotebookNotary

    n = next(_ids)
    data_dir = tmp_path / "jupyter-data"
    result = runbook_cli("run", "-p", "user_name", f"run-form-user-{n}", "-p", "policy_name",
                         f"run-form-policy-{n}", "-p", "credentials_profile", f"run-form-{n}",
                         "-p", "credentials_file", str(tmp_path / "credentials"),
                         home=shared_home, extra_env={"JUPYTER_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    notary = NotebookNotary(data_dir=str(data_dir))
    for section in ("01_create_user", "03_attach_policy"):
        notebook = nbformat.read(result.run_dir / f"{section}.ipynb", as_version=4)
        assert notary.check_signature(notebook), section
        state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
        assert _stored_fields(state["state"])["user_name"] == f"run-form-user-{n}"
    assert result.run["files"]["01_create_user.ipynb"] == run.sha256(
        result.run_dir / "01_create_user.ipynb")  # trusting changed no file


def test_form__a_list_parameter__shows_comma_separated_and_reads_back_as_the_same_list():
    form = forms.SectionForm(P.VerifyParams, {"verify_regions": ["us-east-1", "us-west-2"]})
    assert form.fields["verify_regions"].value == "us-east-1,us-west-2"
    assert form.params().verify_regions == ["us-east-1", "us-west-2"]
