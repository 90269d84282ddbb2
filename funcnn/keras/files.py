"""``load_model``: a Sequential back from the file :meth:`Sequential.save` wrote."""

from __future__ import annotations

import os

from funcnn import io, train
from funcnn import layers as L
from funcnn.keras.sequential import Sequential


def load_model(path: str | os.PathLike[str]) -> Sequential:
    """A Sequential from :meth:`Sequential.save`, compiled again when it was compiled by names."""
    checkpoint = io.load(path)
    if not isinstance(checkpoint.model, L.Serial):
        raise ValueError(
            f"{path} holds a {type(checkpoint.model).__name__}, not a Sequential model"
        )
    model = Sequential()
    model.layers = list(checkpoint.model.layers)
    model.input_shape = checkpoint.input_shape
    model.params, model.state = checkpoint.params, checkpoint.state
    config = checkpoint.metadata.get("keras", {}).get("compile")
    if config:
        model.compile(config["loss"], config["optimizer"], config["metrics"])
        model.opt_state = checkpoint.opt_state
    if checkpoint.history:
        model.history = train.History.from_dict(checkpoint.history)
    return model
