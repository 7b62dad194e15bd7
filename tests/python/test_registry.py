"""Saving by registration: files record public names, so moving a module changes nothing."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import equivariance as eq
import pytest
import torch
from equivariance import _registry
from torch import nn

CORE = Path(__file__).resolve().parents[2] / "inst" / "python" / "equivariance"

SOURCE = '''
from torch import nn
from equivariance._registry import register

@register
class Mover(nn.Module):
    """A model defined in a user module that will be moved."""

    def __init__(self, width: int = 3, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(2, width)
        self.scale = scale

    def forward(self, x):
        return self.linear(x) * self.scale
'''


def _module_from_source(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(SOURCE, f"<{name}>", "exec"), module.__dict__)
    return module


@pytest.fixture
def clean_registry():
    saved = dict(_registry.REGISTRY)
    yield
    _registry.REGISTRY.clear()
    _registry.REGISTRY.update(saved)
    for name in ("old_place.models", "new_place.models"):
        sys.modules.pop(name, None)


def test_a_model_survives_a_move_of_its_module(tmp_path, clean_registry):
    old = _module_from_source("old_place.models")
    model = old.Mover(width=4, scale=2.0)
    path = tmp_path / "mover.pt"
    eq.save_model(model, path)
    contents = torch.load(path, weights_only=True)
    assert contents["architecture"]["class"] == "Mover"  # the public name, no module path
    # the class moves: the old module disappears, the same class is defined elsewhere
    del sys.modules["old_place.models"]
    new = _module_from_source("new_place.models")
    loaded = eq.load_model(path)
    assert type(loaded) is new.Mover and type(loaded) is not old.Mover
    assert loaded.scale == 2.0 and loaded.linear.out_features == 4
    x = torch.rand(3, 2)
    assert torch.equal(loaded(x), model(x))


def test_old_files_naming_module_paths_still_load(tmp_path):
    torch.manual_seed(1)
    model = eq.C4CNN(widths=(2, 2, 3))
    path = tmp_path / "old.pt"
    eq.save_model(model, path)
    contents = torch.load(path, weights_only=True)
    for old_name in ("equivariance.networks.C4CNN", "equivariance.models.networks.C4CNN"):
        contents["architecture"]["class"] = old_name
        torch.save(contents, path)
        loaded = eq.load_model(path)
        assert type(loaded) is eq.C4CNN
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)


def test_unknown_class_names_are_refused(tmp_path):
    path = tmp_path / "m.pt"
    eq.save_model(eq.SimpleCNN(widths=(2, 2, 2)), path)
    contents = torch.load(path, weights_only=True)
    contents["architecture"]["class"] = "os.system"
    torch.save(contents, path)
    with pytest.raises(ValueError, match="names class 'os.system'"):
        eq.load_model(path)


def test_a_user_class_cannot_take_a_package_name(clean_registry):
    class C4CNN(nn.Module):
        pass

    with pytest.raises(ValueError, match="`name`: 'C4CNN' is the name of equivariance's own"):
        _registry.register(C4CNN)
    assert _registry.REGISTRY["C4CNN"] is eq.C4CNN


def test_a_subclass_records_nothing_unless_registered(clean_registry):
    class Wider(eq.SimpleCNN):
        pass

    assert _registry.recorded(Wider()) is None
    _registry.register(Wider)
    cls, arguments = _registry.recorded(Wider(widths=(2, 2, 2)))
    assert cls is Wider and arguments["widths"] == (2, 2, 2)


def test_persistence_holds_no_table_of_classes_and_patches_nothing():
    source = (CORE / "persistence.py").read_text()
    tree = ast.parse(source)
    # no class names of other modules, no assignment to a class's __init__
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert "equivariance." not in node.value or " " in node.value, node.value
        if isinstance(node, ast.Attribute) and node.attr == "__init__":
            assert not isinstance(node.ctx, ast.Store)
    for name in ("C4CNN", "SimpleCNN", "GroupMap", "EscnnC4CNN"):
        assert f'"{name}"' not in source


def test_every_registered_class_is_registered_where_it_is_defined():
    # the decorator sits at the class: its module is the one that defines the class
    for name, cls in _registry.REGISTRY.items():
        if cls.__module__.startswith("equivariance."):
            source = Path(sys.modules[cls.__module__].__file__).read_text()
            assert f"@register\nclass {name}(" in source, name
