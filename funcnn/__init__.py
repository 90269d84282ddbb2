"""funcnn: functional neural networks in pure NumPy.

Models are pure functions ``init(rng, input_shape) -> params`` and
``apply(params, x)``; gradients come from hand-written backward passes, each
checked against finite differences.

Every public submodule is reachable as ``funcnn.<name>`` after ``import funcnn``.
The core ones load with it; the rest (saving, callbacks, data sets, plots, the
Keras facade, gradient checks, the allocator setting) load on first use, to keep
``import funcnn`` short. Importing funcnn changes nothing in the host process.
"""

import importlib
from typing import Any

from funcnn import (
    initializers,
    layers,
    losses,
    metrics,
    nn,
    optim,
    random,
    schedules,
    tree,
    types,
    validate,
)
from funcnn.gradients import grad, value_and_grad, value_and_grad_with_state
from funcnn.train import (
    FitResult,
    History,
    evaluate,
    fit,
    predict,
    train_step,
    train_step_with_state,
)
from funcnn.version import __version__

# Imported on first use (PEP 562): module name, or (module, attribute).
_LAZY: dict[str, tuple[str, str | None]] = {
    "allocator": ("funcnn.allocator", None),
    "callbacks": ("funcnn.callbacks", None),
    "datasets": ("funcnn.datasets", None),
    "io": ("funcnn.io", None),
    "keras": ("funcnn.keras", None),
    "plot": ("funcnn.plot", None),
    "testing": ("funcnn.testing", None),
    "load": ("funcnn.io", "load"),
    "save": ("funcnn.io", "save"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'funcnn' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FitResult",
    "History",
    "allocator",
    "callbacks",
    "datasets",
    "evaluate",
    "fit",
    "grad",
    "initializers",
    "io",
    "keras",
    "layers",
    "load",
    "losses",
    "metrics",
    "nn",
    "optim",
    "plot",
    "predict",
    "random",
    "save",
    "schedules",
    "testing",
    "train_step",
    "train_step_with_state",
    "tree",
    "types",
    "validate",
    "__version__",
    "value_and_grad",
    "value_and_grad_with_state",
]
