"""Callbacks for ``fit``: early stopping, checkpoints, learning-rate control, logging.

A callback sees a :class:`funcnn.train.TrainingContext` and may replace its
params, state or optimizer state with new values, or set ``stop_training``.
"""

from __future__ import annotations

import csv
import inspect
import math
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import io, optim, tree
from funcnn import validate as check
from funcnn.train import Callback, TrainingContext

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]

_MAX_WORDS = ("acc", "f1", "precision", "recall", "r2", "auc")


def _mode(mode: str, monitor: str) -> str:
    if check.choice("mode", mode, ("auto", "min", "max")) == "auto":
        return "max" if any(w in monitor for w in _MAX_WORDS) else "min"
    return mode


def _path(path: Any, alias: Any, who: str, alias_name: str) -> Path:
    """The file's path, given once: as ``path`` or under Keras' name for it."""
    if (path is None) == (alias is None):
        raise TypeError(f"{who} takes the file's path once: path or {alias_name}")
    path = path if alias is None else alias
    if not isinstance(path, (str, PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _monitored(logs: dict[str, float], monitor: str, who: str) -> float:
    if monitor not in logs:
        raise ValueError(
            f"{who} monitors {monitor!r}, which this fit does not log; available: "
            f"{', '.join(logs)} (val_ entries need validation_split or validation_data)"
        )
    return logs[monitor]


class _Tracker:
    """Tracks the best value of a monitored quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.monitor = check.text("monitor", monitor)
        self.mode = _mode(mode, monitor)
        self.min_delta = check.non_negative("min_delta", min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode="auto"`` maximizes accuracy-like names and minimizes the rest. With
    ``restore_best`` (Keras: ``restore_best_weights``) the params (and state) of the
    best epoch are returned at the end. ``baseline``: a value to beat from the start;
    ``start_from_epoch``: epochs before it are not monitored (a warm-up). ``verbose``
    prints the reason when training stops.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
        *,
        baseline: float | None = None,
        start_from_epoch: int = 0,
        verbose: int = 0,
        restore_best_weights: bool | None = None,
    ) -> None:
        _Tracker(monitor, mode, min_delta)  # checks the three now, not at fit time
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.patience = check.non_negative_int("patience", patience)
        if restore_best_weights is not None:
            restore_best = restore_best_weights
        self.restore_best = check.boolean("restore_best", restore_best)
        self.baseline = None if baseline is None else check.number("baseline", baseline)
        self.start_from_epoch = check.non_negative_int("start_from_epoch", start_from_epoch)
        self.verbose = check.non_negative_int("verbose", verbose)

    def on_train_begin(self, ctx: TrainingContext) -> None:
        self.tracker = _Tracker(self.monitor, self.mode, self.min_delta)
        if self.baseline is not None:
            self.tracker.best = self.baseline
        self.wait = 0
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_params: Any = None
        self.best_state: Any = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        if self.tracker.improved(value):
            self.wait, self.best_epoch = 0, epoch
            self.best_params, self.best_state = ctx.params, ctx.state
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            ctx.stop_training = True
            ctx.stop_reason = (
                f"EarlyStopping: {self.monitor} did not improve for {self.wait} epoch(s); "
                + (
                    f"best {self.tracker.best:.6g} at epoch {self.best_epoch + 1}"
                    if self.best_epoch is not None
                    else f"none beat the baseline {self.baseline:.6g}"
                    if self.baseline is not None
                    else "no epoch gave a finite value"
                )
            )
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping")

    def on_train_end(self, ctx: TrainingContext) -> None:
        if self.restore_best and self.best_params is not None:
            ctx.params, ctx.state = self.best_params, self.best_state
            if self.verbose and self.best_epoch is not None:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )


class ModelCheckpoint(Callback):
    """Save model, params, state, optimizer state and history after each epoch (atomically).

    ``path`` may hold ``{epoch}`` and log names, e.g. ``"ckpt-{epoch:03d}.npz"``. With
    ``save_best_only`` a file is written only when ``monitor`` improves. A checkpoint
    resumes exactly: ``fit(..., params=c.params, opt_state=c.opt_state, state=c.state,
    initial_epoch=c.epoch)`` with the same ``rng``. The first save of a fit checks the
    model against the params as :func:`funcnn.io.load` will (one example through each
    layer); the params keep their structure through a fit, so later saves skip that run.
    """

    writes_files = True

    def __init__(
        self,
        path: str | Path | None = None,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        *,
        model: Any = None,
        metadata: dict[str, Any] | None = None,
        save_weights_only: bool = False,
        initial_value_threshold: float | None = None,
        verbose: int = 0,
        filepath: str | Path | None = None,
    ) -> None:
        """``model``: the model to save with the params (by default the one ``fit`` trains;
        the Keras facade gives its own, whose output activation training fuses into the
        loss); ``metadata`` is saved with each file. Keras' keywords: ``filepath`` (the
        same as ``path``), ``save_weights_only`` (no optimizer state or history, so the
        file loads but does not resume), ``initial_value_threshold`` (the value a first
        best-only save must beat) and ``verbose`` (a line per save)."""
        self.path = str(_path(path, filepath, "ModelCheckpoint", "filepath"))
        _Tracker(monitor, mode, 0.0)  # checks monitor and mode now, not at fit time
        self.monitor, self.mode = monitor, mode
        self.save_best_only = check.boolean("save_best_only", save_best_only)
        self.save_weights_only = check.boolean("save_weights_only", save_weights_only)
        self.threshold = (
            None
            if initial_value_threshold is None
            else check.number("initial_value_threshold", initial_value_threshold)
        )
        self.verbose = check.non_negative_int("verbose", verbose)
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.model, self.metadata = model, metadata
        self.saved: list[Path] = []

    def on_train_begin(self, ctx: TrainingContext) -> None:
        self.tracker = _Tracker(self.monitor, self.mode, 0.0)
        if self.threshold is not None:
            self.tracker.best = self.threshold
        self.checked: Any = None  # the (params, state) a save of this fit ran the model with

    def _like_checked(self, ctx: TrainingContext) -> bool:
        """Whether the params and state have the nesting, shapes and dtypes of those a save
        of this fit ran the model with (then the file will load: running it again would
        only repeat that check)."""
        if self.checked is None:
            return False
        now = (ctx.params, ctx.state)
        return tree.structure_difference(self.checked, now) is None and all(
            np.asarray(a).dtype == np.asarray(b).dtype
            for a, b in zip(tree.leaves(self.checked), tree.leaves(now))
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        before = self.tracker.best
        if self.save_best_only and not self.tracker.improved(
            _monitored(logs, self.monitor, "ModelCheckpoint")
        ):
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {before:.5f}")
            return
        try:
            path = Path(self.path.format(epoch=epoch + 1, **logs))
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} names {e}, which is not 'epoch' or a "
                f"log of this fit ({', '.join(logs)})"
            ) from None
        full = not self.save_weights_only
        io.save(
            path,
            ctx.model if self.model is None else self.model,
            ctx.params,
            state=ctx.state,
            opt_state=ctx.opt_state if full else None,
            history=ctx.history if full else None,
            epoch=epoch + 1,
            input_shape=ctx.input_shape,
            metadata=self.metadata,
            check_layers=not self._like_checked(ctx),
        )
        self.checked = (ctx.params, ctx.state)
        self.saved.append(path)
        if self.verbose:
            if self.save_best_only:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {before:.5f} to "
                    f"{self.tracker.best:.5f}, saving model to {path}"
                )
            else:
                print(f"Epoch {epoch + 1}: saving model to {path}")


def _set_learning_rate(ctx: TrainingContext, new: float) -> None:
    current = optim.current_learning_rate(ctx.opt_state)
    if new == current:
        return
    if current == 0:  # a constant 0 is set, as Keras sets it
        ctx.opt_state = optim.set_learning_rate(ctx.opt_state, new)
        return
    ctx.opt_state = optim.scale_learning_rate(ctx.opt_state, new / current)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, current_lr)``,
    or ``schedule(epoch)`` for a function of one argument (as Keras takes both)."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        self.schedule = check.function("schedule", schedule, "a function of the epoch")
        self.verbose = check.non_negative_int("verbose", verbose)
        try:
            inspect.signature(schedule).bind(0, 0.0)
            self.takes_rate = True
        except TypeError:
            self.takes_rate = False
        except ValueError:  # no signature to read (a builtin): pass both, as before
            self.takes_rate = True

    def on_epoch_begin(self, epoch: int, ctx: TrainingContext) -> None:
        current = optim.current_learning_rate(ctx.opt_state)
        new = float(self.schedule(epoch, current) if self.takes_rate else self.schedule(epoch))
        if not (math.isfinite(new) and new >= 0):
            raise ValueError(f"LearningRateScheduler gave learning rate {new} at epoch {epoch}")
        _set_learning_rate(ctx, new)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs.

    After a reduction, wait ``cooldown`` epochs before counting again; never go below ``min_lr``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "auto",
        *,
        verbose: int = 0,
    ) -> None:
        factor = check.number("factor", factor)
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        _Tracker(monitor, mode, min_delta)  # checks the three now, not at fit time
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.factor = factor
        self.patience = check.non_negative_int("patience", patience)
        self.cooldown = check.non_negative_int("cooldown", cooldown)
        self.min_lr = check.non_negative("min_lr", min_lr)
        self.verbose = check.non_negative_int("verbose", verbose)

    def on_train_begin(self, ctx: TrainingContext) -> None:
        self.tracker = _Tracker(self.monitor, self.mode, self.min_delta)
        self.wait, self.cooldown_left = 0, 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.tracker.improved(value):
            self.wait = 0
            return
        if self.cooldown_left > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            current = optim.current_learning_rate(ctx.opt_state)
            new = max(current * self.factor, self.min_lr)
            if new < current:
                _set_learning_rate(ctx, new)
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
            self.wait, self.cooldown_left = 0, self.cooldown


class TerminateOnNaN(Callback):
    """Stop at the first non-finite batch loss and return the params, state and optimizer
    state that gave the last finite one.

    A batch's loss is computed with the params from before its step, so the params that
    gave a non-finite loss are already spoiled, and so may be the step's before them (an
    update that overflowed shows only in the next batch's loss). What is returned is
    the params the last finite loss was computed with; their leaves are checked finite.
    """

    def on_train_begin(self, ctx: TrainingContext) -> None:
        self.last_finite: tuple[Any, Any, Any, str] | None = None
        self.before: tuple[Any, Any, Any] = (ctx.params, ctx.state, ctx.opt_state)

    def on_batch_begin(self, batch: int, ctx: TrainingContext) -> None:
        self.before = (ctx.params, ctx.state, ctx.opt_state)  # references: nothing is copied

    def on_batch_end(self, batch: int, loss: float, ctx: TrainingContext) -> None:
        where = f"batch {batch + 1} of epoch {ctx.epoch + 1}"
        if np.isfinite(loss):
            self.last_finite = (*self.before, where)
            return
        ctx.stop_training = True
        if self.last_finite is None:  # the first batch: nothing finite to go back to
            ctx.params, ctx.state, ctx.opt_state = self.before
            ctx.stop_reason = (
                f"TerminateOnNaN: {where} gave loss {loss}, the first batch of this fit; "
                "training stopped and the params it started from were returned"
            )
            return
        *values, good = self.last_finite
        ctx.params, ctx.state, ctx.opt_state = values
        finite = all(np.isfinite(leaf).all() for leaf in tree.leaves((ctx.params, ctx.state)))
        ctx.stop_reason = (
            f"TerminateOnNaN: {where} gave loss {loss}; training stopped and the params "
            f"that gave the last finite loss ({good}) were returned"
            + ("" if finite else ", though some of their entries are not finite")
        )


class CSVLogger(Callback):
    """Append one row per epoch (epoch number and every log) to a CSV file."""

    writes_files = True

    def __init__(
        self,
        path: str | Path | None = None,
        separator: str = ",",
        append: bool = False,
        *,
        filename: str | Path | None = None,
    ) -> None:
        """``filename`` is Keras' name for ``path``."""
        self.path = _path(path, filename, "CSVLogger", "filename")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be one character, got {separator!r}")
        self.separator = separator
        self.append = check.boolean("append", append)

    def on_train_begin(self, ctx: TrainingContext) -> None:
        self.columns: list[str] | None = None
        if self.append and self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as f:
                self.columns = next(csv.reader(f, delimiter=self.separator))[1:]
        elif not self.append:
            self.path.write_text("")

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator)
            if self.columns is None:
                self.columns = list(logs)
                writer.writerow(["epoch", *self.columns])
            writer.writerow(
                [epoch + 1, *(repr(float(logs.get(c, math.nan))) for c in self.columns)]
            )


class LambdaCallback(Callback):
    """A callback from plain functions; each is optional and gets the same arguments as above."""

    def __init__(
        self,
        on_train_begin: Callable[..., Any] | None = None,
        on_epoch_begin: Callable[..., Any] | None = None,
        on_batch_begin: Callable[..., Any] | None = None,
        on_batch_end: Callable[..., Any] | None = None,
        on_epoch_end: Callable[..., Any] | None = None,
        on_train_end: Callable[..., Any] | None = None,
    ) -> None:
        for name, fn in list(locals().items()):
            if name.startswith("on_") and fn is not None:
                check.function(name, fn)
        self.fns = {
            "train_begin": on_train_begin,
            "epoch_begin": on_epoch_begin,
            "batch_begin": on_batch_begin,
            "batch_end": on_batch_end,
            "epoch_end": on_epoch_end,
            "train_end": on_train_end,
        }

    def on_train_begin(self, ctx: TrainingContext) -> None:
        if self.fns["train_begin"]:
            self.fns["train_begin"](ctx)

    def on_epoch_begin(self, epoch: int, ctx: TrainingContext) -> None:
        if self.fns["epoch_begin"]:
            self.fns["epoch_begin"](epoch, ctx)

    def on_batch_begin(self, batch: int, ctx: TrainingContext) -> None:
        if self.fns["batch_begin"]:
            self.fns["batch_begin"](batch, ctx)

    def on_batch_end(self, batch: int, loss: float, ctx: TrainingContext) -> None:
        if self.fns["batch_end"]:
            self.fns["batch_end"](batch, loss, ctx)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: TrainingContext) -> None:
        if self.fns["epoch_end"]:
            self.fns["epoch_end"](epoch, logs, ctx)

    def on_train_end(self, ctx: TrainingContext) -> None:
        if self.fns["train_end"]:
            self.fns["train_end"](ctx)
