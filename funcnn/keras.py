"""A Keras-style facade over the functional core, so the classic tutorials read naturally.

>>> model = Sequential()
>>> model.add(Dense(12, input_dim=8, activation="relu"))
>>> model.add(Dense(1, activation="sigmoid"))
>>> model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
>>> history = model.fit(X, y, epochs=150, batch_size=10, validation_split=0.2)

Underneath it is ``serial(...)``, params, ``fit``: ``model.model``, ``model.params``,
``model.state`` and ``model.opt_state`` are the core values, never hidden copies.

Strings name activations, losses, optimizers (with Keras' default learning rates)
and metrics; an unknown name lists the valid ones. Objects work wherever strings do.
A Softmax output trained with categorical cross-entropy (or a Sigmoid output with
binary cross-entropy) is trained through the fused, stable loss on its logits;
``predict`` still returns probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from funcnn import initializers, io, losses, optim, train, tree
from funcnn import layers as L
from funcnn import metrics as metrics_lib
from funcnn.layers.base import Layer, as_shape
from funcnn.random import RngLike, as_generator

ACTIVATIONS: dict[str, Layer] = {
    "relu": L.Relu,
    "sigmoid": L.Sigmoid,
    "tanh": L.Tanh,
    "softmax": L.Softmax,
    "log_softmax": L.LogSoftmax,
    "softplus": L.Softplus,
    "elu": L.Elu,
    "selu": L.Selu,
    "gelu": L.Gelu,
    "leaky_relu": L.LeakyRelu(),
    "linear": L.Linear,
}

LOSSES: dict[str, losses.Loss] = {
    "mean_squared_error": losses.mean_squared_error,
    "mse": losses.mean_squared_error,
    "mean_absolute_error": losses.mean_absolute_error,
    "mae": losses.mean_absolute_error,
    "huber": losses.huber(),
    "binary_crossentropy": losses.binary_cross_entropy,
    "binary_cross_entropy": losses.binary_cross_entropy,
    "categorical_crossentropy": losses.categorical_cross_entropy,
    "categorical_cross_entropy": losses.categorical_cross_entropy,
    "sparse_categorical_crossentropy": losses.categorical_cross_entropy,
    "sigmoid_binary_cross_entropy": losses.sigmoid_binary_cross_entropy,
    "softmax_cross_entropy": losses.softmax_cross_entropy,
}

# Keras' default learning rates; adadelta keeps the paper's 1.0 (Keras' 0.001 barely moves).
OPTIMIZERS: dict[str, Callable[[], optim.GradientTransformation]] = {
    "sgd": lambda: optim.sgd(0.01),
    "momentum": lambda: optim.momentum(0.01),
    "nesterov": lambda: optim.nesterov(0.01),
    "rmsprop": lambda: optim.rmsprop(0.001),
    "adagrad": lambda: optim.adagrad(0.001),
    "adadelta": lambda: optim.adadelta(),
    "adam": lambda: optim.adam(0.001),
    "adamw": lambda: optim.adamw(0.001),
    "adamax": lambda: optim.adamax(0.001),
    "nadam": lambda: optim.nadam(0.001),
    "lion": lambda: optim.lion(0.0001),
}

INITIALIZERS: dict[str, Any] = {
    name: getattr(initializers, name)
    for name in (
        "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
        "lecun_normal", "orthogonal", "zeros", "ones",
    )
}  # fmt: skip


def _lookup(table: dict[str, Any], name: Any, what: str) -> Any:
    if isinstance(name, str):
        key = name.lower()
        if key not in table:
            raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}")
        return table[key]
    return name


def get_activation(activation: str | Layer | None) -> Layer | None:
    """The activation layer for a name (None and "linear" mean no activation)."""
    if activation is None or activation == "linear":
        return None
    layer = _lookup(ACTIVATIONS, activation, "activation")
    if not isinstance(layer, Layer):
        raise TypeError(f"activation must be a name or a layer, got {type(layer).__name__}")
    return layer


def get_loss(loss: str | losses.Loss) -> losses.Loss:
    found = _lookup(LOSSES, loss, "loss")
    if not isinstance(found, losses.Loss):
        raise TypeError(f"loss must be a name or a funcnn.losses.Loss, got {type(found).__name__}")
    return found


def get_optimizer(optimizer: str | optim.GradientTransformation) -> optim.GradientTransformation:
    found = _lookup(OPTIMIZERS, optimizer, "optimizer")
    found = found() if isinstance(optimizer, str) else found
    if not isinstance(found, optim.GradientTransformation):
        raise TypeError(
            f"optimizer must be a name or a GradientTransformation, got {type(found).__name__}"
        )
    return found


# ---------------------------------------------------------------- Keras-style layer specs


def _input_shape(
    input_dim: int | None, input_shape: Sequence[int] | None
) -> tuple[int, ...] | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_dim is not None:
        return as_shape((input_dim,))
    return None if input_shape is None else as_shape(tuple(input_shape))


@attrs.frozen
class Dense:
    """Keras' ``Dense(units, activation=None, input_dim=None, ...)``: core Dense + activation."""

    units: int
    activation: str | Layer | None = None
    input_dim: int | None = None
    input_shape: tuple[int, ...] | None = None
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"
    use_bias: bool = True

    def layers(self) -> list[Layer]:
        dense = L.Dense(
            self.units,
            w_init=_lookup(INITIALIZERS, self.kernel_initializer, "initializer"),
            b_init=_lookup(INITIALIZERS, self.bias_initializer, "initializer"),
            use_bias=self.use_bias,
        )
        act = get_activation(self.activation)
        return [dense] if act is None else [dense, act]

    def declared_input_shape(self) -> tuple[int, ...] | None:
        return _input_shape(self.input_dim, self.input_shape)


@attrs.frozen
class Activation:
    """Keras' ``Activation("relu")``."""

    activation: str | Layer

    def layers(self) -> list[Layer]:
        act = get_activation(self.activation)
        return [] if act is None else [act]

    def declared_input_shape(self) -> tuple[int, ...] | None:
        return None


def Dropout(rate: float) -> Layer:
    """Keras' ``Dropout(rate)``: rate is the probability of dropping a unit."""
    return L.Dropout(rate)


def Flatten() -> Layer:
    return L.Flatten


# ---------------------------------------------------------------- Sequential


def _fused(layers: list[Layer], loss: losses.Loss) -> losses.Loss | None:
    """The loss on logits when the output activation can be fused into ``loss``."""
    last = layers[-1] if layers else None
    if last is L.Softmax and isinstance(loss, losses.CategoricalCrossEntropy):
        return losses.softmax_cross_entropy
    if last is L.Sigmoid and isinstance(loss, losses.BinaryCrossEntropy):
        return losses.sigmoid_binary_cross_entropy
    return None


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
        model = self.model
        self.params = model.init(self.rng, self.input_shape)
        self.state = model.init_state(self.input_shape) if model.stateful else None

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
        logits = isinstance(
            self.loss, (losses.SigmoidBinaryCrossEntropy, losses.SoftmaxCrossEntropy)
        )
        self.metrics = [metrics_lib.get(m, logits=logits) for m in metrics]
        self.penalty = penalty
        self.opt_state = None
        named = [
            isinstance(loss, str),
            isinstance(optimizer, str),
            all(isinstance(m, str) for m in metrics),
        ]
        self.compile_config = (
            {"loss": loss, "optimizer": optimizer, "metrics": list(metrics)} if all(named) else None
        )

    def _require_compiled(self) -> tuple[losses.Loss, optim.GradientTransformation]:
        if self.loss is None or self.optimizer is None:
            raise ValueError("call compile(loss=..., optimizer=...) before fit or evaluate")
        return self.loss, self.optimizer

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
        if self.params is None:
            self.build(self.input_shape or tuple(x.shape[1:]))
        train_model, train_loss, metrics = self.model, loss, self.metrics
        fused_loss = _fused(self.layers, loss)
        if fused_loss is not None:
            # Same params tree: the output activation (no params) becomes Identity and its
            # work moves into the fused loss on logits. Metrics still see probabilities.
            train_model = L.serial(*self.layers[:-1], L.Identity)
            train_loss = fused_loss
            metrics = [_on_activation(m, self.layers[-1]) for m in self.metrics]
        params, history = train.fit(
            train_model, self.params, train_loss, optimizer, x, y,
            epochs=epochs, batch_size=batch_size, shuffle=shuffle,
            rng=self.rng if seed is None else seed,
            validation_split=validation_split, validation_data=validation_data,
            metrics=metrics, callbacks=callbacks, verbose=verbose, penalty=self.penalty,
            state=self.state, opt_state=self.opt_state,
        )  # fmt: skip
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
        scores = train.evaluate(
            self.model, self.params, loss, x, y,
            metrics=self.metrics, batch_size=batch_size, state=self.state,
        )  # fmt: skip
        if return_dict:
            return scores
        values = list(scores.values())
        return values[0] if len(values) == 1 else values

    def _require_built(self) -> None:
        if self.params is None:
            raise ValueError("the model has no params yet: call fit(...) or build(input_shape)")

    # -- inspection and files

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of layers, output shapes and parameter counts; printed and returned."""
        self._require_built()
        input_shape = self.input_shape or ()
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape: Any = input_shape
        for i, (layer, p) in enumerate(zip(self.layers, self.params)):
            shape = layer.output_shape(shape)
            rows.append((f"{i}: {layer!r}", str((None, *shape)), f"{tree.size(p):,}"))
        widths = [max(len(r[c]) for r in rows) + 2 for c in range(3)]
        rule = "=" * sum(widths)
        lines = [f'Model: "sequential" (input shape {(None, *input_shape)})', rule]
        lines.append("".join(cell.ljust(w) for cell, w in zip(rows[0], widths)))
        lines.append(rule)
        for row in rows[1:]:
            lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths)))
        total = tree.size(self.params)
        frozen = 0 if self.state is None else tree.size(self.state)
        lines += [
            rule,
            f"Total params: {total + frozen:,}",
            f"Trainable params: {total:,}",
            f"Non-trainable params: {frozen:,}",
        ]
        text = "\n".join(lines)
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


def _on_activation(metric: metrics_lib.Metric, activation: Layer) -> metrics_lib.Metric:
    return metrics_lib.Metric(
        metric.name, lambda t, logits: metric(t, activation.apply((), logits))
    )


def load_model(path: str | os.PathLike[str]) -> Sequential:
    """A Sequential from :meth:`Sequential.save`, compiled again when it was compiled by names."""
    checkpoint = io.load(path)
    if not isinstance(checkpoint.model, L.Serial):
        raise ValueError(
            f"{path} holds a {type(checkpoint.model).__name__}, not a Sequential model"
        )
    model = Sequential()
    model.layers = list(checkpoint.model.layers)
    model.input_shape = checkpoint.input_shape
    model.params, model.state = checkpoint.params, checkpoint.state
    config = checkpoint.metadata.get("keras", {}).get("compile")
    if config:
        model.compile(config["loss"], config["optimizer"], config["metrics"])
        model.opt_state = checkpoint.opt_state
    if checkpoint.history:
        model.history = train.History.from_dict(checkpoint.history)
    return model
