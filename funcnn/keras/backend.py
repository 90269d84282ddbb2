"""``keras.backend``: what scripts call on it that means something here.

funcnn keeps no global graph or session: every model holds its own values, so
``clear_session()`` has nothing to clear and returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "clear_session",
    "epsilon",
    "floatx",
    "get_value",
    "image_data_format",
    "set_image_data_format",
    "set_value",
]


def clear_session() -> None:
    """Keras frees its global graph state here; funcnn has none, so nothing is done."""


def floatx() -> str:
    """The facade computes in float32."""
    return "float32"


def epsilon() -> float:
    """Keras' fuzz factor, 1e-7 (what its metrics and clipped cross-entropies add)."""
    return 1e-7


def image_data_format() -> str:
    """Images are channels-last, ``(height, width, channels)``, as Keras' default."""
    return "channels_last"


def set_image_data_format(data_format: str) -> None:
    """Only ``"channels_last"`` is funcnn's layout; any other is refused, not ignored."""
    if data_format != "channels_last":
        raise ValueError(
            f"image data format {data_format!r}: funcnn's convolutions are channels-last; "
            "transpose the images to (height, width, channels) instead"
        )


def get_value(x: Any) -> Any:
    """Keras 2's ``K.get_value``: a number as a float (``model.optimizer.learning_rate``,
    Keras 2's ``model.optimizer.lr``), anything else as a NumPy array."""
    if isinstance(x, (int, float, np.number)) and not isinstance(x, bool):
        return float(x)
    return np.asarray(x)


def set_value(x: Any, value: Any) -> None:
    """Keras 2's ``K.set_value(model.optimizer.lr, 0.01)``: sets what has Keras' ``assign``
    (an optimizer's learning rate), from the next update on."""
    assign = getattr(x, "assign", None)
    if not callable(assign):
        raise TypeError(
            "set_value sets a value that can be assigned, such as model.optimizer.learning_rate "
            f"(Keras 2's model.optimizer.lr); got {type(x).__name__} {x!r:.60}"
        )
    assign(value)
