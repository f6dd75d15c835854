"""Named points where a test can kill the process, to prove that a rerun recovers.

With ``RUNBOOK_CRASH_AT=name`` (or several, comma-separated) in the
environment, :func:`reached` sends SIGKILL to the current process at that
point: no ``finally``, no ``atexit``, exactly as a power cut or an OOM kill
would end it. Unset (always, outside tests), it does nothing.

Points in the library:

- ``after-create-access-key``: AWS has returned a new key's secret; it is not
  in any sink yet.
- ``atomic-write-before-rename``: a sink's new content is in its temporary
  file, fsynced; the real file still holds the old content. Every atomic
  write reaches it (the key journal's too); ``atomic-write-before-rename:NAME``
  (e.g. ``atomic-write-before-rename:credentials``) only the write of file NAME.
- ``rotate-after-new-key-saved``: a rotation's new key is in the sinks; the
  journal does not name it yet; the old key is still Active.
- ``rotate-after-proven``: the new key has answered as the service user; the
  old key is still Active.
- ``rotate-after-deactivate``: the old key is Inactive, not yet deleted.
- ``rotate-after-delete-old``: the old key is deleted; the journal still exists.
"""

from __future__ import annotations

import os
import signal

ENV = "RUNBOOK_CRASH_AT"


def reached(name: str) -> None:
    """Die here, at once, if the environment names this point."""
    wanted = os.environ.get(ENV)
    if wanted and name in {w.strip() for w in wanted.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
