"""Widget forms: one per section, built from the section's parameter model.

The form is filled from the ``parameters`` cell (papermill overrides those),
so headless its values are the parameters. As a person types, each field is
checked with the same rule the library applies (:func:`runbook.params.check`)
and the rule shows under the field. Cells below read :meth:`SectionForm.params`,
never a callback's side effect.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import ipywidgets as w

from .errors import ParameterError
from .params import Common, check, known_regions

_REGION_FIELDS = ("region",)
_OPTIONAL_REGION_FIELDS = ("limit_region",)
_CHOICES = {"target": ["sandbox", "aws"]}
_WIDTH = "520px"  # each widget gets its own Layout: a shared one is one model for all
_STYLE = {"description_width": "160px"}


class SectionForm:
    """A form for ``model``, pre-filled from ``values`` (usually ``globals()``).

    Raises :class:`ParameterError` when ``values`` themselves break a rule,
    so a headless run stops before the form or any AWS call.
    """

    def __init__(self, model: type[Common], values: dict[str, Any]):
        self.model = model
        self.initial = model.from_values(values)
        self.fields: dict[str, w.Widget] = {}
        self.messages: dict[str, w.HTML] = {}
        rows = [w.HTML(f"<b>Parameters of {html.escape(model.section)}</b>")]
        for field in dataclasses.fields(model):
            widget = self._widget(field.name, getattr(self.initial, field.name),
                                  field.metadata.get("doc", ""))
            message = w.HTML("")
            self.fields[field.name] = widget
            self.messages[field.name] = message
            widget.observe(lambda change, name=field.name: self._on_change(name), names="value")
            rows.extend([widget, message])
        self.widget = w.VBox(rows)

    def _widget(self, name: str, value: Any, doc: str) -> w.Widget:
        common = dict(description=name, description_tooltip=doc, layout=w.Layout(width=_WIDTH), style=_STYLE)
        if name in _CHOICES:
            return w.Dropdown(options=_CHOICES[name], value=value, **common)
        if name in _REGION_FIELDS:
            return w.Dropdown(options=list(known_regions()), value=value, **common)
        if name in _OPTIONAL_REGION_FIELDS:
            return w.Dropdown(options=[("(no limit)", "")] + [(r, r) for r in known_regions()],
                              value=value or "", **common)
        if isinstance(value, bool):
            return w.Checkbox(value=value, indent=False, **common)
        return w.Text(value="" if value is None else str(value), placeholder="(none)", **common)

    def _value(self, name: str) -> Any:
        value = self.fields[name].value
        default = self.model.__dataclass_fields__[name].default
        if value == "" and default is None:
            return None
        return value

    def _on_change(self, name: str) -> None:
        problem = check(name, self._value(name))
        self.messages[name].value = ("" if problem is None else
                                     f"<span style='color:#b00020'>{html.escape(name)}: "
                                     f"{html.escape(problem)}</span>")

    def values(self) -> dict[str, Any]:
        """The form's current values, as parameters."""
        return {name: self._value(name) for name in self.fields}

    def params(self) -> Common:
        """The validated model from the form's current values.

        Raises :class:`ParameterError` naming each bad field.
        """
        return self.model.from_values(self.values())

    def problems(self) -> list[tuple[str, Any, str]]:
        try:
            self.params()
        except ParameterError as err:
            return err.problems
        return []

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
