"""Labels in messages are counted as the caller counts them (from 1 for R callers)."""

import equivariance as eq
import pytest
import torch
from equivariance import _validation
from torch import nn


def test_labels_out_of_range_counts_from_the_callers_base():
    msg = _validation.labels_out_of_range("data", 10, 0, 10)
    assert "from 0 to 9" in msg and msg.endswith("got labels from 0 to 10")
    token = _validation.LABEL_BASE.set(1)
    try:
        msg = _validation.labels_out_of_range("data", 10, 0, 10)
        assert _validation.caller_label(0) == 1
    finally:
        _validation.LABEL_BASE.reset(token)
    assert msg == ("`data`: labels must be classes 1 to 10 (the model returns 10 logits), "
                   "got labels from 1 to 11")
    assert _validation.caller_label(0) == 0


def test_fit_reports_labels_in_the_callers_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    data = (torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="from 0 to 2 .*got labels from 0 to 3$"):
        eq.fit(model, data, verbose=False)
    token = _validation.LABEL_BASE.set(1)
    try:
        with pytest.raises(ValueError, match="classes 1 to 3 .*got labels from 1 to 4$"):
            eq.fit(model, data, verbose=False)
    finally:
        _validation.LABEL_BASE.reset(token)


def test_worker_processes_take_the_count_from_the_environment():
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = "from equivariance import _validation as v; print(v.LABEL_BASE.get())"
    root = str(Path(eq.__file__).resolve().parents[1])
    for value, expected in (("1", "1"), (None, "0")):
        env = {k: v for k, v in os.environ.items() if k != _validation.LABEL_BASE_ENV}
        env["PYTHONPATH"] = root
        if value is not None:
            env[_validation.LABEL_BASE_ENV] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip() == expected
