"""Token ids in, vectors out: Embedding, and Discretization (numbers to bucket ids).

Embedding's gradient is a scatter-add into its table. It follows the rule of every batch
sum in :mod:`funcnn.linalg`: per chunk of :data:`funcnn.linalg.CHUNK` samples,
``np.add.at`` into a zero table (one fixed order), then the chunks' tables added in
linalg's fixed pairwise tree, across processes too. The same bits for any batch split,
worker count and process count.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg
from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_params, as_shape
from funcnn.layers.masking import mask_grad
from funcnn.random import RngLike
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape


def as_ids(x: Any, layer: object) -> np.ndarray:
    """``x`` as integer ids with a batch axis: ints as they are, floats that are whole
    numbers (Keras casts them), anything else a TypeError/ValueError."""
    a = np.asarray(x)
    if a.ndim < 1:
        raise ValueError(
            f"{layer!r} expects a batch of ids of shape (batch, ...), got shape {a.shape}"
        )
    if a.dtype.kind in "iu":
        return a
    if a.dtype.kind != "f":
        raise TypeError(f"{layer!r} expects integer token ids, got dtype {a.dtype}")
    whole = np.isfinite(a) & (a == np.round(a))
    if not whole.all():
        bad = a[~whole].flat[0]
        raise ValueError(
            f"{layer!r} expects integer token ids; got {a.dtype} values that are not whole "
            f"numbers (e.g. {bad}): pass ids.astype(int)"
        )
    return a.astype(np.int64)


class EmbeddingParams(NamedTuple):
    embeddings: np.ndarray  # (vocab_size, dim)


@attrs.frozen(repr=False)
class Embedding(Layer):
    """Row ``ids[...]`` of a ``(vocab_size, dim)`` table: ``(batch, ...) -> (batch, ..., dim)``.

    Ids must be integers in ``[0, vocab_size)`` (floats that are whole numbers pass, as
    Keras casts them); others are a ValueError. The table starts from
    ``embeddings_init`` (Keras' uniform(-0.05, 0.05)). With ``mask_zero=True`` id 0 is
    padding: the output is the pair ``(values, mask)``, ``mask = ids != 0`` of the ids'
    shape (see :mod:`funcnn.layers.masking`). The ids get a zero gradient.
    """

    vocab_size: int = attrs.field(validator=check.field(check.positive_int))
    dim: int = attrs.field(validator=check.field(check.positive_int))
    mask_zero: bool = attrs.field(default=False, kw_only=True, validator=check.field(check.boolean))
    embeddings_init: initializers.Initializer = attrs.field(
        default=initializers.uniform(0.05), kw_only=True, validator=attrs.validators.is_callable()
    )

    def output_shape(self, input_shape: Shape) -> Any:
        shape = as_shape(input_shape)
        return ((*shape, self.dim), shape) if self.mask_zero else (*shape, self.dim)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> EmbeddingParams:
        self.output_shape(input_shape)
        return freeze(
            EmbeddingParams(self.embeddings_init(rng, (self.vocab_size, self.dim), dtype))
        )

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        table = as_params(params, self, EmbeddingParams).embeddings
        if table.shape != (self.vocab_size, self.dim):
            raise ValueError(
                f"{self!r} expects a table of shape {(self.vocab_size, self.dim)}, "
                f"got {table.shape}"
            )
        ids = as_ids(x, self)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(
                f"{self!r} takes ids in [0, {self.vocab_size}), got ids in "
                f"[{ids.min()}, {ids.max()}]"
            )
        y = table[ids]
        return ((y, ids != 0) if self.mask_zero else y), state, ids

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[EmbeddingParams, Any]:
        ids = cache
        dvalues = dy[0] if self.mask_zero else dy
        grads = EmbeddingParams(scatter_rows(ids, dvalues, self.vocab_size))
        return grads, (mask_grad(ids, dvalues.dtype) if need_dx else None)


def scatter_rows(ids: np.ndarray, dy: np.ndarray, rows: int) -> np.ndarray:
    """``table[i] = sum of dy[..., :]`` over the positions where ``ids == i``: a sum over
    the batch in linalg's chunks and tree (see the module's docstring)."""
    dim = dy.shape[-1]
    batch = ids.shape[0]
    steps = math.prod(ids.shape[1:])
    ids2 = ids.reshape(batch, steps)
    dy2 = dy.reshape(batch, steps, dim)
    parts = []
    for lo in range(0, batch, linalg.CHUNK):
        table = np.zeros((rows, dim), dtype=dy.dtype)
        np.add.at(
            table,
            ids2[lo : lo + linalg.CHUNK].reshape(-1),
            dy2[lo : lo + linalg.CHUNK].reshape(-1, dim),
        )
        parts.append(table)
    return linalg.sum_chunks(parts, np.zeros((rows, dim), dtype=dy.dtype))


@attrs.frozen(repr=False)
class Discretization(Layer):
    """Numbers to bucket ids, as Keras' ``Discretization(bin_boundaries)``: id ``i`` for
    ``boundaries[i - 1] <= x < boundaries[i]`` (0 below the first, ``len(boundaries)``
    from the last on). Any shape; int64 ids out, a zero gradient back. It turns numbers
    into ids for an Embedding."""

    bin_boundaries: tuple[float, ...] = attrs.field(
        converter=lambda v: tuple(check.real("bin_boundaries", b) for b in v)
    )

    def __attrs_post_init__(self) -> None:
        b = self.bin_boundaries
        if not b or np.any(np.diff(b) <= 0):
            raise ValueError(
                f"Discretization bin_boundaries must be increasing and non-empty, got {b}"
            )

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        a = np.asarray(x)
        if a.dtype.kind not in "iuf" or a.ndim < 1:
            raise TypeError(
                f"{self!r} expects a numeric batch (batch, ...), got {a.dtype} of shape {a.shape}"
            )
        ids = np.searchsorted(np.asarray(self.bin_boundaries), a, side="right").astype(np.int64)
        return ids, state, (a.shape, a.dtype if a.dtype.kind == "f" else np.dtype(np.float32))

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        shape, dtype = cache
        return (), (np.zeros(shape, dtype) if need_dx else None)
