"""A Keras-style facade over the functional core, so the classic tutorials read naturally.

>>> model = Sequential()
>>> model.add(Dense(12, input_dim=8, activation="relu"))
>>> model.add(Dense(1, activation="sigmoid"))
>>> model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
>>> history = model.fit(X, y, epochs=150, batch_size=10, validation_split=0.2)

Underneath it is ``serial(...)``, params, ``fit``: ``model.model``, ``model.params``,
``model.state`` and ``model.opt_state`` are the core values, never hidden copies.

Strings name activations, losses, optimizers (with Keras' default learning rates)
and metrics; an unknown name lists the valid ones. Objects work wherever strings do.
A Softmax output trained with categorical cross-entropy (or a Sigmoid output with
binary cross-entropy) is trained through the fused, stable loss on its logits;
``predict`` still returns probabilities.

One module per job: :mod:`~funcnn.keras.names` (the string tables),
:mod:`~funcnn.keras.layers` (layer specs), :mod:`~funcnn.keras.sequential`
(building, compiling, training), :mod:`~funcnn.keras.summary` (the table) and
:mod:`~funcnn.keras.files` (``load_model``).
"""

from funcnn.keras.files import load_model
from funcnn.keras.layers import Activation, Dense, Dropout, Flatten
from funcnn.keras.names import (
    ACTIVATIONS,
    INITIALIZERS,
    LOSSES,
    OPTIMIZERS,
    get_activation,
    get_loss,
    get_optimizer,
)
from funcnn.keras.sequential import Sequential

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "OPTIMIZERS",
    "Activation",
    "Dense",
    "Dropout",
    "Flatten",
    "Sequential",
    "get_activation",
    "get_loss",
    "get_optimizer",
    "load_model",
]
