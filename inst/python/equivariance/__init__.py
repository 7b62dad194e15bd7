"""equivariance: tools for neural networks that respect symmetries.

The public API is re-exported here. Importing this package does not import escnn:
the escnn helpers live in :mod:`equivariance.escnn_models` and load it on first use.
"""

from . import distances, transforms
from .regularizer import EquivarianceError, EquivarianceRegularizer

__version__ = "0.1.0"

__all__ = [
    "EquivarianceRegularizer",
    "EquivarianceError",
    "distances",
    "transforms",
]

# -- quantile maps (issue 3) --
from . import quantile_maps  # noqa: E402
from .quantile_maps import (  # noqa: E402
    GroupMap,
    InstanceMap,
    LayerMap,
    cauchy,
    gaussian,
    laplace,
    logistic,
    sparse,
    uniform,
)

__all__ += [
    "GroupMap",
    "LayerMap",
    "InstanceMap",
    "uniform",
    "gaussian",
    "cauchy",
    "laplace",
    "logistic",
    "sparse",
    "quantile_maps",
]

# -- C4 networks and checks (issue 4) --
from .c4 import (  # noqa: E402
    C4BatchNorm2d,
    C4Conv2d,
    C4GroupPool,
    C4LiftingConv2d,
    C4MaxPool2d,
    rotate_regular,
)
from .checks import check_equivariance, feature_maps  # noqa: E402
from .networks import C4CNN, C4InvariantLinear, EqCNN, SimpleCNN  # noqa: E402

__all__ += [
    "C4LiftingConv2d",
    "C4Conv2d",
    "C4BatchNorm2d",
    "C4GroupPool",
    "C4MaxPool2d",
    "C4InvariantLinear",
    "rotate_regular",
    "SimpleCNN",
    "EqCNN",
    "C4CNN",
    "check_equivariance",
    "feature_maps",
    "escnn_models",
]


def __getattr__(name: str):
    """Import :mod:`equivariance.escnn_models` (and so escnn) on first access only."""
    if name == "escnn_models":
        import importlib

        return importlib.import_module(".escnn_models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- data and training (issue 5) --
from . import data, memory, training  # noqa: E402
from .data import FashionMNIST, load_fashion_mnist  # noqa: E402
from .training import History, evaluate, fit, train_step  # noqa: E402

__all__ += [
    "data",
    "memory",
    "training",
    "FashionMNIST",
    "load_fashion_mnist",
    "History",
    "fit",
    "evaluate",
    "train_step",
]

# -- the rotated Fashion-MNIST benchmark (issue 5) --
from . import benchmark  # noqa: E402
from .benchmark import BenchmarkResult, rotation_benchmark  # noqa: E402

__all__ += ["benchmark", "BenchmarkResult", "rotation_benchmark"]
