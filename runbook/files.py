"""Atomic, private file writes: a crash leaves the old file whole or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import crashpoints


def atomic_write_text(path: Path | str, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory.

    The temporary file is created with ``mode`` (never wider), fsynced, and
    renamed over ``path``; the directory is fsynced so the rename survives a
    power cut. Readers see the old content or the new, never a mix.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        crashpoints.reached("atomic-write-before-rename")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
