"""Keras' sequence layers, in Keras' words: ``Embedding(max_features, 128,
mask_zero=True)``, ``LSTM(64, return_sequences=True)``, ``Bidirectional(GRU(32))``,
``Masking()``, ``TimeDistributed(Dense(10))``; :mod:`funcnn.keras.layers` exports them.

Each builds the core's layer (:mod:`funcnn.layers.embedding`,
:mod:`funcnn.layers.recurrent`) with Keras' defaults and weights in Keras' layout and
order. Masks flow as Keras': ``Embedding(mask_zero=True)`` and ``Masking`` start one, the
recurrent layers take it, ``TimeDistributed`` and ``Dense`` pass it on, and a model whose
output carries one averages its loss over the real steps (see ``KerasLayer.masking``).
``use_bias``, ``dropout`` and ``recurrent_dropout`` (training only, one mask per gate
and sequence, from the model's seed) are the core cells'. Options the core does not have
are refused where they are written, naming what works.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.base import (
    KerasLayer,
    KerasTensor,
    _common,
    keras_layer,
    nested_config,
    symbolic_shape,
)
from funcnn.keras.core_layers import MaskValues, ReverseSteps
from funcnn.keras.names import get_activation, get_initializer
from funcnn.layers.base import Layer, RngArg, as_shape, is_shape_tuple
from funcnn.layers.cells import Cell, GRUCell, LSTMCell, SimpleRNNCell
from funcnn.layers.masking import is_masked_shape
from funcnn.layers.recurrent import MERGE_MODES
from funcnn.random import RngLike
from funcnn.types import Cache, LayerState, Params, Shape


def _none_only(who: str, **options: Any) -> None:
    """Options that the facade takes only at their Keras defaults (None, 0, False)."""
    for key, value in options.items():
        if value not in (None, 0, False):
            raise ValueError(f"{who}({key}={value!r}) is not supported by funcnn's Keras facade")


def _rate(who: str, key: str, value: Any) -> float:
    """A dropout rate in [0, 1) (Keras clips 1 to 1, which drops everything)."""
    rate = check.number(key, value)
    if not 0 <= rate < 1:
        raise ValueError(f"{who}({key}={value!r}): a rate of dropping units, in [0, 1)")
    return rate


class Embedding(KerasLayer):
    """``Embedding(input_dim, output_dim, embeddings_initializer="uniform",
    mask_zero=False)``: ids ``(time,)`` to vectors ``(time, output_dim)``; Keras 2's
    ``input_length=`` declares the input shape ``(input_length,)``. With ``mask_zero`` id 0
    is padding and the output is a masked sequence. ``embeddings_regularizer`` penalizes
    the table (see :mod:`funcnn.keras.regularizers`)."""

    regularizable: ClassVar[dict[str, str]] = {"embeddings_regularizer": "embeddings"}

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        input_length: int | None = None,
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        _none_only(
            "Embedding",
            embeddings_constraint=embeddings_constraint,
            weights=kwargs.pop("weights", None),
        )
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (check.positive_int("input_length", input_length),)
        kwargs["embeddings_regularizer"] = embeddings_regularizer
        super().__init__(**_common(kwargs, "Embedding"))
        self.input_dim = check.positive_int("input_dim", input_dim)
        self.output_dim = check.positive_int("output_dim", output_dim)
        get_initializer(embeddings_initializer)
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = check.boolean("mask_zero", mask_zero)

    def core(self) -> Layer:
        return L.Embedding(
            self.input_dim,
            self.output_dim,
            mask_zero=self.mask_zero,
            embeddings_init=get_initializer(self.embeddings_initializer),
        )


class Masking(KerasLayer):
    """``Masking(mask_value=0.0)``: a step is padding where every feature equals
    ``mask_value``; the output is the masked sequence (padding's values zeros)."""

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Masking"))
        self.mask_value = check.real("mask_value", mask_value)

    def core(self) -> Layer:
        return MaskValues(self.mask_value)


# ---------------------------------------------------------------- states in the functional API


@attrs.frozen(repr=False)
class InitialState(Layer):
    """``layer`` (a recurrent core) given its initial state as separate inputs, as Keras'
    ``layer(x, initial_state=[h, c])`` wires it: ``(x, h, c)`` (``x`` or the masked pair
    ``(x, mask)``) becomes the core's ``(x, (h, c))`` or ``(x, mask, (h, c))``. Params:
    ``layer``'s."""

    layer: Layer
    states: int = attrs.field(validator=check.field(check.positive_int))

    def _inner_shape(self, input_shape: Any) -> Any:
        if not is_shape_tuple(input_shape) or len(input_shape) != 1 + self.states:
            raise ValueError(
                f"{self!r} takes a sequence and {self.states} initial state(s), got the "
                f"shapes {input_shape!r}"
            )
        first, states = input_shape[0], tuple(as_shape(s) for s in input_shape[1:])
        head = tuple(first) if is_masked_shape(first) else (as_shape(first),)
        return (*head, states)

    def output_shape(self, input_shape: Shape) -> Any:
        return self.layer.output_shape(self._inner_shape(input_shape))

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        return self.layer.init(rng, self._inner_shape(input_shape), dtype=dtype)

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        return self.layer.init_state(self._inner_shape(input_shape), dtype=dtype)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if not isinstance(x, (tuple, list)) or len(x) != 1 + self.states:
            raise ValueError(
                f"{self!r} takes the tuple (x, *initial_state) of {1 + self.states} entries"
            )
        masked = isinstance(x[0], (tuple, list))
        head = tuple(x[0]) if masked else (x[0],)
        y, state, cache = self.layer.forward_with_state(
            params, state, (*head, tuple(x[1:])), train=train, rng=rng
        )
        return y, state, (masked, cache)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        masked, inner = cache
        grads, dx = self.layer.backward(params, inner, dy, need_dx=need_dx)
        if dx is None:
            return grads, None
        first = (dx[0], dx[1]) if masked else dx[0]
        return grads, (first, *dx[-1])


@attrs.frozen(repr=False)
class Take(Layer):
    """Entries ``indices`` of a tuple input: one entry, or a tuple of several (a masked
    sequence's pair). Its gradient puts ``dy`` in their places and zeros elsewhere."""

    indices: tuple[int, ...] = attrs.field(
        converter=lambda v: tuple(check.non_negative_int("Take index", i) for i in v)
    )

    def _pick(self, values: Any) -> Any:
        if not isinstance(values, tuple) or max(self.indices) >= len(values):
            raise ValueError(
                f"{self!r} takes entries {self.indices} of a tuple, got {values!r:.80}"
            )
        picked = tuple(values[i] for i in self.indices)
        return picked[0] if len(picked) == 1 else picked

    def output_shape(self, input_shape: Shape) -> Any:
        return self._pick(tuple(input_shape) if is_shape_tuple(input_shape) else input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        values = tuple(x) if isinstance(x, list) else x
        return self._pick(values), state, [(np.shape(a), np.asarray(a).dtype) for a in values]

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        parts = (dy,) if len(self.indices) == 1 else tuple(dy)
        given = dict(zip(self.indices, parts))
        floats = [d if d.kind == "f" else np.dtype(np.float64) for _, d in cache]
        return (), tuple(
            given[i] if i in given else np.zeros(shape, dtype)
            for i, ((shape, _), dtype) in enumerate(zip(cache, floats))
        )


class TakeOutput(KerasLayer):
    """One of the outputs of a layer that returns several: what unpacking its tensor
    gives (``output, h, c = LSTM(8, return_state=True)(x)``). Not a Keras layer: Keras
    returns a list of tensors there; here each is this step of the graph, without weights."""

    masking = "takes"

    def __init__(self, indices: Any, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "TakeOutput"))
        self.indices = [check.non_negative_int("indices", i) for i in indices]
        if not self.indices:
            raise ValueError("TakeOutput takes at least one index")

    def core(self) -> Layer:
        return Take(tuple(self.indices))


class _ReturnsStates:
    """What the recurrent layers and Bidirectional share in the functional API: the
    initial state as inputs (``layer(x, initial_state=[h, c])``), and the outputs with
    ``return_state=True`` taken apart (``output, h, c = layer(x)``)."""

    def states(self) -> int:
        """How many state arrays the layer takes and returns."""
        raise NotImplementedError

    def __call__(self, inputs: Any, initial_state: Any = None, **kwargs: Any) -> KerasTensor:
        for key, value in kwargs.items():  # Keras' mask= and training= are given elsewhere
            if key not in ("mask", "training") or value is not None:
                raise TypeError(
                    f"{type(self).__name__}(...)(x, {key}=...) is not supported in funcnn's "
                    "Keras facade: masks come from Embedding(mask_zero=True) or Masking, "
                    "training from fit and predict"
                )
        call = KerasLayer.__call__
        if initial_state is None:
            return call(cast(KerasLayer, self), inputs)
        states = (
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        )
        if len(states) != self.states():
            raise ValueError(
                f"{type(self).__name__} takes initial_state as a list of {self.states()} "
                f"tensors, got {len(states)}"
            )
        return call(cast(KerasLayer, self), [inputs, *states])

    def core_for_several(self, shapes: Any) -> Layer:
        if len(shapes) != 1 + self.states():
            raise ValueError(
                f"{type(self).__name__} takes a sequence and {self.states()} initial state "
                f"tensor(s) (initial_state=[...]), got {len(shapes)} tensors"
            )
        layer = cast(KerasLayer, self)
        return InitialState(layer.core_for(is_masked_shape(shapes[0])), self.states())

    def unpack(self, tensor: KerasTensor) -> list[KerasTensor]:
        shape = tensor.shape
        n = self.states()
        if not getattr(self, "returns_states", False) or not is_shape_tuple(shape):
            raise TypeError(
                f"{tensor!r} is one tensor: give {type(self).__name__} return_state=True to "
                "take its output and final state apart"
            )
        head = len(shape) - n
        masked_head = head == 2 and is_masked_shape(tuple(shape[:2]))
        if head == 1 or masked_head:
            items = [tuple(range(head))]
        else:  # Bidirectional(merge_mode=None): forward and backward outputs
            items = [(i,) for i in range(head)]
        items += [(i,) for i in range(head, len(shape))]
        return [
            KerasTensor(
                symbolic_shape(Take(ix).output_shape, shape, "return_state"),
                TakeOutput(list(ix)),
                (tensor,),
            )
            for ix in items
        ]


class _Recurrent(_ReturnsStates, KerasLayer):
    """What SimpleRNN, LSTM and GRU share: Keras' keywords (``kernel_regularizer``,
    ``recurrent_regularizer`` and ``bias_regularizer`` included), the RNN they build."""

    masking = "takes"
    cell_class: ClassVar[type[Cell]]
    regularizable: ClassVar[dict[str, str]] = {
        "kernel_regularizer": "kernel",
        "recurrent_regularizer": "recurrent_kernel",
        "bias_regularizer": "bias",
    }

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        who = type(self).__name__
        for key in ("kernel", "recurrent", "bias"):
            _none_only(who, **{f"{key}_constraint": kwargs.pop(f"{key}_constraint", None)})
        kwargs.pop("use_cudnn", None)  # Keras' choice of kernel: one kernel here
        super().__init__(**_common(kwargs, who))
        _none_only(who, stateful=stateful, unroll=unroll)
        self.units = check.positive_int("units", units)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.dropout = _rate(who, "dropout", dropout)
        self.recurrent_dropout = _rate(who, "recurrent_dropout", recurrent_dropout)
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.return_sequences = check.boolean("return_sequences", return_sequences)
        self.return_state = check.boolean("return_state", return_state)
        self.go_backwards = check.boolean("go_backwards", go_backwards)
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            get_initializer(init)

    @property
    def returns_states(self) -> bool:
        return self.return_state

    def states(self) -> int:
        return len(self.cell_class(1).state_shapes())

    def _cell_settings(self) -> dict[str, Any]:
        return {
            "kernel_init": get_initializer(self.kernel_initializer),
            "recurrent_init": get_initializer(self.recurrent_initializer),
            "bias_init": get_initializer(self.bias_initializer),
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }

    def rnn(self, *, reverse: bool) -> L.RNN:
        """The core's RNN of this layer's cell, reading backwards with ``reverse``."""
        cell = self.cell_class(self.units, **self._cell_settings())
        return L.RNN(
            cell,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            reverse=reverse,
        )

    def core(self) -> Layer:
        # The core's reverse=True keeps outputs aligned with the input steps; Keras'
        # go_backwards gives them in reading order.
        rnn = self.rnn(reverse=self.go_backwards)
        return L.serial(rnn, ReverseSteps) if self.go_backwards and self.return_sequences else rnn


class SimpleRNN(_Recurrent):
    """``SimpleRNN(units, activation="tanh", return_sequences=False, return_state=False,
    go_backwards=False, ...)``: ``h' = activation(x W + h U + b)``."""

    cell_class = SimpleRNNCell

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        super().__init__(units, activation, **kwargs)
        act = get_activation(activation)
        if act is not None and not isinstance(act, L.Activation):
            raise ValueError(
                f"SimpleRNN(activation={activation!r}): the cell takes an elementwise "
                "activation (tanh, relu, sigmoid...)"
            )

    def _cell_settings(self) -> dict[str, Any]:
        return {
            **super()._cell_settings(),
            "activation": get_activation(self.activation) or L.Linear,
        }


class _Gated(_Recurrent):
    """LSTM and GRU: the core's cells use tanh and sigmoid, Keras' defaults."""

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        **kwargs: Any,
    ) -> None:
        who = type(self).__name__
        for key, value, fixed in (
            ("activation", activation, "tanh"),
            ("recurrent_activation", recurrent_activation, "sigmoid"),
        ):
            if value != fixed:
                raise ValueError(
                    f"{who}({key}={value!r}) is not supported: the core's {who} cell uses "
                    f"{key}={fixed!r} (Keras' default)"
                )
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = recurrent_activation


class LSTM(_Gated):
    """``LSTM(units, activation="tanh", recurrent_activation="sigmoid",
    unit_forget_bias=True, return_sequences=False, return_state=False, go_backwards=False,
    ...)``. Weights: ``kernel (input, 4 units)``, ``recurrent_kernel (units, 4 units)``,
    ``bias (4 units)``, gates ``i, f, c, o``."""

    cell_class = LSTMCell

    def __init__(
        self, units: int, *args: Any, unit_forget_bias: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(units, *args, **kwargs)
        self.unit_forget_bias = check.boolean("unit_forget_bias", unit_forget_bias)

    def _cell_settings(self) -> dict[str, Any]:
        return {**super()._cell_settings(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_Gated):
    """``GRU(units, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
    ...)``. Weights: ``kernel (input, 3 units)``, ``recurrent_kernel (units, 3 units)``,
    ``bias (2, 3 units)`` (input and recurrent; ``(3 units,)`` with ``reset_after=False``,
    the reset gate applied before the candidate's recurrent product), gates ``z, r, h``."""

    cell_class = GRUCell

    def __init__(self, units: int, *args: Any, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, *args, **kwargs)
        self.reset_after = check.boolean("reset_after", reset_after)

    def _cell_settings(self) -> dict[str, Any]:
        return {**super()._cell_settings(), "reset_after": self.reset_after}


class Bidirectional(_ReturnsStates, KerasLayer):
    """``Bidirectional(layer, merge_mode="concat", backward_layer=None)``: ``layer`` (a
    SimpleRNN, LSTM or GRU) forwards and a copy with its own weights backwards, outputs
    merged by ``merge_mode`` ("concat", "sum", "mul", "ave", or None for the pair).
    Weights: the forward layer's, then the backward layer's."""

    masking = "takes"

    def __init__(
        self,
        layer: Any,
        merge_mode: str | None = "concat",
        weights: Any = None,
        backward_layer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "Bidirectional"))
        _none_only("Bidirectional", weights=weights)
        self.layer = keras_layer(layer, "Bidirectional")
        if not isinstance(self.layer, _Recurrent):
            raise TypeError(
                f"Bidirectional wraps a SimpleRNN, LSTM or GRU, got {type(self.layer).__name__}"
            )
        if self.layer.go_backwards:
            raise ValueError(
                "Bidirectional(layer) with layer.go_backwards=True is not supported: give the "
                "forward layer (go_backwards=False); the backward copy reads backwards"
            )
        self.merge_mode = check.choice("merge_mode", merge_mode, MERGE_MODES)
        self.backward_layer = None
        if backward_layer is not None:
            self.backward_layer = keras_layer(backward_layer, "Bidirectional backward_layer")
            self._check_backward(self.backward_layer)

    def _check_backward(self, layer: KerasLayer) -> None:
        """The core runs one cell configuration both ways: a backward_layer must be the
        forward layer's twin with go_backwards=True (Keras' default backward layer)."""
        mine = {k: v for k, v in self.layer.get_config().items() if k != "name"}
        theirs = {k: v for k, v in layer.get_config().items() if k != "name"}
        if (
            type(layer) is not type(self.layer)
            or theirs.pop("go_backwards", False) is not True
            or {k: v for k, v in mine.items() if k != "go_backwards"} != theirs
        ):
            raise ValueError(
                "Bidirectional's backward_layer must be the forward layer's twin with "
                "go_backwards=True (the default when backward_layer is None): other settings "
                "for the backward direction are not supported"
            )

    @property
    def returns_states(self) -> bool:
        return cast(_Recurrent, self.layer).return_state

    def states(self) -> int:
        return 2 * cast(_Recurrent, self.layer).states()

    def core(self) -> Layer:
        forward = cast(_Recurrent, self.layer)  # the constructor refused anything else
        return L.Bidirectional(forward.rnn(reverse=False), self.merge_mode)

    def weight_regularizers(self) -> dict[str, Any]:
        """The wrapped layer's, for both directions' weights (Keras copies the layer)."""
        return self.layer.weight_regularizers()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["layer"] = nested_config(self.layer)
        if self.backward_layer is not None:
            config["backward_layer"] = nested_config(self.backward_layer)
        return config


class TimeDistributed(KerasLayer):
    """``TimeDistributed(layer)``: ``layer`` on every step of ``(time, ...)``. Layers
    that act on the last axis (Dense, Activation, Dropout, LayerNormalization...) are
    supported; the mask passes on."""

    masking = "per_step"

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "TimeDistributed"))
        self.layer = keras_layer(layer, "TimeDistributed")
        if self.layer.masking != "per_step":
            raise ValueError(
                f"TimeDistributed({type(self.layer).__name__}) is not supported: it runs "
                "layers that act on the last axis (Dense, Activation, Dropout, "
                "LayerNormalization...), which see every step at once"
            )

    def core(self) -> Layer:
        return self.layer.core()

    def weight_regularizers(self) -> dict[str, Any]:
        """The wrapped layer's (its weights are the wrapper's)."""
        return self.layer.weight_regularizers()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": nested_config(self.layer)}
