"""Write the notebooks' sources (narrative, parameters, form, plan, apply).

The link sections (01-04), then the rotation and the unlink notebooks, all in one shape.

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
document, validates it before anything is sent (the console's *Validate
Policy*: IAM's grammar, unknown actions, condition keys that do not apply to
an action; errors block, warnings do not), and creates the managed policy
`dockercloud-policy`.

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

INTRO["05_verify_link"] = """# 05 · Verify the link the way the deployment service checked it

Docker Cloud proved a link before it used it: with the new user's own key it
asked EC2 for a *dry-run* `RunInstances` in every region, and the link counted
as valid when at least one region allowed it. This section does the same,
from the credentials profile, and more:

1. **Key readiness.** Real IAM takes seconds to accept a new key, so
   `sts:GetCallerIdentity` is polled (with backoff, up to about a minute) until
   it answers as the user; the time it took is recorded.
2. **Regions.** A dry-run `RunInstances` in every region `ec2:DescribeRegions`
   lists in the account's partition, in parallel; the table says which allow
   it and why. With `limit_region`, exactly that region should.
3. **`iam:ListInstanceProfiles`** must be allowed (it has no region, which is
   why section 02 gives it a statement of its own).
4. With `instance_profile`: whether the user may pass that profile's role
   (`iam:PassRole`); without it, launching nodes with the profile fails with
   "unauthorized operation".

Nothing is changed: the RunInstances calls are dry runs. The sandbox ignores
policy conditions and PassRole, so there the runbook evaluates the user's
policies itself and combines that with the sandbox's answer; on AWS it asks
IAM's policy simulator and the real dry run."""

INTRO["rotate_access_key"] = """# Rotate the service user's access key

A long-lived key should be replaced now and then, and at once if it may have
leaked. This notebook replaces the key of `dockercloud-user` without a moment
in which the profile holds a key that does not work:

1. a new key is created, and its secret goes straight into the credential
   sinks, as in section 01 (never shown; the key ID shows masked);
2. the new key is **proven**: it must answer `sts:GetCallerIdentity` as the
   service user (real IAM takes a few seconds to accept a new key; the
   runbook waits, with backoff, up to a minute);
3. only then is the old key deactivated, and then deleted.

IAM allows two keys per user, so a user that already has two is refused with
the command that fixes it. A small journal (key IDs only) records the
rotation in progress: if the run dies at any point, running this notebook
again finishes the rotation, and the old key is never touched before the new
one works. Hand the new key to the deployment service afterwards (section
04 shows which value goes where)."""

INTRO["unlink"] = """# Unlink the account

This undoes the link: it deletes the service user, its policy and the saved
key, in the order IAM requires. IAM refuses to delete a user that still has
access keys, a login profile, MFA devices, signing certificates, SSH keys,
inline policies, attached managed policies or group memberships, so those go
first, one by one, and the user last. The managed policy is deleted after
it, with its non-default versions first, but only if nothing else (another
user, a group, a role) still uses it; otherwise it is kept and the plan says
who uses it. Finally the profile leaves the credentials file (and the CSV, if
`csv_path` names one).

**Nothing is deleted unless `confirm` is ticked.** Without it this notebook
shows what would be deleted and records the outcome `planned`. Running it
again on an account that is already unlinked changes nothing."""

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
                         "display(policy.findings_table(policy.validate_document(document)))\n"
                         "plan = policy.plan_policy(ctx, p, document)"),
    "03_attach_policy": ("AttachParams", "from runbook import attachment",
                         "plan = attachment.plan_attach(ctx, p)"),
    "04_add_credentials": ("HandoverParams", "from runbook import handover",
                           "plan = handover.plan_handover(ctx, p)"),
    "05_verify_link": ("VerifyParams", "from runbook import verify",
                       "plan = verify.plan_verify(ctx, p)\ndisplay(plan.region_table())"),
    "rotate_access_key": ("RotateParams", "from runbook import rotate",
                          "plan = rotate.plan_rotate(ctx, p)"),
    "unlink": ("UnlinkParams", "from runbook import unlink",
               "plan = unlink.plan_unlink(ctx, p)"),
}

APPLY_TEXT = {
    "unlink": "## Apply\n\nWithout `confirm` (or with `dry_run`) this deletes nothing and "
              "reports `planned`. The outcome is recorded for the run's `run.json`.",
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
                          "form below instead. " + FORM_NOTE.get(section, FORM_NOTE["01_create_user"])),
        params_cell,
        new_code_cell(f"from runbook import forms, params\n\n"
                      f"form = forms.SectionForm(params.{model_name}, globals())\nform"),
        new_markdown_cell("## Plan\n\nThe values below come from the form as it is now. "
                          "Reading AWS changes nothing; the table says what applying would do."),
        new_code_cell(f"from runbook.context import Context\n{imports}\n\n"
                      f"p = form.params()\nctx = Context(p)\n{plan_call}\nplan"),
        new_markdown_cell(APPLY_TEXT.get(section, "## Apply\n\nWith `dry_run` set this "
                          "applies nothing and reports `planned`. The outcome is recorded for "
                          "the run's `run.json`.")),
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
