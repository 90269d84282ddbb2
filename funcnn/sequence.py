"""Sequence models' tools: a loss over the real steps of masked sequences, and sampling
text from a generative model one token at a time.

``masked(loss)`` takes the pair ``(predictions, mask)`` a masked model outputs
(``serial(Embedding(v, d, mask_zero=True), LSTM(u, return_sequences=True),
per_step(Dense(v)))`` gives ``(logits, mask)``), or plain predictions with the pair
``(targets, mask)`` as the target; the value is the mean over the real (unmasked)
positions. ``sample`` draws ids from logits; ``generate`` extends prompts, carrying each
recurrent layer's state from step to step (no prefix is computed twice).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import nn
from funcnn import validate as check
from funcnn.layers.base import Layer
from funcnn.layers.combinators import Serial
from funcnn.layers.masking import as_mask, mask_grad
from funcnn.layers.recurrent import RNN
from funcnn.losses import Loss
from funcnn.random import RngLike, as_generator


@attrs.frozen
class Masked(Loss):
    """``loss`` over the real positions of ``(batch, time, ...)`` predictions: its value is
    the mean over every position where the mask is True (for ``softmax_cross_entropy``
    on ``(batch, time, classes)`` logits and ``(batch, time)`` labels: the mean
    cross-entropy of the real steps). Masked positions get a zero gradient; with no real
    position the value is 0.

    The mask comes with the predictions, ``pred = (values, mask)`` (what a model whose
    input went through ``Embedding(mask_zero=True)`` outputs; its gradient is then the
    pair ``(dvalues, zeros)``), or with the target, ``target = (targets, mask)``. ``loss``
    must be a mean over rows (every built-in loss is): it is called on the real
    positions only, as rows.
    """

    loss: Loss = attrs.field(validator=attrs.validators.instance_of(Loss))

    @property
    def takes_logits(self) -> bool:  # type: ignore[override]
        return self.loss.takes_logits

    def _split(self, pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(pred, tuple) and len(pred) == 2:
            values, mask = pred
        elif isinstance(target, tuple) and len(target) == 2:
            target, mask = target
            values = pred
        else:
            raise ValueError(
                "a masked loss takes the pair (predictions, mask) as its predictions or the "
                f"pair (targets, mask) as its target, got {type(pred).__name__} and "
                f"{type(target).__name__}"
            )
        values, t = np.asarray(values), np.asarray(target)
        if values.ndim < 2 or t.shape[:2] != values.shape[:2]:
            raise ValueError(
                f"masked loss: expected predictions (batch, time, ...) and targets with the same "
                f"(batch, time), got shapes {values.shape} and {t.shape}"
            )
        return values, t, as_mask(mask, values.shape[:2], "masked loss")

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, Any]:
        values, t, mask = self._split(pred, target)
        dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float32)
        grad = np.zeros(values.shape, dtype)
        value = 0.0
        if mask.any():
            value, real = self.loss.value_and_grad(values[mask], t[mask])
            grad[mask] = real
        return value, ((grad, mask_grad(mask, dtype)) if isinstance(pred, tuple) else grad)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        """Each sequence's share: its real positions' losses summed, times batch / real
        positions (their mean is the loss)."""
        values, t, mask = self._split(pred, target)
        real = int(mask.sum())
        if real == 0:
            return np.zeros(len(values))
        per_position = self.loss.per_example(values[mask], t[mask])
        rows = np.nonzero(mask)[0]
        return np.bincount(rows, weights=per_position, minlength=len(values)) * (len(values) / real)


def masked(loss: Loss) -> Masked:
    """``loss`` averaged over the real positions of masked sequences; see :class:`Masked`."""
    return Masked(loss)


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
