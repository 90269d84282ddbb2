"""Explicit randomness: every random draw in funcnn comes from an argument you pass.

Two kinds of argument, one rule: the same seed gives the same bits.

- ``init(rng, ...)`` takes a :class:`numpy.random.Generator` or an int seed.
  Fan-out (one generator per child layer) uses :meth:`Generator.spawn`.
- ``forward``/``apply(..., rng=...)`` take a :class:`Key` (a Generator or an int
  works too and becomes one). A key is a path of ints, not a stream: combinators
  give child ``i`` the key ``key.fold_in(i)`` (stax's rule: every child gets one,
  so nothing has to be forwarded and no layer can be cut off from its key), and a
  layer draws with :meth:`Key.uniform`, which is counter-based (NumPy's Philox).
  Row ``r`` of a batch gets the same numbers however the batch is split, because
  its numbers depend only on the key and on the row's index ``key.row + r``.

The global ``np.random`` state is never read or written.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

RngLike = np.random.Generator | int


def as_generator(rng: RngLike, *, what: str = "rng") -> np.random.Generator:
    """Return ``rng`` itself if it is a Generator, or a new one seeded with the int ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(_seed(rng, what))


def _seed(value: Any, what: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        if value < 0:
            raise ValueError(f"{what} seed must be a non-negative int, got {value}")
        return int(value)
    raise TypeError(
        f"{what} must be a numpy.random.Generator or an int seed, got {type(value).__name__}; "
        "for example np.random.default_rng(0) or 0"
    )


def split(rng: RngLike, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators derived deterministically from ``rng``."""
    return as_generator(rng).spawn(n)


@attrs.frozen
class Key:
    """A counter-based random key: ``path`` names the stream, ``row`` the batch's first row.

    ``Key((seed,))`` is a root key; ``fold_in``/``split`` derive children by
    extending the path (no random numbers are drawn to do so). ``fit`` gives the
    step ``s`` of epoch ``e`` the key ``Key((seed, e, s))``.
    """

    path: tuple[int, ...] = attrs.field(converter=lambda p: tuple(_seed(w, "key") for w in p))
    row: int = 0

    def fold_in(self, i: int) -> Key:
        """The key of child ``i``."""
        return Key((*self.path, i), self.row)

    def split(self, n: int) -> list[Key]:
        """The keys of children ``0 .. n-1``."""
        return [Key((*self.path, i), self.row) for i in range(n)]

    def at_row(self, row: int) -> Key:
        """The same stream for a slice of the batch that starts at row ``row``."""
        return Key(self.path, self.row + row)

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        """Float64 uniforms in [0, 1) of ``shape = (rows, ...)``; row ``r`` depends only on
        the path and on ``self.row + r`` (each row starts at its own Philox counter)."""
        rows, per_row = shape[0], math.prod(shape[1:])
        blocks = -(-per_row // 4) or 1  # Philox gives 4 words per counter value
        words = np.random.SeedSequence(self.path).generate_state(2, np.uint64)
        bits = np.random.Philox(key=words, counter=self.row * blocks)
        draws = np.random.Generator(bits).random((rows, blocks * 4))
        return draws[:, :per_row].reshape(shape)

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        """Float64 standard normals of ``shape = (rows, ...)``, row by row as
        :meth:`uniform` (Box-Muller over two uniforms an element): row ``r`` depends only
        on the path and on ``self.row + r``."""
        rows, per_row = shape[0], math.prod(shape[1:])
        u = self.uniform((rows, 2 * per_row))
        radius = np.sqrt(-2.0 * np.log1p(-u[:, :per_row]))  # 1 - u in (0, 1]: log finite
        return (radius * np.cos(2.0 * np.pi * u[:, per_row:])).reshape(shape)


def as_key(rng: Key | RngLike | None) -> Key | None:
    """``rng`` as a :class:`Key`: an int seeds a root key; a Generator gives one draw to seed
    it (so successive calls with one Generator differ, as a stream would); None stays None."""
    if rng is None or isinstance(rng, Key):
        return rng
    if isinstance(rng, np.random.Generator):
        return Key((int(rng.integers(2**63)),))
    return Key((_seed(rng, "rng"),))
