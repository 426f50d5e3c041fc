"""Writing files so that a full disk or a crash never leaves a half-written file under its real
name: every artefact is written to a temporary name beside it, then renamed into place.

A leaf module (it imports only :mod:`ganforge.errors`): every writer in the package can use it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import RunDirError, TrainingDiverged

TMP_MARK = ".tmp-"  # temporary files are named ".<name>.tmp-<pid><suffix>"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` with the same suffix (so writers that pick the format
    from the suffix still work); it is renamed onto ``path`` when the block succeeds and removed
    when it fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename == str(tmp):
            e.filename = str(path)  # messages name the file the user knows
        raise


def remove_stale_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files (``.<name>.tmp-<pid><suffix>``) that writers killed mid-write
    left in ``folder``: those whose process is no longer running."""
    gone = []
    folder = Path(folder)
    if not folder.is_dir():
        return gone
    for p in folder.iterdir():
        if not (p.name.startswith(".") and TMP_MARK in p.name and p.is_file()):
            continue
        pid = p.name.rsplit(TMP_MARK, 1)[1].split(".")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


def disk_full(path: str | Path) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has no room left."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free < (64 << 10)
    except OSError:
        return False


def write_error(e: BaseException, path: str | Path) -> str:
    """A short reason for a failed write (safetensors and torch's zip writer report a full disk
    as their own errors, with a message that does not say so)."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if disk_full(path):
        return os.strerror(errno.ENOSPC)
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def is_write_failure(e: BaseException) -> bool:
    """Whether ``e`` is a failed write (full disk, read-only folder, I/O error) rather than a bug:
    safetensors and torch's zip writer report those as their own errors, not OSError."""
    if isinstance(e, TrainingDiverged):
        return False
    if isinstance(e, OSError):
        return True
    if type(e).__name__ == "SafetensorError":
        return True
    return isinstance(e, RuntimeError) and any(
        s in str(e) for s in ("unexpected pos", "No space", "file write failed", "Read-only", "Permission denied",
                              "Input/output error", "Disk quota"))


def write_or_warn(what: str, write: Callable[[], Any], where: str | Path, step: int) -> bool:
    """Run a periodic write (a checkpoint, a picture); a failed write costs this one only: a warning,
    and nothing half-written is left under a real name. Other errors propagate."""
    try:
        write()
        return True
    except Exception as e:  # noqa: BLE001  (only write failures are absorbed; see is_write_failure)
        if not is_write_failure(e):
            raise
        print(f"warning: {what} at step {step} not written ({write_error(e, where)}); the run goes on",
              file=sys.stderr)
        return False


def os_error(e: OSError, path: str | Path, action: str) -> RunDirError:
    """A one-line ``<path>: <what happened>; <what to do>`` error for an OSError a user can fix."""
    where = e.filename or path
    what = e.strerror or str(e)
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = f"{action} needs a writable folder: make it writable or choose another one"
    elif e.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space and try again"
    elif e.errno == errno.ENAMETOOLONG:
        hint = "choose a shorter name"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = "a file stands where a folder is needed: remove it or choose another path"
    elif e.errno == errno.EISDIR:
        hint = "a folder stands where a file is needed: choose a file name"
    else:
        hint = f"{action} failed"
    return RunDirError(f"{where}: {what}; {hint}")


__all__ = ["atomic_path", "disk_full", "is_write_failure", "os_error", "pid_alive", "remove_stale_files",
           "write_error", "write_json_atomic", "write_or_warn", "write_text_atomic"]
