"""A model back from what it wrote: :func:`restore` from a checkpoint or a config, and
Keras' ``load_model`` and ``model_from_json`` through it."""

from __future__ import annotations

import os
from typing import Any

from funcnn import io, train
from funcnn import layers as L
from funcnn.keras import config as keras_config
from funcnn.keras import layers as K
from funcnn.keras.engine import Model
from funcnn.keras.sequential import Sequential
from funcnn.layers.base import Layer


def restore(source: io.Checkpoint | dict[str, Any], *, compile: bool = True) -> Model:
    """The model a checkpoint (what :func:`funcnn.io.load` read of :meth:`Model.save`)
    or a config (:meth:`Model.get_config`) describes.

    From a config: its layers, not built (fresh weights once built). From a checkpoint:
    its layers (the Keras layers of the architecture it records when they build the
    model it holds, else its funcnn layers wrapped), weights, state and history, and, with
    ``compile`` and the compile settings recorded, compiled again with its optimizer
    state, so that ``fit`` resumes where it stopped. Settings that are not what a model
    writes raise ValueError naming what was expected and what was found.
    """
    if not isinstance(source, io.Checkpoint):
        return _from_architecture(keras_config.read_architecture(source, _nested_model), source)
    checkpoint = source
    keras = checkpoint.metadata.get("keras", {})
    if not isinstance(keras, dict):
        raise ValueError(
            "metadata['keras'] must be a JSON object of the model's Keras settings (compile, "
            f"architecture), got {type(keras).__name__}"
        )
    arch, settings = keras.get("architecture"), keras.get("compile")
    if arch is not None and not isinstance(arch, dict):
        raise ValueError(
            "metadata['keras']['architecture'] must be a JSON object (Model.get_config()), "
            f"got {type(arch).__name__}"
        )
    model = (
        _from_architecture(keras_config.read_architecture(arch, _nested_model), arch)
        if arch
        else None
    )
    if model is None or model.model != checkpoint.model:  # the saved model is the truth
        model = _from_core(checkpoint.model, checkpoint.input_shape)
    if model.input_shape is None:
        model.input_shape = checkpoint.input_shape
    model.params, model.state = checkpoint.params, checkpoint.state
    if compile and settings is not None:
        try:
            model.compile(**keras_config.read_compile(settings))
        except TypeError as e:
            raise ValueError(f"the compile settings do not compile: {e}") from e
        model.opt_state = checkpoint.opt_state
    if checkpoint.history:
        try:
            model.history = train.History.from_dict(checkpoint.history)
        except (TypeError, ValueError) as e:
            raise ValueError(f"its history is not lists of numbers per metric: {e}") from e
    return model


def _from_architecture(arch: keras_config.Architecture, written: dict[str, Any]) -> Model:
    """The model of ``arch``, read from ``written``: a nested model whose config says
    ``training: false`` is called with training=False in it."""
    model = (Sequential if arch.kind == "Sequential" else Model)(name=arch.name)
    for spec in arch.specs:
        model._add(spec)
    model._wiring = arch.wiring
    model.input_shape = arch.input_shape
    model._inference_calls = frozenset(
        i
        for i, (spec, entry) in enumerate(zip(arch.specs, written["layers"]))
        if isinstance(spec, Model) and entry.get("config", {}).get("training") is False
    )
    return model


def _nested_model(config: dict[str, Any]) -> Model:
    """A model used as a layer of another, from the config :meth:`Model.get_config` wrote
    (its weights come with the outer model's)."""
    return _from_architecture(keras_config.read_architecture(config, _nested_model), config)


def _from_core(core: Layer, input_shape: Any) -> Model:
    """A model whose layers wrap the layers of a saved funcnn model (no Keras config)."""
    model: Model
    if isinstance(core, L.Graph):
        model = Model()
        model._wiring = (core.parents, core.inputs, core.outputs)
    elif isinstance(core, L.Serial):
        model = Sequential()
    else:
        raise ValueError(f"the file holds a {type(core).__name__}, not a Keras model")
    for layer in core.layers:
        model._add(K.Wrap(layer))
    model.input_shape = input_shape
    return model


def load_model(path: str | os.PathLike[str], compile: bool = True, **unused: Any) -> Model:
    """The model :meth:`Model.save` wrote (see :func:`restore`); a file whose Keras
    settings are not what :meth:`Model.save` writes raises ValueError naming the file and
    what it lacks."""
    checkpoint = io.load(path)
    try:
        return restore(checkpoint, compile=compile)
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: {e}") from e


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
    return restore(arch)
