"""Training cases that test_distributed.py runs on 2 ranks under torchrun and in 1 process.

Run as ``torchrun --standalone --nproc-per-node 2 distributed_cases.py OUT``: every rank
trains every case with the same :func:`equivariance.fit` call and saves what it got
to ``OUT/rank<r>.pt``. The test builds the same cases in its own process with
``distributed=False`` and compares. Also a module the ranks of ``parallel_fit`` can
import (:class:`FailOnRank`).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import equivariance as eq
import torch
from torch import nn


def small_net() -> nn.Module:
    """A CNN without batch norm (nothing that differs between 1 process and 2 ranks)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3))


def data(n: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    # 37 images in batches of 8: the last batch of an epoch (5) splits unevenly, 3 + 2
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 12, 12, generator=gen), torch.randint(0, 3, (n,), generator=gen)


class Items(torch.utils.data.Dataset):
    """A map-style data set of the tensors of :func:`data` that counts what it reads."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.reads = x, y, []

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        self.reads.append(int(i))
        return self.x[i], int(self.y[i])


def case(name: str) -> tuple[nn.Module, dict]:
    """The model and the fit() arguments of case ``name``."""
    common = {"data": data(), "epochs": 4, "batch_size": 8, "lr": 1e-2, "seed": 3,
              "verbose": False, "device": "cpu"}  # 4 epochs of 5 steps: 20 Adam steps
    if name == "plain":
        return small_net(), common
    if name == "map_dataset":  # read item by item, each rank its own share
        return small_net(), dict(common, data=Items(*data()))
    if name == "regularized":
        model = small_net()
        # epsilon 0: the term is then linear in the points' errors, so the ranks' average
        # is the value on the whole batch; 5 points: 3 on rank 0, 2 on rank 1
        reg = eq.EquivarianceRegularizer(
            model, (1, 12, 12), [(eq.transforms.rot90(1), 0, 1.0),
                                 (eq.transforms.random_rot90(per_sample=False), 0, 0.5)],
            n=5, num_funcs=1)
        return model, dict(common, regularizer=reg)
    if name == "c4_sync_bn":
        torch.manual_seed(0)
        model = eq.C4CNN(1, 3, widths=(2, 2, 3))
        # mode "train": the regularizer's own passes use (synchronised) batch statistics
        reg = eq.EquivarianceRegularizer(model, (1, 12, 12), [(eq.transforms.rot90(1), 0, 1.0)],
                                         n=4, mode="train")
        return model, dict(common, epochs=1, regularizer=reg, sync_batchnorm=True)
    raise ValueError(name)


CASES = ("plain", "regularized", "c4_sync_bn", "map_dataset")


class FailOnRank:
    """An ``augment`` that raises (or hangs for ``hang`` seconds) on one rank only."""

    def __init__(self, rank: int, hang: float = 0.0) -> None:
        self.rank, self.hang = rank, hang

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if int(os.environ.get("RANK", "0")) == self.rank:
            if self.hang:
                time.sleep(self.hang)
            else:
                raise ValueError(f"bad shard on rank {self.rank}, on purpose")
        return x


class NanOnRank:
    """An ``augment`` that puts a NaN into the images of one rank only."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if int(os.environ.get("RANK", "0")) == self.rank:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return x


class KillRank:
    """An ``augment`` that kills its own process (SIGKILL: no error, no clean-up) on
    one rank."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if int(os.environ.get("RANK", "0")) == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)
        return x


class Slow:
    """An ``augment`` that writes ``pid ppid`` of its rank to ``folder/rank<r>`` and then
    takes ``seconds`` per batch: a training that runs until it is stopped."""

    def __init__(self, folder: str, seconds: float = 0.5) -> None:
        self.folder, self.seconds = folder, seconds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        path = os.path.join(self.folder, f"rank{os.environ.get('RANK', '0')}")
        if not os.path.exists(path):
            with open(path + ".tmp", "w") as fh:
                fh.write(f"{os.getpid()} {os.getppid()}")
            os.replace(path + ".tmp", path)
        time.sleep(self.seconds)
        return x


def _main(out: str) -> None:
    rank = int(os.environ["RANK"])
    results = {"loss_collectives": 0}
    mean = eq.training.parallel.distributed.Ranks.mean

    def counted(self, *values):  # a collective of its own for a step's loss
        results["loss_collectives"] += 1
        return mean(self, *values)

    eq.training.parallel.distributed.Ranks.mean = counted
    limit = eq.training.parallel.exchange.GATHER_LIMIT
    for name in CASES:
        # the regularized case averages its gradients with the all-reduce (as on CUDA
        # or for large buckets), the others with the all-gather
        eq.training.parallel.exchange.GATHER_LIMIT = 0 if name == "regularized" else limit
        model, args = case(name)
        source = args.pop("data")
        history = eq.fit(model, source, **args)
        x = data()[0][:6]
        with torch.no_grad():
            model.eval()
            turned = (model(x) - model(torch.rot90(x, 1, (2, 3)))).abs().max().item()
        results[name] = {"state": model.state_dict(), "history": history.as_dict(),
                         "modules": [type(m).__name__ for m in model.modules()],
                         "invariance": turned, "reads": getattr(source, "reads", None)}
    try:
        eq.fit(small_net(), data(), batch_size=7, verbose=False)
    except ValueError as err:
        results["odd_batch"] = str(err)
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))


if __name__ == "__main__":
    _main(sys.argv[1])
