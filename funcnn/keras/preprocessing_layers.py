"""Keras' preprocessing layers that act on numbers inside a model: ``Rescaling`` and
``Normalization`` (with ``adapt``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.base import KerasLayer, KerasTensor, _common
from funcnn.layers.base import Layer


class Rescaling(KerasLayer):
    """``Rescaling(scale, offset=0.0)``: ``x * scale + offset`` (``Rescaling(1 / 255)``)."""

    masking = "per_step"

    def __init__(self, scale: float, offset: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Rescaling"))
        self.scale = check.real("scale", scale)
        self.offset = check.real("offset", offset)

    def core(self) -> Layer:
        return L.Rescaling(self.scale, self.offset)


def _statistic(name: str, value: Any) -> np.ndarray | None:
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Normalization {name} must be numbers, got {value!r}") from e
    return array.reshape(-1) if array.ndim else array.reshape(1)


class Normalization(KerasLayer):
    """``Normalization(axis=-1, mean=None, variance=None)``: ``(x - mean) / sqrt(variance)``
    per position of ``axis`` (``None``: one mean and variance for all values); the
    statistics given, or taken from data by :meth:`adapt`. Its weights (once adapted and
    in a built model) are Keras': ``mean``, ``variance``, ``count`` (0, as Keras 3's
    ``adapt`` leaves it); training never changes them."""

    masking = "per_step"

    def __init__(
        self,
        axis: int | None = -1,
        mean: Any = None,
        variance: Any = None,
        invert: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "Normalization"))
        if check.boolean("invert", invert):
            raise ValueError("Normalization(invert=True) is not supported")
        if isinstance(axis, (tuple, list)):
            if len(axis) != 1:
                raise ValueError(f"Normalization takes one axis (or None), got {axis!r}")
            axis = axis[0]
        self.axis = axis
        self.mean, self.variance = _statistic("mean", mean), _statistic("variance", variance)
        self.core()

    def core(self) -> Layer:
        return L.Normalization(mean=self.mean, variance=self.variance, axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("mean", "variance"):  # JSON values
            if config[key] is not None:
                config[key] = np.asarray(config[key]).tolist()
        return config

    def adapt(self, data: Any, batch_size: Any = None, steps: Any = None) -> None:
        """Take the mean and variance of ``data`` (a batch of examples, as the model gets
        them) at each position of ``axis``; in a built model, its weights too."""
        state = L.normalization_state(L.Normalization(axis=self.axis), np.asarray(data))
        self.mean, self.variance = np.array(state.means), np.array(state.variances)
        model = self._model_if_built()
        if model is not None:  # count stays 0, as Keras 3's adapt leaves it
            self.set_weights([state.means, state.variances, np.zeros((), np.int64)])

    def __call__(self, inputs: Any) -> Any:
        """On a tensor of the functional API, the layer in the model being built; on an
        array, the normalized array (Keras' eager call: ``normalizer(x[:1])``)."""
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if all(isinstance(t, KerasTensor) for t in items):
            return super().__call__(inputs)
        x = np.asarray(inputs, dtype=np.float32)
        core = self.core()
        state = core.init_state(x.shape[1:])
        return core.apply_with_state((), state, x)[0]
