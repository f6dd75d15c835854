"""One exception family; each carries the facts the CLI needs to say what failed."""

from __future__ import annotations


class RunbookError(Exception):
    """Base of every error the runbook raises on purpose."""

    exit_code = 1


class ParameterError(RunbookError):
    """One or more parameters broke a rule. Raised before any AWS call.

    ``problems`` is a list of ``(name, value, rule)``; ``str()`` names each
    parameter, its value and the rule it broke, one per line.
    """

    exit_code = 2

    def __init__(self, problems: list[tuple[str, object, str]]):
        self.problems = list(problems)
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"{name}={_shown(value)}: {rule}" for name, value, rule in self.problems]
        if len(lines) == 1:
            return "bad parameter: " + lines[0]
        return "bad parameters:\n  " + "\n  ".join(lines)


def _shown(value: object, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message quotes a value, need not hold it."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters in all)"


class SandboxError(RunbookError):
    """The embedded sandbox could not be started, found or stopped."""


class StepError(RunbookError):
    """A step could not finish. ``code`` is the AWS error code when AWS said no."""

    def __init__(self, message: str, *, code: str | None = None, operation: str | None = None,
                 fix: str | None = None):
        self.code = code
        self.operation = operation
        self.fix = fix
        self.detail = message  # without the fix line
        text = message
        if fix:
            text += f"\nTo fix: {fix}"
        super().__init__(text)


class SecretLeakError(RunbookError):
    """A secret-looking value was found where none may be."""
