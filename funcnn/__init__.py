"""funcnn: functional neural networks in pure NumPy.

Models are pure functions ``init(rng, input_shape) -> params`` and
``apply(params, x)``; gradients come from hand-written backward passes, each
checked against finite differences.

Importing funcnn tunes glibc's malloc for training loops (``funcnn.allocator``;
``FUNCNN_MALLOC_TUNING=0`` opts out).
"""

import importlib
from typing import Any

from funcnn import (
    allocator,
    initializers,
    layers,
    losses,
    metrics,
    nn,
    optim,
    random,
    schedules,
    tree,
)
from funcnn.gradients import grad, value_and_grad, value_and_grad_with_state
from funcnn.train import (
    History,
    evaluate,
    fit,
    predict,
    train_step,
    train_step_with_state,
)

__version__ = "0.1.0"

allocator.tune_allocator()

# Imported on first use (PEP 562), to keep `import funcnn` short: saving and loading
# (hashlib, zipfile, tempfile), callbacks, data sets and the gradient-check helpers.
_LAZY = {
    "callbacks": ("funcnn.callbacks", None),
    "datasets": ("funcnn.datasets", None),
    "io": ("funcnn.io", None),
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
    "History",
    "allocator",
    "callbacks",
    "datasets",
    "evaluate",
    "fit",
    "grad",
    "io",
    "load",
    "metrics",
    "predict",
    "save",
    "train_step",
    "train_step_with_state",
    "initializers",
    "layers",
    "losses",
    "nn",
    "optim",
    "random",
    "schedules",
    "testing",
    "tree",
    "value_and_grad",
    "value_and_grad_with_state",
]
