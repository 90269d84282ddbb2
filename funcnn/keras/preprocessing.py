"""Keras 2's ``keras.preprocessing``: ``from keras.preprocessing import sequence`` and
``sequence.pad_sequences`` (Keras 3's ``keras.utils.pad_sequences``)."""

from __future__ import annotations

from types import SimpleNamespace

from funcnn.keras.utils import pad_sequences

__all__ = ["sequence"]

sequence = SimpleNamespace(pad_sequences=pad_sequences)
