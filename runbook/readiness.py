"""Key readiness: real IAM takes seconds to accept a new access key everywhere.

:func:`wait_for_key` calls ``sts:GetCallerIdentity`` with the new key until
it answers as the expected user, retrying the errors a not-yet-propagated key
gets, with exponential backoff, up to a bound. Section 05 and key rotation
use it before they rely on a key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import ClientError

from .errors import StepError

# What STS answers while a new key is still propagating.
NOT_YET = ("InvalidClientTokenId", "AuthFailure", "SignatureDoesNotMatch")
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Readiness:
    """How long the key took to work, and what STS said it was."""

    seconds: float
    attempts: int
    arn: str


def wait_for_key(sts: Any, expected_arn: str, *, timeout: float = DEFAULT_TIMEOUT,
                 first_delay: float = 0.5, max_delay: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> Readiness:
    """Poll ``sts`` (a client signing with the key) until it answers as ``expected_arn``.

    Returns a :class:`Readiness`. Raises :class:`StepError` with code
    ``KeyNotReady`` when the key still fails after ``timeout`` seconds, with
    the error's own code when STS refuses it for another reason, and with
    ``WrongKeyOwner`` when the key works but belongs to someone else.
    """
    started = clock()
    delay = first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            arn = sts.get_caller_identity()["Arn"]
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code not in NOT_YET:
                raise StepError(f"STS refused the key: {code}: "
                                f"{err.response.get('Error', {}).get('Message', '')}",
                                code=code, operation="GetCallerIdentity") from None
            waited = clock() - started
            if waited + delay > timeout:
                raise StepError(
                    f"the key was still refused ({code}) after {waited:.1f} s and "
                    f"{attempts} attempts", code="KeyNotReady", operation="GetCallerIdentity",
                    fix="wait a minute and rerun; if it persists, check that the key is "
                        "Active and that the profile holds the whole secret") from None
            sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        if arn != expected_arn:
            raise StepError(f"the key works, but as {arn}, not {expected_arn}",
                            code="WrongKeyOwner", operation="GetCallerIdentity",
                            fix="put the service user's key in the credentials profile")
        return Readiness(round(clock() - started, 3), attempts, arn)
