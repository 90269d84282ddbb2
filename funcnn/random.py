"""Explicit randomness: every random draw in funcnn comes from a Generator you pass.

An ``rng`` argument accepts a :class:`numpy.random.Generator` or an int seed.
Fan-out (one generator for each child layer) uses :meth:`Generator.spawn`, which
derives independent streams deterministically: the same seed gives the same bits.
The global ``np.random`` state is never read or written.
"""

from __future__ import annotations

import numpy as np

RngLike = np.random.Generator | int


def as_generator(rng: RngLike, *, what: str = "rng") -> np.random.Generator:
    """Return ``rng`` itself if it is a Generator, or a new one seeded with the int ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{what} seed must be a non-negative int, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{what} must be a numpy.random.Generator or an int seed, got {type(rng).__name__}; "
        "for example np.random.default_rng(0) or 0"
    )


def split(rng: RngLike, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators derived deterministically from ``rng``."""
    return as_generator(rng).spawn(n)
