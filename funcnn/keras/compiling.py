"""What ``Model.compile`` is given, as funcnn takes it: a loss and an optimizer from
Keras' names, Keras objects or funcnn ones (with the JSON settings a file keeps of them),
and the fused output a Softmax (Sigmoid) with categorical (binary) cross-entropy trains.
"""

from __future__ import annotations

from typing import Any

from funcnn import layers as L
from funcnn import losses, optim
from funcnn import metrics as metrics_lib
from funcnn.keras import losses as keras_losses
from funcnn.keras import optimizers as keras_optimizers
from funcnn.keras.losses import KerasLoss
from funcnn.keras.names import LOSSES, OPTIMIZERS, lookup
from funcnn.layers.base import Layer

SPARSE_NAMES = ("sparse_categorical_crossentropy",)
KERAS_NAMES = frozenset(name.lower() for name in keras_optimizers.CLASSES)


def resolve_loss(loss: Any, loss_weights: Any) -> tuple[losses.Loss, bool, Any]:
    """(funcnn loss, labels are sparse, a JSON config or None)."""
    if isinstance(loss, (list, tuple)):  # one per output
        parts = [resolve_loss(x, None) for x in loss]
        if any(sparse for _, sparse, _ in parts):
            raise ValueError("sparse labels with several outputs: one-hot them first")
        configs = [c for _, _, c in parts]
        combined = losses.per_output(*[x for x, _, _ in parts], weights=loss_weights)
        return combined, False, None if None in configs else {"per_output": configs}
    if loss_weights is not None:
        raise ValueError("loss_weights go with a list of losses, one per output")
    if callable(loss) and loss in keras_losses.FUNCTIONS:  # keras.losses.mse, the function
        loss = keras_losses.FUNCTIONS[loss]
    if isinstance(loss, str):
        found = lookup(LOSSES, loss, "loss")
        return found, loss.lower() in SPARSE_NAMES, loss
    if isinstance(loss, KerasLoss):
        config = {"class": type(loss).__name__, "config": loss.get_config()}
        return loss.loss, loss.sparse, config
    if isinstance(loss, losses.Loss):
        return loss, False, None
    raise TypeError(f"loss must be a name, a keras.losses object or a funcnn loss, got {loss!r}")


def resolve_optimizer(optimizer: Any, model: Any = None) -> keras_optimizers.Optimizer:
    """``model.optimizer`` for what ``compile`` was given: a Keras optimizer object as it
    is, a Keras name ("adam") as Keras' object with its defaults (``optimizers.get``), a
    funcnn optimizer (or a name only funcnn has: "momentum", "nesterov") as
    :class:`~.optimizers.Given`; compiled into ``model`` (its learning rate reads and sets
    ``model.opt_state``) where one is given: a ValueError for an object another model has."""
    if isinstance(optimizer, keras_optimizers.Optimizer):
        found = optimizer
    elif isinstance(optimizer, str) and optimizer.lower() in KERAS_NAMES:
        found = keras_optimizers.get(optimizer)
    elif isinstance(optimizer, str):
        found = keras_optimizers.Given(lookup(OPTIMIZERS, optimizer, "optimizer")(), optimizer)
    elif isinstance(optimizer, optim.GradientTransformation):
        found = keras_optimizers.Given(optimizer)
    else:
        raise TypeError(
            "optimizer must be a name, a keras.optimizers object or a funcnn optimizer, got "
            f"{optimizer!r}"
        )
    if model is not None:
        found._bind(model)
    return found


def optimizer_config(optimizer: keras_optimizers.Optimizer) -> Any:
    """What a file keeps of a compiled optimizer, as it is now: its name, or ``{class,
    config}`` (a schedule's config included); None for one without a config (a funcnn
    optimizer, a learning rate that is a function), which is saved without compile
    settings."""
    if isinstance(optimizer, keras_optimizers.Given):
        return optimizer.name
    try:
        return {"class": type(optimizer).__name__, "config": optimizer.get_config()}
    except TypeError:
        return None


def fuse(
    core: Layer, loss: losses.Loss, metrics: list[metrics_lib.Metric]
) -> tuple[Layer, losses.Loss, list[metrics_lib.Metric]] | None:
    """For an output layer ``core`` that ends in a Softmax (Sigmoid) trained with
    categorical (binary) cross-entropy on probabilities: ``core`` without that activation
    (the same params tree), the fused, stable loss on its logits, and ``metrics`` on the
    activation's output, so they still see probabilities. None for any other."""
    found = _split_activation(core, loss)
    if found is None:
        return None
    logits, activation = found
    fused_loss = (
        losses.softmax_cross_entropy
        if isinstance(loss, losses.CategoricalCrossEntropy)
        else losses.sigmoid_binary_cross_entropy
    )
    return logits, fused_loss, [_on_activation(m, activation) for m in metrics]


def _split_activation(core: Layer, loss: losses.Loss) -> tuple[Layer, Layer] | None:
    """(``core`` without its output activation, that activation), or None."""
    act = {
        losses.CategoricalCrossEntropy: L.Softmax,
        losses.BinaryCrossEntropy: L.Sigmoid,
    }.get(type(loss))
    if act is None:
        return None
    if core is act:
        return L.Identity, act
    if isinstance(core, L.PerStep):  # the output layer of a masked sequence
        inner = _split_activation(core.layer, loss)
        return None if inner is None else (L.per_step(inner[0]), inner[1])
    if isinstance(core, L.Serial) and core.layers:
        inner = _split_activation(core.layers[-1], loss)
        if inner is not None:
            return L.serial(*core.layers[:-1], inner[0]), inner[1]
    return None


def _on_activation(metric: metrics_lib.Metric, activation: Layer) -> metrics_lib.Metric:
    """``metric`` on the activation's output, for a training model that outputs logits."""
    return metrics_lib.on_outputs(metric, lambda logits: activation.apply((), logits))


def unique_names(metrics: list[metrics_lib.Metric]) -> list[metrics_lib.Metric]:
    """``metrics`` with the second of a name logged as ``name_1``, the third ``name_2``...
    (two ``AUC()`` objects, both named "auc", would share one entry of the logs)."""
    seen: dict[str, int] = {}
    renamed = []
    for m in metrics:
        n = seen.get(m.name, 0)
        seen[m.name] = n + 1
        renamed.append(m if n == 0 else metrics_lib.Metric(f"{m.name}_{n}", m.fn))
    return renamed
