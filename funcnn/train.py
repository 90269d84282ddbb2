"""Training: a pure ``train_step`` for custom loops, and ``fit``/``evaluate``/``predict``.

``fit`` is a short loop around the same pure step: params, optimizer state and
layer state go in and come out as new values; callbacks see them through a
:class:`TrainingContext` and may replace them (restore the best params, lower the
learning rate) or stop training.

Randomness: ``fit`` draws one base seed from ``rng``. Epoch ``e`` shuffles with
``default_rng([base, e])`` and its step ``s`` gets the key ``Key((base, e, s))``
(dropout masks), so a run resumed at ``initial_epoch=e`` from a checkpoint
continues bit for bit.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from funcnn import distributed, optim, tree
from funcnn import metrics as metrics_lib
from funcnn import validate as check
from funcnn.gradients import check_model_and_loss, forward_backward
from funcnn.layers.base import Layer, RngArg
from funcnn.losses import Loss, Penalty, Weighted
from funcnn.random import Key, RngLike, as_generator
from funcnn.types import LayerState, OptState, Params


def train_step(
    model: Layer,
    loss: Loss,
    optimizer: optim.GradientTransformation,
    *,
    penalty: Penalty | None = None,
) -> Callable[..., tuple[Params, OptState, float]]:
    """``step(params, opt_state, x, y, rng=None) -> (params, opt_state, loss)``, pure.

    For models with state (BatchNorm) use :func:`train_step_with_state`: here their
    forward raises an error that says so.
    """
    step = train_step_with_state(model, loss, optimizer, penalty=penalty)

    def fn(
        params: Params, opt_state: OptState, x: Any, y: Any, rng: RngArg = None
    ) -> tuple[Params, OptState, float]:
        params, _, opt_state, value, _ = step(params, None, opt_state, x, y, rng)
        return params, opt_state, value

    return fn


def train_step_with_state(
    model: Layer,
    loss: Loss,
    optimizer: optim.GradientTransformation,
    *,
    penalty: Penalty | None = None,
) -> Callable[..., tuple[Params, LayerState, OptState, float, Any]]:
    """``step(params, state, opt_state, x, y, rng=None) -> (params, state, opt_state, loss, pred)``.

    ``state`` is ``model.init_state(input_shape)`` (None works for a model without
    state); ``pred`` is the training-mode output.
    """
    if not isinstance(optimizer, optim.GradientTransformation):
        raise TypeError(
            f"optimizer must be a GradientTransformation such as optim.adam(1e-3), got "
            f"{type(optimizer).__name__}"
        )
    check_model_and_loss(model, loss, penalty)

    def fn(
        params: Params, state: LayerState, opt_state: OptState, x: Any, y: Any, rng: RngArg = None
    ) -> tuple[Params, LayerState, OptState, float, Any]:
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

    @property
    def epoch(self) -> list[int]:
        """The epoch numbers (Keras' name for :attr:`epochs`)."""
        return self.epochs

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
    params: Params
    state: LayerState
    opt_state: OptState
    history: History
    input_shape: Any
    epoch: int = 0
    stop_training: bool = False
    stop_reason: str | None = None


class Callback:
    """Override any of these; ``logs`` maps names (``"loss"``, ``"val_loss"``...) to values.

    A callback keeps whatever it needs to remember on itself (set it up in
    ``on_train_begin``); the context holds only the training values. One that
    writes files sets ``writes_files = True``: in a distributed ``fit`` only rank 0
    runs it.
    """

    writes_files = False

    def on_train_begin(self, ctx: TrainingContext) -> None:
        pass

    def on_epoch_begin(self, epoch: int, ctx: TrainingContext) -> None:
        pass

    def on_batch_begin(self, batch: int, ctx: TrainingContext) -> None:
        pass

    def on_batch_end(self, batch: int, loss: float, ctx: TrainingContext) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        pass

    def on_train_end(self, ctx: TrainingContext) -> None:
        pass


# ---------------------------------------------------------------- predict and evaluate


Data = Any  # one array with a leading sample axis, or a tuple of them (several inputs/targets)


def _as_batch(x: Any, name: str) -> Data:
    """``x`` as an array (or, for several inputs or targets, a tuple of arrays) with a
    leading sample axis; every array has the same number of samples."""
    if isinstance(x, tuple) or (
        isinstance(x, list) and x and all(isinstance(a, np.ndarray) for a in x)
    ):  # (x1, x2) or Keras' [x1, x2]: several inputs
        if not x:
            raise ValueError(f"{name} is an empty tuple: give one array per input")
        arrays = tuple(_as_batch(a, f"{name}[{i}]") for i, a in enumerate(x))
        lengths = {len(a) for a in arrays}
        if len(lengths) > 1:
            sizes = ", ".join(str(len(a)) for a in arrays)
            raise ValueError(f"the arrays of {name} differ in their numbers of samples: {sizes}")
        return arrays
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.ndim < 1 or len(a) == 0:
        raise ValueError(
            f"{name} must be a non-empty batch with a leading sample axis, got {a.shape}"
        )
    return a


def _count(data: Data) -> int:
    """The number of samples."""
    return len(data[0]) if isinstance(data, tuple) else len(data)


def _rows(data: Data, index: Any) -> Data:
    """The samples at ``index`` (a slice or an index array) of each array."""
    return tuple(a[index] for a in data) if isinstance(data, tuple) else data[index]


def _join(pieces: list[Data]) -> Data:
    """Pieces of rows back together, in order."""
    if len(pieces) == 1:
        return pieces[0]
    if isinstance(pieces[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*pieces))
    return np.concatenate(pieces)


def _same_count(x: Data, y: Data, names: tuple[str, str] = ("x", "y")) -> None:
    if _count(x) != _count(y):
        raise ValueError(f"{names[0]} has {_count(x)} samples but {names[1]} has {_count(y)}")


def predict(
    model: Layer, params: Params, x: Any, *, batch_size: int = 256, state: LayerState = None
) -> np.ndarray:
    """Inference-mode outputs for ``x``, computed ``batch_size`` samples at a time.

    Memory beyond the output is bounded by one batch's activations. Models with
    state (BatchNorm) need ``state`` (from ``fit``'s history.state or ``model.init_state``).
    """
    x = _as_batch(x, "x")
    batch_size = check.positive_int("batch_size", batch_size)
    pieces = [
        model.apply_with_state(params, state, _rows(x, slice(i, i + batch_size)))[0]
        for i in range(0, _count(x), batch_size)
    ]
    return _join(pieces)


def _score(
    loss: Loss, metric_list: Sequence[metrics_lib.Metric], pred: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    logs = {"loss": loss(pred, y)}
    truth = _metric_target(loss, y)
    for m in metric_list:
        logs[m.name] = m(pred, truth)
    return logs


def _metric_target(loss: Loss, y: Data) -> Data:
    """What metrics compare with: the targets, without a weighted loss's sample weights."""
    return y[0] if isinstance(loss, Weighted) and isinstance(y, tuple) else y


def evaluate(
    model: Layer,
    params: Params,
    loss: Loss,
    x: Any,
    y: Any,
    *,
    metrics: Sequence[Any] = (),
    batch_size: int = 256,
    state: LayerState = None,
) -> dict[str, float]:
    """``{"loss": ..., metric names: ...}`` on ``(x, y)`` in inference mode (no penalty)."""
    x, y = _as_batch(x, "x"), _as_batch(y, "y")
    _same_count(x, y)
    metric_list = [metrics_lib.get(m, logits=loss.takes_logits) for m in metrics]
    pred = predict(model, params, x, batch_size=batch_size, state=state)
    return _score(loss, metric_list, pred, y)


# ---------------------------------------------------------------- progress


class _Progress:
    """A one-line progress bar (steps, rate, running loss) and Keras-style epoch lines."""

    def __init__(self, verbose: int, epochs: int, steps: int, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        if verbose == 1 and not getattr(self.stream, "isatty", lambda: False)():
            verbose = 2  # a log file or CI: carriage returns would run together (as Keras)
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
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


# ---------------------------------------------------------------- fit, in named steps


def _split(
    x: Data, y: Data, validation_split: float, validation_data: Any
) -> tuple[Data, Data, tuple[Data, Data] | None]:
    """The training data and the validation pair (or None)."""
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_split or validation_data, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        xv, yv = _as_batch(validation_data[0], "x_val"), _as_batch(validation_data[1], "y_val")
        _same_count(xv, yv, ("x_val", "y_val"))
        return x, y, (xv, yv)
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, (int, float, np.floating))
        or not 0 <= validation_split < 1
    ):
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if not validation_split:
        return x, y, None
    n = _count(x)
    cut = int(n * (1 - validation_split))  # the LAST samples, before any shuffling (Keras)
    if cut < 1 or cut >= n:
        raise ValueError(
            f"validation_split={validation_split} leaves {cut} training and {n - cut} "
            f"validation samples out of {n}"
        )
    train_y, val_y = _rows(y, slice(None, cut)), _rows(y, slice(cut, None))
    _warn_if_one_class(train_y, val_y, validation_split)
    return _rows(x, slice(None, cut)), train_y, (_rows(x, slice(cut, None)), val_y)


def _classes(y: Data) -> np.ndarray | None:
    """The class of each sample, where ``y`` clearly holds classes (integer labels or
    one-hot rows); None for anything else (regression targets, several targets)."""
    if isinstance(y, tuple):
        return None
    if y.dtype.kind in "iub" and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        return y.reshape(-1)
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(1) == 1):
        return y.argmax(axis=1)
    return None


def _warn_if_one_class(train_y: Data, val_y: Data, validation_split: float) -> None:
    """Data sorted by class (the MNIST sample is) would validate on one class: say so."""
    train, val = _classes(train_y), _classes(val_y)
    if train is None or val is None:
        return
    held_out = np.unique(val)
    if len(held_out) == 1 and len(np.unique(train)) > 1:
        warnings.warn(
            f"validation_split={validation_split} holds out the last {len(val)} samples, "
            f"and every one of them is of class {held_out[0]}: the data look sorted by "
            "class. Shuffle them first (e.g. funcnn.datasets.train_test_split, or "
            "x[p], y[p] for a seeded permutation p), or pass validation_data",
            UserWarning,
            stacklevel=3,
        )


def _callback_list(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list: one callback alone is welcome, a class is not an instance."""
    items: list[Any] = [callbacks] if isinstance(callbacks, (Callback, type)) else list(callbacks)
    for i, cb in enumerate(items):
        if isinstance(cb, type):
            raise TypeError(
                f"callbacks[{i}] is the class {cb.__name__}, not a callback: construct it, "
                f"e.g. {cb.__name__}()"
            )
        if not callable(getattr(cb, "on_epoch_end", None)):
            raise TypeError(f"callbacks[{i}] must be a funcnn Callback, got {type(cb).__name__}")
    return items


def _batches(n: int, batch_size: int, order: np.ndarray | None) -> Iterator[Any]:
    """The index (a slice, or a piece of the shuffled order) of each mini-batch."""
    for start in range(0, n, batch_size):
        yield (
            slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        )


@attrs.define
class _Epoch:
    """One epoch's loop over mini-batches, and what it reports."""

    step: Callable[..., tuple[Params, LayerState, OptState, float, Any]]
    loss: Loss
    x: np.ndarray
    y: np.ndarray
    batch_size: int
    metric_list: list[metrics_lib.Metric]
    callbacks: Sequence[Callback]
    progress: _Progress
    share: Callable[[int], slice]  # the rows of a batch this process computes
    gather: Callable[[Any], np.ndarray] = lambda part: part  # every process's rows, in order

    def run(self, ctx: TrainingContext, order: np.ndarray | None, seed: int) -> dict[str, float]:
        total, seen, preds = 0.0, 0, []
        for b, idx in enumerate(_batches(_count(self.x), self.batch_size, order)):
            yb = _rows(self.y, idx)
            n = _count(yb)
            mine = self.share(n)
            if isinstance(idx, slice):
                xb = _rows(self.x, slice(idx.start + mine.start, idx.start + mine.stop))
            else:
                xb = _rows(self.x, idx[mine])  # a memory-mapped x is read only where needed
            for cb in self.callbacks:
                cb.on_batch_begin(b, ctx)
            ctx.params, ctx.state, ctx.opt_state, value, pred = self.step(
                ctx.params, ctx.state, ctx.opt_state, xb, yb, Key((seed, ctx.epoch, b))
            )
            total, seen = total + value * n, seen + n
            if self.metric_list:
                preds.append(pred)
            self.progress.batch(b + 1, total / seen)
            for cb in self.callbacks:
                cb.on_batch_end(b, value, ctx)
            if ctx.stop_training:
                return {"loss": total / seen}
        logs = {"loss": total / seen}
        if self.metric_list:  # on the epoch's training-mode outputs, as Keras reports them
            pred, truth = _join(preds), self.y if order is None else _rows(self.y, order)
            truth = _metric_target(self.loss, truth)
            logs.update({m.name: m(pred, truth) for m in self.metric_list})
        return logs


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
    metrics: Sequence[Any] | str = (),
    callbacks: Sequence[Callback] | Callback = (),
    verbose: int = 1,
    penalty: Penalty | None = None,
    state: LayerState = None,
    opt_state: OptState = None,
    initial_epoch: int = 0,
    comm: Any = None,
) -> tuple[Params, History]:
    """Train for ``epochs`` epochs of mini-batches; returns ``(params, history)``.

    Every sample is used every epoch, the last partial batch included.
    ``validation_split`` holds out the LAST fraction of samples before shuffling
    (as Keras). ``rng`` (an int seed or Generator) drives the shuffles and dropout.
    ``state``/``opt_state`` default to fresh ones; pass those of a checkpoint with
    ``initial_epoch`` to resume. ``history.params``/``.state``/``.opt_state`` hold the
    final values. ``verbose``: 0 silent, 1 progress bar and epoch lines, 2 epoch lines.

    ``comm`` (an mpi4py communicator, e.g. ``MPI.COMM_WORLD``) trains on every process
    of it at once, each on its share of every batch, with the bits of one process
    (:mod:`funcnn.distributed`); every process gets the same ``(params, history)``.
    """
    # A process that raises, in a check too, ends every process of comm: none waits on it
    with distributed.abort_on_error(comm):
        x, y = _as_batch(x, "x"), _as_batch(y, "y")
        _same_count(x, y)
        epochs = check.positive_int("epochs", epochs)
        batch_size = check.positive_int("batch_size", batch_size)
        initial_epoch = check.non_negative_int("initial_epoch", initial_epoch)
        verbose = check.choice("verbose", verbose, (0, 1, 2))
        shuffle = check.boolean("shuffle", shuffle)
        metrics = [metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics)
        callbacks = _callback_list(callbacks)
        step = train_step_with_state(model, loss, optimizer, penalty=penalty)  # checks all four
        x, y, validation = _split(x, y, validation_split, validation_data)
        input_shape = (
            tuple(tuple(a.shape[1:]) for a in x) if isinstance(x, tuple) else tuple(x.shape[1:])
        )
        metric_list = [metrics_lib.get(m, logits=loss.takes_logits) for m in metrics]
        seed = int(as_generator(rng).integers(2**63))
        ctx = TrainingContext(
            model=model,
            params=params,
            state=model.init_state(input_shape) if state is None else state,
            opt_state=optimizer.init(params) if opt_state is None else opt_state,
            history=History(),
            input_shape=input_shape,
        )
        rank, size = 0, 1
        if comm is not None:  # every process computes its share of each batch (funcnn.distributed)
            comm = distributed.check_comm(comm)
            if isinstance(x, tuple) or isinstance(y, tuple):
                raise ValueError("fit(comm=...) takes one array x and one array y, not tuples")
            rank, size = comm.Get_rank(), comm.Get_size()
            distributed.agree(
                comm, x, y, validation, validation_split=validation_split, model=model, loss=loss,
                penalty=penalty, batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                shuffle=shuffle,
            )  # fmt: skip
            step = train_step_with_state(
                distributed.DataParallel(model, comm), loss, optimizer, penalty=penalty
            )
            verbose = verbose if rank == 0 else 0
            callbacks = [c for c in callbacks if rank == 0 or not getattr(c, "writes_files", False)]
        progress = _Progress(verbose, epochs, math.ceil(_count(x) / batch_size))
        share = functools.partial(distributed.share, rank=rank, size=size)
        one_epoch = _Epoch(step, loss, x, y, batch_size, metric_list, callbacks, progress, share)
        if comm is not None:  # every process starts from rank 0's values
            values, seed = comm.bcast(((ctx.params, ctx.state, ctx.opt_state), seed), root=0)
            ctx.params, ctx.state, ctx.opt_state = (tree.freeze(v) for v in values)
            one_epoch.gather = functools.partial(distributed.gather_rows, comm)
        _loop(ctx, one_epoch, range(initial_epoch, epochs), seed, shuffle, validation)
    history = ctx.history
    history.params, history.state, history.opt_state = ctx.params, ctx.state, ctx.opt_state
    history.stopped_reason = ctx.stop_reason
    if ctx.stop_reason and verbose:
        print(ctx.stop_reason)
    return ctx.params, history


def _loop(
    ctx: TrainingContext,
    one_epoch: _Epoch,
    epochs: range,
    seed: int,
    shuffle: bool,
    validation: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """The epochs: callbacks around each, the epoch's batches, validation, logs."""
    callbacks, progress, loss = one_epoch.callbacks, one_epoch.progress, one_epoch.loss
    for cb in callbacks:
        cb.on_train_begin(ctx)
    for epoch in epochs:
        ctx.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_begin(epoch, ctx)
        progress.epoch_begin(epoch)
        started = time.perf_counter()
        n = _count(one_epoch.x)
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else None
        logs = one_epoch.run(ctx, order, seed)
        if validation is not None and not ctx.stop_training:
            # each process predicts its share (a prediction does not depend on its batch)
            xv, size = validation[0], max(one_epoch.batch_size, 256)
            mine = one_epoch.share(_count(xv))
            part = None
            if mine.stop > mine.start:
                try:
                    part = predict(
                        ctx.model, ctx.params, _rows(xv, mine), batch_size=size, state=ctx.state
                    )
                except (TypeError, ValueError) as e:
                    raise type(e)(f"the validation data does not fit the model: {e}") from e
            pred = one_epoch.gather(part)
            scores = _score(loss, one_epoch.metric_list, pred, validation[1])
            logs.update({f"val_{k}": v for k, v in scores.items()})
        logs.update(_learning_rate(ctx.opt_state), time=time.perf_counter() - started)
        ctx.history.append(epoch, logs)
        progress.epoch_end(logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs, ctx)
        if ctx.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(ctx)


def _learning_rate(opt_state: OptState) -> dict[str, float]:
    """``{"lr": rate}`` for an optimizer state that holds a learning rate, else ``{}``."""
    try:
        return {"lr": optim.current_learning_rate(opt_state)}
    except ValueError:
        return {}
