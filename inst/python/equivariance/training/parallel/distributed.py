"""Data-parallel training with ``torch.distributed``: what :func:`~equivariance.fit`
needs to run the same training on one process or on K ranks.

The contract: ``batch_size`` is the global batch. Every rank draws the same permutation
of the data each epoch (the same seed), takes every K-th image of each global batch
(:meth:`Ranks.shard`), and weights its losses so that the average over ranks that
``DistributedDataParallel`` takes equals the loss of the whole global batch. With
equal shards the weights are exactly 1, so 1 process and K ranks differ only by
floating-point rounding. Batch norm layers can be synchronised
(:class:`SyncFieldBatchNorm`): their statistics are then those of the global batch,
as in one process, and are still pooled over each regular field, so C4 and D4 layers
stay equivariant.

The regularizer's random draws (which transforms, which angles) come from a generator
shared by all ranks and re-seeded at each step (:func:`shared_draws`), so every rank
makes the same draws whatever the size of its shard, and a single process makes the
same draws as K ranks. Augmentation and dropout keep each rank's own stream.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import gc
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..._validation import flag, optional_flag, positive_real
from .exchange import StepExchange
from .sync_batchnorm import sync_batchnorm

__all__ = [
    "distributed_ranks",
    "init_distributed",
    "is_main_process",
    "launched_by_torchrun",
]

#: Seconds a collective waits for the other ranks before failing (the process group's
#: timeout); the R and Python launchers pass theirs to the ranks through this variable.
TIMEOUT_ENV = "EQUIVARIANCE_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 600.0

# odd 64-bit constants (golden ratio, splitmix64) that spread seeds apart
_GOLDEN = 0x9E3779B97F4A7C15
_DRAWS = 0xBF58476D1CE4E5B9
_MASK = 2**64 - 1


# -- where we are ---------------------------------------------------------------------------


def launched_by_torchrun() -> bool:
    """True when the environment of ``torchrun`` (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) says this process is one rank of a job."""
    return all(os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def _timeout(value: Any) -> float:
    if value is None:
        env = os.environ.get(TIMEOUT_ENV, "").strip()
        if not env:
            return DEFAULT_TIMEOUT
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"the environment variable {TIMEOUT_ENV} must be a number of "
                             f"seconds, got {env!r}") from None
    return positive_real(value, "timeout")


def _bind_to_own_cores() -> list[int] | None:
    """Bind this rank to its own share of the machine's cores (CPU training only).

    Ranks that compute on the CPU meet at every collective (synchronised batch norm
    alone makes two per layer and step); left to the scheduler, one rank's threads
    and the other's communication threads land on the same core and every meeting
    waits for the slowest. Like ``torchrun --numa-binding`` does for GPUs, local rank
    ``r`` of ``L`` then runs on the ``r``-th of ``L`` equal, disjoint slices of the
    cores; threads started afterwards (gloo's, the intra-op pool's) inherit it. A
    rank that is already bound to fewer than all cores (``taskset``, ``numactl``, a
    cpuset) is left as it is, and so is a machine with fewer cores than local ranks.

    Returns:
        The cores this rank now runs on, or ``None`` when it was left as it is.
    """
    try:
        local, size = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
        cores = sorted(os.sched_getaffinity(0))
    except (KeyError, ValueError, AttributeError):  # not torchrun's, or not Linux
        return None
    if size < 2 or not 0 <= local < size or len(cores) < size or len(cores) != os.cpu_count():
        return None
    share = len(cores) // size
    mine = cores[local * share:(local + 1) * share]
    os.sched_setaffinity(0, mine)
    return mine


def _leave_at_exit() -> None:
    """Destroy the process group :func:`init_distributed` created, before the
    interpreter's teardown: a gloo group left to it aborts the process ("terminate
    called without an active exception") in about one exit out of three, which
    ``torchrun`` reports as a failed job. A ``DistributedDataParallel`` caught in a
    reference cycle still holds the group, hence the collection first."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def init_distributed(backend: str | None = None, timeout: float | None = None) -> bool:
    """Initialise the default process group from ``torchrun``'s environment, if needed.

    Args:
        backend: ``"nccl"``, ``"gloo"`` or ``None``: with CUDA, ``nccl`` for CUDA
            tensors and ``gloo`` for CPU tensors (a model kept on the CPU still
            trains); without, ``gloo``.
        timeout: seconds a collective waits for the other ranks (``None``: the
            ``EQUIVARIANCE_DIST_TIMEOUT`` variable, else 600): a rank that fails stops
            the others within this time.

    On the CPU (gloo only), each local rank is first bound to its own slice of the
    cores, unless it is bound already (see :func:`_bind_to_own_cores`). A group this
    function creates is destroyed when the interpreter exits.

    Returns:
        True when a process group is (now) initialised, False outside ``torchrun``.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if not (dist.is_available() and launched_by_torchrun()):
        return False
    if backend not in (None, "nccl", "gloo"):
        raise ValueError(f'`backend` must be "nccl", "gloo" or None, got {backend!r}')
    seconds = _timeout(timeout)
    if torch.cuda.is_available() and backend != "gloo":
        # one GPU per rank: "cuda" (device = "auto") then means this rank's GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = backend or "cpu:gloo,cuda:nccl"
    else:
        _bind_to_own_cores()
    dist.init_process_group(backend or "gloo", timeout=datetime.timedelta(seconds=seconds))
    atexit.register(_leave_at_exit)
    return True


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True outside a distributed job and on its rank 0 (also before :func:`fit` joins
    the job ``torchrun`` started): the process that prints and writes files."""
    if not (dist.is_available() and dist.is_initialized()) and launched_by_torchrun():
        return os.environ["RANK"] == "0"
    return _world()[0] == 0


# -- one training's view of the ranks -------------------------------------------------------


@dataclass(frozen=True)
class Ranks:
    """The ranks one :func:`~equivariance.fit` call trains on (``Ranks()``: one process)."""

    rank: int = 0
    size: int = 1

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ValueError(
                f"`batch_size` ({batch_size}) is the global batch and must be divisible by "
                f"the number of ranks ({self.size}): each rank takes batch_size / "
                f"{self.size} images per step"
            )

    def shard(self, index: torch.Tensor) -> torch.Tensor | None:
        """This rank's part of a global batch: every ``size``-th position from ``rank``.

        ``None`` for a global batch smaller than the number of ranks (the last one of
        an epoch, at most): a rank without images could not take part in the step.
        """
        if index.shape[0] < self.size:
            return None
        return index[self.rank :: self.size]

    def points(self, m: int) -> int:
        """How many of the first ``m`` positions of a global batch fall in this shard."""
        return len(range(self.rank, m, self.size))

    def weight(self, part: int, whole: int) -> float:
        """The factor that makes the ranks' average of a mean over ``part`` items equal
        the mean over all ``whole`` items (exactly 1.0 for equal shards)."""
        return 1.0 if part * self.size == whole else part * self.size / whole

    def mean(self, *values: float) -> tuple[float, ...]:
        """The average of each value over the ranks (the same result on every rank)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return tuple(float(v) / self.size for v in t.cpu())

    def total(self, *values: float) -> tuple[float, ...]:
        """The sum of each value over the ranks (counts of the epoch's metrics)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return tuple(float(v) for v in t.cpu())

    def slowest(self, seconds: float) -> float:
        """The longest of the ranks' ``seconds`` (an epoch lasts as long as its slowest
        rank), the same on every rank."""
        if not self.active:
            return seconds
        t = torch.tensor([seconds], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def broadcast_seed(self, seed: int) -> int:
        """Rank 0's ``seed`` on every rank."""
        if not self.active:
            return seed
        t = torch.tensor([seed - 2**63], dtype=torch.int64, device=_collective_device())
        dist.broadcast(t, 0)
        return int(t.item()) + 2**63


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def distributed_ranks(distributed: Any = None) -> Ranks:
    """The ranks to train on, initialising the process group under ``torchrun``.

    Args:
        distributed: ``None`` (default): data-parallel when this process was started by
            ``torchrun`` or ``torch.distributed`` is initialised with more than one rank;
            ``False``: one process, whatever the environment; ``True``: data-parallel,
            an error when there is no job to join.

    Returns:
        A :class:`Ranks`.
    """
    wanted = optional_flag(distributed, "distributed")
    if wanted is False:
        return Ranks()
    if not init_distributed():
        if wanted:
            raise ValueError(
                "`distributed` is True but this process was not started by torchrun and "
                "torch.distributed is not initialised: launch it with `torchrun "
                "--nproc-per-node K ...` or call torch.distributed.init_process_group() first"
            )
        return Ranks()
    rank, size = _world()
    return Ranks(rank, size)


# -- random draws ---------------------------------------------------------------------------


def shared_seed(ranks: Ranks, seed: int | None) -> int | None:
    """``seed``, or in a job without one, a seed drawn by rank 0 and sent to every rank:
    the ranks must agree on everything the seed decides (a validation split, the order
    of the data), whatever the state of their generators."""
    if seed is None and ranks.active:
        return ranks.broadcast_seed(int(torch.randint(2**62, ()).item()))
    return seed


def training_generators(ranks: Ranks, seed: int | None) -> tuple[torch.Generator, torch.Generator]:
    """The generators of one training: the epochs' orders and the regularizer's draws.

    With ``seed``, torch's global generator is seeded too: with ``seed`` on rank 0 (as in
    one process) and a seed of its own on every other rank, so that augmentation and
    dropout differ between shards. Without (in one process only, see
    :func:`shared_seed`), both are seeded from torch's global generator.

    Returns:
        ``(order, draws)``: the same on every rank.
    """
    if seed is not None:
        torch.manual_seed(seed if ranks.main else (seed + ranks.rank * _GOLDEN) & _MASK)
        base = seed
    else:
        base = int(torch.randint(2**62, ()).item())
    order, draws = torch.Generator(), torch.Generator()
    order.manual_seed(base)
    draws.manual_seed((base ^ _DRAWS) & _MASK)
    return order, draws


@contextlib.contextmanager
def shared_draws(draws: torch.Generator, device: torch.device) -> Iterator[None]:
    """Run the block with torch's global generator (CPU, and ``device`` if CUDA) seeded
    from ``draws``, then give the global generator back its own state.

    One seed per step, from a generator that every rank advances alike: the block's
    draws are the same on every rank and at every number of ranks, however many numbers
    each rank's block consumes.
    """
    step_seed = int(torch.randint(2**62, (), generator=draws).item())
    cpu = torch.get_rng_state()
    cuda = device.type == "cuda"
    index = device.index if device.index is not None else torch.cuda.current_device() if cuda else 0
    accel = torch.cuda.get_rng_state(index) if cuda else None
    torch.default_generator.manual_seed(step_seed)
    if cuda:
        torch.cuda.default_generators[index].manual_seed(step_seed)
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if accel is not None:
            torch.cuda.set_rng_state(accel, index)


# -- the model as DDP trains it -------------------------------------------------------------

# whether DDP copies rank 0's buffers at every forward pass: renamed in torch 2.13
_SYNC_BUFFERS = ("forward_sync_buffers" if "forward_sync_buffers" in
                 inspect.signature(nn.parallel.DistributedDataParallel).parameters
                 else "broadcast_buffers")


@contextlib.contextmanager
def data_parallel(model: nn.Module, ranks: Ranks, sync: Any = True,
                  exchange: StepExchange | None = None) -> Iterator[nn.Module]:
    """The module a training step calls: ``model`` itself in one process, else
    ``model`` (its batch norm synchronised when ``sync``) wrapped in
    ``DistributedDataParallel``, which starts from rank 0's parameters and buffers
    and averages the gradients over the ranks.

    After a block that ends normally every rank holds rank 0's buffers, so the ranks
    end with the same model. Other forward passes (the regularizer's) may call
    ``model`` directly: their gradients reach the same parameters and are averaged by
    the same backward pass. With ``exchange``, the gradients are averaged by its
    communication hook (:class:`~equivariance.exchange.StepExchange`), which also
    carries the step's loss.
    """
    sync = flag(sync, "sync_batchnorm")
    if not ranks.active:
        yield model
        return
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with sync_batchnorm(model) if sync else contextlib.nullcontext(model):
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None,
            **{_SYNC_BUFFERS: not sync},  # synchronised statistics are equal anyway
        )
        if exchange is not None:
            ddp.register_comm_hook(exchange, StepExchange.hook)
        try:
            yield ddp
        finally:
            del ddp  # its reducer removes the gradient hooks
    for b in model.buffers():
        dist.broadcast(b, 0)


# -- one training's plan, one step's share --------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One step's part of the global batch on this rank (in one process: all of it).

    ``DistributedDataParallel`` averages the ranks' gradients, so every mean this rank
    computes is weighted by its part of the global batch (:meth:`Ranks.weight`; exactly
    1 for equal parts): the average is then the mean over the global batch.
    """

    index: torch.Tensor | None  # this rank's positions in the data (None: train_step)
    size: int  # images on this rank
    total: int  # images in the global batch
    ranks: Ranks = Ranks()
    draws: torch.Generator | None = None
    exchange: StepExchange | None = None

    @classmethod
    def whole(cls, size: int) -> Share:
        """All of a batch of ``size`` images, in one process."""
        return cls(None, size, size)

    def points(self, n: int) -> tuple[int, float]:
        """The regularizer's points on this rank, and their weight.

        The points of the global batch are its first ``min(n, total)`` images; this rank
        takes those of its shard. A rank with none still runs the regularizer on one
        image, weighted 0: every rank makes the same forward passes, which synchronised
        batch norm needs.
        """
        m = min(n, self.total)
        part = self.ranks.points(m)
        return max(part, 1), self.ranks.weight(part, m)

    @property
    def loss_weight(self) -> float:
        """The weight of this rank's mean loss (:meth:`Ranks.weight` of its part)."""
        return self.ranks.weight(self.size, self.total)

    def weighted(self, loss: torch.Tensor, reg: torch.Tensor | None, reg_weight: float
                 ) -> torch.Tensor:
        """The tensor to differentiate: the weighted loss plus the weighted regularizer."""
        w = self.loss_weight
        total = loss if w == 1.0 else loss * w
        if reg is None:
            return total
        return total + (reg if reg_weight == 1.0 else reg * reg_weight)

    def post(self, loss: torch.Tensor, reg: torch.Tensor | None, reg_weight: float) -> None:
        """Hand the step's loss and regularizer value to the gradient exchange before
        the backward pass: they then reach every rank with the gradients."""
        if self.exchange is not None:
            w = self.loss_weight
            r = loss.new_zeros(()) if reg is None else reg.detach().to(loss) * reg_weight
            self.exchange.post(torch.stack([loss.detach() * w, r]))

    def means(self, loss: float, reg: float, reg_weight: float) -> tuple[float, float]:
        """The global batch's loss and regularizer value, the same on every rank: those
        the backward pass brought (:meth:`post`), else from a collective."""
        carried = None if self.exchange is None else self.exchange.take()
        if carried is not None:
            return float(carried[0]) / self.ranks.size, float(carried[1]) / self.ranks.size
        return self.ranks.mean(loss * self.loss_weight, reg * reg_weight)

    def shared_draws(self, device: torch.device) -> contextlib.AbstractContextManager:
        """:func:`shared_draws` for this step (nothing special outside :func:`fit`)."""
        if self.draws is None:
            return contextlib.nullcontext()
        return shared_draws(self.draws, device)


@dataclass
class Parallel:
    """How one :func:`~equivariance.fit` call shares its work among the ranks.

    Attributes:
        ranks: the :class:`Ranks`.
        seed: the training's seed (see :func:`shared_seed`).
        order, draws: see :func:`training_generators`.
        exchange: the gradient exchange of the DDP model (``None`` in one process).
    """

    ranks: Ranks
    seed: int | None
    order: torch.Generator
    draws: torch.Generator
    exchange: StepExchange | None = None

    @classmethod
    def start(cls, distributed: Any, batch_size: int, seed: int | None) -> Parallel:
        """Join the job (if any), check ``batch_size``, seed the generators."""
        ranks = distributed_ranks(distributed)
        ranks.check_batch_size(batch_size)
        seed = shared_seed(ranks, seed)
        exchange = StepExchange(ranks.size) if ranks.active else None
        return cls(ranks, seed, *training_generators(ranks, seed), exchange)

    def share(self, index: torch.Tensor) -> Share | None:
        """This rank's share of the global batch at positions ``index`` of the data
        (``None``: the batch is too small to share, see :meth:`Ranks.shard`)."""
        part = self.ranks.shard(index)
        if part is None:
            return None
        return Share(part, part.shape[0], index.shape[0], self.ranks, self.draws, self.exchange)

    def wrap(self, model: nn.Module, sync_batchnorm: Any) -> contextlib.AbstractContextManager:
        """:func:`data_parallel` for this training."""
        return data_parallel(model, self.ranks, sync_batchnorm, self.exchange)
