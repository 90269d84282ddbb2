"""What every Keras layer of the facade shares: :class:`KerasLayer` (its settings, the
funcnn layer they build, its config and its call in the functional API),
:class:`KerasTensor` and ``Input`` (the functional API's values), and the check of the
keywords every layer takes."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.core_layers import DropMask
from funcnn.keras.names import get_activation
from funcnn.layers.base import Layer, as_shape
from funcnn.layers.masking import is_masked_shape


def _shape(input_shape: Any, input_dim: Any = None) -> tuple[int, ...] | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_dim is not None:
        return as_shape((check.positive_int("input_dim", input_dim),))
    return None if input_shape is None else as_shape(tuple(input_shape))


class KerasLayer:
    """A Keras layer: its settings, and the funcnn layer they build (:meth:`core`)."""

    # How the layer meets a masked sequence, the pair (values, mask) that Embedding(
    # mask_zero=True) and Masking start: "per_step" runs the core on the values and passes
    # the mask on (Keras' supports_masking: Dense, Activation, Dropout...), "takes" hands
    # the core the pair (the recurrent layers), "drops" hands it the values alone (Keras
    # drops the mask there, with a warning).
    masking: ClassVar[str] = "drops"

    def __init__(
        self,
        *,
        name: str | None = None,
        input_shape: Any = None,
        input_dim: Any = None,
        trainable: bool = True,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        self.name = name
        self.declared_input_shape = _shape(input_shape, input_dim)
        self.trainable = trainable

    @property
    def trainable(self) -> bool:
        """False freezes the layer, as in Keras: ``fit`` leaves its weights as they are and
        runs a BatchNormalization in inference mode (see :mod:`funcnn.keras.freezing`)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = check.boolean("trainable", value)

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
        if len(items) > 1:
            core = self.core_for_several(shapes)
            return KerasTensor(core.output_shape(shapes), self, tuple(items))
        core = self.core_for(is_masked_shape(shapes[0]))
        return KerasTensor(core.output_shape(shapes[0]), self, tuple(items))

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

    def __repr__(self) -> str:
        return f"<KerasTensor shape={(None, *self.shape)}>"

    def __iter__(self) -> Any:
        if self.layer is None:
            raise TypeError(f"{self!r} is one tensor, an Input's: it has no parts to take apart")
        return iter(self.layer.unpack(self))


def Input(shape: Any, name: str | None = None, **unused: Any) -> KerasTensor:
    """``keras.Input(shape=(784,))``: one example's shape, without the batch axis."""
    for key in unused:
        if key not in ("dtype", "batch_size", "sparse"):
            raise TypeError(f"Input got an unexpected keyword {key!r}")
    return KerasTensor(
        as_shape(tuple(shape) if not isinstance(shape, int) else (shape,)), name=name
    )


_COMMON = ("name", "input_shape", "trainable")


def _common(kwargs: dict[str, Any], who: str, dim: bool = False) -> dict[str, Any]:
    """The keywords every Keras layer takes; a clear error for one funcnn does not know."""
    known = _COMMON + (("input_dim",) if dim else ())
    if kwargs.get("dtype") not in (None, "float32"):
        raise ValueError(f"{who}(dtype={kwargs['dtype']!r}): the Keras facade computes in float32")
    unknown = [k for k in kwargs if k not in known and k != "dtype"]
    if unknown:
        raise TypeError(
            f"{who} got keyword(s) {', '.join(map(repr, unknown))} that funcnn's Keras facade "
            f"does not support"
        )
    return {k: v for k, v in kwargs.items() if k in known}


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
