"""Files the package reads and writes: checked before the work, written atomically.

* :func:`output_path`: an output path (``save_model``'s ``path``, a benchmark's
  ``csv`` and ``png``, the command line's ``--save``) is checked *before* training,
  by trying to create a file in its folder: permission bits, a read-only mount, an
  immutable folder (``chattr +i``) or a "folder" that is a file all fail there,
  for root too, and the error names the argument;
* :func:`open_regular_file`: a file to read must be a regular file: a FIFO, a
  device or a socket would block the reader forever or never end;
* :func:`atomic_writer`: a file is written to a hidden temporary file in the same
  folder and renamed; the writer holds a lock on it, so that the next write to the
  folder removes temporary files left by a killed writer (no lock: nobody writes
  them) and leaves those of a running one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no locks, so no temporary file is known to be stale
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_writer", "clean_stale_temporaries", "not_regular", "open_regular_file",
           "output_path"]

#: hidden temporary files of :func:`atomic_writer`: ``.NAME.<32 hex digits>.tmp``
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


def _as_path(path: Any, name: str) -> str:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"`{name}` must be a file path (a string), got {type(path).__name__}")
    path = os.path.expanduser(os.fspath(path))
    if not path:
        raise ValueError(f"`{name}` must be a file path, got an empty string")
    return path


def _kind(mode: int) -> str:
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return word
    return "not a regular file"


def output_path(path: Any, name: str = "path") -> str:
    """``path`` (``~`` expanded) if a file can be written there, else an error naming
    ``name``; nothing is left behind by the check.

    Raises:
        TypeError: ``path`` is not a path.
        ValueError: ``path`` is a folder or another non-regular file, its folder does
            not exist or is not a folder, or no file can be created in it.
    """
    path = _as_path(path, name)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        mode = None  # reported below, for the folder
    if mode is not None and stat.S_ISDIR(mode):
        raise ValueError(f"`{name}` must be a file, got the folder {path!r}")
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(f"`{name}` must be a file to write, got {_kind(mode)} {path!r}")
    if not os.path.exists(folder):
        raise ValueError(f"`{name}` is in a folder that does not exist: {path!r} (no folder "
                         f"{folder!r})")
    if not os.path.isdir(folder):
        raise ValueError(f"`{name}` must be in a folder, got {path!r} ({folder!r} is a file)")
    probe = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise ValueError(f"`{name}` {path!r} cannot be written: no file can be created in "
                         f"the folder {folder!r} ({os.strerror(err.errno)})") from None
    os.close(fd)
    os.remove(probe)
    if mode is not None and not os.access(path, os.W_OK):
        raise ValueError(f"`{name}` {path!r} cannot be written: the file is read-only")
    return path


def not_regular(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists but is not a regular file (after links): "a
    named pipe (FIFO)", "a folder", ...; ``None`` for a regular file or nothing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular_file(path: Any, name: str = "path") -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (after links).

    Opened without blocking and checked on the open file, so that a FIFO is refused
    rather than waited on, and a file swapped after a check cannot slip through.

    Raises:
        ValueError: nothing at ``path``, or something that is not a regular file.
    """
    path = _as_path(path, name)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ValueError(f"`{name}` {path!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"`{name}` must be a file, got the folder {path!r}") from None
    except OSError as err:
        raise ValueError(f"`{name}` {path!r} cannot be read ({os.strerror(err.errno)})") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise ValueError(f"`{name}` must be a file, got the folder {path!r}")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"`{name}` must be a regular file, got {_kind(mode)} {path!r}: "
                         "reading it could wait forever or never end")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def clean_stale_temporaries(folder: str) -> list[str]:
    """Remove the hidden temporary files of :func:`atomic_writer` in ``folder`` that no
    writer holds (left by a killed save); returns their names."""
    removed: list[str] = []
    if fcntl is None:
        return removed
    try:
        names = [n for n in os.listdir(folder) if _TEMPORARY.match(n)]
    except OSError:
        return removed
    for entry in names:
        full = os.path.join(folder, entry)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    continue  # a running writer holds it
                raise
            os.remove(full)
            removed.append(entry)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_writer(path: str) -> Iterator[BinaryIO]:
    """Write ``path`` through a locked hidden temporary file renamed at the end; an
    error (or an interruption) leaves ``path`` as it was. Stale temporary files of
    killed writers in the folder are removed first."""
    folder = os.path.dirname(os.path.abspath(path))
    clean_stale_temporaries(folder)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: never write into someone else's file; 0o666: the umask decides, as for
    # any new file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when this process ends, however
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
