"""The flat public API is built from the submodules' own `__all__`."""

import subprocess
import sys
from pathlib import Path

import equivariance as eq


def test_every_public_name_resolves_and_comes_from_its_module():
    for name in eq.__all__:
        assert getattr(eq, name) is not None, name
    for module in eq._FLAT_MODULES:
        for name in module.__all__:
            if name not in eq._NAMESPACED_ONLY:
                assert getattr(eq, name) is getattr(module, name), name
                assert name in eq.__all__


def test_quarter_turn_rotate_is_not_flattened():
    assert not hasattr(eq, "rotate")
    assert callable(eq.c4.rotate)


def test_import_does_not_load_escnn():
    path = Path(__file__).resolve().parents[2] / "inst" / "python"
    code = "import sys; import equivariance; print('escnn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "False"
