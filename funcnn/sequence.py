"""Sampling text from a generative sequence model one token at a time.

``sample`` draws ids from logits; ``generate`` extends prompts, carrying each recurrent
layer's state from step to step (no prefix is computed twice). The loss over the real
steps of masked sequences is :func:`funcnn.losses.masked` (also importable from here):
a masked model (``serial(Embedding(v, d, mask_zero=True), LSTM(u,
return_sequences=True), per_step(Dense(v)))``) outputs ``(logits, mask)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcnn import nn
from funcnn import validate as check
from funcnn.layers.base import Layer
from funcnn.layers.combinators import Serial
from funcnn.layers.recurrent import RNN
from funcnn.losses import Masked as Masked  # the loss over masked sequences, also here
from funcnn.losses import masked as masked
from funcnn.random import RngLike, as_generator

# ---------------------------------------------------------------- sampling


def sample(
    logits: Any, rng: RngLike, *, temperature: float = 1.0, top_k: int | None = None
) -> np.ndarray:
    """Ids drawn from ``softmax(logits / temperature)`` over the last axis: ``(..., vocab)
    -> (...)`` int64.

    ``top_k`` keeps the ``k`` largest logits (ties to the lower id) and draws among them:
    ``top_k=1`` is greedy (the argmax, whatever the temperature). ``rng`` a seed or a
    ``numpy.random.Generator``: the same seed gives the same ids.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"sample expects logits of shape (..., vocab), got shape {z.shape}")
    temperature = check.positive("temperature", temperature)
    gen = as_generator(rng)
    vocab = z.shape[-1]
    z = z / temperature
    if top_k is not None:
        top_k = check.positive_int("top_k", top_k)
        if top_k < vocab:
            order = np.argsort(-z, axis=-1, kind="stable")
            dropped = np.ones(z.shape, dtype=bool)
            np.put_along_axis(dropped, order[..., :top_k], False, axis=-1)
            z = np.where(dropped, -np.inf, z)
    p = nn.softmax(z, axis=-1)
    u = gen.random(z.shape[:-1])[..., None]
    ids = (np.cumsum(p, axis=-1) <= u).sum(axis=-1)  # the first id whose cumulative p > u
    return np.minimum(ids, vocab - 1).astype(np.int64)


def _layers(model: Layer, params: Any) -> list[tuple[Layer, Any]]:
    if isinstance(model, Serial):
        return list(zip(model.layers, params))
    return [(model, params)]


def _holds_rnn(layer: Any) -> bool:
    """Whether a recurrent layer sits inside ``layer`` (a combinator's or wrapper's)."""
    if isinstance(layer, RNN):
        return True
    inner = [getattr(layer, "layer", None), *getattr(layer, "layers", ())]
    return any(_holds_rnn(child) for child in inner if isinstance(child, Layer))


def _attends(layer: Any) -> bool:
    """Whether a layer inside ``layer`` reads every step at once or by its position
    (attention, positions): such a model runs on the whole prefix."""
    if getattr(layer, "attends", False):
        return True
    inner = [getattr(layer, "layer", None), *getattr(layer, "layers", ())]
    return any(_attends(child) for child in inner if isinstance(child, Layer))


def _context(layer: Any) -> int | None:
    """The most steps a model's positions reach (its PositionalEmbeddings' max_len)."""
    found = [getattr(layer, "max_len", None)] if getattr(layer, "attends", False) else []
    inner = [getattr(layer, "layer", None), *getattr(layer, "layers", ())]
    found += [_context(child) for child in inner if isinstance(child, Layer)]
    sizes = [n for n in found if isinstance(n, int)]
    return min(sizes) if sizes else None


def generate(
    model: Layer,
    params: Any,
    prompt_ids: Any,
    steps: int,
    rng: RngLike,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    state: Any = None,
) -> np.ndarray:
    """``prompt_ids`` ``(batch, prompt_length)`` followed by ``steps`` sampled ids:
    ``(batch, prompt_length + steps)`` int64.

    ``model`` is a ``serial`` of layers that each read one step at a time (Embedding,
    Dense, activations, ``per_step(...)``) and forward recurrent layers (``RNN``, not
    reversed, not Bidirectional), ending in logits ``(batch, time, vocab)`` or ``(batch,
    vocab)``. The prompt runs once; then each new id runs one step from the state each
    recurrent layer carried (:meth:`funcnn.layers.RNN.scan`), so the prefix is never
    computed again. ``state`` is the model's layer state (BatchNorm), as ``fit`` returns
    it. Ids are drawn by :func:`sample`; the same ``rng`` seed gives the same text.

    A model with attention or positions (a transformer, e.g.
    ``layers.DecoderOnlyTransformer``) runs on the whole prefix at every step, its last
    ``context`` ids (its PositionalEmbedding's ``max_len``, or all of them): no key/value
    cache, the prefix is recomputed.
    """
    ids = np.asarray(prompt_ids)
    if ids.ndim != 2 or ids.shape[1] < 1 or ids.dtype.kind not in "iu":
        raise ValueError(
            f"generate expects integer prompt ids of shape (batch, prompt_length >= 1), got "
            f"{ids.dtype} of shape {ids.shape}"
        )
    steps = check.non_negative_int("steps", steps)
    parts = _layers(model, params)
    layer_states = [None] * len(parts) if state is None else [s for _, s in _layers(model, state)]
    for layer, _ in parts:
        if isinstance(layer, RNN) and layer.reverse:
            raise ValueError(f"generate reads forwards: {layer!r} reads backwards")
        if not isinstance(layer, RNN) and _holds_rnn(layer):
            raise ValueError(
                f"generate carries the state of the model's own recurrent layers; {layer!r} "
                "holds one inside another layer: make it a layer of the model's serial"
            )
    gen = as_generator(rng)
    if _attends(model):
        return _generate_again(model, params, ids, steps, gen, temperature, top_k, state)
    carried: list[Any] = [None] * len(parts)
    out = [ids.astype(np.int64)]
    x: Any = out[0]
    for _ in range(steps):
        for i, (layer, p) in enumerate(parts):
            if isinstance(layer, RNN):
                x, carried[i] = layer.scan(p, x, carried[i])
            else:
                x = layer.apply_with_state(p, layer_states[i], x)[0]
        logits = x[0] if isinstance(x, tuple) else x
        logits = logits[:, -1] if logits.ndim == 3 else logits
        x = sample(logits, gen, temperature=temperature, top_k=top_k)[:, None]
        out.append(x)
    return np.concatenate(out, axis=1)


def _generate_again(
    model: Layer,
    params: Any,
    ids: np.ndarray,
    steps: int,
    gen: np.random.Generator,
    temperature: float,
    top_k: int | None,
    state: Any,
) -> np.ndarray:
    """:func:`generate` by recomputation: the model on the last ``context`` ids each step."""
    context = _context(model)
    out = ids.astype(np.int64)
    for _ in range(steps):
        window = out if context is None else out[:, -context:]
        y = model.apply_with_state(params, state, window)[0]
        logits = y[0] if isinstance(y, tuple) else y
        logits = logits[:, -1] if logits.ndim == 3 else logits
        new = sample(logits, gen, temperature=temperature, top_k=top_k)[:, None]
        out = np.concatenate([out, new], axis=1)
    return out
