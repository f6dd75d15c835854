"""Widget forms: one per section, built from the section's parameter model.

The form is filled from the ``parameters`` cell (papermill overrides those),
so headless its values are the parameters. As a person types, each field is
checked with the same rule the library applies (:func:`runbook.params.check`)
and the rule shows under the field, in the words of :class:`ParameterError`.
Cells below read :meth:`SectionForm.params`, never a callback's side effect.

Which widget a field gets:

* ``target``: a drop-down of the targets; ``region``: a drop-down of
  botocore's EC2 regions;
* ``limit_region``: a check box ("limit EC2 to one region") and a drop-down
  of regions, which is used only while the box is ticked;
* ``dry_run``: a check box; other text parameters (names, paths, the PassRole
  role ARN): a text field;
* section 03 (:class:`~runbook.params.AttachParams`): ``user_name`` and
  ``policy_name`` are pick-lists of the users and customer-managed policies
  the target already has, read through the audited
  :class:`~runbook.context.Context`. If they cannot be read (no sandbox, no
  permission, no network) the fields stay text fields and the form says why.
  In a section of ``runbook run`` (``RUNBOOK_RUN_DIR`` set) they are text
  fields too: the names are the run's parameters, no one picks from a list,
  and the account's users and policies are not listed.

Section 02's form (:class:`~runbook.params.PolicyParams`) also shows the
policy document and its validation findings, rebuilt whenever the region limit
or the PassRole ARN changes, before anything is created.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
from typing import Any, Callable

import ipywidgets as w

from .errors import ParameterError
from .notary import trust_notebooks  # noqa: F401  (re-exported: forms and runs share it)
from .params import AttachParams, Common, PolicyParams, check, known_regions

_REGION_FIELDS = ("region",)
_CHOICES = {"target": ["sandbox", "aws"]}
_PLACEHOLDERS = {"pass_role_arn": "arn:aws:iam::123456789012:role/NAME (none: no PassRole)"}
_STYLE = {"description_width": "160px"}


# A Layout or a style is a widget model of its own (a comm, its state sent to the
# front end). Each form makes one of each kind and its fields share them: a form
# of nine fields is then about twenty models, not sixty. None is module-level: a
# run's warm kernel closes every widget when it moves to the next section.
def _field_layout() -> w.Layout:
    return w.Layout(width="560px")


def _message_layout() -> w.Layout:
    return w.Layout(margin="0 0 0 168px", width="560px")  # under the field, not the label


_ERROR_STYLE = "color:#b00020"


def problem_text(name: str, value: Any, rule: str) -> str:
    """One problem as :class:`ParameterError` words it: ``bad parameter: name=value: rule``."""
    return str(ParameterError([(name, value, rule)]))


def _findings(document: dict[str, Any]) -> list:
    """The validation findings the form shows for ``document`` (the one place to switch)."""
    from . import policy

    return policy.validate_document(document)


def existing_names(ctx: Any) -> dict[str, list[str]]:
    """The IAM user names and customer-managed policy names ``ctx``'s target has.

    Returns ``{"user_name": [...], "policy_name": [...]}``, sorted. Raises
    whatever the audited clients raise (botocore errors, ``RunbookError``).
    """
    iam = ctx.client("iam")
    users = [u["UserName"] for page in iam.get_paginator("list_users").paginate()
             for u in page["Users"]]
    policies = [p["PolicyName"] for page in iam.get_paginator("list_policies").paginate(
        Scope="Local") for p in page["Policies"]]
    return {"user_name": sorted(users), "policy_name": sorted(policies)}


def _reason(err: Exception) -> str:
    """An error's AWS code (``AccessDenied``) or runbook code, else its class name."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code"):
        return response["Error"]["Code"]
    return getattr(err, "code", None) or type(err).__name__


def _read_target(params: Common) -> dict[str, list[str]]:
    from .context import Context

    return existing_names(Context(params))




class SectionForm:
    """A form for ``model``, pre-filled from ``values`` (usually ``globals()``).

    ``read_target`` lists what the target already has, for the pick-lists of
    section 03 (default: through an audited :class:`Context`, and not at all
    in a headless run); if it raises, those fields stay text fields and
    :attr:`pick_list_note` says why.

    Raises :class:`ParameterError` when ``values`` themselves break a rule,
    so a headless run stops before the form or any AWS call.
    """

    def __init__(self, model: type[Common], values: dict[str, Any],
                 read_target: Callable[[Common], dict[str, list[str]]] | None = None):
        self.model = model
        self.initial = model.from_values(values)
        self.fields: dict[str, w.Widget] = {}
        self.messages: dict[str, w.HTML] = {}
        self.limit_toggle: w.Checkbox | None = None
        self.preview: w.HTML | None = None
        self.pick_list_note = ""
        self._field_layout = _field_layout()
        self._message_layout = _message_layout()
        self._styles: dict[type, w.Widget] = {}
        choices = self._pick_lists(read_target)
        rows: list[w.Widget] = [w.HTML(f"<b>Parameters of {html.escape(model.section)}</b>",
                                       style=self._style(w.HTML))]
        for field in dataclasses.fields(model):
            name = field.name
            widget = self._widget(name, getattr(self.initial, name),
                                  field.metadata.get("doc", ""), choices.get(name))
            message = w.HTML("", layout=self._message_layout, style=self._style(w.HTML))
            self.fields[name] = widget
            self.messages[name] = message
            widget.observe(lambda change, name=name: self._on_change(name), names="value")
            if name == "limit_region":
                rows.append(self._limit_row(widget))
            else:
                rows.append(widget)
            rows.append(message)
        if self.pick_list_note:
            rows.append(w.HTML(f"<i>{html.escape(self.pick_list_note)}</i>",
                               layout=self._message_layout, style=self._style(w.HTML)))
        if issubclass(model, PolicyParams):
            self.preview = w.HTML(self._preview_html(), style=self._style(w.HTML))
            rows.append(self.preview)
        self.widget = w.VBox(rows)

    # --- building ---

    def _pick_lists(self, read_target: Callable[[Common], dict[str, list[str]]] | None
                    ) -> dict[str, list[str]]:
        if not issubclass(self.model, AttachParams):
            return {}
        if read_target is None and os.environ.get("RUNBOOK_RUN_DIR"):
            # A `runbook run` section: its names are parameters and no one picks from a
            # list; listing every user and policy of the account would cost two
            # paginated calls per run (and the FormPickLists permission) for nothing.
            self.pick_list_note = ("A headless run takes these names from its parameters; "
                                   "the pick lists are for a person at the form.")
            return {}
        try:
            found = (read_target or _read_target)(self.initial)
        except Exception as err:  # noqa: BLE001 - whatever fails, the form must still show
            self.pick_list_note = ("Could not list the target's users and policies "
                                   f"({_reason(err)}); type the names instead.")
            return {}
        return found

    def _style(self, cls: type) -> w.Widget:
        """The form's one style model for widgets of ``cls`` (each class has its own kind).

        Fields (labelled) get the wide label of ``_STYLE``; text (``w.HTML``) the default.
        """
        if cls not in self._styles:
            kind = cls.class_traits()["style"].klass
            self._styles[cls] = kind() if cls is w.HTML else kind(**_STYLE)
        return self._styles[cls]

    def _widget(self, name: str, value: Any, doc: str, existing: list[str] | None) -> w.Widget:
        def common(cls: type) -> dict[str, Any]:
            return dict(description=name, tooltip=doc, layout=self._field_layout,
                        style=self._style(cls))

        if name in _CHOICES:
            return w.Dropdown(options=_CHOICES[name], value=value, **common(w.Dropdown))
        if name in _REGION_FIELDS:
            return w.Dropdown(options=list(known_regions()), value=value, **common(w.Dropdown))
        if name == "limit_region":
            self.limit_toggle = w.Checkbox(value=value is not None, indent=True,
                                           description="limit EC2 to one region",
                                           layout=self._field_layout,
                                           style=self._style(w.Checkbox))
            self.limit_toggle.observe(lambda change: self._on_change("limit_region"),
                                      names="value")
            dropdown = w.Dropdown(options=list(known_regions()),
                                  value=value or self.initial.region,
                                  disabled=value is None, **common(w.Dropdown))
            return dropdown
        if isinstance(value, bool):
            return w.Checkbox(value=value, indent=True, **common(w.Checkbox))
        if existing is not None:
            # The parameter's own value stays selectable even before it exists.
            options = [(n, n) for n in existing]
            if value not in existing:
                options.insert(0, (f"{value} (not in the account yet)", value))
            return w.Dropdown(options=options, value=value, **common(w.Dropdown))
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))  # verify_regions: the -p form of a list
        return w.Text(value="" if value is None else str(value),
                      placeholder=_PLACEHOLDERS.get(name, "(none)"), **common(w.Text))

    def _limit_row(self, dropdown: w.Widget) -> w.Widget:
        return w.VBox([self.limit_toggle, dropdown])

    # --- reading and checking ---

    def _value(self, name: str) -> Any:
        if name == "limit_region" and self.limit_toggle is not None:
            return self.fields[name].value if self.limit_toggle.value else None
        value = self.fields[name].value
        default = self.model.__dataclass_fields__[name].default
        if value == "" and default is None:
            return None
        return value

    def message(self, name: str) -> str | None:
        """The rule the field ``name`` breaks now, as the form shows it, or None."""
        value = self._value(name)
        problem = check(name, value)
        return None if problem is None else problem_text(name, value, problem)

    def _on_change(self, name: str) -> None:
        if name == "limit_region" and self.limit_toggle is not None:
            self.fields[name].disabled = not self.limit_toggle.value
        text = self.message(name)
        self.messages[name].value = ("" if text is None else
                                     f"<span style='{_ERROR_STYLE}'>{html.escape(text)}</span>")
        if self.preview is not None and name in ("limit_region", "pass_role_arn"):
            self.preview.value = self._preview_html()

    def values(self) -> dict[str, Any]:
        """The form's current values, as parameters."""
        return {name: self._value(name) for name in self.fields}

    def params(self) -> Common:
        """The validated model from the form's current values.

        Raises :class:`ParameterError` naming each bad field.
        """
        return self.model.from_values(self.values())

    def problems(self) -> list[tuple[str, Any, str]]:
        """Every ``(name, value, rule)`` the form's current values break."""
        try:
            self.params()
        except ParameterError as err:
            return err.problems
        return []

    # --- section 02: the policy preview ---

    def document(self) -> dict[str, Any] | None:
        """The policy document the form's values give, or None while they break a rule."""
        limit, arn = self._value("limit_region"), self._value("pass_role_arn")
        if check("limit_region", limit) or check("pass_role_arn", arn):
            return None
        from . import policy

        return policy.policy_document(limit, arn)

    def findings(self) -> list:
        """The validation findings of :meth:`document` (empty while there is none)."""
        document = self.document()
        return [] if document is None else _findings(document)

    def _preview_html(self) -> str:
        from . import policy

        document = self.document()
        if document is None:
            return (f"<p><b>Policy document</b></p><p style='{_ERROR_STYLE}'>"
                    "fix the fields marked above to see the document</p>")
        table = policy.findings_table(_findings(document))
        return ("<p><b>Policy document</b> (what section 02 will create)</p>"
                f"<pre>{html.escape(json.dumps(document, indent=2))}</pre>"
                + table._repr_html_())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
