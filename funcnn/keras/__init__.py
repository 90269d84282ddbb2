"""A Keras facade over the functional core: Keras scripts run with their imports changed.

>>> from funcnn import keras
>>> from funcnn.keras import layers
>>> model = keras.Sequential([layers.Dense(64, activation="relu", input_shape=(784,)),
...                           layers.Dense(10, activation="softmax")])
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> history = model.fit(x_train, y_train, epochs=5, batch_size=32, validation_split=0.1)

It has the modules Keras scripts import: ``layers`` (Dense, Conv2D, MaxPooling2D,
BatchNormalization, Dropout, Flatten, Input...), ``models`` (Sequential, Model,
load_model, model_from_json), ``optimizers`` (Adam, SGD, RMSprop... with Keras'
defaults, ``lr`` and ``decay`` included), ``losses``, ``callbacks``, ``regularizers``
(l1, l2, l1_l2), ``utils`` (to_categorical, pad_sequences), ``preprocessing.sequence``
and ``datasets`` (MNIST from the sample a package ships). The functional API
(``keras.Input``, layer calls, ``keras.Model(inputs, outputs)``) builds a
``funcnn.layers.Graph``.

Underneath it is the core: ``model.model`` (the funcnn layer), ``model.params``,
``model.state`` and ``model.opt_state`` are the core values, never hidden copies. A
Softmax (Sigmoid) output trained with categorical (binary) cross-entropy is trained
through the fused, stable loss on its logits; ``predict`` still returns probabilities.
Strings name activations, losses, optimizers, initializers and metrics; an unknown name
lists the valid ones. What differs from Keras is listed in docs/keras.md.
"""

from funcnn.keras import (
    backend,
    callbacks,
    datasets,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    preprocessing,
    regularizers,
    utils,
)
from funcnn.keras.engine import Model
from funcnn.keras.files import load_model, model_from_json
from funcnn.keras.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    MaxPooling2D,
)
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

__version__ = "3.0.0"
"""The Keras API the facade follows (Keras 3's), for scripts that read or compare it;
funcnn's own version is ``funcnn.__version__``."""

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "OPTIMIZERS",
    "Activation",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "MaxPooling2D",
    "Model",
    "Sequential",
    "__version__",
    "backend",
    "callbacks",
    "datasets",
    "get_activation",
    "get_loss",
    "get_optimizer",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "model_from_json",
    "models",
    "optimizers",
    "preprocessing",
    "regularizers",
    "utils",
]
