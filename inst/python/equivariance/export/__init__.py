"""Deploying a model: a plain PyTorch network (:func:`export_model`) and ONNX
(:func:`save_onnx`).

- :mod:`.plain`: plain replacements of the package's layers and models;
- :mod:`.graph`: tracing, batch-norm folding, metadata;
- :mod:`.onnx_file`: the ONNX file (needs the optional extra ``equivariance[onnx]``).
"""

from __future__ import annotations

from .graph import read_metadata
from .model import export_model
from .onnx_file import save_onnx
from .plain import ExportError

__all__ = ["ExportError", "export_model", "read_metadata", "save_onnx"]
