"""The ONNX file of an exported network: :func:`save_onnx`.

Written with the exporter that torch recommends (``torch.onnx.export(dynamo=True)``,
which needs ``onnxscript``), with a dynamic batch dimension, the class names and the
input shape in the model's ``metadata_props``, and checked in ONNX Runtime against
PyTorch before it replaces ``path``. onnx, onnxscript and onnxruntime are the
optional extra ``equivariance[onnx]``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .._files import atomic_writer
from .._validation import flag, output_file, positive_int
from .model import export_model

__all__ = ["ONNX_EXTRA", "save_onnx"]

#: the optional packages save_onnx needs
ONNX_EXTRA = ("onnx", "onnxscript", "onnxruntime")


def _require_extra() -> dict:
    missing, found = [], {}
    for name in ONNX_EXTRA:
        try:
            found[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"save_onnx needs the optional packages {', '.join(ONNX_EXTRA)}; missing: "
            f"{', '.join(missing)}. Install the extra: pip install \"equivariance[onnx]\" "
            f"(or pip install {' '.join(ONNX_EXTRA)} in the Python that equivariance uses)")
    return found


def save_onnx(model: nn.Module, path: Any, input_shape: Any = None, opset_version: Any = None,
              check: bool = True) -> str:
    """Write ``model`` as an ONNX file, through :func:`export_model`.

    The batch dimension is dynamic; height and width are fixed to ``input_shape`` (the
    pooling of the group networks depends on their parity). The class names
    (``class_names``, JSON) and ``input_shape`` (JSON) are in the file's
    ``metadata_props``. The file is written next to ``path`` and renamed, so an
    interrupted save leaves no damaged file.

    Args:
        model: a model :func:`export_model` accepts, or a network it returned.
        path: the ``.onnx`` file to write (replaced if it exists), in an existing folder.
        input_shape: the shape of one input without the batch dimension, e.g.
            ``(1, 28, 28)``; ``None``: the model's ``input_shape`` (set by ``fit``).
        opset_version: the ONNX opset, a whole number, or ``None`` for the exporter's
            default.
        check: run the file in ONNX Runtime and compare it with PyTorch (to 1e-4)
            before writing it, True or False.

    Returns:
        The path written (``~`` expanded).

    Raises:
        ImportError: onnx, onnxscript or onnxruntime is missing (the extra
            ``equivariance[onnx]``).
        ValueError: ``path``'s folder does not exist, or ``path`` is a folder; no input
            shape is known; the ONNX file disagrees with PyTorch.
        TypeError: see :func:`export_model`.
    """
    path = output_file(path, "path")
    check = flag(check, "check")
    if opset_version is not None:
        opset_version = positive_int(opset_version, "opset_version")
    mods = _require_extra()
    net = export_model(model, input_shape=input_shape)
    if net.input_shape is None:
        raise ValueError("`input_shape` is needed: the model has no `input_shape` (fit sets "
                         "it); give the shape of one input, e.g. (1, 28, 28)")
    net = net.cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        example = torch.rand(2, *net.input_shape, dtype=_dtype(net))
    proto = _export(net, example, opset_version)
    meta = {"class_names": json.dumps(net.class_names),
            "input_shape": json.dumps(list(net.input_shape)),
            "producer": "equivariance export_model"}
    mods["onnx"].helper.set_model_props(proto, meta)
    data = proto.SerializeToString()
    if check:
        _check(mods["onnxruntime"], data, net, example)
    _write(path, data)
    return path


def _dtype(net: nn.Module) -> torch.dtype:
    return next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)


def _export(net: nn.Module, example: torch.Tensor, opset_version: Any) -> Any:
    """The ONNX ``ModelProto`` of ``net``, its batch dimension dynamic (torch's dynamo
    exporter; its progress lines and warnings are kept out of the user's console)."""
    batch = torch.export.Dim("batch")
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
        try:
            program = torch.onnx.export(net, (example,), dynamo=True, verbose=False,
                                        input_names=["images"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},),
                                        opset_version=opset_version, external_data=False)
        finally:
            logger.setLevel(level)
    return program.model_proto


def _check(ort: Any, data: bytes, net: nn.Module, example: torch.Tensor) -> None:
    """Raise unless ONNX Runtime gives PyTorch's output on ``example`` (to 1e-4)."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    with torch.no_grad():
        want = net(example).numpy()
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise ValueError("the ONNX file does not reproduce the network (largest difference "
                         f"{np.abs(got - want).max():.3g}); nothing was written")


def _write(path: str, data: bytes) -> None:
    # a locked hidden file renamed at the end; stale ones of killed saves are removed
    with atomic_writer(path) as f:
        f.write(data)
