"""``Sequential``: Keras' ``add``/``compile``/``fit``/``evaluate``/``predict`` over the core.

Underneath it is ``serial(...)``, params, ``fit``: ``model.model``, ``model.params``,
``model.state`` and ``model.opt_state`` are the core values, never hidden copies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import io, losses, optim, train
from funcnn import layers as L
from funcnn import metrics as metrics_lib
from funcnn.callbacks import ModelCheckpoint
from funcnn.keras import summary
from funcnn.keras.layers import Activation, Dense
from funcnn.keras.names import get_loss, get_optimizer
from funcnn.layers.base import Layer, as_shape
from funcnn.random import RngLike, as_generator


def _fused(layers: list[Layer], loss: losses.Loss) -> losses.Loss | None:
    """The loss on logits when the output activation can be fused into ``loss``."""
    last = layers[-1] if layers else None
    if last is L.Softmax and isinstance(loss, losses.CategoricalCrossEntropy):
        return losses.softmax_cross_entropy
    if last is L.Sigmoid and isinstance(loss, losses.BinaryCrossEntropy):
        return losses.sigmoid_binary_cross_entropy
    return None


def _on_activation(metric: metrics_lib.Metric, activation: Layer) -> metrics_lib.Metric:
    """``metric`` on the activation's output, for a training model that outputs logits."""
    return metrics_lib.Metric(
        metric.name, lambda logits, t: metric(activation.apply((), logits), t)
    )


class Sequential:
    """A stack of layers with Keras' ``add``/``compile``/``fit``/``evaluate``/``predict``."""

    def __init__(self, layers: Sequence[Any] = (), *, seed: RngLike = 0) -> None:
        """``seed`` (an int or Generator) makes initialization and training repeatable."""
        self.layers: list[Layer] = []
        self.input_shape: tuple[int, ...] | None = None
        self.rng = as_generator(seed)  # drives init, then each fit's shuffles and dropout
        self.params: Any = None
        self.state: Any = None
        self.opt_state: Any = None
        self.history: train.History | None = None
        self.loss: losses.Loss | None = None
        self.optimizer: optim.GradientTransformation | None = None
        self.metrics: list[metrics_lib.Metric] = []
        self.penalty: losses.Penalty | None = None
        self.compile_config: dict[str, Any] | None = None
        for layer in layers:
            self.add(layer)

    # -- building

    def add(self, layer: Any) -> None:
        """Append a Keras-style layer (``Dense(8, activation="relu")``) or any core layer."""
        if self.params is not None:
            raise ValueError("layers cannot be added after the model was built (trained or loaded)")
        if isinstance(layer, (Dense, Activation)):
            declared = layer.declared_input_shape()
            new = layer.layers()
        elif isinstance(layer, Layer):
            declared, new = None, [layer]
        elif isinstance(layer, type) and issubclass(layer, Layer):
            raise TypeError(f"add() got the class {layer.__name__}; construct it first")
        else:
            raise TypeError(f"add() takes a layer, got {type(layer).__name__}")
        if declared is not None:
            if self.layers:
                raise ValueError("input_dim/input_shape belongs on the first layer")
            self.input_shape = declared
        self.layers.extend(new)

    @property
    def model(self) -> L.Serial:
        """The functional model: ``serial`` of every layer."""
        return L.serial(*self.layers)

    def build(self, input_shape: Sequence[int] | None = None) -> None:
        """Create params (and state) for one example's ``input_shape``."""
        if input_shape is not None:
            self.input_shape = as_shape(tuple(input_shape))
        if self.input_shape is None:
            raise ValueError(
                "the input shape is unknown: give the first layer input_dim=... or "
                "input_shape=..., or call build(input_shape) or fit(x, y) first"
            )
        if not self.layers:
            raise ValueError("the model has no layers")
        self.params = self.model.init(self.rng, self.input_shape)
        self.state = self.model.init_state(self.input_shape)

    def compile(
        self,
        loss: str | losses.Loss,
        optimizer: str | optim.GradientTransformation = "rmsprop",
        metrics: Sequence[Any] = (),
        penalty: losses.Penalty | None = None,
    ) -> None:
        """Choose the loss, optimizer, metrics and an optional L1/L2 ``penalty``."""
        self.loss = get_loss(loss)
        self.optimizer = get_optimizer(optimizer)
        self.metrics = [metrics_lib.get(m, logits=self.loss.takes_logits) for m in metrics]
        self.penalty = penalty
        self.opt_state = None
        named = [isinstance(loss, str), isinstance(optimizer, str)]
        named.append(all(isinstance(m, str) for m in metrics))
        self.compile_config = (
            {"loss": loss, "optimizer": optimizer, "metrics": list(metrics)} if all(named) else None
        )

    def _require_compiled(self) -> tuple[losses.Loss, optim.GradientTransformation]:
        if self.loss is None or self.optimizer is None:
            raise ValueError("call compile(loss=..., optimizer=...) before fit or evaluate")
        return self.loss, self.optimizer

    def _scoring(self, loss: losses.Loss) -> tuple[Layer, losses.Loss, list[metrics_lib.Metric]]:
        """(model, loss, metrics) that training and evaluation score with: a Softmax (Sigmoid)
        output with categorical (binary) cross-entropy becomes Identity and the fused,
        stable loss on logits (same params tree); metrics still see probabilities. One
        definition, so fit's val_loss equals evaluate's loss on the same data."""
        fused_loss = _fused(self.layers, loss)
        if fused_loss is None:
            return self.model, loss, self.metrics
        metrics = [_on_activation(m, self.layers[-1]) for m in self.metrics]
        return L.serial(*self.layers[:-1], L.Identity), fused_loss, metrics

    def _check_examples(self, x: np.ndarray, name: str) -> None:
        """``x`` is a batch of examples of the declared input shape."""
        if self.input_shape is None or tuple(x.shape[1:]) == self.input_shape:
            return
        if tuple(x.shape) == self.input_shape:
            raise ValueError(
                f"input_shape {self.input_shape} includes the batch axis: it is one "
                f"example's shape, here {tuple(x.shape[1:])}"
            )
        raise ValueError(
            f"{name} holds examples of shape {tuple(x.shape[1:])}, but the model was built "
            f"for input_shape {self.input_shape}"
        )

    def _require_built(self) -> None:
        if self.params is None:
            raise ValueError("the model has no params yet: call fit(...) or build(input_shape)")

    # -- training

    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        callbacks: Sequence[train.Callback] = (),
        verbose: int = 1,
        shuffle: bool = True,
        seed: RngLike | None = None,
    ) -> train.History:
        """Train (continuing from the current params and optimizer state); returns the History.

        ``seed`` (int or Generator) drives shuffling and dropout; by default the model's
        own generator, so successive calls differ but a fixed construction seed repeats.
        """
        loss, optimizer = self._require_compiled()
        x = np.asarray(x)
        self._check_examples(x, "x")
        if self.params is None:
            self.build(self.input_shape or tuple(x.shape[1:]))
        train_model, train_loss, metrics = self._scoring(loss)
        # Checkpoints save this model (with its output activation) and its compile settings,
        # not the training model: load_model gives back what was built.
        callbacks = [callbacks] if isinstance(callbacks, train.Callback) else list(callbacks)
        checkpoints = [
            cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.model is None
        ]
        for cb in checkpoints:
            cb.model, cb.metadata = self.model, {"keras": {"compile": self.compile_config}}
        try:
            params, history = train.fit(
                train_model, self.params, train_loss, optimizer, x, y,
                epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                rng=self.rng if seed is None else seed,
                validation_split=validation_split, validation_data=validation_data,
                metrics=metrics, callbacks=callbacks, verbose=verbose, penalty=self.penalty,
                state=self.state, opt_state=self.opt_state,
            )  # fmt: skip
        finally:
            for cb in checkpoints:
                cb.model = cb.metadata = None
        self.params, self.state = params, history.state
        self.opt_state = history.opt_state
        self.history = history
        return history

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Inference-mode outputs (probabilities for a Softmax/Sigmoid output)."""
        self._require_built()
        return train.predict(self.model, self.params, x, batch_size=batch_size, state=self.state)

    def evaluate(self, x: Any, y: Any, batch_size: int = 256, return_dict: bool = False) -> Any:
        """The loss and each metric on ``(x, y)``: ``[loss, *metrics]`` (a float without metrics),
        or a dict with ``return_dict=True``."""
        loss, _ = self._require_compiled()
        self._require_built()
        model, loss, metrics = self._scoring(loss)  # the loss fit's val_loss reports
        scores = train.evaluate(
            model, self.params, loss, x, y,
            metrics=metrics, batch_size=batch_size, state=self.state,
        )  # fmt: skip
        if return_dict:
            return scores
        values = list(scores.values())
        return values[0] if len(values) == 1 else values

    # -- inspection and files

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of layers, output shapes and parameter counts; printed and returned."""
        self._require_built()
        text = summary.table(self.layers, self.input_shape or (), self.params, self.state)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save layers, params, state, optimizer state, history and compile settings (atomic).

        A ``.json`` path writes one human-readable file with weights as lists.
        """
        self._require_built()
        return io.save(
            path, self.model, self.params, state=self.state, opt_state=self.opt_state,
            history=self.history, input_shape=self.input_shape,
            metadata={"keras": {"compile": self.compile_config}},
        )  # fmt: skip
