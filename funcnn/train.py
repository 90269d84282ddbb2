"""Training: a pure ``train_step`` for custom loops, and ``fit``/``evaluate``/``predict``.

``fit`` is a loop around the same pure step: params, optimizer state and layer
state go in and come out as new values; callbacks see them through a
:class:`TrainingContext` and may replace them (restore the best params, lower the
learning rate) or stop training.

Randomness: ``fit`` draws one base seed from ``rng`` and gives epoch ``e`` the
generator ``default_rng([base, e])`` for its shuffle and dropout masks, so a run
resumed at ``initial_epoch=e`` from a checkpoint continues bit for bit.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from funcnn import metrics as metrics_lib
from funcnn import optim
from funcnn.gradients import check_model_and_loss, forward_backward
from funcnn.layers.base import Layer, Params
from funcnn.losses import Loss, Penalty, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from funcnn.random import RngLike, as_generator


def train_step(
    model: Layer,
    loss: Loss,
    optimizer: optim.GradientTransformation,
    *,
    penalty: Penalty | None = None,
) -> Callable[..., tuple[Params, Any, float]]:
    """``step(params, opt_state, x, y, rng=None) -> (params, opt_state, loss)``, pure.

    For models with state (BatchNorm) use :func:`train_step_with_state`: here their
    ``forward`` raises an error that says so.
    """
    step = train_step_with_state(model, loss, optimizer, penalty=penalty)

    def fn(
        params: Params, opt_state: Any, x: Any, y: Any, rng: RngLike | None = None
    ) -> tuple[Params, Any, float]:
        params, _, opt_state, value, _ = step(params, None, opt_state, x, y, rng)
        return params, opt_state, value

    return fn


def train_step_with_state(
    model: Layer,
    loss: Loss,
    optimizer: optim.GradientTransformation,
    *,
    penalty: Penalty | None = None,
) -> Callable[..., tuple[Params, Any, Any, float, Any]]:
    """``step(params, state, opt_state, x, y, rng=None) -> (params, state, opt_state, loss, pred)``.

    ``state`` is ``model.init_state(input_shape)``, or None for a stateless model;
    ``pred`` is the training-mode output.
    """
    if not isinstance(optimizer, optim.GradientTransformation):
        raise TypeError(
            f"optimizer must be a GradientTransformation such as optim.adam(1e-3), got "
            f"{type(optimizer).__name__}"
        )
    check_model_and_loss(model, loss, penalty)

    def fn(
        params: Params, state: Any, opt_state: Any, x: Any, y: Any, rng: RngLike | None = None
    ) -> tuple[Params, Any, Any, float, Any]:
        value, grads, new_state, pred = forward_backward(
            model, loss, params, state, x, y, rng=rng, train=True, penalty=penalty
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), new_state, opt_state, value, pred

    return fn


# ---------------------------------------------------------------- history and callbacks


@attrs.define
class History:
    """Per-epoch records: ``history["loss"]``, ``history["val_accuracy"]``, ``"lr"``, ``"time"``."""

    history: dict[str, list[float]] = attrs.field(factory=dict)
    epochs: list[int] = attrs.field(factory=list)
    params: Any = None
    state: Any = None
    opt_state: Any = None
    stopped_reason: str | None = None

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, [math.nan] * (len(self.epochs) - 1)).append(value)
        for values in self.history.values():
            if len(values) < len(self.epochs):
                values.append(math.nan)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def keys(self) -> list[str]:
        return list(self.history)

    def to_dict(self) -> dict[str, list[float]]:
        """A plain dict of lists, with the epoch numbers under ``"epoch"``."""
        return {"epoch": list(self.epochs), **{k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> History:
        data = dict(data)
        epochs = [int(e) for e in data.pop("epoch", range(len(next(iter(data.values()), []))))]
        return cls(history={k: [float(x) for x in v] for k, v in data.items()}, epochs=epochs)


@attrs.define
class TrainingContext:
    """What callbacks see and may change during ``fit``."""

    model: Layer
    params: Any
    state: Any
    opt_state: Any
    history: History
    input_shape: Any
    epoch: int = 0
    stop_training: bool = False
    stop_reason: str | None = None
    last_finite_params: Any = None  # params, state and optimizer state before the last step
    last_finite_state: Any = None
    last_finite_opt_state: Any = None


class Callback:
    """Override any of these; ``logs`` maps names (``"loss"``, ``"val_loss"``...) to values."""

    def on_train_begin(self, ctx: TrainingContext) -> None:
        pass

    def on_epoch_begin(self, epoch: int, ctx: TrainingContext) -> None:
        pass

    def on_batch_end(self, batch: int, loss: float, ctx: TrainingContext) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        pass

    def on_train_end(self, ctx: TrainingContext) -> None:
        pass


# ---------------------------------------------------------------- helpers


def _as_batch(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.ndim < 1 or len(a) == 0:
        raise ValueError(
            f"{name} must be a non-empty batch with a leading sample axis, got {a.shape}"
        )
    return a


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _is_logits_loss(loss: Loss) -> bool:
    return isinstance(loss, (SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy))


def _outputs(
    model: Layer, params: Params, state: Any, x: np.ndarray, batch_size: int
) -> np.ndarray:
    pieces = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        if model.stateful:
            y, _ = model.apply_with_state(params, state, xb)
        else:
            y = model.apply(params, xb)
        pieces.append(y)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def predict(
    model: Layer, params: Params, x: Any, *, batch_size: int = 256, state: Any = None
) -> np.ndarray:
    """Inference-mode outputs for ``x``, computed ``batch_size`` samples at a time.

    Memory beyond the output is bounded by one batch's activations. Stateful
    models need ``state`` (from ``fit``'s history.state or ``model.init_state``).
    """
    x = _as_batch(x, "x")
    batch_size = _positive_int("batch_size", batch_size)
    if model.stateful and state is None:
        raise ValueError(f"{model!r} keeps state: call predict(..., state=state)")
    return _outputs(model, params, state, x, batch_size)


def _score(
    loss: Loss, metric_list: Sequence[metrics_lib.Metric], y: np.ndarray, pred: np.ndarray
) -> dict[str, float]:
    logs = {"loss": loss(pred, y)}
    for m in metric_list:
        logs[m.name] = m(y, pred)
    return logs


def evaluate(
    model: Layer,
    params: Params,
    loss: Loss,
    x: Any,
    y: Any,
    *,
    metrics: Sequence[Any] = (),
    batch_size: int = 256,
    state: Any = None,
) -> dict[str, float]:
    """``{"loss": ..., metric names: ...}`` on ``(x, y)`` in inference mode (no penalty)."""
    x, y = _as_batch(x, "x"), _as_batch(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    metric_list = [metrics_lib.get(m, logits=_is_logits_loss(loss)) for m in metrics]
    pred = predict(model, params, x, batch_size=batch_size, state=state)
    return _score(loss, metric_list, y, pred)


# ---------------------------------------------------------------- progress


class _Progress:
    """A one-line progress bar (steps, rate, running loss) and Keras-style epoch lines."""

    def __init__(self, verbose: int, epochs: int, steps: int, stream: Any = None) -> None:
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.stream = stream or sys.stdout
        self.last_draw = 0.0
        self.drawn = 0

    def epoch_begin(self, epoch: int) -> None:
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs}\n")
        self.start = time.perf_counter()

    def batch(self, step: int, running_loss: float) -> None:
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if step < self.steps and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 30
        done = int(width * step / self.steps)
        rate = step / max(now - self.start, 1e-9)
        bar = "=" * max(done - 1, 0) + (">" if done < width else "=") + "." * (width - done)
        line = f"{step}/{self.steps} [{bar}] {rate:.0f} steps/s - loss: {running_loss:.4f}"
        self.stream.write("\r" + line)
        self.stream.flush()
        self.drawn = len(line)

    def epoch_end(self, logs: dict[str, float]) -> None:
        if not self.verbose:
            return
        parts = [f"{logs['time']:.2f}s"]
        parts += [f"{k}: {v:.4g}" for k, v in logs.items() if k != "time"]
        line = f"{self.steps}/{self.steps} - " + " - ".join(parts)
        if self.verbose == 1:  # overwrite the bar, blanking what the line does not cover
            line = "\r" + line.ljust(self.drawn)
        self.stream.write(line + "\n")
        self.stream.flush()


# ---------------------------------------------------------------- fit


def _split(
    x: np.ndarray, y: np.ndarray, validation_split: float, validation_data: Any
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_split or validation_data, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        xv, yv = _as_batch(validation_data[0], "x_val"), _as_batch(validation_data[1], "y_val")
        if len(xv) != len(yv):
            raise ValueError(f"x_val has {len(xv)} samples but y_val has {len(yv)}")
        return x, y, (xv, yv)
    if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if not validation_split:
        return x, y, None
    cut = int(len(x) * (1 - validation_split))  # the LAST samples, before any shuffling (Keras)
    if cut < 1 or cut >= len(x):
        raise ValueError(
            f"validation_split={validation_split} leaves {cut} training and {len(x) - cut} "
            f"validation samples out of {len(x)}"
        )
    return x[:cut], y[:cut], (x[cut:], y[cut:])


def fit(
    model: Layer,
    params: Params,
    loss: Loss,
    optimizer: optim.GradientTransformation,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int = 32,
    rng: RngLike = 0,
    shuffle: bool = True,
    validation_split: float = 0.0,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[Any] = (),
    callbacks: Sequence[Callback] = (),
    verbose: int = 1,
    penalty: Penalty | None = None,
    state: Any = None,
    opt_state: Any = None,
    initial_epoch: int = 0,
) -> tuple[Params, History]:
    """Train for ``epochs`` epochs of mini-batches; returns ``(params, history)``.

    Every sample is used every epoch, the last partial batch included.
    ``validation_split`` holds out the LAST fraction of samples before shuffling
    (as Keras). ``rng`` (an int seed or Generator) drives the shuffles and dropout.
    ``state``/``opt_state`` default to fresh ones; pass those of a checkpoint with
    ``initial_epoch`` to resume. ``history.params``/``.state``/``.opt_state`` hold the
    final values. ``verbose``: 0 silent, 1 progress bar and epoch lines, 2 epoch lines.
    """
    x, y = _as_batch(x, "x"), _as_batch(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a funcnn.losses.Loss, got {type(loss).__name__}")
    x, y, validation = _split(x, y, validation_split, validation_data)
    input_shape = tuple(x.shape[1:])
    metric_list = [metrics_lib.get(m, logits=_is_logits_loss(loss)) for m in metrics]
    base_seed = int(as_generator(rng).integers(2**63))
    step = train_step_with_state(model, loss, optimizer, penalty=penalty)

    ctx = TrainingContext(
        model=model,
        params=params,
        state=model.init_state(input_shape) if state is None and model.stateful else state,
        opt_state=optimizer.init(params) if opt_state is None else opt_state,
        history=History(),
        input_shape=input_shape,
    )
    n = len(x)
    steps = math.ceil(n / batch_size)
    progress = _Progress(verbose, epochs, steps)
    for cb in callbacks:
        cb.on_train_begin(ctx)

    for epoch in range(initial_epoch, epochs):
        ctx.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_begin(epoch, ctx)
        epoch_rng = np.random.default_rng([base_seed, epoch])
        order = epoch_rng.permutation(n) if shuffle else None
        progress.epoch_begin(epoch)
        total, preds = 0.0, []
        started = time.perf_counter()
        for b in range(steps):
            if order is None:
                xb, yb = (
                    x[b * batch_size : (b + 1) * batch_size],
                    y[b * batch_size : (b + 1) * batch_size],
                )
            else:
                idx = order[b * batch_size : (b + 1) * batch_size]
                xb, yb = x[idx], y[idx]
            ctx.last_finite_params, ctx.last_finite_state = ctx.params, ctx.state
            ctx.last_finite_opt_state = ctx.opt_state
            ctx.params, ctx.state, ctx.opt_state, value, pred = step(
                ctx.params, ctx.state, ctx.opt_state, xb, yb, epoch_rng
            )
            total += value * len(xb)
            if metric_list:
                preds.append(pred)
            progress.batch(b + 1, total / min((b + 1) * batch_size, n))
            for cb in callbacks:
                cb.on_batch_end(b, value, ctx)
            if ctx.stop_training:
                break
        logs = {"loss": total / min(n, (b + 1) * batch_size)}
        if metric_list and not ctx.stop_training:
            all_pred = np.concatenate(preds)
            all_true = y if order is None else y[order]
            for m in metric_list:
                logs[m.name] = m(all_true, all_pred)
        if validation is not None and not ctx.stop_training:
            val_pred = _outputs(model, ctx.params, ctx.state, validation[0], max(batch_size, 256))
            for key, value in _score(loss, metric_list, validation[1], val_pred).items():
                logs[f"val_{key}"] = value
        lr = _learning_rate(ctx.opt_state)
        if lr is not None:
            logs["lr"] = lr
        logs["time"] = time.perf_counter() - started
        ctx.history.append(epoch, logs)
        progress.epoch_end(logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs, ctx)
        if ctx.stop_training:
            break

    for cb in callbacks:
        cb.on_train_end(ctx)
    history = ctx.history
    history.params, history.state, history.opt_state = ctx.params, ctx.state, ctx.opt_state
    history.stopped_reason = ctx.stop_reason
    if ctx.stop_reason and verbose:
        print(ctx.stop_reason)
    return ctx.params, history


def _learning_rate(opt_state: Any) -> float | None:
    try:
        return optim.current_learning_rate(opt_state)
    except ValueError:
        return None
