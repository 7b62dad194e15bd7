"""pytest configuration: test the core from this checkout (inst/python)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "inst" / "python"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
