"""``keras.backend``: what scripts call on it that means something here.

funcnn keeps no global graph or session: every model holds its own values, so
``clear_session()`` has nothing to clear and returns.
"""

from __future__ import annotations

__all__ = ["clear_session", "floatx"]


def clear_session() -> None:
    """Keras frees its global graph state here; funcnn has none, so nothing is done."""


def floatx() -> str:
    """The facade computes in float32."""
    return "float32"
