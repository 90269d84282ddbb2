"""Adam's update of one span as one loop, and that loop compiled by numba (the optional
``numba`` extra): what :mod:`funcnn.optim.compiled` and the compiled tier run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

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
