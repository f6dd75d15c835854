"""Atomic, private file writes: a crash leaves the old file whole or the new one."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from . import crashpoints


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state too.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def remove_stale_temps(path: Path | str) -> list[Path]:
    """Delete temporary files that dead writers of ``path`` left behind; return them.

    A writer killed between writing its temporary file and the rename leaves
    ``.<name>.<pid>.<random>.tmp`` next to ``path`` (possibly holding a secret
    that no sink holds). A temp file whose writer still runs is kept.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^/]*\.tmp")
    removed = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and not pid_alive(int(match.group(1))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def atomic_write_text(path: Path | str, text: str, mode: int = 0o600,
                      follow_symlinks: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory.

    The temporary file is created with ``mode`` (never wider), fsynced, and
    renamed over ``path``; the directory is fsynced so the rename survives a
    power cut. Readers see the old content or the new, never a mix. Leftovers
    of writers that died before their rename are removed first. A symlink is
    followed: the file it points to is replaced, and the link stays a link;
    with ``follow_symlinks=False`` the link itself is replaced by the file.
    """
    path = Path(os.path.realpath(path) if follow_symlinks else os.path.abspath(path))
    remove_stale_temps(path)
    # The pid in the name lets a later writer tell a dead writer's leftover from a live one's.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        crashpoints.reached("atomic-write-before-rename")
        crashpoints.reached(f"atomic-write-before-rename:{path.name}")
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
