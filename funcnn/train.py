"""Training: a pure ``train_step`` for custom loops, and ``fit``/``evaluate``/``predict``.

``fit`` is a short loop around the same pure step: params, optimizer state and
layer state go in and come out as new values; callbacks see them through a
:class:`TrainingContext` and may replace them (restore the best params, lower the
learning rate) or stop training.

Randomness: ``fit`` draws one base seed from ``rng``. Epoch ``e`` shuffles with
``default_rng([base, e])`` and its step ``s`` gets the key ``Key((base, e, s))``
(dropout masks), so a run resumed at ``initial_epoch=e`` from a checkpoint
continues bit for bit.

Processes: ``fit`` is given a :class:`funcnn.plan.Plan` (one process by default) that
says which rows of each batch this process computes and how the processes' rows come
together; the loop is the same for one process or many. The batches' helpers live in
:mod:`funcnn.batching`, the progress bar in :mod:`funcnn.progress`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from funcnn import batching, linalg, optim
from funcnn import metrics as metrics_lib
from funcnn import validate as check
from funcnn.batching import Data
from funcnn.gradients import check_model_and_loss, forward_backward
from funcnn.layers.base import Layer, RngArg
from funcnn.losses import Loss, Penalty, Weighted
from funcnn.plan import LOCAL, Plan
from funcnn.progress import Progress
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
    stopped_reason: str | None = None
    """Why training stopped before its last epoch (a callback's words), or None."""

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

    def __getattr__(self, name: str) -> Any:
        if name in ("params", "state", "opt_state"):  # where they were before FitResult
            raise AttributeError(
                f"History does not hold the final {name}: fit's result does. Instead of "
                f"`params, history = fit(...)` then `history.{name}`, write `result = "
                f"fit(...)` then `result.{name}`"
            )
        raise AttributeError(f"'History' object has no attribute {name!r}")


@attrs.frozen(eq=False)
class FitResult:
    """What :func:`fit` returns: the final ``params``, ``state`` (BatchNorm's statistics) and
    ``opt_state``, and the ``history``.

    It unpacks as the pair ``params, history = fit(...)``; ``result.state`` and
    ``result.opt_state`` hold the rest (``predict(..., state=result.state)``; resume with
    ``fit(..., opt_state=result.opt_state)``).
    """

    params: Params
    history: History
    state: LayerState = None
    opt_state: OptState = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.params, self.history))

    def __getitem__(self, index: Any) -> Any:
        """``fit(...)[0]`` is the params and ``[1]`` the history, as when fit gave a pair."""
        return (self.params, self.history)[index]

    def __len__(self) -> int:
        return 2


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
    batch_logs: Callable[[], dict[str, float]] | None = None
    """During an epoch: its running loss and metrics over the batches so far (Keras'
    ``on_train_batch_end`` logs), computed when called (from the batches since the last
    call: see :class:`RunningScores`)."""


class RunningScores:
    """An epoch's running metrics, Keras' logs at each batch's end: each batch's outputs
    are added to each metric's :class:`funcnn.metrics.Running` once, on the first read
    after it, so a read costs the batches since the last one (not a pass over the epoch
    so far), and an epoch whose scores nobody reads costs nothing."""

    def __init__(self, metrics: Sequence[metrics_lib.Metric]) -> None:
        self.metrics = list(metrics)
        self.running: list[metrics_lib.Running] | None = None  # made on the first read
        self.added = 0  # batches added

    def __call__(self, preds: Sequence[Any], target: Callable[[int], Any]) -> dict[str, float]:
        """The metrics on the outputs ``preds`` of the batches so far; ``target(k)`` gives
        the targets of batch ``k``."""
        if self.running is None:
            self.running = [m.running() for m in self.metrics]
        for k in range(self.added, len(preds)):
            truth = target(k)
            for r in self.running:
                r.add(preds[k], truth)
        self.added = len(preds)
        return {m.name: r.value() for m, r in zip(self.metrics, self.running)}


class Callback:
    """Override any of these; ``logs`` maps names (``"loss"``, ``"val_loss"``...) to values.

    A callback keeps whatever it needs to remember on itself (set it up in
    ``on_train_begin``); the context holds only the training values. One that
    writes files sets ``writes_files = True``: in a distributed ``fit`` only the main
    process (rank 0) runs it.
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

    def on_test_begin(self, ctx: TrainingContext) -> None:
        """Before an epoch's validation (only where there is validation data)."""

    def on_test_end(self, logs: dict[str, float], ctx: TrainingContext) -> None:
        """After an epoch's validation: ``logs`` are its scores, without the ``val_``."""


def _hook(callback: Any, name: str) -> Callable[..., None]:
    """``callback``'s method ``name``, or one that does nothing where a callback written
    before the method existed (a duck-typed one) lacks it."""
    return getattr(callback, name, None) or (lambda *args: None)


# ---------------------------------------------------------------- predict and evaluate


def predict(
    model: Layer, params: Params, x: Any, *, batch_size: int = 256, state: LayerState = None
) -> np.ndarray:
    """Inference-mode outputs for ``x``, computed ``batch_size`` samples at a time.

    Memory beyond the output is bounded by one batch's activations. Models with
    state (BatchNorm) need ``state`` (``fit(...).state``, or ``model.init_state``).
    """
    x = batching.as_batch(x, "x")
    batch_size = check.positive_int("batch_size", batch_size)
    with linalg.blas_held():
        pieces = [
            model.apply_with_state(params, state, batching.rows(x, slice(i, i + batch_size)))[0]
            for i in range(0, batching.count(x), batch_size)
        ]
    return batching.join(pieces)


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
    x, y = batching.as_batch(x, "x"), batching.as_batch(y, "y")
    batching.same_count(x, y)
    metric_list = [metrics_lib.get(m, logits=loss.takes_logits) for m in metrics]
    with linalg.blas_held():  # the loss and metrics too
        pred = predict(model, params, x, batch_size=batch_size, state=state)
        return _score(loss, metric_list, pred, y)


# ---------------------------------------------------------------- fit, in named steps


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
    progress: Progress
    plan: Plan  # which rows of a batch this process computes, and how they come together
    validation_penalty: Penalty | None = None  # added to the validation loss

    def run(self, ctx: TrainingContext, order: np.ndarray | None, seed: int) -> dict[str, float]:
        total, seen = 0.0, 0
        preds: list[Any] = []
        rows: list[Any] = []  # each batch's rows of y
        scores = RunningScores(self.metric_list)

        def target(k: int) -> Any:  # batch k's
            return _metric_target(self.loss, batching.rows(self.y, rows[k]))

        def running() -> dict[str, float]:  # on the training-mode outputs so far, as Keras
            return {"loss": total / seen, **scores(preds, target)}

        def epoch_logs() -> dict[str, float]:  # the metrics on all the outputs at once
            logs = {"loss": total / seen}
            if self.metric_list:
                truth = batching.rows(self.y, slice(0, seen) if order is None else order[:seen])
                truth = _metric_target(self.loss, truth)
                pred = batching.join(preds)
                logs.update({m.name: m(pred, truth) for m in self.metric_list})
            return logs

        ctx.batch_logs = running
        for b, idx in enumerate(batching.batches(batching.count(self.x), self.batch_size, order)):
            yb = batching.rows(self.y, idx)
            n = batching.count(yb)
            mine = self.plan.share(n)
            if isinstance(idx, slice):
                xb = batching.rows(self.x, slice(idx.start + mine.start, idx.start + mine.stop))
            else:
                xb = batching.rows(self.x, idx[mine])  # a memory-mapped x is read only where needed
            for cb in self.callbacks:
                cb.on_batch_begin(b, ctx)
            ctx.params, ctx.state, ctx.opt_state, value, pred = self.step(
                ctx.params, ctx.state, ctx.opt_state, xb, yb, Key((seed, ctx.epoch, b))
            )
            total, seen = total + value * n, seen + n
            if self.metric_list:
                preds.append(pred)
                rows.append(idx)
            self.progress.batch(b + 1, total / seen)
            for cb in self.callbacks:
                cb.on_batch_end(b, value, ctx)
            if ctx.stop_training:
                return {"loss": total / seen}
        return epoch_logs()


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
    plan: Plan = LOCAL,
    comm: Any = None,
    validation_penalty: Penalty | None = None,
) -> FitResult:
    """Train for ``epochs`` epochs of mini-batches; returns a :class:`FitResult`, which
    unpacks as ``params, history = fit(...)``.

    Every sample is used every epoch, the last partial batch included.
    ``validation_split`` holds out the LAST fraction of samples before shuffling
    (as Keras). ``rng`` (an int seed or Generator) drives the shuffles and dropout.
    ``state``/``opt_state`` default to fresh ones; pass those of a checkpoint with
    ``initial_epoch`` to resume. The result's ``.state``/``.opt_state`` hold the final
    values. ``verbose``: 0 silent, 1 progress bar and epoch lines, 2 epoch lines.
    ``penalty`` is added to the training loss; ``validation_penalty`` (None: nothing) to
    the validation loss, at the epoch's final params (Keras adds its layers'
    regularizers to ``val_loss``).

    ``plan`` (:class:`funcnn.plan.Plan`) says which processes train: :data:`LOCAL`, this
    one alone. ``comm`` (an mpi4py communicator, e.g. ``MPI.COMM_WORLD``) is short for
    ``plan=funcnn.distributed.Plan(comm)``: every process of it trains at once, each on
    its share of every batch, with the bits of one process; every process gets the same
    result.
    """
    plan = _plan_of(plan, comm)
    # A process that raises, in a check too, ends every process of the plan: none waits on it
    with plan.on_failure(), linalg.blas_held():
        x, y = batching.as_batch(x, "x"), batching.as_batch(y, "y")
        batching.same_count(x, y)
        epochs = check.positive_int("epochs", epochs)
        batch_size = check.positive_int("batch_size", batch_size)
        initial_epoch = check.non_negative_int("initial_epoch", initial_epoch)
        verbose = check.choice("verbose", verbose, (0, 1, 2))
        shuffle = check.boolean("shuffle", shuffle)
        metrics = [metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics)
        callbacks = _callback_list(callbacks)
        train_step_with_state(model, loss, optimizer, penalty=penalty)  # checks all four
        check_model_and_loss(model, loss, validation_penalty)
        x, y, validation = batching.split_validation(x, y, validation_split, validation_data)
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
        plan.check(
            x, y, validation, validation_split=validation_split, model=model, loss=loss,
            penalty=penalty, batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
            shuffle=shuffle,
        )  # fmt: skip
        step = train_step_with_state(plan.wrap(model), loss, optimizer, penalty=penalty)
        if not plan.is_main_process:  # only the main process prints and writes files
            verbose = 0
            callbacks = [c for c in callbacks if not getattr(c, "writes_files", False)]
        progress = Progress(verbose, epochs, math.ceil(batching.count(x) / batch_size))
        one_epoch = _Epoch(
            step, loss, x, y, batch_size, metric_list, callbacks, progress, plan,
            validation_penalty,
        )  # fmt: skip
        values, seed = plan.start(((ctx.params, ctx.state, ctx.opt_state), seed))
        ctx.params, ctx.state, ctx.opt_state = values
        _loop(ctx, one_epoch, range(initial_epoch, epochs), seed, shuffle, validation)
    ctx.history.stopped_reason = ctx.stop_reason
    if ctx.stop_reason and verbose:
        print(ctx.stop_reason)
    return FitResult(ctx.params, ctx.history, ctx.state, ctx.opt_state)


def _plan_of(plan: Plan, comm: Any) -> Plan:
    """``plan``, or the plan of the processes of ``comm`` where one is given."""
    if not isinstance(plan, Plan):
        raise TypeError(
            f"plan must be a funcnn.plan.Plan such as funcnn.plan.LOCAL, got {type(plan).__name__}"
        )
    if comm is None:
        return plan
    if plan is not LOCAL:
        raise ValueError("give plan or comm, not both (comm=c is plan=distributed.Plan(c))")
    from funcnn import distributed  # here, not above: one process needs none of it

    return distributed.Plan(comm)


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
        n = batching.count(one_epoch.x)
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else None
        logs = one_epoch.run(ctx, order, seed)
        if validation is not None and not ctx.stop_training:
            for cb in callbacks:
                _hook(cb, "on_test_begin")(ctx)
            # each process predicts its share (a prediction does not depend on its batch)
            xv, size = validation[0], max(one_epoch.batch_size, 256)
            mine = one_epoch.plan.share(batching.count(xv))
            part = None
            if mine.stop > mine.start:
                try:
                    part = predict(
                        ctx.model,
                        ctx.params,
                        batching.rows(xv, mine),
                        batch_size=size,
                        state=ctx.state,
                    )
                except (TypeError, ValueError) as e:
                    raise type(e)(f"the validation data does not fit the model: {e}") from e
            pred = one_epoch.plan.gather(part)
            scores = _score(loss, one_epoch.metric_list, pred, validation[1])
            if one_epoch.validation_penalty is not None:
                scores["loss"] += one_epoch.validation_penalty(ctx.params)
            logs.update({f"val_{k}": v for k, v in scores.items()})
            for cb in callbacks:
                _hook(cb, "on_test_end")(dict(scores), ctx)
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
