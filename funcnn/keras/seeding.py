"""Keras' ``keras.utils.set_random_seed``, and the facade's default seed it sets.

A model of the facade draws everything random (its initial weights, ``fit``'s shuffles
and its dropout masks) from its own ``seed``; a model given no ``seed=`` takes the
default seed at its construction: 0, or what :func:`set_random_seed` set last.
"""

from __future__ import annotations

import random

import numpy as np

from funcnn import validate as check

__all__ = ["default_seed", "set_random_seed"]

_seed = 0


def default_seed() -> int:
    """The seed a model given no ``seed=`` takes: 0 until :func:`set_random_seed`."""
    return _seed


def set_random_seed(seed: int) -> None:
    """Keras' ``set_random_seed(seed)``: Python's ``random``, NumPy's global seed and the
    backend's, here the facade's default seed (each model created from now on without a
    ``seed=`` draws its weights, shuffles and dropout from it), so a script run twice after
    ``set_random_seed(1)`` gives the same bits.

    funcnn itself never reads Python's or NumPy's global random state (every draw comes
    from a model's own generator); they are seeded only because Keras' function seeds them,
    for the user's own code (a ``np.random.rand`` in the script). Unlike Keras, the models
    of one script do not take turns on one global generator: each starts from ``seed``.
    ``seed`` is an int in ``[0, 2**32)`` (NumPy's range); anything else is a ValueError or
    TypeError naming what was given.
    """
    global _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed takes an int seed, got {type(seed).__name__} {seed!r}")
    seed = check.non_negative_int("seed", seed)
    if seed >= 2**32:
        raise ValueError(f"seed must be below 2**32 (NumPy's range), got {seed}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the user's global state, as Keras seeds it
    _seed = seed
