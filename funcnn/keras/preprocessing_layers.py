"""Keras' preprocessing layers that act on numbers inside a model: ``Rescaling``,
``Normalization`` (with ``adapt``), and the image augmentations ``RandomFlip``,
``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` (training only)."""

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
    per position of ``axis`` (``None``: one mean and variance for all values). Given
    ``mean`` and ``variance``, they are constants and the layer has no weights, as in
    Keras; otherwise its weights are Keras' ``mean``, ``variance`` and ``count`` (0, as
    Keras 3's ``adapt`` leaves it), set by :meth:`adapt` from data. Training never changes
    them."""

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
        self._given = (_statistic("mean", mean), _statistic("variance", variance))
        self._adapted: tuple[np.ndarray, np.ndarray] | None = None
        self.core()

    @property
    def mean(self) -> np.ndarray | None:
        """The mean it normalizes by: adapted, or given."""
        return self._adapted[0] if self._adapted is not None else self._given[0]

    @property
    def variance(self) -> np.ndarray | None:
        return self._adapted[1] if self._adapted is not None else self._given[1]

    def core(self) -> Layer:
        if self._adapted is not None:  # the adapted statistics start the state
            mean, variance = self._adapted
            return L.Normalization(mean=mean, variance=variance, axis=self.axis)
        given_mean, given_variance = self._given
        return L.Normalization(
            mean=given_mean,
            variance=given_variance,
            axis=self.axis,
            constant=given_mean is not None,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key, value in zip(("mean", "variance"), self._given):  # JSON values
            config[key] = None if value is None else value.tolist()
        return config

    def adapt(self, data: Any, batch_size: Any = None, steps: Any = None) -> None:
        """Take the mean and variance of ``data`` (a batch of examples, as the model gets
        them) at each position of ``axis``; in a built model, its weights too."""
        if self._given[0] is not None:
            raise ValueError(
                "this Normalization was given mean and variance, its constants: build it "
                "without them to adapt it to data"
            )
        state = L.normalization_state(L.Normalization(axis=self.axis), np.asarray(data))
        self._adapted = (np.array(state.means), np.array(state.variances))
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


def _channels_last(data_format: Any, who: str) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{who}(data_format={data_format!r}): funcnn's images are channels last")


class RandomFlip(KerasLayer):
    """``RandomFlip(mode="horizontal_and_vertical")``: each image flipped with probability
    1/2 in training ("horizontal": left-right, "vertical": top-bottom, both at once)."""

    def __init__(
        self,
        mode: str = "horizontal_and_vertical",
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "RandomFlip"))
        _channels_last(data_format, "RandomFlip")
        self.mode = mode
        self.core()

    def core(self) -> Layer:
        return L.RandomFlip(self.mode)


class _Affine(KerasLayer):
    """The settings Keras' affine image layers share: ``fill_mode="reflect"``,
    ``interpolation="bilinear"``, ``seed``, ``fill_value=0.0``, ``data_format``."""

    def _settings(
        self, fill_mode: str, interpolation: str, fill_value: float, data_format: Any
    ) -> None:
        _channels_last(data_format, type(self).__name__)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def _options(self) -> dict[str, Any]:
        return {
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


def _pair(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


class RandomRotation(_Affine):
    """``RandomRotation(factor, fill_mode="reflect", interpolation="bilinear",
    fill_value=0.0)``: each image rotated in training by an angle drawn from ``factor``
    (fractions of a full turn: 0.1 is up to 36 degrees either way)."""

    def __init__(
        self,
        factor: Any,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "RandomRotation"))
        self.factor = _pair(factor)
        self._settings(fill_mode, interpolation, fill_value, data_format)
        self.core()

    def core(self) -> Layer:
        return L.RandomRotation(self.factor, **self._options())


class RandomZoom(_Affine):
    """``RandomZoom(height_factor, width_factor=None, fill_mode="reflect",
    interpolation="bilinear", fill_value=0.0)``: each image zoomed in training (positive
    factors zoom out; ``width_factor=None`` keeps the aspect)."""

    def __init__(
        self,
        height_factor: Any,
        width_factor: Any = None,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "RandomZoom"))
        self.height_factor, self.width_factor = _pair(height_factor), _pair(width_factor)
        self._settings(fill_mode, interpolation, fill_value, data_format)
        self.core()

    def core(self) -> Layer:
        return L.RandomZoom(self.height_factor, self.width_factor, **self._options())


class RandomTranslation(_Affine):
    """``RandomTranslation(height_factor, width_factor, fill_mode="reflect",
    interpolation="bilinear", fill_value=0.0)``: each image shifted in training by
    fractions of its height and width."""

    def __init__(
        self,
        height_factor: Any,
        width_factor: Any,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "RandomTranslation"))
        self.height_factor, self.width_factor = _pair(height_factor), _pair(width_factor)
        self._settings(fill_mode, interpolation, fill_value, data_format)
        self.core()

    def core(self) -> Layer:
        return L.RandomTranslation(self.height_factor, self.width_factor, **self._options())
