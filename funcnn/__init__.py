"""funcnn: functional neural networks in pure NumPy.

Models are pure functions ``init(rng, input_shape) -> params`` and
``apply(params, x)``; gradients come from hand-written backward passes, each
checked against finite differences.

Importing funcnn tunes glibc's malloc for training loops (``funcnn.allocator``;
``FUNCNN_MALLOC_TUNING=0`` opts out).
"""

from funcnn import (
    allocator,
    callbacks,
    datasets,
    initializers,
    io,
    layers,
    losses,
    metrics,
    nn,
    optim,
    random,
    schedules,
    testing,
    tree,
)
from funcnn.gradients import grad, value_and_grad, value_and_grad_with_state
from funcnn.io import load, save
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
