"""Adam's update as one compiled loop per leaf (the optional ``numba`` extra).

NumPy computes Adam's update of one leaf in about eleven passes over memory (each
ufunc reads and writes the whole leaf). :func:`scale_by_adam` here runs the same
operations in the same order and dtype, one element at a time, compiled by numba
with IEEE semantics (no fast-math, no fused multiply-add), so its updates and
states are bit for bit those of :func:`funcnn.optim.scale_by_adam` (the tests
compare them). Only the passes over memory go. Both cut each leaf into the same spans
and run them on funcnn's threads (:func:`funcnn.optim.leaves.leafwise_into`; the loop
releases the GIL). It keeps the same state, so the two can be swapped mid-run::

    from funcnn.optim import compiled
    opt = optim.chain(compiled.scale_by_adam(), optim.scale_by_learning_rate(1e-3))

Needs ``pip install 'funcnn[numba]'``; numba compiles the loop on first use in each
process (about half a second per dtype). Leaves of mixed dtypes fall back to NumPy.
"""

from __future__ import annotations

import inspect
from typing import Any

from funcnn.optim.adam_loop import adam_loop, compiled_adam_loop
from funcnn.optim.base import GradientTransformation, expect_state
from funcnn.optim.transforms import ScaleByAdamState, adam_init
from funcnn.optim.transforms import compiled_adam_update as adam_update
from funcnn.optim.transforms import scale_by_adam as numpy_scale_by_adam
from funcnn.types import OptState, Params, UpdateResult, Updates

__all__ = ["adam_loop", "adam_update", "compiled_adam_loop", "scale_by_adam"]


def scale_by_adam(*args: Any, **kwargs: Any) -> GradientTransformation:
    """:func:`funcnn.optim.scale_by_adam` (same arguments, state and bits), compiled.
    (In the compiled tier, ``FUNCNN_KERNELS=numba`` or :func:`funcnn.kernels.using`,
    :func:`funcnn.optim.scale_by_adam` and the aliases built on it take this loop too.)"""
    numpy_path = numpy_scale_by_adam(*args, **kwargs)  # checks the arguments
    bound = inspect.signature(numpy_scale_by_adam).bind(*args, **kwargs)
    bound.apply_defaults()
    b1, b2, eps, eps_root, nesterov = bound.arguments.values()
    compiled_adam_loop()  # fail now, not at the first update

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, ScaleByAdamState, "compiled.scale_by_adam")
        done = adam_update(b1, b2, eps, eps_root, nesterov, updates, s)
        return numpy_path.update(updates, state, params) if done is None else done

    return GradientTransformation(adam_init, update)
