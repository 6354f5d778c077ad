"""Atomic outputs: a folder or file is written beside its target and swapped in at the end.

A run that fails part-way leaves the previous output (or nothing) in place, never half a report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from upliftlab.errors import InputError


@contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside `out`; when the block succeeds it replaces `out` whole.

    On any error the staged folder is removed and `out` is left exactly as it was.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise InputError(f"{out}: cannot write there ({exc.strerror})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; outputs are shared like any folder
        if out.exists():
            # rename is atomic, a rmtree is not: move the old folder aside first
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            old.rmdir()
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_file(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `out`; when the block succeeds it replaces `out`."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", dir=parent)
    except OSError as exc:
        raise InputError(f"{out}: cannot write there ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
