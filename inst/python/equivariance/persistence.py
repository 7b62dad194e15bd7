"""Saving and loading models: :func:`save_model` and :func:`load_model`.

One file holds what it takes to use a model again in another session: for the
package's own models, the architecture (the class and the arguments it was built
with), and for every model the weights, the buffers (batch-norm and quantile-map
running statistics), the modules' training flags and the class names.

The architecture is recorded when a model is built: the package's models and layers
are registered at their definition (:mod:`equivariance._registry`), under their
public name, and keep the arguments they were built with. A file records that name,
so moving a class to another module does not change what it holds. Saving builds a
fresh model from the arguments and compares its weights' names and shapes with the
model's, so a model changed after construction is saved with its weights only.

The file is written by ``torch.save`` and read by ``torch.load(weights_only=True)``:
it holds only plain containers, strings, numbers and tensors, so loading a file
runs no code from it. Classes are looked up in this package's registry by name,
never imported from a name found in the file (files of earlier versions, which
recorded module paths such as ``equivariance.networks.C4CNN``, are read by the
class name).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections import OrderedDict
from typing import Any, Union

import torch
from torch import nn

from ._files import atomic_writer, open_regular_file, output_path
from ._load_errors import load_failure
from ._registry import decode, lookup, public_name, recorded
from ._sizes import check_file_sizes
from .modes import preserved_modes
from .prediction import input_record, model_class_names, resolve_device, restore_input

__all__ = ["save_model", "load_model"]

FORMAT = "equivariance-model"
FORMAT_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


# -- the architecture --------------------------------------------------------------------


def _call_arguments(cls: type, arguments: dict) -> tuple[list, dict]:
    """``(args, kwargs)`` that call ``cls`` with the recorded ``{name: value}``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    args: list = []
    kwargs: dict = {}
    for p in params:
        if p.name not in arguments:
            continue
        value = arguments.pop(p.name)
        if p.kind is p.VAR_POSITIONAL:
            args.extend(value)
        elif p.kind is p.VAR_KEYWORD:
            kwargs.update(value)
        elif p.kind is p.POSITIONAL_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and has_varargs):
            args.append(value)
        else:
            kwargs[p.name] = value
    if arguments:
        raise ValueError(f"{cls.__name__} has no argument(s) {sorted(arguments)} recorded "
                         "in the model file")
    return args, kwargs


def architecture(model: nn.Module) -> tuple[dict | None, str | None]:
    """``(architecture, None)`` for a model that can be rebuilt, else ``(None, reason)``."""
    record = recorded(model)
    name = public_name(type(model))
    if name is None or record is None or record[0] is not type(model):
        return None, f"{type(model).__name__} is not one of the package's models"
    if isinstance(record[1], str):
        return None, record[1]
    arch = {"class": name, "arguments": record[1]}
    fresh = build(arch)
    with preserved_modes(model, "eval"), preserved_modes(fresh, "eval"):
        ours, theirs = _layout(model), _layout(fresh)
    if ours != theirs:
        return None, (f"its weights no longer match a {type(model).__name__} built with its "
                      "arguments (was it changed after construction?)")
    return arch, None


def _layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def build(arch: dict) -> nn.Module:
    """A new model from an architecture record; torch's random state is left untouched."""
    cls = lookup(arch["class"])
    arguments = decode(arch.get("arguments"))
    if not isinstance(arguments, dict):
        raise ValueError("malformed architecture in the model file")
    args, kwargs = _call_arguments(cls, arguments)
    # random initial weights are overwritten by the saved ones: do not consume the
    # user's random stream (reproducibility of what follows a save or a load)
    with torch.random.fork_rng(devices=[]):
        try:
            return cls(*args, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot build a {cls.__name__} from the arguments in the "
                             f"model file: {err}") from None


# -- files ---------------------------------------------------------------------------------


def _path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"`path` must be a file path (a string), got {type(path).__name__}")
    path = os.path.expanduser(os.fspath(path))
    if not path:
        raise ValueError("`path` must be a file path, got an empty string")
    return path


def save_model(model: nn.Module, path: PathLike) -> str:
    """Save a model to one file: architecture, weights, buffers, modes and class names.

    The package's models (``SimpleCNN``, ``EqCNN``, ``C4CNN``, the C4 layers, the
    quantile maps, ``EscnnC4CNN``) are saved with their class and constructor
    arguments, so :func:`load_model` rebuilds them. Any other module is saved with
    its weights and buffers only, to be loaded with ``load_model(path, model=m)``.
    The file is written to a temporary file in the same folder and renamed, so an
    interrupted save never leaves a damaged file at ``path``.

    Args:
        model: a torch module.
        path: the file to write (replaced if it exists).

    Returns:
        The path written (with ``~`` expanded).

    Raises:
        TypeError: ``model`` is not a torch module or ``path`` not a path.
        ValueError: ``path`` is a folder or its folder does not exist.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    path = output_path(path, "path")  # a file can be written there (see _files)
    arch, reason = architecture(model)
    if arch is None and public_name(type(model)) is not None:
        warnings.warn(f"saving the weights of this {type(model).__name__} only: {reason}; load "
                      "them with load_model(path, model=...)", stacklevel=2)
    contents = _contents(model, arch, reason)
    with atomic_writer(path) as fh:  # also removes hidden files of killed saves there
        torch.save(contents, fh)
    return path


def _contents(model: nn.Module, arch: dict | None, reason: str | None) -> dict:
    # escnn keeps different buffers in training and eval mode, and advises saving and
    # loading in eval mode: every file holds the eval-mode state dict
    with preserved_modes(model, "eval"):
        raw = model.state_dict()
    others = [k for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if others:  # a module's get_extra_state() may return any object
        raise ValueError(f"`model` has state that is not a tensor ({others[0]!r}), which a "
                         "model file cannot hold")
    state = {k: v.detach().cpu().clone() for k, v in raw.items()}
    # the modules' state-dict versions, which load_state_dict passes to their loaders
    metadata = {k: dict(v) for k, v in getattr(raw, "_metadata", {}).items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": arch,
        "no_architecture": reason,
        "model_class": type(model).__name__,
        "state_dict": state,
        "state_metadata": metadata,
        "training": [name for name, m in model.named_modules() if m.training],
        "class_names": model_class_names(model),
        **input_record(model),
        "torch_version": str(torch.__version__),  # a plain str: TorchVersion is a class
    }


def _read(path: str) -> dict:
    """The contents of a model file, or an error saying what the file is not: a FIFO
    or device is refused unread, a file whose contents would unpack beyond the memory
    available is refused before it is read."""
    with open_regular_file(path, "path") as fh:
        check_file_sizes(fh, "path", path)
        head = fh.read(64)
        fh.seek(0)
        try:
            with warnings.catch_warnings():  # torch's advice is not for our users
                warnings.simplefilter("ignore")
                contents = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure to read means "not our file"
            raise load_failure(err, path, head) from None
    if _plain_state_dict(contents):
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": None,
                "no_architecture": "a state dict: weights only", "state_dict": contents,
                "model_class": "model"}
    if not isinstance(contents, dict) or contents.get("format") != FORMAT:
        raise ValueError(f"`path` {path!r} is not a model file saved by save_model(): it is a "
                         "PyTorch file of another kind. load_model() reads the files that "
                         "save_model() writes, and files of weights only (a state dict)")
    version = contents.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"`path` {path!r} has no valid format version")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"`path` {path!r} was saved by a newer version of equivariance (file format "
            f"{version}; this version reads format {FORMAT_VERSION} and older): update the "
            "package to load it"
        )
    state = contents.get("state_dict")
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"`path` {path!r} holds no valid weights")
    return contents


def _plain_state_dict(contents: Any) -> bool:
    """A file of weights only: names to tensors (``torch.save(model.state_dict())``)."""
    return isinstance(contents, dict) and bool(contents) and "format" not in contents and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in contents.items())


def load_model(path: PathLike, model: nn.Module | None = None,
               map_location: Any = None) -> nn.Module:
    """Load a model saved by :func:`save_model`.

    Without ``model``, the package's models are rebuilt from the file; with
    ``model``, the weights and buffers are loaded into it (its own modules' names and
    shapes must match). Either way the class names saved with the model become its
    ``class_names``. The file is read with ``torch.load(weights_only=True)``: nothing
    in it is executed.

    Args:
        path: a file written by :func:`save_model`.
        model: ``None``, or a module of the same architecture to load into (needed
            for a module that is not one of the package's models).
        map_location: where to put the model: ``None`` (the CPU for a rebuilt
            model, where ``model`` is otherwise), ``"auto"``, ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"``, ``"mps"`` or a ``torch.device``.

    Returns:
        The model, with every module in the training mode it had when saved (a
        given ``model`` keeps its own modes).

    Raises:
        ValueError: nothing at ``path``, not a model file, a damaged or newer file, a
            file without architecture and no ``model``, or weights that do not fit
            ``model`` (which is then left unchanged).
        TypeError: ``path`` is not a path or ``model`` not a torch module.
    """
    path = _path(path)
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be None or a torch nn.Module, got {type(model).__name__}")
    device = resolve_device(map_location, "map_location")
    contents = _read(path)
    state = contents["state_dict"]
    if model is None:
        model = _rebuild(contents, path)
        training = set(contents.get("training") or [])
        modes = [(m, name in training) for name, m in model.named_modules()]
    else:
        modes = [(m, m.training) for m in model.modules()]
    try:
        _load_state(model, state, contents.get("state_metadata"), path)
    finally:
        _set_modes(modes)
    if device is not None:
        model.to(device)
    names = contents.get("class_names")
    if names is not None:
        model.class_names = list(names)
        model_class_names(model)  # checks them
    restore_input(model, contents)
    return model



def _rebuild(contents: dict, path: str) -> nn.Module:
    arch = contents.get("architecture")
    if arch is None:
        reason = contents.get("no_architecture") or "unknown reason"
        raise ValueError(
            f"`path` {path!r} holds the weights of a {contents.get('model_class', 'model')} "
            f"but not its architecture ({reason}): build the model and pass it as `model` "
            "to load the weights into it"
        )
    if not isinstance(arch, dict) or "class" not in arch:
        raise ValueError(f"`path` {path!r} has a malformed architecture")
    try:
        model = build(arch)
    except ValueError as err:
        raise ValueError(f"`path` {path!r}: {err}") from None
    floats = {v.dtype for v in contents["state_dict"].values() if v.is_floating_point()}
    if len(floats) == 1:
        model.to(floats.pop())  # a model saved in float64 comes back in float64
    return model


def _load_state(model: nn.Module, state: dict, metadata: Any, path: str) -> None:
    # in eval mode, where the file's state dict was taken (see _contents); the caller
    # puts the modes back, which lets mode-aware modules rebuild their caches
    state = OrderedDict(state)
    if isinstance(metadata, dict):
        state._metadata = OrderedDict(metadata)  # type: ignore[attr-defined]
    model.eval()
    _check_layout(model, state, path)
    model.load_state_dict(state, strict=True)


def _check_layout(model: nn.Module, state: dict, path: str) -> None:
    """Refuse weights that do not fit, before load_state_dict copies the ones that do."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in own if k not in theirs]
    problems += [f"unexpected {k}" for k in theirs if k not in own]
    problems += [f"{k} is {theirs[k]} in the file, {own[k]} in the model"
                 for k in own if k in theirs and own[k] != theirs[k]]
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ValueError(f"`model` does not match the weights in {path!r}: "
                         f"{'; '.join(problems[:5])}{more}")


def _set_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    # as equivariance.modes does: top-down through train(), which mode-aware modules
    # need (escnn's convolutions build their filter on eval())
    for module, flag in modes:
        if module.training != flag:
            module.train(flag)
