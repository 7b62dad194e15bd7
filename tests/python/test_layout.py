"""The core stays readable: small files, short functions, no import side effects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "inst" / "python" / "equivariance"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_core_file_is_over_500_lines():
    long = {str(p.relative_to(CORE)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert long == {}


def test_no_core_function_is_over_80_lines():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(CORE)}:{node.name}"] = length
    assert long == {}


def test_importing_the_core_registers_no_optimizer_hook_and_no_escnn():
    # A fresh interpreter: hooks registered by an earlier test must not count.
    code = (
        "import sys, torch.optim.optimizer as o\n"
        f"sys.path.insert(0, {str(CORE.parent)!r})\n"
        "before = (len(o._global_optimizer_pre_hooks), len(o._global_optimizer_post_hooks))\n"
        "import equivariance\n"
        "after = (len(o._global_optimizer_pre_hooks), len(o._global_optimizer_post_hooks))\n"
        "print(before == after, 'escnn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
