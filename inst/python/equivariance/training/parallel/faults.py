"""Faults of the worker processes of :func:`~equivariance.parallel_fit`: orphans and
which rank failed first.

**Orphans.** The ranks must not outlive their caller (an R session or a Python
process), however it ends: a SIGKILL runs no ``finally``. Two mechanisms, either
enough on Linux:

* ``torchrun`` is started with a parent-death signal (``prctl(PR_SET_PDEATHSIG)``):
  when the caller dies the kernel sends it SIGTERM, and it stops its ranks;
* every rank runs a watchdog thread (:class:`RankWatch`) that checks twice a
  second that the caller (its pid and start time, so a reused pid does not count)
  is still alive, and otherwise removes the job's folder and kills the job's
  process group (``torchrun`` and every rank).

**The rank that failed first.** When one rank fails, the others fail too, in their
next collective, with gloo's "Connection reset by peer" or "Timed out": those are
echoes. Each rank that fails writes ``error-RANK.json``; a rank that is still
running when another one fails writes ``report-RANK.json``, saying where its main
thread is (waiting for the others inside torch, or busy in code of its own: a hung
rank); a rank that left neither died without raising (a signal, ``os._exit``).
:func:`first_failure` reads them and names the cause.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["RankWatch", "caller_identity", "clean_stale_job_folders", "first_failure", "guarded",
           "record_error", "watch"]

#: The environment variable that tells the ranks who their caller is ("pid:start").
CALLER_ENV = "EQUIVARIANCE_CALLER"
_PR_SET_PDEATHSIG = 1
_TORCH_DIR = str(Path(__import__("torch").__file__).resolve().parent)
# words of gloo / c10d errors that a rank gets because ANOTHER rank failed
_ECHO_TYPES = ("DistBackendError", "DistNetworkError", "DistStoreError", "DistError")
_ECHO_WORDS = ("connection reset", "connection closed", "timed out", "timeout", "gloo",
               "broken pipe", "socket", "peer")


# -- who the caller is, and whether it lives ----------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), ``None`` when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in (b"Z", b"X"):  # a zombie has ended
        return "ended"
    return fields[19].decode()


def caller_identity(pid: int | None = None) -> str:
    """``"pid:start"`` of this (or process ``pid``), for :data:`CALLER_ENV`."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid) or ''}"


def caller_alive(identity: str) -> bool:
    """Whether the process ``identity`` (see :func:`caller_identity`) still runs."""
    pid_text, _, start = identity.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True  # not ours to judge
    now = _start_time(pid)
    if now is not None:
        return now != "ended" and (not start or now == start)
    try:
        os.kill(pid, 0)  # no /proc: the pid exists (or belongs to someone else)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Runs before torchrun, in the process that becomes it: asks the kernel for SIGTERM
# when the caller dies (Linux; kept across exec), exits if the caller is already
# gone, then replaces itself by torchrun. Not a preexec_fn: forking a process with
# threads (torch's, R's) and running Python in the child can deadlock.
_GUARD = """import ctypes, os, signal, sys
caller = int(sys.argv[1])
if sys.platform.startswith("linux"):
    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass
if os.getppid() != caller:
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def guarded(command: list[str]) -> list[str]:
    """``command`` (an interpreter and its arguments) started so that it receives
    SIGTERM when this process dies (see the module's text)."""
    return [command[0], "-c", _GUARD, str(os.getpid()), *command]


#: The file in a job's folder that names its caller (see :func:`clean_stale_job_folders`).
CALLER_FILE = "caller"
#: The prefix of the jobs' temporary folders.
JOB_PREFIX = "equivariance-workers-"


def clean_stale_job_folders(parent: str) -> list[str]:
    """Remove the job folders in ``parent`` whose caller has died: a caller killed
    before its ranks could clean up (torchrun stopped them first) leaves its folder
    behind; the next job removes it. Returns the names removed."""
    removed = []
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith(JOB_PREFIX) and e.is_dir()]
    except OSError:
        return removed
    for entry in entries:
        try:
            caller = Path(entry.path, CALLER_FILE).read_text().strip()
        except OSError:
            continue  # not marked (an older version's, or just being made): left alone
        if caller and not caller_alive(caller):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


# -- a rank's watchdog --------------------------------------------------------------------


def _main_thread_place() -> tuple[bool, str]:
    """``(waiting, where)``: whether the main thread is inside torch (waiting for the
    other ranks, as far as this process can tell) and the innermost frame of code
    outside torch it is in."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    innermost = frame
    while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
        frame = frame.f_back
    if frame is None:
        return True, "torch"
    code = frame.f_code
    where = f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"
    return innermost is not frame, where


class RankWatch(threading.Thread):
    """A rank's watchdog thread: ends the job when its caller has died, and reports
    where this rank is when another rank has failed.

    Args:
        folder: the job's folder (error and report files are written there).
        rank: this rank.
        caller: the caller's :func:`caller_identity` (``None``: no caller to watch).
        interval: seconds between checks.
    """

    def __init__(self, folder: Path, rank: int, caller: str | None, interval: float = 0.2):
        super().__init__(name="equivariance-rank-watch", daemon=True)
        self.folder, self.rank, self.caller, self.interval = folder, rank, caller, interval
        self.failed = False  # set by the rank when it raises: it reports by itself

    def run(self) -> None:
        reported = False
        while True:
            time.sleep(self.interval)
            if self.caller and not caller_alive(self.caller):
                self._end_job()
            if not reported and not self.failed and any(
                    p.name != f"error-{self.rank}.json" for p in self.folder.glob("error-*.json")):
                waiting, where = _main_thread_place()
                _write_json(self.folder / f"report-{self.rank}.json",
                            {"rank": self.rank, "waiting": waiting, "where": where})
                reported = True

    def _end_job(self) -> None:
        """The caller is gone: nobody will read the result. Remove the folder and kill
        the job's process group (torchrun and every rank, this one last)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:
            os._exit(1)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # readers never see half a file


def is_echo(kind: str, message: str) -> bool:
    """Whether an error is one a rank gets because another rank failed."""
    text = message.lower()
    return kind in _ECHO_TYPES or any(w in text for w in _ECHO_WORDS)


def record_error(folder: Path, rank: int, world: int, err: BaseException,
                 wait: float = 3.0) -> None:
    """Write ``error-RANK.json`` for ``err``; when it is an echo of another rank's
    failure, first give the other ranks up to ``wait`` seconds to report (their
    watchdogs see this file)."""
    kind, message = type(err).__name__, str(err)
    blame = getattr(err, "blame_rank", None)  # the rank whose data caused it, when known
    _write_json(folder / f"error-{rank}.json", {
        "rank": rank if blame is None else int(blame), "type": kind, "message": message,
        "echo": is_echo(kind, message), "time": time.time(), "written_by": rank})
    if not is_echo(kind, message):
        return
    deadline = time.monotonic() + wait
    others = [r for r in range(world) if r != rank]
    while time.monotonic() < deadline and not all(
            (folder / f"report-{r}.json").exists() or (folder / f"error-{r}.json").exists()
            for r in others):
        time.sleep(0.05)


def first_rank_with(ranks: Any, count: int) -> tuple[int | None, int]:
    """``(rank, its count)`` of the first rank whose ``count`` is not 0 (which rank's
    share of a batch held the NaN that made the global loss NaN), the same on every
    rank: a collective, so every rank must call it. ``(None, count)`` in one process.

    Args:
        ranks: the training's :class:`~equivariance.training.parallel.distributed.Ranks`.
        count: this rank's count.

    Returns:
        ``(rank, count)``, or ``(None, 0)`` when every count is 0.
    """
    if not ranks.active:
        return None, count
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.zeros(ranks.size, dtype=torch.int64, device=device)
    t[ranks.rank] = count
    dist.all_reduce(t)
    return next(((r, int(c)) for r, c in enumerate(t.cpu()) if c), (None, 0))


# -- the caller's reading ---------------------------------------------------------------------


def _read_all(folder: Path, pattern: str) -> dict[int, dict]:
    """The files matching ``pattern``, by the rank that wrote them."""
    found = {}
    for path in folder.glob(pattern):
        try:
            info = json.loads(path.read_text())
            found[int(info.get("written_by", info["rank"]))] = info
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _exception(kind: str, text: str) -> Exception:
    cls = {"ValueError": ValueError, "TypeError": TypeError,
           "FileNotFoundError": FileNotFoundError}.get(kind)
    return cls(text) if cls is not None else RuntimeError(text)


def _exit_of(log: str, rank: int) -> str:
    """How torchrun's log says ``rank`` ended ("killed by signal 9 (SIGKILL)"), or ""."""
    for found in re.finditer(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)", log):
        if int(found.group(1)) == rank:
            code = int(found.group(2))
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = "unknown"
                return f"killed by signal {-code} ({name})"
            return f"exit status {code}"
    return ""


def first_failure(folder: Path, workers: int, timeout: float, exit_status: int,
                  log: str = "") -> Exception:
    """The error that says which rank failed first and why (see the module's text).

    Args:
        folder: the job's folder.
        workers: the number of ranks.
        timeout: the job's ``timeout`` in seconds.
        exit_status: torchrun's exit status.
        log: torchrun's standard error (it says how each rank ended).

    Returns:
        The exception to raise in the caller.
    """
    errors, reports = _read_all(folder, "error-*.json"), _read_all(folder, "report-*.json")
    causes = sorted((e for e in errors.values() if not e.get("echo")),
                    key=lambda e: (e.get("time", 0), e["rank"]))
    if causes:
        e = causes[0]
        if e["type"] in ("ValueError", "TypeError", "FileNotFoundError"):
            return _exception(e["type"], f"rank {e['rank']} of {workers}: {e['message']}")
        return RuntimeError(f"rank {e['rank']} of {workers} failed with {e['type']}: "
                            f"{e['message']}")
    busy = sorted(r for r, info in reports.items() if not info.get("waiting"))
    if busy:
        r = busy[0]
        return RuntimeError(
            f"rank {r} of {workers} did not reach the other ranks within `timeout` = "
            f"{timeout:g} seconds: it was still busy in {reports[r]['where']} (hung, or "
            "slower than `timeout` allows: raise `timeout` if this work takes longer)")
    silent = [r for r in range(workers) if r not in errors and r not in reports]
    if errors and silent:
        r = silent[0]
        how = _exit_of(log, r) or "killed by a signal, out of memory, or os._exit()"
        return RuntimeError(
            f"rank {r} of {workers} ended without raising an error ({how}); the other ranks "
            "then lost their connection to it")
    if errors:
        e = min(errors.values(), key=lambda e: (e.get("time", 0), e["rank"]))
        if any(w in e["message"].lower() for w in ("timed out", "timeout")):
            return RuntimeError(
                f"the {workers} ranks did not all meet within `timeout` = {timeout:g} "
                f"seconds (rank {e['rank']}: {_first_line(e['message'])}): raise `timeout`")
        return RuntimeError(f"rank {e['rank']} of {workers} failed with {e['type']}: "
                            f"{e['message']}")
    return RuntimeError(f"the {workers} worker processes failed (exit status {exit_status}) "
                        "without an error from any rank")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines or [""])[0][:200]


def watch(folder: Path, rank: int) -> RankWatch:
    """Start this rank's :class:`RankWatch` (the caller from :data:`CALLER_ENV`)."""
    if sys.platform.startswith("linux"):
        try:  # the rank ends with torchrun, too
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    thread = RankWatch(folder, rank, os.environ.get(CALLER_ENV) or None)
    thread.start()
    return thread
