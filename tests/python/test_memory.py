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
    assert memory.memory_grew(1e6) is False
    held = torch.ones(64 * 2**20 // 4)  # 64 MB, touched so it is resident
    held += 1
    assert memory.memory_grew(16) is True
    memory.reset_memory_floor()
    assert memory.memory_grew(16) is False
    del held
    with pytest.raises(ValueError, match="`grown_mb`"):
        memory.memory_grew(float("nan"))
    with pytest.raises(ValueError, match="`grown_mb`"):
        memory.memory_grew(True)
