"""Params files: the YAML a ``runbook run -f FILE`` reads, read as a params file should be."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ParameterError

PARAMS_FILE_LIMIT = 64 * 1024  # bytes; a params file names a dozen values


class _ParamsLoader(yaml.SafeLoader):
    """YAML as a params file should read: no repeated names, no radix games with numbers.

    A name given twice is refused (YAML would keep the last one silently).
    Only plain decimals become integers: YAML 1.1 reads ``012345670123`` as
    octal and ``0x1CBE991A14`` as hex, which would turn an account ID into
    another number; here such values stay strings, and the rules judge them.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key; the caller names the rule
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT = "tag:yaml.org,2002:int"
_ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_ParamsLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                                    list("-+0123456789"))


def load_params_file(path: str) -> dict[str, Any]:
    """The mapping in a YAML params file. Raises ParameterError naming the file and the rule.

    Refused: a file over 64 KiB, one that is not UTF-8 YAML, YAML aliases
    (``*name``: a few hundred bytes of them expand to gigabytes), a name given
    twice, and anything but a mapping of names to values at the top.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(PARAMS_FILE_LIMIT + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ParameterError([("-f", path, f"cannot read the params file: {reason}")]) from None
    if len(data) > PARAMS_FILE_LIMIT:
        raise ParameterError([("-f", path, f"is larger than {PARAMS_FILE_LIMIT // 1024} KiB; "
                                           "a params file holds a few names and values")])
    try:
        for event in yaml.parse(text, Loader=_ParamsLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise ParameterError([("-f", path, f"uses a YAML alias at line {mark.line + 1}; "
                                                   "write each value out in full")])
        loaded = yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise ParameterError([("-f", path, "nests too deeply; a params file holds flat "
                                           "names and values")]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError([("-f", path, f"is not valid YAML{where}: "
                                           f"{getattr(err, 'problem', err)}")]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParameterError([("-f", path, "must hold a mapping of parameter names to values "
                                           f"at the top, not a {type(loaded).__name__}")])
    bad_keys = [k for k in loaded if not isinstance(k, str)]
    if bad_keys:
        raise ParameterError([("-f", path, f"parameter names must be strings; found {bad_keys!r}")])
    return loaded
