"""``runbook``: run the sections headless, and manage the embedded sandbox.

Exit codes: 0 done; 1 a step failed (the message names the section, the AWS
error and the executed notebook); 2 bad parameters, refused before any AWS call
(and ``unlink`` without ``--confirm``, after showing its plan); 3 ``sandbox
status`` found no sandbox; 130 interrupted (Ctrl-C, SIGTERM or SIGHUP), after
the run folder recorded how far the run got.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import ParameterError, RunbookError

# Imported where they are used, not here: `runbook run` starts its kernel before
# anything heavy is imported (see _execute), and yaml, the parameter models and
# the sandbox cost a twentieth of a second.


def _eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def load_params_file(path: str) -> dict[str, Any]:
    """The mapping in a YAML params file (see :func:`runbook.paramsfile.load_params_file`)."""
    from .paramsfile import load_params_file as load

    return load(path)


def load_operator_policy(path: str) -> dict[str, Any]:
    """The identity policy in ``path`` (JSON). Raises ParameterError naming --operator-policy."""
    from .policy import check_grammar

    name = "--operator-policy"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise ParameterError([(name, path, "nests too deeply to be a policy")]) from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ParameterError([(name, path, f"cannot read the policy file: {reason}")]) from None
    except json.JSONDecodeError as err:
        raise ParameterError([(name, path, f"is not JSON: {err.msg} at line {err.lineno}, "
                                           f"column {err.colno}")]) from None
    errors = [f for f in check_grammar(document) if f.severity == "error"]
    if errors:
        raise ParameterError([(name, path, "is not an IAM identity policy: " + "; ".join(
            f"statement {f.statement}: {f.what}" for f in errors))])
    return document


def parse_cli_value(name: str, raw: str) -> Any:
    """A ``-p NAME VALUE`` value, read for NAME's type.

    Strings stay exactly as typed (so an account ID keeps its leading zero);
    ``null``/``none`` clear an optional value; booleans take true/false/yes/no.
    """
    from . import params as P

    field = None
    for model in P.SECTION_MODELS.values():
        field = model.__dataclass_fields__.get(name) or field
    if field is not None and isinstance(field.default, bool):
        lowered = raw.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        return raw  # the rule will refuse it by name
    if field is not None and field.default is None and raw.strip().lower() in ("null", "none", "~"):
        return None
    return raw


def run_values(args: argparse.Namespace, sections: list[str] | None = None) -> dict[str, Any]:
    """The parameters of a ``run``/``rotate``/``unlink`` command line: -f, then -p, then flags.

    One params file can serve the link, the rotation and the unlink: names in
    it that another of these commands takes are left out here, with a note.
    A name no command takes, or one given with ``-p`` that this command does
    not take, is refused when the run validates.
    """
    from . import params as P
    from .run import SECTIONS

    values: dict[str, Any] = {}
    if args.file:
        known = P.names_of(sections or SECTIONS)
        loaded = load_params_file(args.file)
        others = sorted(n for n in loaded if n not in known and n in P.ALL_NAMES)
        if others:
            _eprint(f"note: {args.file}: {', '.join(others)} not used by "
                    f"`runbook {args.command}`; left out")
        values.update({k: v for k, v in loaded.items() if k not in others})
    given: set[str] = set()
    for name, raw in args.param or []:
        if name in given:
            raise ParameterError([(name, raw, "is given twice with -p; give it once")])
        given.add(name)
        values[name] = parse_cli_value(name, raw)
    if args.target is not None:
        values["target"] = args.target
    if args.aws_profile is not None:
        values["aws_profile"] = args.aws_profile
    if args.dry_run:
        values["dry_run"] = True
    if getattr(args, "confirm", False):
        values["confirm"] = True
    return values


def out_dir(value: str | None) -> Path | None:
    """``--out`` as an absolute path (a run's notebooks execute elsewhere), checked.

    Raises ParameterError when it is empty, is under /dev, /proc or /sys, or
    it (or the nearest part of it that exists) is not a writable folder.
    """
    if value is None:
        return None
    if not value.strip():
        raise ParameterError([("--out", value, "is empty; name a folder (default: runs/ of "
                                               "the checkout)")])
    path = Path(value).expanduser().absolute()
    if any(len(part.encode()) > 255 for part in path.parts):
        raise ParameterError([("--out", value, "has a folder name over 255 bytes")])
    try:
        resolved = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (OSError from Python 3.13 on)
        raise ParameterError([("--out", value, "is a symlink loop; name a folder")]) from None
    if str(resolved).startswith(("/dev/", "/proc/", "/sys/")):
        raise ParameterError([("--out", value, "is under /dev, /proc or /sys; name a folder "
                                               "of your own")])
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ParameterError([("--out", value, f"{str(existing)!r} is not a directory")])
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ParameterError([("--out", value, f"{str(existing)!r} is not writable")])
    return path


def check_environment() -> None:
    """RUNBOOK_HOME and RUNBOOK_NOTEBOOKS, when set, must name usable folders.

    Both are made absolute here, where they were given: a run's kernel works
    in notebooks/, where a relative path would name another folder.
    """
    problems = []
    home = os.environ.get("RUNBOOK_HOME")
    if home and Path(os.path.realpath(Path(home).expanduser())).parts[1:2] in (
            ("dev",), ("proc",), ("sys",)):
        problems.append(("RUNBOOK_HOME", home, "is under /dev, /proc or /sys; unset it or name "
                                               "a folder of your own"))
    elif home:
        path = Path(home).expanduser().absolute()
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.environ["RUNBOOK_HOME"] = str(path)
        except OSError as err:
            problems.append(("RUNBOOK_HOME", home, f"cannot be the runbook's folder: "
                                                   f"{err.strerror or err}; unset it or name "
                                                   "a folder"))
    notebooks = os.environ.get("RUNBOOK_NOTEBOOKS")
    if notebooks:
        if Path(notebooks).is_dir():
            os.environ["RUNBOOK_NOTEBOOKS"] = str(Path(notebooks).expanduser().absolute())
        else:
            problems.append(("RUNBOOK_NOTEBOOKS", notebooks, "is not a directory of the "
                                                             "section notebooks; unset it"))
    if problems:
        raise ParameterError(problems)


def _execute(args: argparse.Namespace, sections: list[str] | None = None,
             values: dict[str, Any] | None = None):
    from . import paths
    from .engine import start_kernel

    missing = paths.missing_notebooks(sections or paths.SECTIONS)
    if missing:
        where = str(paths.notebooks_dir())
        raise ParameterError([("RUNBOOK_NOTEBOOKS", os.environ.get("RUNBOOK_NOTEBOOKS") or where,
                               f"{where} has no {', '.join(missing)}; run from the runbook's "
                               "checkout, or set RUNBOOK_NOTEBOOKS to its notebooks/ folder")])
    # First of all, so that the kernel boots while the rest is imported, read and
    # checked; execute() shuts it down however the run ends, this if it never begins.
    kernel = start_kernel()
    try:
        from .run import execute

        values = run_values(args, sections) if values is None else values
        out = out_dir(args.out)
    except BaseException:
        kernel.shutdown()
        kernel.save_log(None)
        raise
    result = execute(values, sections=sections, out=out, progress=_eprint, kernel=kernel)
    if result.interrupted:
        _eprint(f"run interrupted: {result.message}")
        _eprint(f"run folder: {result.run_dir}")
    elif result.status == "ok" and not _awaits_confirm(result, values):
        _eprint(f"run ok: {result.run_dir}")
    elif result.status != "ok":
        _eprint(f"run failed: {result.message}")
        _eprint(f"run folder: {result.run_dir}")
    return result


def _run(args: argparse.Namespace) -> int:
    return _execute(args).exit_code


def _rotate(args: argparse.Namespace) -> int:
    return _execute(args, ["rotate_access_key"]).exit_code


def _awaits_confirm(result: Any, values: dict[str, Any]) -> bool:
    """True for an unlink that only planned because ``confirm`` was not given."""
    section = result.sections[-1] if result.sections else {}
    return (section.get("name") == "unlink" and result.status == "ok"
            and section.get("outcome") == "planned" and section.get("confirm") is not True
            and values.get("dry_run") is not True)


def _unlink(args: argparse.Namespace) -> int:
    values = run_values(args, ["unlink"])
    result = _execute(args, ["unlink"], values)
    if _awaits_confirm(result, values):
        # Deleting needs a yes said on purpose; the plan is shown, and the exit says "not done".
        _eprint(f"plan only (nothing deleted): {result.run_dir}")
        for line in result.sections[-1].get("planned", []):
            _eprint(f"  would {line}")
        _eprint("error: bad parameter: confirm=False: unlink deletes the lines above; nothing "
                "was deleted. Rerun with --confirm (or -p confirm true) to delete them")
        return 2
    return result.exit_code


def _sandbox(args: argparse.Namespace) -> int:
    from . import sandbox

    if args.action == "start":
        from .evaluate import statements

        policy = load_operator_policy(args.operator_policy) if args.operator_policy else None
        if policy and any(statement.get("Resource", "*") not in ("*", ["*"])
                          for statement in statements(policy)):
            _eprint('note: the sandbox (moto) checks IAM permissions against Resource "*" '
                    "only; statements scoped to other resources will allow nothing there")
        state = sandbox.start(operator_policy=policy)
        print(state["endpoint"])
        return 0
    if args.action == "status":
        found = sandbox.status()
        if found is None:
            strays = sandbox.strays()
            _eprint("no sandbox is running" + (
                f" (a moto server of this home, pid {strays[0]}, runs without its state: "
                "`runbook sandbox stop` stops it)" if strays else ""))
            return 3
        print(found["endpoint"] if args.url else json.dumps(found, indent=2))
        return 0
    stopped = sandbox.stop()
    _eprint("sandbox stopped" if stopped else "no sandbox was running")
    return 0


def _params(args: argparse.Namespace) -> int:
    import dataclasses

    from . import params as P

    common = [f.name for f in dataclasses.fields(P.Common)]
    show = lambda f: print(f"  {f.name} = {f.default!r}  # {f.metadata.get('doc', '')}")  # noqa: E731
    print("every notebook")
    for field in dataclasses.fields(P.Common):
        show(field)
    for section, model in P.SECTION_MODELS.items():
        print(section)
        for field in dataclasses.fields(model):
            if field.name not in common:
                show(field)
    return 0


def _run_options(command: argparse.ArgumentParser) -> None:
    """The options ``run``, ``rotate`` and ``unlink`` share (one run folder each)."""
    command.add_argument("-f", "--file", help="YAML file of parameters")
    command.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                         help="set one parameter (repeatable; overrides -f)")
    command.add_argument("--target", help="sandbox (default) or aws")
    command.add_argument("--aws-profile", help="AWS profile of the operator (target aws)")
    command.add_argument("--dry-run", action="store_true",
                         help="plan every section, apply nothing")
    command.add_argument("--out", help="folder to put the run folder in "
                                       "(default: runs/ of the checkout)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runbook", description="Run the AWS link runbook's sections headless, and manage "
                                    "the embedded AWS sandbox.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the sections in order with papermill")
    _run_options(run)
    run.set_defaults(func=_run)

    rotate = sub.add_parser("rotate", help="rotate the service user's access key")
    _run_options(rotate)
    rotate.set_defaults(func=_rotate)

    unlink = sub.add_parser("unlink", help="undo the link: delete the user, the policy and the "
                                           "profile (needs --confirm)")
    _run_options(unlink)
    unlink.add_argument("--confirm", action="store_true",
                        help="really delete (sets confirm=true); without it only the plan is shown")
    unlink.set_defaults(func=_unlink)

    box = sub.add_parser("sandbox", help="the embedded AWS sandbox (moto server)")
    box.add_argument("action", choices=["start", "status", "stop"])
    box.add_argument("--url", action="store_true", help="status: print only the endpoint URL")
    box.add_argument("--operator-policy", help="start: JSON policy for the operator "
                                               "instead of admin")
    box.set_defaults(func=_sandbox)

    sub.add_parser("params", help="list the parameters and defaults").set_defaults(func=_params)
    return parser


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM (a CI cancel, `timeout`) and SIGHUP end a run as Ctrl-C does: recorded, exit 130.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGHUP, _terminate)  # the terminal went away
    try:
        if args.command != "params":
            check_environment()
        return args.func(args)
    except ParameterError as err:
        _eprint(f"error: {err}")
        return err.exit_code
    except RunbookError as err:
        _eprint(f"error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        _eprint("interrupted")
        return 130
    except OSError as err:  # a folder or file the runbook needs: say which, no traceback
        where = f": {err.filename}" if err.filename else ""
        _eprint(f"error: {err.strerror or err}{where}")
        return 1


def entry() -> int:
    """The ``runbook`` console command: :func:`main`, then an exit without the last collections.

    At exit the interpreter runs full garbage collections over everything a
    run imported (jupyter_client, nbformat, botocore: about a tenth of a
    second) to free memory that the operating system takes back anyway.
    Frozen first, it skips them; atexit handlers and the flushing of output
    happen as usual. Only the command does this, not :func:`main` called in a
    longer-lived process.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
