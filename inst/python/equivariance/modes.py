"""Train/eval modes of a model and every module inside it, saved and restored.

Every function of the package that switches a model's mode (evaluation, feature maps,
training, the checks) goes through :func:`preserved_modes`, so that:

* every module's ``training`` flag is restored, not only the top module's: a batch
  norm the user froze with ``.eval()`` inside a training model comes back frozen;
* flags are changed through ``Module.train()``, never by assigning ``.training``:
  some modules do work there (escnn's ``R2Conv`` caches its expanded filter on
  ``eval()`` and drops it on ``train()``), and skipping it would leave a stale cache;
* ``"train"`` mode leaves frozen modules frozen (see :func:`training_targets`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ["mode_dependent_modules", "preserved_modes", "training_targets"]

_MODES = ("train", "eval")

_MODE_DEPENDENT = (_DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout, _BatchNorm)


def mode_dependent_modules(model: nn.Module) -> list[str]:
    """Names of the submodules whose output may differ between training and eval mode.

    Dropout and batch norm layers, instance norms and any other module tracking running
    statistics, and escnn's dropout/batch-norm modules (recognized by class name).

    Args:
        model: any ``nn.Module``.

    Returns:
        The names (as in ``named_modules()``; the class name for the model itself).
    """
    found = []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if (
            isinstance(m, _MODE_DEPENDENT)
            or (isinstance(m, _InstanceNorm) and m.track_running_stats)
            or getattr(m, "track_running_stats", False) is True
            or "Dropout" in kind
            or "BatchNorm" in kind
        ):
            found.append(name or kind)
    return found


def training_targets(model: nn.Module) -> dict[nn.Module, bool]:
    """The flag of every module in training: ``model.train()`` minus the frozen ones.

    A module is frozen when the user put it in eval mode inside a parent in training
    mode (``model.bn.eval()``); it keeps its flag, and so does everything below it. A
    model whose top module is in eval mode (``model.eval()``) has nothing frozen: it
    trains as ``model.train()`` would.

    Args:
        model: the model about to be trained.

    Returns:
        ``{module: flag}`` for every module of ``model``.
    """
    targets: dict[nn.Module, bool] = {}

    def visit(module: nn.Module, parent_training: bool, parent_frozen: bool) -> None:
        if module in targets:  # a module shared by two parents: first path wins
            return
        frozen = parent_frozen or (parent_training and not module.training)
        targets[module] = module.training if frozen else True
        for child in module.children():
            visit(child, module.training, frozen)

    visit(model, parent_training=False, parent_frozen=False)
    return targets


def _apply(model: nn.Module, flags: dict[nn.Module, bool]) -> None:
    # Top-down: `train()` recurses, so a parent is switched before its children and
    # a child whose flag differs from its parent's is switched back afterwards.
    for module in model.modules():
        flag = flags.get(module)
        if flag is not None and module.training != flag:
            module.train(flag)


@contextlib.contextmanager
def preserved_modes(model: nn.Module, mode: str | None = None) -> Iterator[nn.Module]:
    """Run a block with ``model`` in ``mode``; every module's flag is restored after it.

    Args:
        model: an ``nn.Module``.
        mode: ``None`` (leave the modes as they are), ``"eval"`` (every module in eval
            mode) or ``"train"`` (training mode except frozen modules, see
            :func:`training_targets`).

    Returns:
        A context manager yielding ``model``.

    Example:
        >>> with preserved_modes(model, "eval"):
        ...     logits = model(x)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if mode is not None and mode not in _MODES:
        raise ValueError(f'`mode` must be None, "train" or "eval", got {mode!r}')
    saved = {m: m.training for m in model.modules()}
    try:
        if mode == "eval":
            model.eval()
        elif mode == "train":
            _apply(model, training_targets(model))
        yield model
    finally:
        _apply(model, saved)
