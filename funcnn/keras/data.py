"""Keras' data forms beyond arrays, for ``fit``, ``evaluate`` and ``predict``: Python
generators (and other iterators) of batches, ``keras.utils.PyDataset`` (``Sequence``)
objects, and ``steps_per_epoch``/``validation_steps``/``steps``, with arrays too.

A batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, as Keras unpacks it;
it comes in its own size and is one step of the training step ``fit`` runs on array
batches (:func:`funcnn.train.train_step_with_state`, with the same random keys), so a
generator of the batches ``fit`` would cut from arrays trains to the same bits.

:class:`Batches` cuts the data into epochs as Keras 3's ``EpochIterator`` does: one pass
over the data an epoch, or ``steps_per_epoch`` batches, a pass the steps leave unfinished
going on in the next epoch. A generator that runs out before ``steps_per_epoch`` ends the
epoch with Keras' warning; a generator with nothing left when an epoch begins ends
training (with that warning): a generator is one pass, it does not start again.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from funcnn import batching, linalg, losses, optim, train
from funcnn import metrics as metrics_lib
from funcnn import validate as check
from funcnn.keras import inference
from funcnn.layers.base import Layer
from funcnn.progress import Progress
from funcnn.random import Key, RngLike, as_generator

__all__ = ["Batches", "PyDataset", "Sequence", "is_batches"]

RAN_OUT = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches."
)
"""Keras' warning where the data end before the steps asked for."""


class PyDataset:
    """Keras' ``keras.utils.PyDataset`` (``Sequence``): subclass it with ``__len__`` (the
    number of batches) and ``__getitem__(index)`` (one batch: ``(x, y)``,
    ``(x, y, sample_weight)`` or ``x``), and optionally ``on_epoch_begin()`` and
    ``on_epoch_end()``, which ``fit`` calls around each epoch. An infinite dataset
    returns None from the ``num_batches`` property instead of having ``__len__``; ``fit``
    then needs ``steps_per_epoch``.

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are kept, as Keras keeps
    them, but the batches are always read in this thread, one after the other.
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index: int) -> Any:
        """The batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __iter__(self) -> Iterator[Any]:
        n = self.num_batches
        for index in range(n) if n is not None else _count():
            yield self[index]

    @property
    def num_batches(self) -> int | None:
        """The number of batches (``len(self)``), or None for an infinite dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            f"{type(self).__name__} must define __len__ (the number of batches), or the "
            "num_batches property (None for an infinite dataset)"
        )

    def on_epoch_begin(self) -> None:
        """Called at the beginning of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch."""


Sequence = PyDataset
"""Keras' older name for :class:`PyDataset`."""


def _count() -> Iterator[int]:
    i = 0
    while True:
        yield i
        i += 1


def _array_like(x: Any) -> bool:
    """Arrays, lists or tuples of them, and array-likes (pandas, memory maps, h5py)."""
    return (
        x is None
        or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes))
        or hasattr(x, "__array__")
        or hasattr(x, "shape")
    )


def _is_sequence(x: Any) -> bool:
    """A PyDataset-like object: indexable batches with a length (or ``num_batches``)."""
    kind = type(x)
    return (
        not _array_like(x)
        and hasattr(kind, "__getitem__")
        and (hasattr(kind, "__len__") or hasattr(kind, "num_batches"))
    )


def is_batches(x: Any) -> bool:
    """Whether ``x`` gives batches (a generator or other iterator, or a PyDataset), as
    opposed to arrays; a TypeError for other iterables (a tf.data Dataset, a torch
    DataLoader), which are not read."""
    if isinstance(x, (PyDataset, Iterator)) or _is_sequence(x):
        return True
    if not _array_like(x) and hasattr(x, "__iter__"):
        raise TypeError(
            f"a {type(x).__name__} is not read: give arrays, a generator of batches (x, y) "
            "(iter(...) of one), or a keras.utils.PyDataset"
        )
    return False


def _kind(x: Any) -> str:
    return "generator" if isinstance(x, Iterator) else "PyDataset"


class _Peekable:
    """An iterator whose next item can be looked at without being taken."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items
        self.buffer: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.buffer.pop(0) if self.buffer else next(self.items)

    def peek(self) -> bool:
        """Whether another item comes (it is then held until taken)."""
        if not self.buffer:
            try:
                self.buffer.append(next(self.items))
            except StopIteration:
                return False
        return True


class Batches:
    """The batches of each epoch, as Keras 3's ``EpochIterator`` cuts them.

    ``new_pass(p, seed)`` gives the raw batches of pass ``p`` over the data (``length``
    of them, None where unknown); an epoch is ``steps`` batches (``steps_per_epoch``), or
    one pass. ``dataset`` is a PyDataset whose ``on_epoch_begin``/``on_epoch_end`` are
    called around each epoch.
    """

    def __init__(
        self,
        new_pass: Callable[[int, int], Iterator[Any]],
        length: int | None,
        steps: int | None,
        first: Callable[[], Any],
        *,
        dataset: Any = None,
        generator: _Peekable | None = None,
        first_pass: int = 0,
    ) -> None:
        self.new_pass, self.length, self.steps, self.first = new_pass, length, steps, first
        self.dataset, self.generator = dataset, generator
        self._current: Iterator[Any] | None = None
        self._seen, self._pass = 0, first_pass
        self.warned = False

    @property
    def per_epoch(self) -> int | None:
        """Batches an epoch (None: until the data end)."""
        return self.steps or self.length

    def exhausted(self) -> bool:
        """Whether a generator has no batch left (a PyDataset or arrays start again)."""
        return self.generator is not None and not self.generator.peek()

    def ran_out(self) -> None:
        if not self.warned:
            warnings.warn(RAN_OUT, UserWarning, stacklevel=batching.user_stacklevel())
        self.warned = True

    def _hook(self, name: str) -> None:
        if self.dataset is not None and callable(getattr(self.dataset, name, None)):
            getattr(self.dataset, name)()

    def epoch(self, seed: int = 0) -> Generator[Any, None, None]:
        """The raw batches of the next epoch; close the iterator if it is left early (its
        dataset's ``on_epoch_end`` runs then)."""
        self._hook("on_epoch_begin")
        try:
            if self._current is None or self.steps is None:
                self._current, self._seen = iter(self.new_pass(self._pass, seed)), 0
                self._pass += 1
            per_epoch, step = self.per_epoch, 0
            while per_epoch is None or step < per_epoch:
                if self.length is not None and self._seen >= self.length:
                    self.ran_out()  # steps_per_epoch beyond the data
                    break
                try:
                    batch = next(self._current)
                except StopIteration:
                    self._current = None
                    if self.steps is not None:
                        self.ran_out()
                    break
                self._seen, step = self._seen + 1, step + 1
                yield batch
            if self.length is not None and self._seen >= self.length:
                self._current = None  # the pass is done: the next epoch starts another
        finally:
            self._hook("on_epoch_end")


def _steps(name: str, value: Any) -> int | None:
    return None if value is None else check.positive_int(name, value)


def batches(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    *,
    batch_size: int | None = None,
    steps: Any = None,
    shuffle: bool = False,
    first_pass: int = 0,
    steps_name: str = "steps_per_epoch",
    name: str = "x",
) -> Batches:
    """The :class:`Batches` of ``x``: a generator, a PyDataset or arrays (with ``y`` and
    ``sample_weight``), ``batch_size`` rows a batch for arrays (32 by default, or what
    ``steps`` batches take, as Keras), shuffled each pass where ``shuffle`` (arrays, and
    a PyDataset's batch order). ``name`` is what errors call ``x``."""
    steps = _steps(steps_name, steps)
    if not is_batches(x):
        return _array_batches(x, y, sample_weight, batch_size, steps, shuffle, first_pass)
    kind = _kind(x)
    given = (("y", y, "the targets"), ("sample_weight", sample_weight, "the sample weights"))
    for given_name, value, what in given:
        if value is not None:
            raise ValueError(
                f"when {name} is a {kind}, no {given_name} is given: {what} are part of "
                "each batch it gives, (x, y) or (x, y, sample_weight)"
            )
    if isinstance(x, Iterator):
        generator = _Peekable(x)
        if not generator.peek():
            raise ValueError(f"the generator given as {name} yielded no batch (it is empty)")
        return Batches(
            lambda p, seed: generator, None, steps, lambda: generator.buffer[0],
            generator=generator, first_pass=first_pass,
        )  # fmt: skip
    length = _length(x)
    if length is None and steps is None:
        raise ValueError(
            f"{name} is an infinite PyDataset (num_batches is None): give {steps_name} to "
            "say how many of its batches to take"
        )
    if length == 0:
        raise ValueError(f"the PyDataset given as {name} has no batches (its length is 0)")

    def new_pass(p: int, seed: int) -> Iterator[Any]:
        if length is None:
            return (x[i] for i in _count())
        order = np.random.default_rng([seed, p]).permutation(length) if shuffle else None
        return (x[int(i)] for i in (range(length) if order is None else order))

    return Batches(new_pass, length, steps, lambda: x[0], dataset=x, first_pass=first_pass)


def _length(x: Any) -> int | None:
    """A PyDataset's number of batches (None: infinite)."""
    try:
        n = x.num_batches
    except (AttributeError, NotImplementedError):
        n = len(x)
    if n is None:
        return None
    if not check.is_int(n) or n < 0:
        raise TypeError(f"the PyDataset's length must be a whole number of batches, got {n!r}")
    return int(n)


def _array_batches(
    x: Any, y: Any, w: Any, batch_size: int | None, steps: int | None, shuffle: bool,
    first_pass: int,
) -> Batches:  # fmt: skip
    x = batching.as_batch(x, "x")
    n = batching.count(x)
    if y is not None:
        y = batching.as_batch(y, "y")
        batching.same_count(x, y)
    if batch_size is None:
        batch_size = math.ceil(n / steps) if steps else 32  # Keras' rule
    batch_size = check.positive_int("batch_size", batch_size)

    def new_pass(p: int, seed: int) -> Iterator[Any]:
        order = np.random.default_rng([seed, p]).permutation(n) if shuffle else None
        for idx in batching.batches(n, batch_size, order):
            yield (
                batching.rows(x, idx),
                None if y is None else batching.rows(y, idx),
                None if w is None else w[idx],
            )

    return Batches(
        new_pass, math.ceil(n / batch_size), steps, lambda: (x, y, w), first_pass=first_pass
    )


# ---------------------------------------------------------------- one batch


def unpack(batch: Any, where: str) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of a batch as Keras unpacks it: ``x``, ``(x,)``,
    ``(x, y)`` or ``(x, y, sample_weight)`` (a list as a tuple); None where absent."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, tuple):
        if len(batch) not in (1, 2, 3):
            raise ValueError(
                f"{where} gave a batch of {len(batch)} items: a batch is x, (x,), (x, y) or "
                "(x, y, sample_weight)"
            )
        padded = (*batch, None, None)
        return padded[0], padded[1], padded[2]
    if batch is None or isinstance(batch, (dict, str, bytes)):
        raise TypeError(
            f"{where} gave a batch of type {type(batch).__name__}: a batch is an array x, "
            "or a tuple (x, y) or (x, y, sample_weight) of arrays"
        )
    return batch, None, None


def inputs(model: Any, batch: Any, where: str) -> Any:
    """A batch's inputs, as the model takes them."""
    x = model._inputs(unpack(batch, where)[0])
    model._check_examples(x, where)
    return batching.as_batch(x, "x")


def labelled(
    model: Any, batch: Any, where: str, class_weight: dict[Any, float] | None = None
) -> tuple[Any, Any, np.ndarray | None]:
    """A batch's ``(x, y, sample weights or None)`` as the model takes them; weights
    from the batch's sample weights and ``class_weight``."""
    x, y, w = unpack(batch, where)
    if y is None:
        raise ValueError(
            f"{where} gave a batch without targets: fit and evaluate need batches (x, y) "
            "or (x, y, sample_weight)"
        )
    x, y = model._inputs(x), model._targets(y)
    model._check_examples(x, where)
    x, y = batching.as_batch(x, "x"), batching.as_batch(y, "y")
    batching.same_count(x, y)
    return x, y, model._weights(y, w, class_weight)


def shape_of(x: Any) -> Any:
    """One example's shape (a tuple of them for several inputs)."""
    return tuple(tuple(a.shape[1:]) for a in x) if isinstance(x, tuple) else tuple(x.shape[1:])


def build(model: Any, source: Batches, where: str) -> None:
    """Build an unbuilt model (for the first batch's inputs where its input shape is
    unknown)."""
    if model.params is None:
        given = model.input_shape is not None
        model.build(None if given else shape_of(inputs(model, source.first(), where)))


# ---------------------------------------------------------------- fit


def training_batches(
    model: Any, x: Any, y: Any, sample_weight: Any, class_weight: dict[Any, float] | None, *,
    batch_size: int | None, steps_per_epoch: Any, shuffle: bool, validation_split: float,
    validation_data: Any, initial_epoch: int,
) -> tuple[Batches, Callable[[Any], tuple[Any, Any, Any]], Any]:  # fmt: skip
    """fit's :class:`Batches`, the function that prepares each of them, and the
    validation data (split off arrays where ``validation_split`` asks)."""
    if is_batches(x):
        if validation_split:
            raise ValueError(
                f"validation_split works on arrays only; for a {_kind(x)} give "
                "validation_data (arrays, a generator or a PyDataset)"
            )
        if class_weight is not None and isinstance(x, Iterator):
            raise ValueError(
                "class_weight is not supported for a generator (as in Keras): yield "
                "(x, y, sample_weight) batches instead"
            )
        where = f"the {_kind(x)} x"
        source = batches(
            x, y, sample_weight, steps=steps_per_epoch, shuffle=shuffle, first_pass=initial_epoch
        )
        build(model, source, where)
        return source, lambda b: labelled(model, b, where, class_weight), validation_data
    if y is None:
        raise ValueError("fit needs y with array x (or x a generator or PyDataset of batches)")
    x, y = model._inputs(x), model._targets(y)
    model._check_examples(x, "x")
    x, y = batching.as_batch(x, "x"), batching.as_batch(y, "y")
    batching.same_count(x, y)
    w = model._weights(y, sample_weight, class_weight)
    if validation_split:
        x, y, held = batching.split_validation(x, y, validation_split, validation_data)
        assert held is not None
        xv, yv = held
        cut = batching.count(x)
        validation_data = (xv, yv) if w is None else (xv, yv, w[cut:])
        w = None if w is None else w[:cut]
    source = batches(
        x, y, w, batch_size=batch_size, steps=steps_per_epoch, shuffle=shuffle,
        first_pass=initial_epoch,
    )  # fmt: skip
    build(model, source, "x")
    return source, lambda b: b, validation_data


class Validation:
    """fit's validation data, scored after each epoch: arrays ``(x, y)`` or
    ``(x, y, sample_weight)``, or a generator or PyDataset (``steps`` batches of it each
    epoch, or one pass). A generator without ``steps`` is read once and its batches kept
    for the epochs after."""

    def __init__(
        self, model: Any, data: Any, steps: Any = None, batch_size: int | None = None
    ) -> None:
        self.model = model
        self.kept: list[tuple[Any, Any, Any]] | None = None
        self.source: Batches | None = None
        self.arrays: list[tuple[Any, Any, Any]] = []
        steps = _steps("validation_steps", steps)
        if is_batches(data):
            self.source = batches(
                data, steps=steps, steps_name="validation_steps", name="validation_data"
            )
            self.where = f"the {_kind(data)} validation_data"
            self.keep = isinstance(data, Iterator) and steps is None
            return
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(
                "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight), a "
                "generator or a PyDataset"
            )
        self.where, self.keep = "validation_data", False
        if steps is None:
            self.arrays = [labelled(model, tuple(data), "validation_data")]
        else:
            xv, yv, wv = labelled(model, tuple(data), "validation_data")
            self.source = batches(xv, yv, wv, batch_size=batch_size, steps=steps)

    def _batches(self) -> Iterator[tuple[Any, Any, Any]]:
        if self.source is None:
            yield from self.arrays
            return
        if self.kept is not None:
            yield from self.kept
            return
        kept: list[tuple[Any, Any, Any]] = []
        with contextlib.closing(self.source.epoch()) as raw:
            for b in raw:
                kept.append(labelled(self.model, b, self.where))
                yield kept[-1]
        if self.keep:
            self.kept = kept

    def scores(
        self, ctx: train.TrainingContext, loss: losses.Loss, metrics: list[metrics_lib.Metric]
    ) -> dict[str, float] | None:
        """The loss and metrics on the validation data (None where a generator has no
        batch left: the epoch then has no validation scores)."""
        preds: list[Any] = []
        ys: list[Any] = []
        ws: list[Any] = []
        for x, y, w in self._batches():
            try:
                pred = train.predict(ctx.model, ctx.params, x, batch_size=256, state=ctx.state)
            except (TypeError, ValueError) as e:
                raise type(e)(f"the validation data does not fit the model: {e}") from e
            preds.append(pred)
            ys.append(y)
            ws.append(w)
        if not preds:
            assert self.source is not None
            self.source.ran_out()
            return None
        return inference.score(loss, metrics, preds, ys, ws)


def fit(
    source: Batches,
    prepare: Callable[[Any], tuple[Any, Any, Any]],
    model: Layer,
    params: Any,
    loss: losses.Loss,
    optimizer: optim.GradientTransformation,
    *,
    epochs: int,
    rng: RngLike,
    validation: Validation | None,
    metrics: list[metrics_lib.Metric],
    callbacks: Any,
    verbose: int,
    penalty: losses.Penalty | None,
    state: Any,
    opt_state: Any,
    initial_epoch: int,
    input_shape: Any,
    validation_penalty: losses.Penalty | None = None,
) -> train.FitResult:
    """:func:`funcnn.train.fit` over :class:`Batches`: each batch ``prepare`` makes
    ``(x, y, sample weights or None)`` of is one step of the same training step, with the
    key ``Key((seed, epoch, batch))``; callbacks, history, progress and validation as
    there (``validation_penalty`` added to the validation loss)."""
    epochs = check.positive_int("epochs", epochs)
    initial_epoch = check.non_negative_int("initial_epoch", initial_epoch)
    verbose = check.choice("verbose", verbose, (0, 1, 2))
    callbacks = train._callback_list(callbacks)
    metrics = [metrics_lib.get(m, logits=loss.takes_logits) for m in metrics]
    step = train.train_step_with_state(model, loss, optimizer, penalty=penalty)  # checks all
    weighted: list[Any] = []  # the step with sample weights, made where a batch has them

    def step_for(w: Any) -> Any:
        if w is None:
            return step
        if not weighted:
            weighted.append(
                train.train_step_with_state(
                    model, losses.weighted(loss), optimizer, penalty=penalty
                )
            )
        return weighted[0]

    seed = int(as_generator(rng).integers(2**63))
    per_epoch = source.per_epoch
    bar = Progress(verbose if per_epoch or verbose != 1 else 2, epochs, per_epoch or 0)
    with linalg.blas_held():
        ctx = train.TrainingContext(
            model=model,
            params=params,
            state=model.init_state(input_shape) if state is None else state,
            opt_state=optimizer.init(params) if opt_state is None else opt_state,
            history=train.History(),
            input_shape=input_shape,
        )
        ran_out = False
        for cb in callbacks:
            cb.on_train_begin(ctx)
        for epoch in range(initial_epoch, epochs):
            if source.exhausted():  # a generator with nothing left
                source.ran_out()
                ran_out = True
                break
            ctx.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_begin(epoch, ctx)
            bar.epoch_begin(epoch)
            started = time.perf_counter()
            logs, count = _epoch(ctx, source, prepare, step_for, seed, metrics, callbacks, bar)
            if not per_epoch:
                bar.steps = count  # known now
            if validation is not None and not ctx.stop_training:
                for cb in callbacks:
                    train._hook(cb, "on_test_begin")(ctx)
                scores = validation.scores(ctx, loss, metrics)
                if scores is not None and validation_penalty is not None:
                    scores["loss"] += validation_penalty(ctx.params)
                if scores is not None:
                    logs.update({f"val_{k}": v for k, v in scores.items()})
                    for cb in callbacks:
                        train._hook(cb, "on_test_end")(dict(scores), ctx)
            logs.update(train._learning_rate(ctx.opt_state), time=time.perf_counter() - started)
            ctx.history.append(epoch, logs)
            bar.epoch_end(logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs, ctx)
            if ctx.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end(ctx)
    ctx.history.stopped_reason = ctx.stop_reason
    if ctx.stop_reason and verbose:
        print(ctx.stop_reason)
    if ran_out and ctx.stop_reason is None:
        ctx.history.stopped_reason = "the input ran out of data"
    return train.FitResult(ctx.params, ctx.history, ctx.state, ctx.opt_state)


def _epoch(
    ctx: train.TrainingContext, source: Batches, prepare: Callable[[Any], Any],
    step_for: Callable[[Any], Any], seed: int, metrics: list[metrics_lib.Metric],
    callbacks: list[train.Callback], bar: Progress,
) -> tuple[dict[str, float], int]:  # fmt: skip
    """One epoch's steps: its logs and its number of batches."""
    total, seen = 0.0, 0
    preds: list[Any] = []
    truths: list[Any] = []
    scores = train.RunningScores(metrics)

    def running() -> dict[str, float]:  # on the outputs so far, as Keras' metrics accumulate
        return {"loss": total / seen, **scores(preds, truths.__getitem__)}

    def epoch_logs() -> dict[str, float]:  # the metrics on all the outputs at once
        logs = {"loss": total / seen}
        if metrics:
            pred, truth = batching.join(preds), batching.join(truths)
            logs.update({m.name: m(pred, truth) for m in metrics})
        return logs

    ctx.batch_logs = running
    b = -1
    with contextlib.closing(source.epoch(seed)) as raw:
        for b, batch in enumerate(raw):
            x, y, w = prepare(batch)
            n = batching.count(y)
            for cb in callbacks:
                cb.on_batch_begin(b, ctx)
            ctx.params, ctx.state, ctx.opt_state, value, pred = step_for(w)(
                ctx.params, ctx.state, ctx.opt_state, x, y if w is None else (y, w),
                Key((seed, ctx.epoch, b)),
            )  # fmt: skip
            total, seen = total + value * n, seen + n
            if metrics:
                preds.append(pred)
                truths.append(y)
            bar.batch(b + 1, total / seen)
            for cb in callbacks:
                cb.on_batch_end(b, value, ctx)
            if ctx.stop_training:
                return {"loss": total / seen}, b + 1
    if seen == 0:
        raise ValueError("the epoch had no batches")  # Batches.exhausted is checked first
    return epoch_logs(), b + 1


# ---------------------------------------------------------------- evaluate and predict


def evaluate_batches(
    model: Any, x: Any, y: Any, sample_weight: Any, *, batch_size: int | None, steps: Any
) -> tuple[Batches, Callable[[Any], tuple[Any, Any, Any]]]:
    """evaluate's :class:`Batches` (built for) and the function that prepares each."""
    if not is_batches(x):
        if y is None:
            raise ValueError("evaluate needs y with array x (or x a generator or PyDataset)")
        x, y = model._inputs(x), model._targets(y)
        model._check_examples(x, "x")
        w = None if sample_weight is None else model._weights(y, sample_weight, None)
        source = batches(x, y, w, batch_size=batch_size, steps=steps, steps_name="steps")
        build(model, source, "x")
        return source, lambda b: b
    source = batches(x, y, sample_weight, steps=steps, steps_name="steps")
    where = f"the {_kind(x)} x"
    build(model, source, where)
    return source, lambda b: labelled(model, b, where)


def predict_batches(
    model: Any, x: Any, *, batch_size: int | None, steps: Any
) -> tuple[Batches, Callable[[Any], Any]]:
    """predict's :class:`Batches` (built for) and the function that takes each batch's
    inputs (``x``, ``(x,)``, or the ``x`` of ``(x, y)``)."""
    if not is_batches(x):
        x = model._inputs(x)
        model._check_examples(x, "x")
        source = batches(x, batch_size=batch_size, steps=steps, steps_name="steps")
        build(model, source, "x")
        return source, lambda b: b[0]
    source = batches(x, steps=steps, steps_name="steps")
    where = f"the {_kind(x)} x"
    build(model, source, where)
    return source, lambda b: inputs(model, b, where)


def each(source: Batches, prepare: Callable[[Any], Any]) -> Iterator[Any]:
    """One epoch of ``source``, each batch prepared."""
    with contextlib.closing(source.epoch()) as raw:
        for batch in raw:
            yield prepare(batch)
