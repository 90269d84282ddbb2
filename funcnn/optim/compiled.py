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
from collections.abc import Callable
from typing import Any

import numpy as np

from funcnn import tree
from funcnn.optim.base import GradientTransformation, expect_state
from funcnn.optim.leaves import leafwise_into
from funcnn.optim.transforms import ScaleByAdamState, adam_init, adam_scalars
from funcnn.optim.transforms import scale_by_adam as numpy_scale_by_adam
from funcnn.types import OptState, Params, UpdateResult, Updates

_compiled: Callable[..., None] | None = None


def adam_loop(
    g: np.ndarray,
    mu: np.ndarray,
    nu: np.ndarray,
    u: np.ndarray,
    new_mu: np.ndarray,
    new_nu: np.ndarray,
    b1: Any,
    b2: Any,
    a1: Any,
    a2: Any,
    c2: Any,
    eps_root: Any,
    eps_add: Any,
    nesterov: bool,
    k1: Any,
    k2: Any,
    out_scale: Any,
) -> None:
    """Fill ``u``, ``new_mu``, ``new_nu`` (flat, like the flat inputs) with one Adam step.

    The scalars have the arrays' dtype; a1 = 1 - b1, a2 = 1 - b2, the rest as
    :func:`funcnn.optim.transforms.adam_scalars` gives them.
    """
    for i in range(g.size):
        m = g[i] * a1 + mu[i] * b1  # EMA(mu, g, b1), as optim.leaves.ema computes it
        v = g[i] * g[i] * a2 + nu[i] * b2  # EMA(nu, g^2, b2), as ema_sq
        new_mu[i] = m
        new_nu[i] = v
        d = np.sqrt(v / c2 + eps_root) + eps_add if eps_root else np.sqrt(v) + eps_add
        if nesterov:
            m = m * k1 + g[i] * k2
        u[i] = m / d * out_scale


def compiled_adam_loop() -> Callable[..., None]:
    """:func:`adam_loop` compiled by numba (ImportError naming the extra without it)."""
    global _compiled
    if _compiled is None:
        try:
            import numba
        except ImportError as e:
            raise ImportError(
                "funcnn.optim.compiled needs numba: pip install 'funcnn[numba]' "
                "(or use optim.scale_by_adam, the same numbers in NumPy)"
            ) from e
        # error_model="numpy": division follows IEEE (no Python ZeroDivisionError
        # checks), which also lets the loop vectorize.
        # nogil: spans of a leaf run at once on funcnn's threads (optim.leaves.leafwise_into).
        _compiled = numba.njit(error_model="numpy", nogil=True)(adam_loop)
    return _compiled


def adam_update(
    b1: float, b2: float, eps: float, eps_root: float, nesterov: bool,
    updates: Updates, s: ScaleByAdamState,
) -> UpdateResult | None:  # fmt: skip
    """One compiled Adam step (the NumPy path's bits), or None for leaves of mixed dtypes
    (NumPy's type promotion decides there, as in the NumPy path)."""
    loop = compiled_adam_loop()
    c2, eps_add, k1, k2, out_scale = adam_scalars(b1, b2, eps, eps_root, nesterov, s.step + 1)
    leaves = [*tree.leaves(updates), *tree.leaves(s.mu), *tree.leaves(s.nu)]
    dtype = leaves[0].dtype if leaves else None
    if dtype not in (np.float32, np.float64) or any(
        not isinstance(a, np.ndarray) or a.dtype != dtype for a in leaves
    ):
        return None
    t = dtype.type
    scalars = [t(c) for c in (b1, b2, 1 - b1, 1 - b2, c2, eps_root, eps_add)]
    tail = (nesterov, t(k1), t(k2), t(out_scale))

    def fill(*arrays: np.ndarray) -> None:  # g, mu, nu, u, new_mu, new_nu: flat spans
        loop(*arrays, *scalars, *tail)

    out, mu, nu = leafwise_into(
        "compiled.scale_by_adam", fill, lambda *leaves: (dtype,) * 3, updates, s.mu, s.nu
    )
    return out, ScaleByAdamState(s.step + 1, mu, nu)


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
