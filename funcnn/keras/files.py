"""``load_model`` and ``model_from_json``: a model back from what it wrote."""

from __future__ import annotations

import os
from typing import Any

from funcnn import io, train
from funcnn.keras.engine import Model, compile_from_config, from_architecture, from_core


def load_model(path: str | os.PathLike[str], compile: bool = True, **unused: Any) -> Model:
    """The model :meth:`Model.save` wrote: its layers, weights, state and history, and,
    when it was compiled with names or Keras objects, compiled again with its optimizer
    state, so that ``fit`` resumes where it stopped. A file whose Keras settings are not
    what :meth:`Model.save` writes raises ValueError naming the file and what it lacks."""
    checkpoint = io.load(path)
    try:
        return _restore(checkpoint, compile)
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: {e}") from e


def _restore(checkpoint: io.Checkpoint, compile: bool) -> Model:
    keras = checkpoint.metadata.get("keras", {})
    if not isinstance(keras, dict):
        raise ValueError(
            "metadata['keras'] must be a JSON object of the model's Keras settings (compile, "
            f"architecture), got {type(keras).__name__}"
        )
    arch, config = keras.get("architecture"), keras.get("compile")
    if arch is not None and not isinstance(arch, dict):
        raise ValueError(
            "metadata['keras']['architecture'] must be a JSON object (Model.get_config()), "
            f"got {type(arch).__name__}"
        )
    model = from_architecture(arch) if arch else None
    if model is None or model.model != checkpoint.model:  # the saved model is the truth
        model = from_core(checkpoint.model, checkpoint.input_shape)
    if model.input_shape is None:
        model.input_shape = checkpoint.input_shape
    model.params, model.state = checkpoint.params, checkpoint.state
    if compile and config is not None:
        compile_from_config(model, config)
        model.opt_state = checkpoint.opt_state
    if checkpoint.history:
        try:
            model.history = train.History.from_dict(checkpoint.history)
        except (TypeError, ValueError) as e:
            raise ValueError(f"its history is not lists of numbers per metric: {e}") from e
    return model


def model_from_json(text: str | bytes, **unused: Any) -> Model:
    """A model of the architecture :meth:`Model.to_json` wrote, with fresh weights; a
    ValueError naming what was expected and what was found for any other text."""
    try:
        arch = io.parse_json(text, "the model's JSON")
    except ValueError as e:
        raise ValueError(f"not a model's JSON: {e}") from e
    if not isinstance(arch, dict):
        raise ValueError(
            f"a model's JSON is a JSON object with a list of layers, got {type(arch).__name__}"
        )
    return from_architecture(arch)
