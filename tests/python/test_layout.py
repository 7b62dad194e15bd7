"""The core stays readable: small files, short functions, no import cycle, no import side
effects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the core's modules it imports, anywhere in its body (also inside
    functions, and ``importlib.import_module("...")`` with a literal name)."""
    paths = {_module_name(p): p for p in _sources()}

    def resolve(current: str, is_package: bool, level: int, name: str) -> str:
        if level == 0:
            return name
        base = current.split(".") if is_package else current.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([name] if name else []))

    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(module, is_package, node.level, node.module or "")
                # a submodule by name, else a name defined in the target module
                targets = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in paths
                           else target for alias in node.names]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                name = node.args[0].value
                level = len(name) - len(name.lstrip("."))
                targets = [resolve(module, is_package, level, name.lstrip("."))]
            edges |= {t for t in targets if t in paths and t != module}
        graph[module] = edges
    return graph


def test_the_import_graph_of_the_core_has_no_cycle():
    graph = _import_graph()
    assert "equivariance.escnn_models.networks" in graph  # the walk found the packages
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other, path + [other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_import_graph_sees_a_cycle(tmp_path, monkeypatch):
    # the check itself: two modules importing each other form a cycle
    (tmp_path / "equivariance").mkdir()
    (tmp_path / "equivariance" / "__init__.py").write_text("")
    (tmp_path / "equivariance" / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "equivariance" / "b.py").write_text("from .a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "CORE", tmp_path / "equivariance")
    graph = _import_graph()
    assert graph["equivariance.a"] == {"equivariance.b"}
    assert graph["equivariance.b"] == {"equivariance.a"}
    with pytest.raises(AssertionError):
        test_the_import_graph_of_the_core_has_no_cycle()
