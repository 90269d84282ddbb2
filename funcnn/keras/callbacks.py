"""``keras.callbacks``: funcnn's callbacks (which take Keras' keywords), and Keras' own
``Callback`` base class and ``LambdaCallback`` with Keras' method signatures.

A subclass of this module's :class:`Callback` is written as for Keras::

    class Stop(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs["loss"] < 0.1:
                self.model.stop_training = True

``self.model`` is the Keras model being trained; ``self.model.get_weights()`` and the
rest work during training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funcnn import train
from funcnn.callbacks import (
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)

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


class Callback:
    """Keras' callback base class: override any of these; ``logs`` is a dict of floats."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_test_begin(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_test_end(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_test_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass


HOOKS = (
    "on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end", "on_train_begin",
    "on_train_end", "on_train_batch_begin", "on_train_batch_end", "on_test_begin",
    "on_test_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_begin",
    "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
)  # fmt: skip


class LambdaCallback(Callback):
    """Keras' ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`` and the others:
    ``on_epoch_begin/on_epoch_end(epoch, logs)``, ``on_batch_begin/on_batch_end(batch,
    logs)``, ``on_train_begin/on_train_end(logs)``, and the ``on_train_batch_*``,
    ``on_test_*`` and ``on_predict_*`` hooks with Keras' arguments."""

    def __init__(self, **functions: Callable[..., Any] | None) -> None:
        unknown = set(functions) - set(HOOKS)
        if unknown:
            raise TypeError(f"LambdaCallback takes {', '.join(HOOKS)}; got {sorted(unknown)}")
        for name, fn in functions.items():
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be a function, got {fn!r}")
                setattr(self, name, fn)


def _same(a: Any, b: Any) -> bool:
    """Whether the values ``a`` and ``b`` (params or state) are the same objects: tuples
    compared entry by entry (a model holding a model builds its params' tuple anew on each
    read), anything else by identity."""
    if a is b:
        return True
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_same(x, y) for x, y in zip(a, b))
    return False


class Adapter(train.Callback):
    """Runs a Keras-style :class:`Callback` inside funcnn's ``fit``: the Keras model sees
    the training values at each hook, ``model.stop_training = True`` stops, and weights or
    a learning rate the callback sets (``self.model.set_weights(best)``,
    ``self.model.optimizer.learning_rate = 0.01``) train from the next batch."""

    def __init__(self, callback: Callback, model: Any) -> None:
        self.callback, self.model = callback, model
        callback.set_model(model)
        self.reads_batch_logs = any(
            getattr(getattr(callback, name, None), "__func__", None) is not getattr(Callback, name)
            for name in ("on_train_batch_end", "on_batch_end")
        )  # the running metrics take a pass over the epoch's outputs: only where read

    def _run(self, ctx: train.TrainingContext, hook: str, *args: Any) -> None:
        """The callback's ``hook``, with the model's values those of training: weights and
        an optimizer state the callback set (``self.model.set_weights(best)``,
        ``layer.set_weights``, ``load_weights``, a learning rate) go back to ``fit``, which
        trains on from them and ends with them."""
        model = self.model
        model._training_values(ctx)  # references: nothing is copied
        params, state, opt_state = model.params, model.state, model.opt_state
        getattr(self.callback, hook)(*args)
        if not _same(model.params, params) or not _same(model.state, state):
            ctx.params, ctx.state = model.params, model.state
        if model.opt_state is not opt_state:
            ctx.opt_state = model.opt_state

    def _stop(self, ctx: train.TrainingContext) -> None:
        if self.model.stop_training:
            ctx.stop_training = True
            ctx.stop_reason = ctx.stop_reason or f"{type(self.callback).__name__} stopped training"

    def on_train_begin(self, ctx: train.TrainingContext) -> None:
        self.model.stop_training = False
        self._run(ctx, "on_train_begin", {})

    def on_epoch_begin(self, epoch: int, ctx: train.TrainingContext) -> None:
        self._run(ctx, "on_epoch_begin", epoch, {})
        self._stop(ctx)

    def on_batch_begin(self, batch: int, ctx: train.TrainingContext) -> None:
        self._run(ctx, "on_train_batch_begin", batch, {})

    def on_batch_end(self, batch: int, loss: float, ctx: train.TrainingContext) -> None:
        logs = {"loss": loss}
        if self.reads_batch_logs and ctx.batch_logs is not None:
            logs = ctx.batch_logs()  # Keras' running loss and metrics of the epoch so far
        self._run(ctx, "on_train_batch_end", batch, logs)
        self._stop(ctx)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], ctx: train.TrainingContext) -> None:
        self._run(ctx, "on_epoch_end", epoch, dict(logs))
        self._stop(ctx)

    def on_train_end(self, ctx: train.TrainingContext) -> None:
        self._run(ctx, "on_train_end", {})

    def on_test_begin(self, ctx: train.TrainingContext) -> None:
        self._run(ctx, "on_test_begin", {})

    def on_test_end(self, logs: dict[str, float], ctx: train.TrainingContext) -> None:
        self._run(ctx, "on_test_end", dict(logs))
