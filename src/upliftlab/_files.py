"""Atomic outputs: every output folder or file is staged beside its target and swapped in whole.

One mechanism for every command that writes a folder (report, policy, model fit, export,
simulate): the new folder is written as a hidden sibling `.NAME.stage-PID-XXXX`, sealed with a
marker file (`.upliftlab.json`: which command owns the folder and the sha256 of each file), and
exchanged with the target in one `renameat2(RENAME_EXCHANGE)`, so the target is at every instant
the old folder or the new one, never missing and never a mix. Stale staging folders of runs that
died are removed by the next run. A command refuses an existing folder it did not write.

`UPLIFTLAB_FAULT_AFTER_STEP=N` makes the process stop dead (`os._exit`) after the N-th
file-system step of this module, so tests can kill a run at every step (see `fault_step`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from upliftlab.errors import InputError, param_names

MARKER = ".upliftlab.json"
FAULT_ENV = "UPLIFTLAB_FAULT_AFTER_STEP"
FAULT_EXIT_CODE = 86
_NAME_MAX = 255
# what the staging name adds to the target's name: ".", ".stage-", a pid and a random tail
_STAGE_OVERHEAD = 40
_steps = 0


def fault_step(what: str) -> None:
    """A file-system step is done; with UPLIFTLAB_FAULT_AFTER_STEP=N, die after the N-th one.

    The process ends with `os._exit` (no cleanup, no `finally`), as a kill -9 would end it.
    """
    global _steps
    limit = os.environ.get(FAULT_ENV, "")
    if not limit.isdigit():
        return
    _steps += 1
    if _steps >= int(limit):
        os._exit(FAULT_EXIT_CODE)


# ---- checks before anything is written -------------------------------------------------------

def _target_error(what: str, text: str) -> InputError:
    """An InputError about the target `what`: a parameter written `{name}` (named as such, so
    the CLI shows its flag) or a plain description such as "model folder"."""
    return InputError(f"{what} {text}", params=param_names(what))


def check_target(out: str | os.PathLike, what: str = "{out}") -> Path:
    """Refuse output paths no rename can replace: the current folder or one of its parents,
    the root, a name too long for the file system. Returns the path. `what` names the target
    in errors: `{out}` (the parameter; the CLI says --out), `{store}`, or plain words."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise _target_error(what, f"{out}: not a new folder or file name (the current folder or a "
                         "parent cannot be replaced); give a name such as reports/week1")
    try:
        here = Path.cwd().resolve()
        target = out.resolve()
    except OSError as exc:
        raise _target_error(what, f"{out}: {exc.strerror}") from None
    if target == here or target in here.parents:
        raise _target_error(what, f"{out}: is the current folder or one of its parents; give a "
                         "new folder")
    if len(os.fsencode(out.name)) + _STAGE_OVERHEAD > _NAME_MAX:
        raise _target_error(what, f"{out.name[:40]}...: name too long ({len(out.name)} "
                         f"characters; at most {_NAME_MAX - _STAGE_OVERHEAD})")
    return out


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder written by upliftlab (owner, files and their sha256), or None."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("owner"), str) else None


def claim(out: str | os.PathLike, owner: str, legacy: Iterable[str] = (), *,
          what: str = "{out}", force: bool = False) -> Path:
    """Check that `owner` (a command, e.g. "report") may replace the folder `out`.

    Allowed: no such path, an empty folder, a folder whose marker names `owner`, or (folders
    written before markers existed) a folder holding only files matching the `legacy` patterns.
    Anything else is refused with InputError, so no command replaces a folder it did not write.
    """
    out = check_target(out, what)
    if not out.exists() and not out.is_symlink():
        return out
    if not out.is_dir():
        raise _target_error(what, f"{out}: exists and is not a folder")
    marker = read_marker(out)
    if marker is not None:
        if marker["owner"] != owner and not force:
            raise _target_error(what, f"{out}: the folder was written by `upliftlab "
                             f"{marker['owner']}`, not by `upliftlab {owner}`; choose another "
                             "folder")
        return out
    try:
        names = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise _target_error(what, f"{out}: cannot read the folder ({exc.strerror})") from None
    patterns = tuple(legacy)
    foreign = [n for n in names if not any(fnmatch(n, p) for p in patterns)]
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise _target_error(what, f"{out}: the folder holds files that `upliftlab {owner}` did "
                         f"not write ({shown}); choose a new or empty folder")
    return out


# ---- the swap ---------------------------------------------------------------------------------

def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported.

    The standard library has no atomic exchange (os.replace cannot replace a non-empty folder),
    hence the direct call into libc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system without exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


_STAGE_RE = re.compile(r"\.(stage|old)-(\d+)-")


def clean_stale(out: Path) -> None:
    """Remove staging leftovers of `out` from runs that died (their process is gone), and
    restore the old folder if a run without atomic exchange died between its two renames."""
    parent = out.parent if str(out.parent) else Path(".")
    prefix = f".{out.name}."
    try:
        siblings = [p for p in parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for p in sorted(siblings):
        rest = p.name[len(prefix) - 1:]
        m = _STAGE_RE.match(rest)
        if m:
            if _pid_alive(int(m.group(2))):
                continue
            if m.group(1) == "old" and not out.exists() and not out.is_symlink():
                os.rename(p, out)  # the fallback swap died half-way: put the old folder back
                continue
        elif not rest.startswith((".tmp-", ".old-")):  # leftovers of upliftlab before 0.2
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(folder: Path) -> dict[str, str]:
    """sha256 of every file in `folder` (recursively; names relative to it), marker excluded."""
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}


def verify(folder: str | os.PathLike) -> dict | None:
    """The marker of `folder` if every file it lists is there with its sha256; InputError if a
    listed file is missing or changed (a mixed or tampered folder); None without a marker."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        return None
    for name, digest in (marker.get("files") or {}).items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            raise InputError(f"{folder}: {name} is missing or differs from the folder's "
                             f"{MARKER} (the folder was changed after `upliftlab "
                             f"{marker['owner']}` wrote it)")
    return marker


def _seal(stage: Path, owner: str) -> None:
    from upliftlab import __version__

    marker = {"owner": owner, "upliftlab": __version__, "files": manifest(stage)}
    (stage / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    fault_step("sealed")


def _swap_in(stage: Path, out: Path) -> None:
    """Put `stage` at `out`; the old `out` (if any) ends up at `stage` and is then removed."""
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it private; outputs are shared
    if not out.exists() and not out.is_symlink():
        os.rename(stage, out)
        fault_step("renamed")
        return
    if _exchange(stage, out):
        fault_step("exchanged")
        shutil.rmtree(stage, ignore_errors=True)
        fault_step("removed old")
        return
    # no atomic exchange on this file system: move the old folder aside, then the new one in;
    # a run killed between the two is repaired by `clean_stale` on the next run
    old = stage.with_name(stage.name.replace(".stage-", ".old-", 1))
    os.rename(out, old)
    fault_step("moved old aside")
    os.rename(stage, out)
    fault_step("renamed")
    shutil.rmtree(old, ignore_errors=True)
    fault_step("removed old")


def _stage_beside(out: Path, what: str, *, directory: bool) -> Path:
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out)
        prefix = f".{out.name}.stage-{os.getpid()}-"
        if directory:
            return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        fd, name = tempfile.mkstemp(prefix=prefix, dir=parent)
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp makes it private; outputs are shared
        return Path(name)
    except OSError as exc:
        raise _target_error(what, f"{out}: cannot write there ({exc.strerror})") from None
    finally:
        fault_step("staged")


@contextmanager
def staged_dir(out: str | os.PathLike, *, owner: str, legacy: Iterable[str] = (),
               what: str = "{out}", force: bool = False,
               before_swap: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield an empty folder beside `out`; when the block succeeds it replaces `out` whole.

    `owner` (the command, e.g. "report") is written into the folder's marker, and an existing
    `out` that `owner` did not write is refused before anything is written (see `claim`).
    `before_swap` runs after the folder is complete and just before it is swapped in (the
    report commits its store row there). On any error the staged folder is removed and `out`
    is left exactly as it was.
    """
    out = claim(out, owner, legacy, what=what, force=force)
    tmp = _stage_beside(out, what, directory=True)
    try:
        yield tmp
        _seal(tmp, owner)
        if before_swap is not None:
            before_swap()
        try:
            _swap_in(tmp, out)
        except OSError as exc:
            raise _target_error(what, f"{out}: cannot replace it ({exc.strerror})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_file(out: str | os.PathLike, *, what: str = "{out}") -> Iterator[Path]:
    """Yield a temporary path beside `out`; when the block succeeds it replaces `out`."""
    out = check_target(out, what)
    if out.is_dir():
        raise _target_error(what, f"{out}: is a folder, expected a file name")
    tmp = _stage_beside(out, what, directory=False)
    try:
        yield tmp
        fault_step("written")
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise _target_error(what, f"{out}: cannot replace it ({exc.strerror})") from None
        fault_step("renamed")
    finally:
        tmp.unlink(missing_ok=True)
