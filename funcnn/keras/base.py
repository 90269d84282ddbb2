"""What every Keras layer of the facade shares: :class:`KerasLayer` (its settings, the
funcnn layer they build, its config and its call in the functional API, its regularizers,
and its weights in the model that holds it), :class:`KerasTensor` and ``Input`` (the
functional API's values), and the check of the keywords every layer takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras import regularizers
from funcnn.keras import weights as keras_weights
from funcnn.keras.core_layers import DropMask
from funcnn.keras.names import get_activation
from funcnn.keras.weights import Weight
from funcnn.layers.base import Layer, as_shape
from funcnn.layers.masking import is_masked_shape

_WEIGHT_ATTRIBUTES = frozenset(
    (
        "kernel",
        "bias",
        "recurrent_kernel",
        "embeddings",
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "depthwise_kernel",
        "pointwise_kernel",
    )
)
"""Keras' attributes for a built layer's weights (``dense.kernel``)."""

KERNEL_AND_BIAS = {"kernel_regularizer": "kernel", "bias_regularizer": "bias"}
"""The regularizer keywords of Dense and the convolutions (:attr:`KerasLayer.regularizable`)."""


def _shape(input_shape: Any, input_dim: Any = None) -> tuple[int, ...] | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_dim is not None:
        return as_shape((check.positive_int("input_dim", input_dim),))
    return None if input_shape is None else declared_shape(input_shape)


class KerasLayer:
    """A Keras layer: its settings, and the funcnn layer they build (:meth:`core`)."""

    # How the layer meets a masked sequence, the pair (values, mask) that Embedding(
    # mask_zero=True) and Masking start: "per_step" runs the core on the values and passes
    # the mask on (Keras' supports_masking: Dense, Activation, Dropout...), "takes" hands
    # the core the pair (the recurrent layers), "drops" hands it the values alone (Keras
    # drops the mask there, with a warning).
    masking: ClassVar[str] = "drops"

    # The regularizer keywords the layer takes, each with the name of the weight it
    # regularizes (Dense: kernel_regularizer -> "kernel"); activity_regularizer, Keras'
    # penalty of a layer's outputs, is taken as None only.
    regularizable: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        name: str | None = None,
        input_shape: Any = None,
        input_dim: Any = None,
        trainable: bool = True,
        **regularizer_keywords: Any,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        self.name = name
        self.declared_input_shape = _shape(input_shape, input_dim)
        self.trainable = trainable
        self._regularizers: dict[str, regularizers.Regularizer] = {}
        self._owner: Any = None  # the model that holds the layer
        for key, value in regularizer_keywords.items():
            setattr(self, key, value)

    @property
    def trainable(self) -> bool:
        """False freezes the layer, as in Keras: ``fit`` leaves its weights as they are and
        runs a BatchNormalization in inference mode (see :mod:`funcnn.keras.freezing`)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = check.boolean("trainable", value)

    # -- regularizers

    if not TYPE_CHECKING:  # hidden from mypy: a misspelt attribute stays an error there

        def __setattr__(self, key: str, value: Any) -> None:
            if key.endswith("_regularizer"):  # layer.kernel_regularizer = ...: at next fit
                self._set_regularizer(key, value)
            else:
                super().__setattr__(key, value)

        def __getattr__(self, key: str) -> Any:
            # Called for what the instance lacks: its regularizers, and Keras' attributes
            # for the weights of a built layer (dense.kernel); nothing builds a model here.
            if not key.startswith("_"):
                if key.endswith("_regularizer") and (
                    key in self.regularizable or key == "activity_regularizer"
                ):
                    return self.__dict__.get("_regularizers", {}).get(key)
                if key in _WEIGHT_ATTRIBUTES and self._model_if_built() is not None:
                    for weight in self.weights:
                        if weight.name == key:
                            return weight
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def _set_regularizer(self, key: str, value: Any) -> None:
        who = type(self).__name__
        if key == "activity_regularizer":
            if value is not None:
                raise ValueError(
                    f"{who}(activity_regularizer=...) is not supported by funcnn's Keras facade "
                    "(a penalty of the layer's outputs); regularize its weights instead "
                    f"({', '.join(self.regularizable) or 'on a Dense or Conv2D layer'})"
                )
            return
        if key not in self.regularizable:
            if value is None:  # no regularizer: what Keras' other layers take by default
                return
            takes = f"; it takes {', '.join(self.regularizable)}" if self.regularizable else ""
            raise TypeError(
                f"{who} got keyword(s) {key!r} that funcnn's Keras facade does not support{takes}"
            )
        regularizer = regularizers.get(value)
        if regularizer is None:
            self._regularizers.pop(key, None)
        else:
            self._regularizers[key] = regularizer

    def weight_regularizers(self) -> dict[str, regularizers.Regularizer]:
        """The regularizer of each weight that has one, by the weight's Keras name
        (``{"kernel": L2(l2=0.01)}``): what ``fit`` adds to the loss."""
        own = self.__dict__.get("_regularizers", {})  # a Model (a layer too) has none
        return {self.regularizable[k]: r for k, r in own.items()}

    # -- weights, in the model that holds the layer

    def _attach(self, model: Any) -> None:
        """Record the model that holds the layer (the last one it was added to): its
        weights are that model's."""
        self._owner = model

    def _model_if_built(self) -> Any:
        model = self.__dict__.get("_owner")
        return model if model is not None and model.params is not None else None

    def _located(self) -> tuple[Any, int]:
        """The model that holds the layer (built now if its input shape is known) and
        the layer's place in it; a ValueError where there is none."""
        who = f"{type(self).__name__} {self.name!r}" if self.name else type(self).__name__
        model = self.__dict__.get("_owner")
        if model is None:
            raise ValueError(
                f"{who} is not in a model: its weights exist once a model holding it is "
                "built (a first layer with input_shape=..., keras.Input, build(input_shape) "
                "or fit)"
            )
        index = next((i for i, spec in enumerate(model.layers) if spec is self), None)
        if index is None:
            raise ValueError(f"{who} is no longer in its model {model.name!r} (popped?)")
        if model.params is None:
            if model.input_shape is None:
                raise ValueError(
                    f"{who} is not built yet: its model {model.name!r} does not know its "
                    "input shape; call model.build(input_shape) or model.fit(x, y) first"
                )
            model.build()
        return model, index

    def _weight_list(self) -> list[Weight]:
        held = self.__dict__.get("_specs")
        if isinstance(held, list):  # a Model is a layer too: its layers' weights, in order
            return [w for layer in held for w in layer._weight_list()]
        model, index = self._located()
        return [
            Weight(self, k, path, leaf.shape, leaf.dtype, is_param and self.trainable)
            for k, (path, leaf, is_param) in enumerate(
                keras_weights.layer_weights(model.params, model.state, index)
            )
        ]

    def get_weights(self) -> list[np.ndarray]:
        """The layer's weights as arrays (copies), in Keras' order: Dense kernel, bias;
        LSTM kernel, recurrent_kernel, bias; BatchNormalization gamma, beta, moving mean,
        moving variance. A ValueError where the layer is in no built model."""
        model, index = self._located()
        found = keras_weights.layer_weights(model.params, model.state, index)
        return [np.array(a) for _, a, _ in found]

    def set_weights(self, arrays: Any) -> None:
        """Replace the layer's weights in its model by ``arrays`` (get_weights' order and
        shapes; cast to the weights' dtypes): ``fit`` continues from them."""
        model, index = self._located()
        who = f"{type(self).__name__} {self.name!r}"
        model.params, model.state = keras_weights.set_layer_weights(
            model.params, model.state, index, arrays, who
        )

    @property
    def weights(self) -> list[Weight]:
        """Every weight (:class:`~funcnn.keras.weights.Weight`: ``name``, ``shape``,
        ``numpy()``), in get_weights' order."""
        return self._weight_list()

    @property
    def trainable_weights(self) -> list[Weight]:
        """The weights ``fit`` trains: none where the layer is frozen."""
        return [w for w in self._weight_list() if w.trainable]

    @property
    def non_trainable_weights(self) -> list[Weight]:
        """The others (a BatchNormalization's moving statistics; all of a frozen layer's)."""
        return [w for w in self._weight_list() if not w.trainable]

    # -- the core and the config

    def core(self) -> Layer:
        raise NotImplementedError

    def core_for(self, masked: bool) -> Layer:
        """The core for an input that is a masked sequence (``masked``) or not."""
        core = self.core()
        if not masked or self.masking == "takes":
            return core
        return L.per_step(core) if self.masking == "per_step" else L.serial(DropMask, core)

    def get_config(self) -> dict[str, Any]:
        """The keyword arguments that build this layer again (JSON values)."""
        config = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        shape = config.pop("declared_input_shape")
        if shape is not None:
            config["input_shape"] = list(shape)
        if not self.trainable:
            config["trainable"] = False
        for key, regularizer in self.__dict__.get("_regularizers", {}).items():
            config[key] = regularizers.config_value(regularizer)
        return config

    def __call__(self, inputs: Any) -> KerasTensor:
        """The functional API: this layer applied to a tensor (or a list of them)."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items or not all(isinstance(t, KerasTensor) for t in items):
            raise TypeError(
                f"{type(self).__name__} is called on the tensors of keras.Input(shape=...) "
                "or of other layers; to run a model on data use model.predict(x)"
            )
        shapes = tuple(t.shape for t in items)
        who = type(self).__name__
        if len(items) > 1:
            core = self.core_for_several(shapes)
            return KerasTensor(symbolic_shape(core.output_shape, shapes, who), self, tuple(items))
        core = self.core_for(is_masked_shape(shapes[0]))
        return KerasTensor(symbolic_shape(core.output_shape, shapes[0], who), self, tuple(items))

    def core_for_several(self, shapes: Any) -> Layer:
        """The core for several inputs of these ``shapes`` (a merge; a recurrent layer's
        sequence and initial state)."""
        refuse_masked_merge(self, shapes)
        return self.core()

    def unpack(self, tensor: KerasTensor) -> list[KerasTensor]:
        """``tensor``'s parts, where this layer returns several (return_state): what
        ``a, b, c = layer(x)`` gives in the functional API."""
        raise TypeError(
            f"{tensor!r} is one tensor: {type(self).__name__} returns one output; only a "
            "recurrent layer with return_state=True returns several to take apart"
        )

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({settings})"


def refuse_masked_merge(layer: KerasLayer, shapes: Any) -> None:
    """A ValueError for a layer of several inputs given a masked sequence."""
    if any(is_masked_shape(s) for s in shapes):
        raise ValueError(
            f"{type(layer).__name__} of several tensors, one a masked sequence (from "
            "Embedding(mask_zero=True) or Masking): merging masks is not supported yet; "
            "merge before masking, or pass the sequence through a recurrent layer first"
        )


def _with_activation(layer: Layer, activation: Any) -> Layer:
    act = get_activation(activation)
    return layer if act is None else L.serial(layer, act)


@attrs.frozen(eq=False)
class KerasTensor:
    """What the functional API passes between layers: a shape and where it came from."""

    shape: Any
    layer: KerasLayer | None = None  # None for an Input
    parents: tuple[KerasTensor, ...] = ()
    name: str | None = None
    training: bool | None = None  # the call's training=...: False runs a model in inference

    def __repr__(self) -> str:
        return f"<KerasTensor shape={(None, *self.shape)}>"

    def __iter__(self) -> Any:
        if self.layer is None:
            raise TypeError(f"{self!r} is one tensor, an Input's: it has no parts to take apart")
        return iter(self.layer.unpack(self))


def Input(shape: Any, name: str | None = None, **unused: Any) -> KerasTensor:
    """``keras.Input(shape=(784,))``: one example's shape, without the batch axis. An axis
    may be ``None`` (``Input(shape=(None,), dtype="int32")``: sequences of any length),
    where no weight depends on its length."""
    for key in unused:
        if key not in ("dtype", "batch_size", "sparse"):
            raise TypeError(f"Input got an unexpected keyword {key!r}")
    return KerasTensor(declared_shape(shape), name=name)


# -- shapes with a None length (keras.Input(shape=(None, ...)))

PROBES = (4099, 8209)
"""The lengths a ``None`` axis takes while output shapes are worked out and a model is
built (at the first): two, so an output axis that follows the input's length (a sequence's
steps) is told apart from one that does not. They are long, so that a stack of kernels,
strides and pools that shrinks a length fits them, and about 2x apart, so that an axis a
long stride or pool takes down to a few positions still differs between them. funcnn's
layers are built for whole shapes; their weights never depend on a sequence's length (the
build checks it), so a model built at one length runs at any. Only shapes are worked out
at these lengths: nothing of their size is allocated."""


def declared_shape(shape: Any) -> Any:
    """One example's shape (no batch axis), each axis an int or ``None`` (any length)."""
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if None not in dims:
        return as_shape(dims)
    as_shape(tuple(1 if d is None else d for d in dims))  # the other axes: ints
    return dims


def has_none(shape: Any) -> bool:
    """True where ``shape`` (or a shape in a tuple of them) has a ``None`` length."""
    if isinstance(shape, (tuple, list)):
        return any(has_none(s) for s in shape)
    return shape is None


def at_length(shape: Any, length: int) -> Any:
    """``shape`` with each ``None`` length set to ``length`` (in nested shapes too)."""
    if isinstance(shape, (tuple, list)):
        return tuple(at_length(s, length) for s in shape)
    return length if shape is None else shape


def _merge(a: Any, b: Any) -> Any:
    """Two probes' output shapes as one: ``None`` where they differ."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return tuple(_merge(x, y) for x, y in zip(a, b))
    return a if a == b else None


def symbolic_shape(output_shape: Any, shapes: Any, who: str) -> Any:
    """``output_shape(shapes)``, where ``shapes`` may hold ``None`` lengths: worked out at
    each of :data:`PROBES`, ``None`` where the outputs differ."""
    if not has_none(shapes):
        return output_shape(shapes)
    try:
        outs = [output_shape(at_length(shapes, n)) for n in PROBES]
    except (TypeError, ValueError) as e:
        raise type(e)(
            f"{who} on an input with a None length ({shapes}): {e}. Give keras.Input the "
            "length (pad the sequences to it)"
        ) from e
    return _merge(*outs)


_COMMON = ("name", "input_shape", "trainable")


def _common(kwargs: dict[str, Any], who: str, dim: bool = False) -> dict[str, Any]:
    """The keywords every Keras layer takes; a clear error for one funcnn does not know.
    The regularizer keywords pass on to :class:`KerasLayer`, which checks them."""
    known = _COMMON + (("input_dim",) if dim else ())
    if kwargs.get("dtype") not in (None, "float32"):
        raise ValueError(f"{who}(dtype={kwargs['dtype']!r}): the Keras facade computes in float32")
    unknown = [
        k for k in kwargs if k not in known and k != "dtype" and not k.endswith("_regularizer")
    ]
    if unknown:
        raise TypeError(
            f"{who} got keyword(s) {', '.join(map(repr, unknown))} that funcnn's Keras facade "
            f"does not support"
        )
    return {k: v for k, v in kwargs.items() if k in known or k.endswith("_regularizer")}


def keras_layer(value: Any, who: str) -> KerasLayer:
    """A Keras layer given to a wrapper (Bidirectional, TimeDistributed): the layer, or the
    ``{"class": ..., "config": ...}`` its config holds (what :meth:`nested_config` wrote)."""
    if isinstance(value, KerasLayer):
        return value
    if isinstance(value, dict) and isinstance(value.get("class"), str):
        classes = {c.__name__: c for c in _subclasses(KerasLayer)}
        cls = classes.get(value["class"])
        settings = value.get("config", {})
        if cls is not None and isinstance(settings, dict):
            return cls(**settings)
    raise TypeError(f"{who} takes a Keras layer, got {value!r:.80}")


def nested_config(layer: KerasLayer) -> dict[str, Any]:
    """A wrapped layer's entry in its wrapper's config."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def _subclasses(cls: type[KerasLayer]) -> list[type[KerasLayer]]:
    found: list[type[KerasLayer]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found
