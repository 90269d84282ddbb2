"""funcnn: functional neural networks in pure NumPy.

Models are pure functions ``init(rng, input_shape) -> params`` and
``apply(params, x)``; gradients come from hand-written backward passes, each
checked against finite differences.
"""

from funcnn import initializers, layers, losses, nn, optim, random, schedules, testing, tree
from funcnn.gradients import grad, value_and_grad, value_and_grad_with_state

__version__ = "0.1.0"

__all__ = [
    "grad",
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
