"""Sizes that cannot fit: refuse them before allocating, naming the argument.

A model built with ``widths = c(1e6, 16, 16)``, a group of ``N = 2^40`` elements or a
model file whose stored arguments ask for terabytes must end in a clear error, not
in the allocator's "can't allocate memory" (or a hang). Three mechanisms:

* :func:`guarded_build`: the package's models and layers are built under
  :class:`AllocationGuard`, which sees every tensor a constructor creates from a
  size (``torch.empty``, ``zeros``, ``randn``, ...) *before* it is allocated and
  refuses one that, with those already made, exceeds the memory available; other
  operations (whose size is known only when they run) meet a cap on the process's
  address space during the build, so that their allocation fails at once rather
  than being granted by overcommit and killing the process when touched; the
  failure becomes the same error;
* :func:`check_fits`: a constructor with an analytic estimate (escnn's groups,
  whose construction itself is the cost) calls it before building anything;
* :func:`check_file_sizes`: the loader sums what a model file's records unpack to
  before reading them.

The error names the argument (for a constructor, the one holding the largest
number: the size that grew) and the size asked for, next to what the machine has.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["AllocationGuard", "available_bytes", "check_file_sizes", "check_fits",
           "guarded_build", "guarded_init", "human_bytes"]

#: Environment variable: the bytes a build may take (default: the memory available).
LIMIT_ENV = "EQUIVARIANCE_MEMORY_LIMIT"

_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full,
              torch.randint, torch.empty_strided, torch.eye}
_STATE = threading.local()


def available_bytes() -> int:
    """The memory a new allocation may take: ``EQUIVARIANCE_MEMORY_LIMIT`` if set,
    else ``MemAvailable`` plus free swap (Linux), else the physical memory."""
    env = os.environ.get(LIMIT_ENV, "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise ValueError(f"the environment variable {LIMIT_ENV} must be a number of bytes, "
                             f"got {env!r}") from None
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if ":" in line}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: nothing is refused


def human_bytes(n: float) -> str:
    """``n`` bytes in words: ``"5.7 TB"``."""
    if not math.isfinite(n):
        return "an unbounded amount"
    if n >= 1e21:
        return f"{n:.2g} bytes"
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"  # pragma: no cover


def _too_big(argument: str, value: Any, nbytes: float, what: str, limit: int,
             alone: bool = False) -> ValueError:
    shown = f"`{argument}` = {value!r}" if argument else "the sizes asked for"
    if alone:  # an allocation that failed: the others made before it count too
        size = ("" if not math.isfinite(nbytes)
                else f" (one tensor alone asked for {human_bytes(nbytes)})")
        return ValueError(f"{shown} needs more memory for {what} than the {human_bytes(limit)} "
                          f"this machine has available{size}: use smaller sizes")
    return ValueError(
        f"{shown} needs {human_bytes(nbytes)} of memory for {what}, more than the "
        f"{human_bytes(limit)} this machine has available: use smaller sizes")


def check_fits(nbytes: float, argument: str, value: Any, what: str = "its weights") -> None:
    """Refuse ``nbytes`` (an estimate made before building) when it exceeds
    :func:`available_bytes`, naming ``argument`` and its ``value``."""
    limit = available_bytes()
    if nbytes > limit:
        raise _too_big(argument, value, nbytes, what, limit)


def _dims(size: Any) -> int | None:
    """The number of elements of a size argument (``None``: not a size)."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size,)
    if not isinstance(size, (tuple, list, torch.Size)) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in size):
        return None
    return math.prod(max(d, 0) for d in size)


def _numel(func: Any, args: tuple, kwargs: dict) -> int | None:
    """The number of elements the factory call ``func(*args, **kwargs)`` asks for."""
    if "size" in kwargs:
        return _dims(kwargs["size"])
    if not args:
        return None
    if func is torch.randint:
        return _dims(args[-1])
    if func is torch.eye:
        return _dims((args[0], args[1] if len(args) > 1 and isinstance(args[1], int) else args[0]))
    if func in (torch.full, torch.empty_strided) or not isinstance(args[0], int):
        return _dims(args[0])
    return _dims(tuple(a for a in args if isinstance(a, int)))  # torch.empty(2, 3)


class AllocationGuard(TorchFunctionMode):
    """Refuses tensors created from a size (``torch.empty((a, b))`` and its kin) whose
    bytes, added to those already created under the guard, exceed ``limit``.

    Args:
        limit: bytes allowed in all.
        blame: ``(argument, value)`` named in the error.
    """

    def __init__(self, limit: int, blame: tuple[str, Any]) -> None:
        super().__init__()
        self.limit, self.blame, self.total = limit, blame, 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        if func in _FACTORIES:
            n = _numel(func, args, kwargs)
            if n is not None:
                dtype = kwargs.get("dtype") or torch.get_default_dtype()
                nbytes = n * (dtype.itemsize if isinstance(dtype, torch.dtype) else 4)
                if self.total + nbytes > self.limit:
                    raise _too_big(*self.blame, self.total + nbytes,
                                   "its weights and buffers", self.limit)
                self.total += nbytes
        return func(*args, **kwargs)


def _largest(value: Any) -> float:
    """The largest number inside ``value`` (nested sequences and dicts)."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        return abs(float(value)) if math.isfinite(value) else 0.0
    if isinstance(value, (list, tuple)):
        return max((_largest(v) for v in value), default=0.0)
    if isinstance(value, dict):
        return max((_largest(v) for v in value.values()), default=0.0)
    return 0.0


def blamed_argument(arguments: dict[str, Any]) -> tuple[str, Any]:
    """The argument holding the largest number (the size that grew), and its value."""
    if not arguments:
        return "", None
    name = max(arguments, key=lambda k: _largest(arguments[k]))
    return name, arguments[name]


def guarded_init(init: Any, signature: Any) -> Any:
    """``init`` (a constructor) run under :func:`guarded_build` with its arguments."""

    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(_STATE, "active", False):
            return init(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs).arguments
        except TypeError:
            return init(self, *args, **kwargs)  # its own message about the call
        with guarded_build(dict(list(bound.items())[1:])):
            return init(self, *args, **kwargs)

    return run


@contextlib.contextmanager
def _address_space(limit: int) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``limit`` for the
    block (Linux, CPU only), so that an allocation the guard could not see coming
    fails at once instead of being granted by overcommit and killing the process when
    touched. Not with CUDA, whose driver reserves far more address space than it
    uses."""
    try:
        import resource

        with open("/proc/self/status") as fh:
            size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, StopIteration, ValueError):
        yield
        return
    cap = size + limit + 2**30  # 1 GiB of slack for mappings that are not data
    if torch.cuda.is_initialized() or (soft != resource.RLIM_INFINITY and soft <= cap) or (
            hard != resource.RLIM_INFINITY and hard < cap):
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _asked(err: BaseException) -> float:
    """The bytes an allocator's error says were asked for (``inf`` when it does not)."""
    found = re.search(r"allocate (\d+) bytes", str(err))
    return float(found.group(1)) if found else math.inf


@contextlib.contextmanager
def guarded_build(arguments: dict[str, Any]) -> Iterator[None]:
    """Build a model under an :class:`AllocationGuard` and a cap on the address space
    (the outermost constructor only: the layers it builds count in its total); an
    allocation failure inside becomes the same error, naming the argument."""
    if getattr(_STATE, "active", False):
        yield
        return
    blame, limit = blamed_argument(arguments), available_bytes()
    _STATE.active = True
    try:
        with _address_space(limit), AllocationGuard(limit, blame):
            yield
    except MemoryError as err:
        raise _too_big(*blame, _asked(err), "its weights and buffers", limit, alone=True) from None
    except RuntimeError as err:
        text = str(err).lower()
        if "alloc" not in text or "memory" not in text:
            raise
        raise _too_big(*blame, _asked(err), "its weights and buffers", limit, alone=True) from None
    finally:
        _STATE.active = False


def check_file_sizes(file: Any, name: str = "path", shown: str | None = None) -> None:
    """Refuse a model file whose records unpack to more than the memory available
    (a crafted zip of a few KB may claim terabytes), before ``torch.load`` reads it.
    A file that is not a zip archive is left to the loader's own message.

    Args:
        file: a path or a file opened for reading (read from its start, then put back
            at its start).
        name: the argument that gave the file.
        shown: the path shown in the message (default: ``file``).
    """
    try:
        with zipfile.ZipFile(file) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    finally:
        if hasattr(file, "seek"):
            file.seek(0)
    limit = available_bytes()
    if total > limit:
        raise ValueError(
            f"`{name}` {shown or file!r} is not a model file this machine can load: its "
            f"contents unpack to {human_bytes(total)}, more than the {human_bytes(limit)} of "
            "memory available")
