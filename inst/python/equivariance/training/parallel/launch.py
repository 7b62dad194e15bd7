"""Run :func:`~equivariance.fit` or :func:`~equivariance.rotation_benchmark` on K local
processes (``torchrun``) and bring the result back to the calling process.

This is how R's ``fit_model(..., workers = K)`` works, and it serves Python users
who do not want to write a script for ``torchrun``: the arguments are saved to a
temporary folder, ``python -m torch.distributed.run --nproc-per-node K -m equivariance
worker FOLDER`` trains data-parallel (see :mod:`equivariance.distributed`), rank 0
saves the result, and the caller gets the same objects as from one process: the
model trained in place and a :class:`~equivariance.History`, or a
:class:`~equivariance.BenchmarkResult`.

A rank that raises writes its error to the folder; ``torchrun`` then stops the
other ranks, and the error is raised here, naming the rank that failed first (not
the ranks that then lost their connection to it). A rank that hangs makes the
others fail after ``timeout`` seconds in their next collective; the error names it
and where it was. The ranks end within a second when their caller dies, whatever
killed it (see :mod:`.faults`).
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..._validation import positive_int, positive_real
from .distributed import TIMEOUT_ENV
from .faults import (
    CALLER_ENV,
    CALLER_FILE,
    JOB_PREFIX,
    caller_identity,
    clean_stale_job_folders,
    first_failure,
    guarded,
    record_error,
    watch,
)

__all__ = ["parallel_fit", "parallel_rotation_benchmark"]

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])
TASK_FILE, RESULT_FILE = "task.pt", "result.pt"


# -- the calling process --------------------------------------------------------------------


def _check_port(port: Any) -> int | None:
    if port is None:
        return None
    port = positive_int(port, "port")
    if port > 65535:
        raise ValueError(f"`port` must be a TCP port from 1 to 65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ValueError(
                f"`port` {port} is already in use on 127.0.0.1: choose another port, or "
                "None to let torchrun pick a free one"
            ) from None
    return port


def _save_task(task: dict[str, Any], path: Path) -> None:
    """``torch.save`` of the task, or an error naming the argument that cannot travel."""
    try:
        torch.save(task, path)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        for name, value in task["args"].items():
            try:
                pickle.dumps(value)
            except Exception:
                raise ValueError(
                    f"`{name}` cannot be sent to the worker processes ({type(value).__name__} "
                    f"cannot be pickled: an R function or a lambda?); use workers = 1 or a "
                    "function defined in an importable Python module"
                ) from None
        raise ValueError(f"the arguments cannot be sent to the worker processes: {err}") from None


def _command(python: str, workers: int, port: int | None, folder: Path) -> list[str]:
    cmd = [python, "-m", "torch.distributed.run", "--nnodes=1",
           f"--nproc-per-node={workers}", "--max-restarts=0", "--monitor-interval=0.2"]
    if port is None:
        cmd.append("--standalone")
    else:
        cmd += ["--master-addr=127.0.0.1", f"--master-port={port}"]
    return cmd + ["-m", "equivariance", "worker", str(folder)]


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _echo(path: Path, offset: int, echo: Callable[[str], Any] | None = None) -> int:
    """Hand what rank 0 wrote to stdout since ``offset`` to ``echo`` (default: this
    process's ``sys.stdout``); returns the new offset.

    Polled from this thread: under R (reticulate) only the main thread may print, and
    R passes an ``echo`` that writes through R's own output (``cat``), which
    ``capture.output()``, ``sink()`` and knitr see; file descriptor 1 they do not.
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    if chunk:
        (echo or _print)(chunk.decode(errors="replace"))
    return offset + len(chunk)


def run_workers(task: dict[str, Any], workers: Any, *, timeout: Any = 600.0,
                port: Any = None, python: str | None = None,
                echo: Callable[[str], Any] | None = None) -> Any:
    """Run ``task`` on ``workers`` local ranks and return what rank 0 saved.

    Args:
        task: ``{"task": "fit" | "benchmark", "args": {...}}``.
        workers: number of processes, a whole number >= 1.
        timeout: seconds a rank waits for the others in a collective before failing.
        port: TCP port of the rendezvous on 127.0.0.1 (``None``: a free one).
        python: the Python interpreter that runs the ranks (default: this one).
        echo: called with each piece of rank 0's output (default: printed here).

    Returns:
        The result rank 0 saved.
    """
    workers = positive_int(workers, "workers")
    timeout = positive_real(timeout, "timeout")
    port = _check_port(port)
    python = sys.executable if python is None else str(python)
    clean_stale_job_folders(tempfile.gettempdir())  # left by callers that were killed
    with tempfile.TemporaryDirectory(prefix=JOB_PREFIX) as tmp:
        folder = Path(tmp)
        (folder / CALLER_FILE).write_text(caller_identity())
        _save_task(task, folder / TASK_FILE)
        env = dict(os.environ, **{TIMEOUT_ENV: repr(timeout), CALLER_ENV: caller_identity()})
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
        out, err = folder / "stdout.txt", folder / "stderr.txt"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(guarded(_command(python, workers, port, folder)), stdout=fo,
                                    stderr=fe, env=env, start_new_session=True)
            offset = 0
            try:
                while proc.poll() is None:
                    time.sleep(0.1)
                    offset = _echo(out, offset, echo)
            finally:
                if proc.poll() is None:  # interrupted (Ctrl-C in R): stop every rank
                    os.killpg(proc.pid, 15)
                    proc.wait()
        _echo(out, offset, echo)
        if proc.returncode != 0:
            log = err.read_text(errors="replace")
            error = first_failure(folder, workers, timeout, proc.returncode, log)
            if str(error).endswith("without an error from any rank"):
                tail = log.strip().splitlines()[-15:]
                error = RuntimeError(f"{error}:\n" + "\n".join(tail))
            raise error
        return torch.load(folder / RESULT_FILE, weights_only=False)


def parallel_fit(model: nn.Module, data: Any, workers: int = 2, *, timeout: float = 600.0,
                 port: int | None = None, python: str | None = None,
                 echo: Callable[[str], Any] | None = None, **kwargs: Any) -> Any:
    """:func:`~equivariance.fit` on ``workers`` local processes, data-parallel.

    The model is trained in place, as by ``fit``: the result is the same training as in
    one process (``batch_size`` is the global batch; it must be divisible by ``workers``).

    Args:
        model, data: as in :func:`~equivariance.fit`.
        workers: number of processes.
        timeout: seconds a rank waits for the others before the job fails.
        port: rendezvous port on 127.0.0.1 (``None``: a free one).
        python: the interpreter of the ranks (default: this one).
        echo: receives rank 0's progress output (default: printed on ``sys.stdout``).
        **kwargs: the other arguments of :func:`~equivariance.fit` (everything must be
            picklable: no R functions, no lambdas; no ``optimizer``).

    Returns:
        The :class:`~equivariance.History`, identical to the ranks'.
    """
    from ...data import as_tensors
    from ..loop import _on_device

    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if kwargs.get("optimizer") is not None:
        raise ValueError("`optimizer` cannot be used with workers > 1: each process builds "
                         "its own Adam optimizer (give `lr`)")
    x, y = as_tensors(data, "data")
    args = dict(kwargs, model=model, data=(x, y))
    out = run_workers({"task": "fit", "args": args}, workers, timeout=timeout, port=port,
                      python=python, echo=echo)
    _on_device(model, kwargs.get("device", "auto"))  # where fit() leaves a model
    model.load_state_dict(out["state"])
    for name, value in out["attributes"].items():  # what fit() records on the model
        setattr(model, name, value)
    return out["history"]


def parallel_rotation_benchmark(workers: int = 2, *, timeout: float = 600.0,
                                port: int | None = None, python: str | None = None,
                                echo: Callable[[str], Any] | None = None,
                                **kwargs: Any) -> Any:
    """:func:`~equivariance.rotation_benchmark` on ``workers`` local processes.

    Args:
        workers, timeout, port, python, echo: as in :func:`parallel_fit`.
        **kwargs: the arguments of :func:`~equivariance.rotation_benchmark`; ``csv`` is
            written here, by the calling process.

    Returns:
        The :class:`~equivariance.BenchmarkResult`; ``nn.Module`` s given in ``models``
        are trained in place.
    """
    from ...benchmark import _csv_path

    csv = kwargs.pop("csv", None)
    csv = None if csv is None else _csv_path(csv)
    result = run_workers({"task": "benchmark", "args": kwargs}, workers, timeout=timeout,
                         port=port, python=python, echo=echo)
    models = kwargs.get("models")
    if isinstance(models, dict):
        for label, value in models.items():
            if isinstance(value, nn.Module):
                value.load_state_dict(result.models[label].state_dict())
                result.models[label] = value
    if csv is not None:
        result.to_csv(csv)
    return result


# -- a rank ---------------------------------------------------------------------------------


def worker_main(folder: str) -> None:
    """What every rank runs: the task saved in ``folder``; rank 0 saves the result, a
    rank that raises writes ``error-RANK.json`` before failing."""
    from ...benchmark import rotation_benchmark
    from ..loop import fit

    path = Path(folder)
    rank = int(os.environ.get("RANK", "0"))
    watchdog = watch(path, rank)  # ends the job if the caller dies; reports if another rank fails
    try:
        task = torch.load(path / TASK_FILE, weights_only=False)
        args = task["args"]
        if task["task"] == "fit":
            model = args.pop("model")
            history = fit(model, args.pop("data"), **args)
            result: Any = {"state": model.state_dict(), "history": history, "attributes": {
                k: getattr(model, k) for k in ("class_names", "input_shape", "input_range")
                if hasattr(model, k)}}
        else:
            result = rotation_benchmark(**args)
    except BaseException as err:
        watchdog.failed = True
        record_error(path, rank, int(os.environ.get("WORLD_SIZE", "1")), err)
        raise
    if rank == 0:
        torch.save(result, path / RESULT_FILE)
