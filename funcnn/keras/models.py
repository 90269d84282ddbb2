"""``keras.models``: ``Sequential``, ``Model``, ``load_model``, ``model_from_json``."""

from funcnn.keras.engine import Model
from funcnn.keras.files import load_model, model_from_json
from funcnn.keras.sequential import Sequential

__all__ = ["Model", "Sequential", "load_model", "model_from_json"]
