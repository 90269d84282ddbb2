"""``evaluate`` and ``predict`` batch by batch, for Keras callbacks: ``on_test_begin``,
``on_test_batch_begin/end`` (with the running loss and metrics over the batches so far,
as Keras logs them), ``on_test_end`` with the scores; ``on_predict_*`` likewise, each
batch's ``{"outputs": ...}``. The outputs are the same bits as the one-call path's
(:func:`funcnn.train.predict` computes each batch alone either way).

:func:`evaluate_batches` and :func:`predict_batches` do the same over batches that come
in their own sizes (a generator's, a PyDataset's: :mod:`funcnn.keras.data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from funcnn import batching, linalg, losses, train
from funcnn import metrics as metrics_lib
from funcnn.keras.callbacks import Callback
from funcnn.layers.base import Layer


def keras_callbacks(callbacks: Any, model: Any) -> list[Callback]:
    """The Keras-style callbacks among ``callbacks`` (one or a list), each told its model;
    funcnn's own callbacks have no evaluate or predict hooks and are left out, as Keras
    calls no-ops there."""
    given = [] if callbacks is None else (
        list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    )  # fmt: skip
    found = []
    for i, cb in enumerate(given):
        if isinstance(cb, type):
            raise TypeError(f"callbacks[{i}] is the class {cb.__name__}; construct it first")
        if isinstance(cb, Callback):
            cb.set_model(model)
            found.append(cb)
        elif not isinstance(cb, train.Callback):
            raise TypeError(f"callbacks[{i}] must be a keras.callbacks.Callback, got {cb!r:.60}")
    return found


def _batches(
    model: Layer, params: Any, state: Any, x: Any, batch_size: int,
    begin: Callable[[int], None], end: Callable[[int, Any, int], None],
) -> Any:  # fmt: skip
    """The outputs for ``x``, ``batch_size`` rows at a time; ``begin(b)`` before batch
    ``b``, ``end(b, outputs so far, rows so far)`` after it."""
    n = batching.count(x)
    pieces = []
    for b, start in enumerate(range(0, n, batch_size)):
        begin(b)
        stop = min(start + batch_size, n)
        rows = batching.rows(x, slice(start, stop))
        pieces.append(train.predict(model, params, rows, batch_size=batch_size, state=state))
        end(b, pieces, stop)
    return batching.join(pieces)


def evaluate(
    callbacks: Sequence[Callback], model: Layer, params: Any, state: Any, loss: losses.Loss,
    metrics: Sequence[metrics_lib.Metric], x: Any, y: Any, batch_size: int,
) -> dict[str, float]:  # fmt: skip
    """``train.evaluate``'s scores, with the test hooks of ``callbacks`` around each batch."""
    x, y = batching.as_batch(x, "x"), batching.as_batch(y, "y")
    batching.same_count(x, y)

    def scores(pred: Any, rows: int) -> dict[str, float]:
        target = batching.rows(y, slice(0, rows))
        truth = target[0] if isinstance(loss, losses.Weighted) else target
        return {"loss": loss(pred, target), **{m.name: m(pred, truth) for m in metrics}}

    def begin(b: int) -> None:
        for cb in callbacks:
            cb.on_test_batch_begin(b, {})

    def end(b: int, pieces: list[Any], rows: int) -> None:
        logs = scores(batching.join(pieces), rows)  # Keras' running values
        for cb in callbacks:
            cb.on_test_batch_end(b, dict(logs))

    for cb in callbacks:
        cb.on_test_begin({})
    with linalg.blas_held():
        pred = _batches(model, params, state, x, batch_size, begin, end)
        result = scores(pred, batching.count(x))
    for cb in callbacks:
        cb.on_test_end(dict(result))
    return result


def predict(
    callbacks: Sequence[Callback], model: Layer, params: Any, state: Any, x: Any,
    batch_size: int, values: Callable[[Any], Any],
) -> Any:  # fmt: skip
    """``train.predict``'s outputs, with the predict hooks of ``callbacks``; ``values``
    gives what the model returns of an output (a masked sequence's values)."""
    x = batching.as_batch(x, "x")

    def begin(b: int) -> None:
        for cb in callbacks:
            cb.on_predict_batch_begin(b, {})

    def end(b: int, pieces: list[Any], rows: int) -> None:
        for cb in callbacks:
            cb.on_predict_batch_end(b, {"outputs": values(pieces[-1])})

    for cb in callbacks:
        cb.on_predict_begin({})
    with linalg.blas_held():
        pred = _batches(model, params, state, x, batch_size, begin, end)
    for cb in callbacks:
        cb.on_predict_end({})
    return values(pred)


def score(
    loss: losses.Loss,
    metrics: Sequence[metrics_lib.Metric],
    preds: list[Any],
    ys: list[Any],
    ws: list[Any],
) -> dict[str, float]:
    """The loss and metrics on batches' outputs ``preds`` and targets ``ys``; where any
    batch has sample weights ``ws`` the loss is weighted (by ones in the batches without)."""
    pred, y = batching.join(preds), batching.join(ys)
    logs: dict[str, float]
    if all(w is None for w in ws):
        logs = {"loss": loss(pred, y)}
    else:
        w = np.concatenate([
            np.ones(batching.count(t)) if v is None else np.asarray(v, dtype=np.float64)
            for t, v in zip(ys, ws)
        ])  # fmt: skip
        logs = {"loss": losses.weighted(loss)(pred, (y, w))}
    logs.update({m.name: m(pred, y) for m in metrics})
    return logs


def evaluate_batches(
    callbacks: Sequence[Callback], model: Layer, params: Any, state: Any, loss: losses.Loss,
    metrics: Sequence[metrics_lib.Metric], batches: Iterable[tuple[Any, Any, Any]],
) -> dict[str, float]:  # fmt: skip
    """The scores on ``batches`` of ``(x, y, sample weights or None)``, each predicted
    whole, with the test hooks of ``callbacks`` around each (the running scores)."""
    preds: list[Any] = []
    ys: list[Any] = []
    ws: list[Any] = []
    for cb in callbacks:
        cb.on_test_begin({})
    with linalg.blas_held():
        for b, (x, y, w) in enumerate(batches):
            for cb in callbacks:
                cb.on_test_batch_begin(b, {})
            count = batching.count(x)
            preds.append(train.predict(model, params, x, batch_size=count, state=state))
            ys.append(y)
            ws.append(w)
            if callbacks:
                logs = score(loss, metrics, preds, ys, ws)  # Keras' running values
                for cb in callbacks:
                    cb.on_test_batch_end(b, dict(logs))
        if not preds:
            raise ValueError("evaluate was given no batches")
        result = score(loss, metrics, preds, ys, ws)
    for cb in callbacks:
        cb.on_test_end(dict(result))
    return result


def predict_batches(
    callbacks: Sequence[Callback], model: Layer, params: Any, state: Any, xs: Iterable[Any],
    values: Callable[[Any], Any],
) -> Any:  # fmt: skip
    """The outputs for each batch of inputs ``xs``, each predicted whole, with the predict
    hooks of ``callbacks``; ``values`` as for :func:`predict`."""
    pieces: list[Any] = []
    for cb in callbacks:
        cb.on_predict_begin({})
    with linalg.blas_held():
        for b, x in enumerate(xs):
            for cb in callbacks:
                cb.on_predict_batch_begin(b, {})
            count = batching.count(x)
            pieces.append(train.predict(model, params, x, batch_size=count, state=state))
            for cb in callbacks:
                cb.on_predict_batch_end(b, {"outputs": values(pieces[-1])})
    for cb in callbacks:
        cb.on_predict_end({})
    if not pieces:
        raise ValueError("predict was given no batches")
    return values(batching.join(pieces))
