"""Write the section notebooks' sources (narrative, parameters, form, plan, apply).

The committed notebooks also carry the outputs of a sandbox run, which
``make notebooks`` refreshes by executing them against a fresh sandbox.
Run this when a notebook's cells change, then ``make notebooks``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook import params as P  # noqa: E402

INTRO = {}

INTRO["01_create_user"] = """# 01 · Create the service user and its access key

The deployment service acts in your account through a user of its own, so that
its rights can be limited, audited and revoked without touching anyone else.
This section creates that user (by default `dockercloud-user`) and one access
key for it.

AWS hands out a key's **secret** exactly once, in the answer to
`CreateAccessKey`. The runbook writes it at that moment to the credential
sinks: a profile in an AWS shared-credentials file (mode 0600, written
atomically) and, if `csv_path` is set, a CSV laid out like the console's
*Download Credentials* file. Nothing here ever displays it; the key ID shows
masked.

Run it again and nothing changes: an existing user is kept, and a key whose
pair is already in the profile is reused instead of a new one being made."""

INTRO["02_create_policy"] = """# 02 · Create the service user's policy

The service needs EC2 to build and manage nodes, and `iam:ListInstanceProfiles`
to offer your instance profiles for them. This section builds that policy
document, checks it against IAM's grammar before anything is sent, and creates
the managed policy `dockercloud-policy`.

Two options change the document:

* `limit_region` keeps EC2 to one region: `ec2:*` gets a `StringEquals`
  condition on `ec2:Region`, and `iam:ListInstanceProfiles` moves to a statement
  of its own, because that IAM action carries no region and would never match
  the condition.
* `pass_role_arn` adds `iam:PassRole` on that one role, for EC2 only. Without
  it, launching nodes with an instance profile fails with "unauthorized
  operation" whenever the profile's role is allowed more than the user.

If the policy exists with another document, the new document becomes its
default version; IAM keeps five versions, so the oldest non-default one is
removed first when all five are taken."""

INTRO["03_attach_policy"] = """# 03 · Attach the policy to the user

A managed policy does nothing until it is attached. This section attaches
`dockercloud-policy` to `dockercloud-user`, after checking that both exist and
that the attachment is not already there."""

INTRO["04_add_credentials"] = """# 04 · Hand the credentials to the deployment service

Docker Cloud's *Add credentials* dialog for Amazon Web Services had two fields:
**Access Key ID** and **Secret Access Key**. It has no API for them, so this
section prepares exactly those two values and proves they are the right ones:
it reads the pair back from the credentials profile, asks IAM whether the key
belongs to the service user and is Active, and shows which field takes which
value and the command that prints it.

The secret stays in the profile. Copy it from there straight into the form (or
into the tool that replaced the form); do not paste it into this notebook."""

# What the form of a section offers beyond one field per parameter.
FORM_NOTE = {
    "01_create_user": "A value that breaks a rule shows the rule under its field as you type.",
    "02_create_policy": "Tick *limit EC2 to one region* to pick `limit_region`; fill "
                        "`pass_role_arn` to add PassRole. Below the fields, the policy document "
                        "and its validation findings follow every change, before anything is "
                        "created.",
    "03_attach_policy": "`user_name` and `policy_name` are pick-lists of the users and policies "
                        "the account already has; if they cannot be listed, they are text "
                        "fields.",
    "04_add_credentials": "A value that breaks a rule shows the rule under its field as you "
                          "type.",
}

SECTION_CALLS = {
    "01_create_user": ("CreateUserParams", "from runbook import users",
                       "plan = users.plan_user(ctx, p)"),
    "02_create_policy": ("PolicyParams", "from runbook import policy",
                         "document = policy.policy_document(p.limit_region, p.pass_role_arn)\n"
                         "display(policy.findings_table(policy.check_grammar(document)))\n"
                         "plan = policy.plan_policy(ctx, p, document)"),
    "03_attach_policy": ("AttachParams", "from runbook import attachment",
                         "plan = attachment.plan_attach(ctx, p)"),
    "04_add_credentials": ("HandoverParams", "from runbook import handover",
                           "plan = handover.plan_handover(ctx, p)"),
}

EXTRA = {
    "02_create_policy": [
        new_markdown_cell("The document the policy will hold:"),
        new_code_cell("import json\nprint(json.dumps(document, indent=2))"),
    ],
    "04_add_credentials": [
        new_markdown_cell("What goes into each field of the form:"),
        new_code_cell("handover.form_fields(p, str(ctx.credentials_file()),\n"
                      "                     outcome.found.get('access_key_id'))"),
    ],
}


def parameters_source(model: type[P.Common]) -> str:
    lines = []
    for name, default in P.defaults(model).items():
        doc = model.__dataclass_fields__[name].metadata.get("doc", "")
        lines.append(f"{name} = {default!r}  # {doc}")
    return "\n".join(lines)


def build(section: str) -> nbformat.NotebookNode:
    model_name, imports, plan_call = SECTION_CALLS[section]
    model = getattr(P, model_name)
    params_cell = new_code_cell(parameters_source(model))
    params_cell.metadata["tags"] = ["parameters"]
    cells = [
        new_markdown_cell(INTRO[section]),
        new_markdown_cell("## Parameters\n\nSafe defaults: the names the procedure uses. "
                          "A pipeline overrides them with papermill; in JupyterLab, edit the "
                          "form below instead. " + FORM_NOTE[section]),
        params_cell,
        new_code_cell(f"from runbook import forms, params\n\n"
                      f"form = forms.SectionForm(params.{model_name}, globals())\nform"),
        new_markdown_cell("## Plan\n\nThe values below come from the form as it is now. "
                          "Reading AWS changes nothing; the table says what applying would do."),
        new_code_cell(f"from runbook.context import Context\n{imports}\n\n"
                      f"p = form.params()\nctx = Context(p)\n{plan_call}\nplan"),
        new_markdown_cell("## Apply\n\nWith `dry_run` set this applies nothing and reports "
                          "`planned`. The outcome is recorded for the run's `run.json`."),
        new_code_cell("outcome = plan.apply()\noutcome"),
        *EXTRA.get(section, []),
    ]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def main() -> None:
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    for section in SECTION_CALLS:
        nbformat.write(build(section), out / f"{section}.ipynb")
        print("wrote", out / f"{section}.ipynb")


if __name__ == "__main__":
    main()
