"""``keras.backend``: what scripts call on it that means something here.

funcnn keeps no global graph or session: every model holds its own values, so
``clear_session()`` has nothing to clear and returns.
"""

from __future__ import annotations

__all__ = ["clear_session", "epsilon", "floatx", "image_data_format", "set_image_data_format"]


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
