"""The flat public API: a literal ``__all__`` of documented, user-facing names."""

import ast
import importlib
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import equivariance as eq

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "inst" / "python" / "equivariance"

#: helpers importable from the package for the R layer and the tests, not exported
PLUMBING = {"read_idx", "write_idx", "as_tensors", "make_subset", "memory_grew",
            "release_free_memory", "release_memory_after_steps", "reset_memory_floor",
            "mode_dependent_modules"}


def test_all_is_written_out_literally_without_duplicates():
    tree = ast.parse((CORE / "__init__.py").read_text())
    literal = [node.value for node in tree.body if isinstance(node, ast.Assign)
               and any(getattr(t, "id", None) == "__all__" for t in node.targets)]
    assert len(literal) == 1 and isinstance(literal[0], ast.List)
    names = [ast.literal_eval(element) for element in literal[0].elts]
    assert names == eq.__all__
    assert len(names) == len(set(names))
    assert not PLUMBING & set(names)


def test_every_public_name_resolves_and_is_documented():
    for name in eq.__all__:
        if name == "escnn_models":
            continue  # imports escnn; checked in test_escnn_models_is_exported_lazily
        obj = getattr(eq, name)
        doc = inspect.getdoc(obj)
        assert doc and len(doc) > 20, f"{name} has no docstring"
        if not isinstance(obj, types.ModuleType):
            # documented where it is defined, not by an inherited docstring
            assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring of its own"


def test_every_public_name_comes_from_its_family_module():
    for name in eq.__all__:
        obj = getattr(eq, name) if name != "escnn_models" else None
        if obj is None or isinstance(obj, types.ModuleType):
            continue
        parts = obj.__module__.split(".")
        assert parts[0] == "equivariance", name
        # a family: a package or module on the way to the definition that exports it
        families = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
        exporting = [f for f in families if name in getattr(importlib.import_module(f),
                                                             "__all__", ())]
        assert exporting, f"{name} is exported by none of {families}"
        assert getattr(importlib.import_module(exporting[0]), name) is obj


def test_plumbing_stays_importable():
    for name in PLUMBING:
        assert callable(getattr(eq, name)), name


def test_quarter_turn_rotate_is_not_flattened():
    assert not hasattr(eq, "rotate")
    assert callable(eq.c4.rotate)


def test_import_does_not_load_escnn():
    path = ROOT / "inst" / "python"
    code = "import sys; import equivariance; print('escnn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "False"


def test_escnn_models_is_exported_lazily():
    assert "escnn_models" in eq.__all__
    module = eq.escnn_models
    for name in module.__all__:
        assert inspect.getdoc(getattr(module, name)), name


def test_one_version_for_r_and_python():
    description = (ROOT / "DESCRIPTION").read_text()
    r_version = re.search(r"^Version:\s*(\S+)", description, re.M).group(1)
    pyproject = (ROOT / "pyproject.toml").read_text()
    py_version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    assert r_version == py_version == eq.__version__
