"""Giving freed heap memory back to the system in long-running R sessions.

Nothing here runs at import: the R package calls :func:`release_memory_after_steps`
from ``.onLoad`` (unless ``EQUIVARIANCE_RELEASE_MEMORY=0``), and Python users may call
it themselves.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from ._validation import as_real, is_real_number

__all__ = [
    "memory_grew",
    "release_free_memory",
    "release_memory_after_steps",
    "reset_memory_floor",
]

_LIBC: Any = None
_HOOK: Any = None


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim(0)``).

    Activation buffers freed after a step are reused by the next one, unless small
    objects that outlive the step (R keeps every Python object it received until its
    garbage collector runs) were carved out of them: then the next step's buffers
    come from fresh memory and the process grows by about one activation per step.
    ``malloc_trim`` gives the free pages inside the heap back, so the resident memory
    no longer grows. Returns whether it could be called (glibc only).
    """
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL("libc.so.6")
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            _LIBC = lib
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    _LIBC.malloc_trim(0)
    return True


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release_memory_after_steps(grown_mb: float | None = 16.0) -> bool:
    """After every optimizer step (of any optimizer: a global ``torch.optim`` step
    hook), call :func:`release_free_memory` if the process's resident memory grew by
    more than ``grown_mb`` since the last release. ``None`` removes the hook.

    Installed when the package is imported from R, where a training loop written by
    hand keeps its tensors until R's garbage collector runs. The check reads
    ``/proc/self/statm`` (microseconds); a loop whose memory does not grow never
    trims. Set the environment variable ``EQUIVARIANCE_RELEASE_MEMORY=0`` before
    loading the package to leave it out. Returns whether a hook is installed.
    """
    global _HOOK
    if _HOOK is not None:
        _HOOK.remove()
        _HOOK = None
    if grown_mb is None:
        return False
    if not is_real_number(grown_mb) or not as_real(grown_mb) >= 0:
        raise ValueError(f"`grown_mb` must be a non-negative number or None, got {grown_mb!r}")
    if _rss_bytes() is None or not release_free_memory():
        return False
    limit = float(grown_mb) * 2**20
    floor: list[int | None] = [_rss_bytes()]

    def hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        rss = _rss_bytes()
        if rss is None:
            return
        if floor[0] is None or rss < floor[0]:
            floor[0] = rss
        elif rss - floor[0] > limit:
            release_free_memory()
            # the next step takes back the pages it uses: its reading is the level,
            # not the low point right after the trim (which would trim every step)
            floor[0] = None

    from torch.optim.optimizer import register_optimizer_step_post_hook

    _HOOK = register_optimizer_step_post_hook(hook)
    return True


_FLOOR: list[int | None] = [None]


def memory_grew(grown_mb: float = 64.0) -> bool:
    """Whether the resident memory grew by more than ``grown_mb`` above the level:
    the lowest reading since the first call after :func:`reset_memory_floor` (or
    after the first call ever). The call that takes the level returns False.

    The R layer asks this after its calls into the core: tensors that R received are
    freed only when R's garbage collector runs, which R does not do for memory it
    does not own. When this returns True the caller collects (R's ``gc()``), calls
    :func:`release_free_memory` and then :func:`reset_memory_floor`. Reads
    ``/proc/self/statm`` (microseconds); False where that file does not exist.
    """
    if not is_real_number(grown_mb) or not as_real(grown_mb) >= 0:
        raise ValueError(f"`grown_mb` must be a non-negative number, got {grown_mb!r}")
    rss = _rss_bytes()
    if rss is None:
        return False
    if _FLOOR[0] is None or rss < _FLOOR[0]:
        _FLOOR[0] = rss
        return False
    return rss - _FLOOR[0] > float(grown_mb) * 2**20


def reset_memory_floor() -> None:
    """Forget the level :func:`memory_grew` compares to: its next call takes its own
    reading as the level. Called after a release, this lets the steps in between
    take back the pages they use (a release returns them too), so that the level is
    the loop's working set and not the low point right after the trim; comparing
    with the low point would release again at every check."""
    _FLOOR[0] = None
