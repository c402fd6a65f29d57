"""Folders that change in one step: write a whole folder beside its final place, then swap it in.

`commit_folder(staged, final)` makes `staged` visible as `final` atomically. With no `final`
yet, that is one rename. Over an existing `final` it is one `renameat2(RENAME_EXCHANGE)` (Linux):
the two folders trade names in one step, and the old one is then deleted; a crash leaves the old
folder or the new one at `final`, never a mix and never neither. Where the kernel lacks the
exchange, the old folder is first renamed aside (`.NAME.old`) and `recover` puts it back if a
crash fell between the two renames.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file and folder under `path` (and `path` itself) to disk."""
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def aside(final: Path) -> Path:
    return final.parent / f".{final.name}.old"


def recover(final: Path) -> None:
    """Undo a commit that crashed between its two renames (kernels without the exchange)."""
    old = aside(final)
    if old.is_dir() and not final.exists():
        os.replace(old, final)
    elif old.is_dir():
        shutil.rmtree(old, ignore_errors=True)


def commit_folder(staged: Path, final: Path) -> None:
    """Make the complete folder `staged` visible as `final` in one step (see the module docstring)."""
    fsync_tree(staged)
    recover(final)
    if not final.exists():
        os.rename(staged, final)
    elif _exchange(staged, final):
        shutil.rmtree(staged)  # now the old folder
    else:
        os.rename(final, aside(final))
        os.rename(staged, final)
        shutil.rmtree(aside(final))
    fsync_dir(final.parent)
