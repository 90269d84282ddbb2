"""``load_model`` and ``model_from_json``: a model back from what it wrote."""

from __future__ import annotations

import json
import os
from typing import Any

from funcnn import io, train
from funcnn.keras.engine import Model, compile_from_config, from_architecture, from_core


def load_model(path: str | os.PathLike[str], compile: bool = True, **unused: Any) -> Model:
    """The model :meth:`Model.save` wrote: its layers, weights, state and history, and,
    when it was compiled with names or Keras objects, compiled again with its optimizer
    state, so that ``fit`` resumes where it stopped."""
    checkpoint = io.load(path)
    keras = checkpoint.metadata.get("keras", {}) if isinstance(checkpoint.metadata, dict) else {}
    arch = keras.get("architecture")
    model = from_architecture(arch) if arch else None
    if model is None or model.model != checkpoint.model:  # the saved model is the truth
        model = from_core(checkpoint.model, checkpoint.input_shape)
    if model.input_shape is None:
        model.input_shape = checkpoint.input_shape
    model.params, model.state = checkpoint.params, checkpoint.state
    config = keras.get("compile")
    if compile and config:
        compile_from_config(model, config)
        model.opt_state = checkpoint.opt_state
    if checkpoint.history:
        model.history = train.History.from_dict(checkpoint.history)
    return model


def model_from_json(text: str) -> Model:
    """A model of the architecture :meth:`Model.to_json` wrote, with fresh weights."""
    try:
        arch = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not a model's JSON: {e}") from e
    return from_architecture(arch)
