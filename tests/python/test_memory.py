import os
import subprocess
import sys
from pathlib import Path

from equivariance import memory


def test_release_free_memory_reports_whether_it_ran():
    assert memory.release_free_memory() in (True, False)
    assert memory.release_memory_after_steps(None) is False


def test_importing_the_package_installs_no_optimizer_hook():
    # Even when the embedding process looks like R (reticulate's rpycall module is
    # loaded), importing the package must leave torch's global hooks alone.
    code = (
        "import sys, types; sys.modules['rpycall'] = types.ModuleType('rpycall');"
        "import torch.optim.optimizer as o; before = len(o._global_optimizer_post_hooks);"
        "import equivariance; print(len(o._global_optimizer_post_hooks) - before)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "inst" / "python"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "0"


def test_memory_grew_compares_with_the_floor():
    import pytest
    import torch

    memory.reset_memory_floor()
    assert memory.memory_grew(0) is False  # this call takes the level
    held = torch.ones(64 * 2**20 // 4)  # 64 MB, touched so it is resident
    held += 1
    assert memory.memory_grew(16) is True
    assert memory.memory_grew(1e6) is False
    memory.reset_memory_floor()
    # after a reset the next call takes the level (the loop's working set, not the
    # low point right after a release), so it does not report growth at once
    assert memory.memory_grew(0) is False
    assert memory.memory_grew(16) is False
    del held
    with pytest.raises(ValueError, match="`grown_mb`"):
        memory.memory_grew(float("nan"))
    with pytest.raises(ValueError, match="`grown_mb`"):
        memory.memory_grew(True)


def test_the_step_hook_releases_once_per_growth_not_at_every_step(monkeypatch):
    import torch

    mb = 2**20
    readings = iter([100, 100, 110, 120, 125, 130, 142])
    released = []
    monkeypatch.setattr(memory, "_rss_bytes", lambda: next(readings) * mb)
    monkeypatch.setattr(memory, "release_free_memory", lambda: released.append(1) or True)
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    try:
        assert memory.release_memory_after_steps(16) is True  # reads 100 twice
        released.clear()
        for _ in range(5):
            opt.step()
        # 110: +10; 120: +20, release; 125: the level again (the pages the step took
        # back), not the low point after the trim; 130: +5; 142: +17, release
        assert len(released) == 2
    finally:
        memory.release_memory_after_steps(None)
