"""Atomic file writes: readers see the old file or the new one, never half of it."""

from __future__ import annotations

import errno
import os
import tempfile
import time
from pathlib import Path

__all__ = ["ATOMIC_TMP_SUFFIX", "STALE_TMP_AGE_S", "atomic_write_bytes", "atomic_write_text"]

#: Temporary files of :func:`atomic_write_bytes` are ``.<name>.<pid>.<random>`` + this suffix.
ATOMIC_TMP_SUFFIX = ".atombench-tmp"
#: A temporary file this old is stale even if its pid runs again (pids are reused).
STALE_TMP_AGE_S = 24 * 3600


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half.

    The bytes go to a temporary file ``.<name>.<pid>.<random>.atombench-tmp`` in
    the same folder, are flushed to disk, and the temporary file is renamed over
    the target (atomic on POSIX and Windows). On any failure the temporary file
    is removed and the old file is left untouched. A writer killed before it
    could clean up leaves its temporary file behind; the next write of the same
    target removes those whose process no longer runs.

    A symbolic link is followed: the file it points to is replaced and the link
    kept (renaming over the link itself would turn it into a regular file and
    leave its target stale).

    Parameters
    ----------
    path : str or path-like
    data : bytes

    Returns
    -------
    pathlib.Path
        The path written (as given, i.e. the link when ``path`` is one).

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder.
    NotADirectoryError
        A parent of ``path`` is a file.
    """
    given = Path(path)
    target = Path(os.path.realpath(given))  # through symlinks, also dangling ones
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(given))
    _make_parent_folder(target.parent, given)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=ATOMIC_TMP_SUFFIX,
                                    dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep the old file's mode, or the umask default
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return given


def _make_parent_folder(folder: Path, given: Path) -> None:
    """Create ``folder`` (and its parents), naming a parent that is a file in the error."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"cannot write here: {parent} is a file, not a folder",
                                         str(given))
            break
    folder.mkdir(parents=True, exist_ok=True)


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporary files of earlier writes of ``target`` whose writer process is gone."""
    prefix = f".{target.name}."
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix) and n.endswith(ATOMIC_TMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        pid_text = name[len(prefix):].split(".", 1)[0]
        try:
            age_s = time.time() - os.stat(target.parent / name).st_mtime
            running = pid_text.isdigit() and (int(pid_text) == os.getpid() or _process_alive(int(pid_text)))
            if running and age_s < STALE_TMP_AGE_S:
                continue  # a write in progress (another thread or process); it cleans up itself
            os.unlink(target.parent / name)
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it there; rely on the age rule
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or we cannot tell: keep its file
    return True


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding))

