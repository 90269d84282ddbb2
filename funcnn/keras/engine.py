"""Keras' ``Model``: compile, fit, evaluate, predict, summary, weights and files, over the
functional core. A functional model is ``Model(inputs, outputs)`` of tensors from
``Input`` and layer calls; :class:`~funcnn.keras.sequential.Sequential` is a stack.

Underneath it is a funcnn layer (``model.model``: ``serial`` of each Keras layer's core
layer, or a ``Graph``), params, and ``fit``: ``model.params``, ``model.state`` and
``model.opt_state`` are the core values, never hidden copies. What ``compile`` is given
is resolved in :mod:`.compiling`, weights in :mod:`.weights`, configs in :mod:`.config`;
:func:`.files.restore` builds a model back from a file or a config.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import io, losses, optim, train, tree
from funcnn import layers as L
from funcnn import metrics as metrics_lib
from funcnn import validate as check
from funcnn.callbacks import ModelCheckpoint
from funcnn.keras import callbacks as keras_callbacks
from funcnn.keras import (
    compiling,
    config,
    freezing,
    inference,
    masks,
    regularizers,
    summary,
    weights,
)
from funcnn.keras import data as keras_data
from funcnn.keras import layers as K
from funcnn.keras import metrics as keras_metrics
from funcnn.keras.base import PROBES, at_length, has_none
from funcnn.keras.seeding import default_seed
from funcnn.keras.utils import class_labels
from funcnn.layers.base import Layer, as_shape, is_shape_tuple
from funcnn.random import RngLike, as_generator


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower().replace("2_d", "2d")


class Model(K.KerasLayer):
    """Keras' ``Model``: ``Model(inputs=inputs, outputs=outputs)`` from the functional API.

    ``seed`` (an int; by default 0, or what ``keras.utils.set_random_seed`` set) fixes the
    initialization, the shuffles and dropout: the same script gives the same bits on any
    machine.

    A model is a layer too, as in Keras: ``Sequential([base_model, Dense(10)])`` and
    ``y = base_model(x)`` in the functional API put it in another model as one layer (one
    row of the summary). Its weights are shared, not copied: the outer model starts from
    the inner one's weights when the inner one is built, and every new value of the outer
    model's params or state (``fit``, ``set_weights``, ``load_weights``) is the inner
    model's too, so training the outer model moves ``base_model.get_weights()``.
    """

    def __init__(
        self,
        inputs: Any = None,
        outputs: Any = None,
        *,
        name: str | None = None,
        seed: RngLike | None = None,
    ) -> None:
        self.name = name or _snake(type(self).__name__)
        self._specs: list[K.KerasLayer] = []
        self._wiring: config.Wiring | None = None
        self.input_shape: Any = None
        if callable(getattr(self, "call", None)):
            raise TypeError(
                f"{type(self).__name__} defines call(): subclassed Keras models are not "
                "supported; build it with keras.Input and layer calls, or write a funcnn layer "
                "(init, output_shape, forward_with_state, backward)"
            )
        if seed is None:
            seed = default_seed()
        if not isinstance(seed, np.random.Generator):
            seed = check.non_negative_int("seed", seed)
        self.seed = seed
        self._fit_rng = (
            None if isinstance(seed, np.random.Generator) else (np.random.default_rng([seed, 1]))
        )
        self._params: Any = None
        self._state: Any = None
        # The places of the layers (models) called with training=False in this model
        self._inference_calls: frozenset[int] = frozenset()
        self.opt_state: Any = None
        self.history: train.History | None = None
        self.loss: losses.Loss | None = None
        self.optimizer: Any = None  # a keras.optimizers object, compiled into this model
        self.metrics: list[metrics_lib.Metric] = []
        self.penalty: losses.Penalty | None = None
        self._compile_configs: tuple[Any, list[Any]] | None = None  # the loss's, the metrics'
        self._sparse = False
        self.stop_training = False
        if inputs is not None or outputs is not None:
            self._connect(inputs, outputs)

    # -- structure

    def _connect(self, inputs: Any, outputs: Any) -> None:
        """The graph from ``inputs`` to ``outputs`` (tensors of Input and layer calls)."""
        ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        for t in ins + outs:
            if not isinstance(t, K.KerasTensor):
                raise TypeError(
                    "Model(inputs, outputs) takes the tensors of keras.Input(shape=...) and "
                    f"of layer calls, got {type(t).__name__}"
                )
        if any(t.layer is not None for t in ins):
            raise ValueError("Model's inputs must be the tensors that keras.Input returned")
        ids: dict[int, int] = {id(t): i for i, t in enumerate(ins)}
        order: list[K.KerasTensor] = []

        def visit(t: K.KerasTensor) -> None:
            if id(t) in ids or any(t is o for o in order):
                return
            if t.layer is None:
                raise ValueError(f"{t!r} is an Input that is not among the Model's inputs")
            for p in t.parents:
                visit(p)
            order.append(t)

        for t in outs:
            visit(t)
        specs = [id(t.layer) for t in order]
        if len(set(specs)) != len(specs):
            twice = next(t.layer for t in order if specs.count(id(t.layer)) > 1)
            raise ValueError(
                f"{twice!r} is called on two tensors: a layer shared between calls (one set of "
                "weights used twice) is not supported; create one layer per call"
            )
        parents = []
        for t in order:
            ids[id(t)] = len(ids)
            parents.append(tuple(ids[id(p)] for p in t.parents))
        self._specs = []
        for t in order:
            assert t.layer is not None
            self._add(t.layer)
        self._inference_calls = frozenset(i for i, t in enumerate(order) if t.training is False)
        self._wiring = (tuple(parents), len(ins), tuple(ids[id(t)] for t in outs))
        shapes = tuple(t.shape for t in ins)
        self.input_shape = shapes[0] if len(shapes) == 1 else shapes

    def _add(self, spec: K.KerasLayer) -> None:
        """Append a layer, named as Keras names it when it has no name: dense, dense_1,
        conv2d, ..."""
        taken = {s.name for s in self._specs}
        if spec.name is None:
            base = _snake(type(spec).__name__)
            name, n = base, 0
            while name in taken:
                n += 1
                name = f"{base}_{n}"
            spec.name = name
        elif spec.name in taken:
            raise ValueError(f"the model has a layer named {spec.name!r} already")
        self._specs.append(spec)
        spec._attach(self)  # layer.get_weights() reads this model's weights

    # -- the model's values, shared with the models it holds as layers

    def _nested(self) -> list[int]:
        """The places of the layers that are models."""
        return [i for i, spec in enumerate(self._specs) if isinstance(spec, Model)]

    def _shared(self, own: Any, what: str) -> Any:
        """``own`` (params or state, one entry per layer) with each nested model's entry
        read from that model, which holds it."""
        nested = self._nested()
        if own is None or not nested:
            return own
        entries = list(own)
        for i in nested:
            inner = getattr(self._specs[i], what)
            if inner is not None:
                entries[i] = inner
        return tuple(entries)

    def _share(self, value: Any, what: str) -> None:
        """Keep ``value`` (params or state) and hand each nested model its entry."""
        setattr(self, "_" + what, value)
        if value is None:
            return
        for i in self._nested():
            setattr(self._specs[i], what, value[i])

    @property
    def params(self) -> Any:
        """The core params: one entry per layer (a nested model's entry is its params)."""
        return self._shared(self._params, "params")

    @params.setter
    def params(self, value: Any) -> None:
        self._share(value, "params")

    @property
    def state(self) -> Any:
        """The core state: one entry per layer (a nested model's entry is its state)."""
        return self._shared(self._state, "state")

    @state.setter
    def state(self, value: Any) -> None:
        self._share(value, "state")

    def _adopt_nested(self, params: Any, state: Any) -> tuple[Any, Any]:
        """Fresh ``(params, state)`` with each built nested model's own values in its
        place: a pretrained base model keeps its weights. A ValueError where they do not
        fit the input the model gets here."""
        if not self._nested():
            return params, state
        params, state = list(params), list(state)
        for i in self._nested():
            inner = self._specs[i]
            assert isinstance(inner, Model)
            if inner.params is None:
                continue
            diff = tree.structure_difference(params[i], inner.params)
            if diff is None and inner.state is not None:
                diff = tree.structure_difference(state[i], inner.state)
            if diff is not None:
                raise ValueError(
                    f"the nested model {inner.name!r} was built for the input shape "
                    f"{inner.input_shape}; its weights do not fit the input it gets here: {diff}"
                )
            params[i] = inner.params
            state[i] = inner.state if inner.state is not None else state[i]
        return tuple(params), tuple(state)

    # -- a model as a layer of another (Keras' Model is a Layer)

    @property
    def declared_input_shape(self) -> Any:
        """As a layer: the input shape it declares (its own)."""
        return self.input_shape

    @declared_input_shape.setter
    def declared_input_shape(self, value: Any) -> None:
        self.input_shape = value

    def core(self) -> Layer:
        """As a layer: the funcnn model (:attr:`model`)."""
        return self.model

    def core_for(self, masked: bool) -> Layer:
        if masked:
            raise ValueError(
                f"the model {self.name!r} as a layer takes plain tensors, not a masked "
                "sequence (from Embedding(mask_zero=True) or Masking): put those layers "
                "inside it, or pass the sequence through a recurrent layer first"
            )
        return self.core()

    def _trainable_flags(self) -> list[Any]:
        """Each layer's ``trainable``; for a nested model, the list of its layers' flags."""
        return [
            spec._trainable_flags() if isinstance(spec, Model) else spec.trainable
            for spec in self._specs
        ]

    def _training_cores(self, cores: list[Layer]) -> list[Layer]:
        """``cores`` as training runs them: a frozen BatchNormalization in inference mode
        (as in Keras), in nested models too, and a model called with ``training=False``
        in inference mode throughout."""
        found: list[Layer] = []
        for i, (spec, core) in enumerate(zip(self._specs, cores)):
            if isinstance(spec, K.BatchNormalization) and not spec.trainable:
                core = freezing.InferenceMode(core)
            elif isinstance(spec, Model):
                core = (
                    freezing.InferenceMode(core)
                    if i in self._inference_calls
                    else spec._assemble(spec._training_cores(spec._cores()))
                )
            found.append(core)
        return found

    def _layer_values(self, params: Any, state: Any) -> list[tuple[Any, Any]]:
        """``(params, state)`` of each layer, a nested model's layers in its place: the
        layers in Keras' weight order."""
        states = state if state is not None else (None,) * len(params)
        found: list[tuple[Any, Any]] = []
        for spec, p, s in zip(self._specs, params, states):
            found += spec._layer_values(p, s) if isinstance(spec, Model) else [(p, s)]
        return found

    def _nest_values(self, values: Any) -> tuple[Any, Any]:
        """The inverse of :meth:`_layer_values`: ``(params, state)`` from an iterator of
        each layer's pair."""
        params, states = [], []
        for spec in self._specs:
            p, s = spec._nest_values(values) if isinstance(spec, Model) else next(values)
            params.append(p)
            states.append(s)
        return tuple(params), tuple(states)

    @property
    def trainable(self) -> bool:
        """Whether any layer trains; setting it sets every layer's ``trainable`` (Keras'
        ``model.trainable = False`` freezes the whole model, a base model in transfer
        learning)."""
        return any(spec.trainable for spec in self._specs) if self._specs else True

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = check.boolean("trainable", value)
        for spec in self._specs:
            spec.trainable = value

    @property
    def layers(self) -> list[K.KerasLayer]:
        """The Keras layers, in order (an activation given to a layer is part of it)."""
        return list(self._specs)

    def get_layer(self, name: str | None = None, index: int | None = None) -> K.KerasLayer:
        if index is not None:
            return self._specs[index]
        for spec in self._specs:
            if spec.name == name:
                return spec
        raise ValueError(f"no layer named {name!r}; the layers are {[s.name for s in self._specs]}")

    def _cores(self) -> list[Layer]:
        """Each layer's core, for the input it gets (a masked sequence or not)."""
        return masks.cores(self._specs, self._wiring, self._build_shape)

    def _assemble(self, cores: list[Layer]) -> Layer:
        if self._wiring is None:
            return L.serial(*cores)
        parents, inputs, outputs = self._wiring
        return L.Graph(tuple(cores), parents, inputs=inputs, outputs=outputs)

    @property
    def model(self) -> Layer:
        """The functional model: ``serial`` of each layer's core, or a ``Graph``."""
        return self._assemble(self._cores())

    def _init_rng(self) -> Any:
        return as_generator(self.seed)  # a fresh one each build: summary() changes nothing

    @property
    def _build_shape(self) -> Any:
        """:attr:`input_shape` with each ``None`` length (``keras.Input(shape=(None, ...))``)
        at the first of :data:`funcnn.keras.base.PROBES`: the shape the core is built for
        and asked about (no weight depends on such a length; :meth:`build` checks it)."""
        return None if self.input_shape is None else at_length(self.input_shape, PROBES[0])

    def build(self, input_shape: Any = None) -> None:
        """Create params (and state) for one example's ``input_shape`` (without it: the
        shape the model declares, where a length may be ``None``)."""
        if input_shape is not None:
            self.input_shape = (
                tuple(as_shape(tuple(s)) for s in input_shape)
                if is_shape_tuple(input_shape)
                else as_shape(tuple(input_shape))
            )
        if self.input_shape is None:
            raise ValueError(
                "the input shape is unknown: give the first layer input_shape=... (Dense: "
                "input_dim=...), start with keras.Input(shape=...), or call build(input_shape) "
                "or fit(x, y) first"
            )
        if not self._specs:
            raise ValueError("the model has no layers")
        core = self.model
        params = core.init(self._init_rng(), self._build_shape)
        state = core.init_state(self._build_shape)
        if has_none(self.input_shape):
            self._check_any_length(core, params)
        self.params, self.state = self._adopt_nested(params, state)
        self.opt_state = None

    def _check_any_length(self, core: Layer, params: Any) -> None:
        """A ValueError where a weight's shape depends on a ``None`` length of the input
        (``Input(shape=(None,))`` then Flatten and Dense): such a model has no one set
        of weights for every length."""
        other = core.init(self._init_rng(), at_length(self.input_shape, PROBES[1]))
        for spec, mine, theirs in zip(self._specs, params, other):
            diff = tree.structure_difference(mine, theirs)
            if diff is not None:
                raise ValueError(
                    f"layer {spec.name!r} has weights whose shape depends on the length of "
                    f"the input axis left None in input shape {self.input_shape} ({diff}); "
                    "give keras.Input that length (pad the sequences to it), or reduce the "
                    "axis first (a recurrent layer, GlobalAveragePooling1D)"
                )

    @property
    def built(self) -> bool:
        return self.params is not None

    def _require_built(self) -> None:
        if self.params is None:
            if self.input_shape is not None and self._specs:
                self.build()
                return
            raise ValueError("the model has no params yet: call fit(...) or build(input_shape)")

    # -- compiling

    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Sequence[Any] | None = None,
        *,
        loss_weights: Any = None,
        penalty: losses.Penalty | None = None,
        **unused: Any,
    ) -> None:
        """Keras' ``compile(optimizer, loss, metrics)``: names, Keras objects or funcnn ones.

        ``penalty``: an L1/L2 penalty of the params (``funcnn.losses.l2_penalty(1e-4)``).
        """
        for key in unused:
            if key not in ("run_eagerly", "jit_compile", "steps_per_execution"):
                raise TypeError(f"compile() got an unexpected keyword {key!r}")
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        metrics = (
            [] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        )
        self.loss, self._sparse, loss_config = compiling.resolve_loss(loss, loss_weights)
        self.optimizer = compiling.resolve_optimizer(optimizer, self)
        resolved = [keras_metrics.resolve(m, logits=self.loss.takes_logits) for m in metrics]
        self.metrics = compiling.unique_names([m for m, _ in resolved])
        metric_configs = [c for _, c in resolved]
        self.penalty = penalty
        self.opt_state = None
        self._compile_configs = (loss_config, metric_configs)

    @property
    def compile_config(self) -> dict[str, Any] | None:
        """``compile``'s settings as a file keeps them (the optimizer's as it is now: a
        learning rate set since counts), or None where one has no config."""
        if self._compile_configs is None or self.optimizer is None:
            return None
        loss_config, metric_configs = self._compile_configs
        optimizer_config = compiling.optimizer_config(self.optimizer)
        if None in (loss_config, optimizer_config, *metric_configs):
            return None
        return {"loss": loss_config, "optimizer": optimizer_config, "metrics": metric_configs}

    def _require_compiled(self) -> tuple[losses.Loss, optim.GradientTransformation]:
        if self.loss is None or self.optimizer is None:
            raise ValueError("call compile(optimizer=..., loss=...) before fit or evaluate")
        return self.loss, self.optimizer.build()

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *(m.name for m in self.metrics)]

    def _scoring(
        self, loss: losses.Loss, *, training: bool = False
    ) -> tuple[Layer, losses.Loss, list[metrics_lib.Metric]]:
        """(model, loss, metrics) that training and evaluation score with: an output
        Softmax (Sigmoid) with categorical (binary) cross-entropy becomes Identity and the
        fused, stable loss on logits (the same params tree); metrics still see
        probabilities. One definition, so fit's val_loss equals evaluate's loss. With
        ``training``, a frozen BatchNormalization runs in inference mode (as in Keras)."""
        cores = self._cores()
        if training:
            cores = self._training_cores(cores)
        last = self._output_index()
        fused = None if last is None else compiling.fuse(cores[last], loss, self.metrics)
        metrics = self.metrics
        if last is not None and fused is not None:
            cores[last], loss, metrics = fused
        model = self._assemble(cores)
        if masks.is_masked_output(model, self._build_shape):  # Keras' loss over real steps
            loss, metrics = masks.scoring(loss, metrics)
        return model, loss, metrics

    def _output_index(self) -> int | None:
        """The layer whose output is the model's single output."""
        if not self._specs:
            return None
        if self._wiring is None:
            return len(self._specs) - 1
        parents, inputs, outputs = self._wiring
        if len(outputs) != 1 or outputs[0] < inputs:
            return None
        node = outputs[0] - inputs
        used = sum(node + inputs in p for p in parents)  # a fused output must feed nothing
        return node if used == 0 else None

    # -- data

    def _check_examples(self, x: Any, name: str) -> None:
        """``x`` is a batch of examples of the declared input shape."""
        if self.input_shape is None or is_shape_tuple(self.input_shape):
            return
        a = np.asarray(x) if not isinstance(x, (tuple, list)) else None
        if a is None or (
            a.ndim == 1 + len(self.input_shape)
            and all(d is None or d == n for d, n in zip(self.input_shape, a.shape[1:]))
        ):
            return
        if tuple(a.shape) == self.input_shape:
            raise ValueError(
                f"input_shape {self.input_shape} includes the batch axis: it is one "
                f"example's shape, here {tuple(a.shape[1:])}"
            )
        raise ValueError(
            f"{name} holds examples of shape {tuple(a.shape[1:])}, but the model was built "
            f"for input_shape {self.input_shape}"
        )

    def _inputs(self, x: Any) -> Any:
        if isinstance(x, (list, tuple)) and self._wiring is not None and self._wiring[1] > 1:
            return tuple(np.asarray(a) for a in x)
        x = np.asarray(x)
        if x.ndim == 1 and self.input_shape == (1,):  # one number an example, as Keras
            return x[:, None]
        return x

    def _targets(self, y: Any) -> Any:
        if isinstance(y, (list, tuple)) and isinstance(self.loss, losses.PerOutput):
            return tuple(np.asarray(a) for a in y)
        return class_labels(y) if self._sparse else np.asarray(y)

    @staticmethod
    def _weights(
        y: Any, sample_weight: Any, class_weight: dict[Any, float] | None
    ) -> np.ndarray | None:
        """Keras' sample_weight times class_weight[label], or None for neither."""
        if sample_weight is None and class_weight is None:
            return None
        n = len(y[0]) if isinstance(y, tuple) else len(y)
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(
                    f"class_weight must be a dict {{class: weight}}, got {class_weight!r}"
                )
            if isinstance(y, tuple):
                raise ValueError("class_weight goes with one output; give sample_weight instead")
            labels = np.asarray(y)
            labels = (
                labels.argmax(axis=1)
                if labels.ndim == 2 and labels.shape[1] > 1
                else labels.reshape(n)
            )
            w = w * np.array([float(class_weight.get(int(c), 1.0)) for c in labels])
        return w

    # -- training

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[Any, float] | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        seed: RngLike | None = None,
    ) -> train.History:
        """Keras' ``fit``: trains on, from the current params and optimizer state.

        ``x`` is arrays (with ``y``), or a generator or ``keras.utils.PyDataset`` of
        batches ``(x, y)`` or ``(x, y, sample_weight)`` (see :mod:`.data`), as is
        ``validation_data``. ``seed`` (int or Generator) drives shuffles and dropout for
        this call; by default a generator seeded by the model's seed, so successive calls
        differ but the same script repeats.
        """
        loss, optimizer = self._require_compiled()
        if x is None:
            raise ValueError("fit needs x: arrays (with y), or a generator or PyDataset")
        source: keras_data.Batches | None = None
        steps = steps_per_epoch is not None or validation_steps is not None
        if keras_data.is_batches(x) or keras_data.is_batches(validation_data) or steps:
            # batches in their own sizes, or steps: Keras' epochs of batches
            source, prepare, validation_data = keras_data.training_batches(
                self, x, y, sample_weight, class_weight, batch_size=batch_size,
                steps_per_epoch=steps_per_epoch, shuffle=shuffle,
                validation_split=validation_split, validation_data=validation_data,
                initial_epoch=initial_epoch,
            )  # fmt: skip
        elif y is None:
            raise ValueError("fit needs y with array x (or x a generator or PyDataset)")
        else:
            x, y = self._inputs(x), self._targets(y)
            self._check_examples(x, "x")
        if self.params is None:
            if self.input_shape is not None:  # the shape declared (a None length stays so)
                self.build()
            else:
                self.build(tuple(a.shape[1:] for a in x) if isinstance(x, tuple) else x.shape[1:])
        train_model, train_loss, metrics = self._scoring(loss, training=True)
        trainable = self._trainable_flags()
        if not freezing.all_trainable(trainable):  # frozen: no updates (read at each fit)
            mask = freezing.trainable_mask(self.params, trainable)
            optimizer = freezing.frozen_updates(optimizer, mask)
        validation = None
        if source is not None and validation_data is not None:
            validation = keras_data.Validation(
                self, validation_data, validation_steps, validation_batch_size or batch_size
            )
        elif source is None:
            weights = self._weights(y, sample_weight, class_weight)
            if weights is not None:
                train_loss, y = losses.weighted(train_loss), (y, weights)
            if validation_data is not None:
                validation_data = self._validation(validation_data, weights is not None)
        callbacks = self._callbacks(callbacks)
        # Checkpoints save the model as built (with its output activation) and its compile
        # settings, not the training model: load_model gives back what was built.
        checkpoints = [
            cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.model is None
        ]
        for cb in checkpoints:
            cb.model, cb.metadata = self.model, self._metadata()
        rng = (
            seed
            if seed is not None
            else (self._fit_rng if self._fit_rng is not None else self.seed)
        )
        # The layers' regularizers (Keras' weight penalties): in the loss trained, with
        # compile's penalty, and in val_loss
        penalty = regularizers.penalty(self._specs, self.params, self.penalty)
        validation_penalty = regularizers.penalty(self._specs, self.params)
        try:
            if source is not None:
                result = keras_data.fit(
                    source, prepare, train_model, self.params, train_loss, optimizer,
                    epochs=epochs, rng=rng, validation=validation, metrics=metrics,
                    callbacks=callbacks, verbose=1 if verbose == "auto" else verbose,
                    penalty=penalty, state=self.state, opt_state=self.opt_state,
                    initial_epoch=initial_epoch, input_shape=self._build_shape,
                    validation_penalty=validation_penalty,
                )  # fmt: skip
            else:
                result = train.fit(
                    train_model, self.params, train_loss, optimizer, x, y,
                    epochs=epochs, batch_size=32 if batch_size is None else batch_size,
                    shuffle=shuffle, rng=rng, validation_split=validation_split,
                    validation_data=validation_data, metrics=metrics, callbacks=callbacks,
                    verbose=1 if verbose == "auto" else verbose, penalty=penalty,
                    state=self.state, opt_state=self.opt_state, initial_epoch=initial_epoch,
                    validation_penalty=validation_penalty,
                )  # fmt: skip
        finally:
            for cb in checkpoints:
                cb.model = cb.metadata = None
        self.params, self.state = result.params, result.state
        self.opt_state = result.opt_state
        self.history = result.history
        return result.history

    def _validation(self, data: Any, weighted: bool) -> tuple[Any, Any]:
        """``(x_val, y_val)``, with the validation weights (ones by default) when the
        training loss is weighted."""
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, weights)")
        xv, yv = self._inputs(data[0]), self._targets(data[1])
        if not weighted:
            if len(data) == 3:
                raise ValueError("validation sample weights go with sample_weight or class_weight")
            return xv, yv
        n = len(yv[0]) if isinstance(yv, tuple) else len(yv)
        return xv, (yv, np.ones(n) if len(data) == 2 else np.asarray(data[2], dtype=np.float64))

    def _callbacks(self, callbacks: Any) -> list[train.Callback]:
        given = (
            []
            if callbacks is None
            else ([callbacks] if not isinstance(callbacks, (list, tuple)) else list(callbacks))
        )
        return [
            keras_callbacks.Adapter(cb, self) if isinstance(cb, keras_callbacks.Callback) else cb
            for cb in given
        ]

    def _training_values(self, ctx: train.TrainingContext) -> None:
        """What a Keras callback sees of the model during fit (its get_weights, save...)."""
        self.params, self.state, self.opt_state = ctx.params, ctx.state, ctx.opt_state

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        steps: Any = None,
        callbacks: Any = None,
        **unused: Any,
    ) -> Any:
        """Inference-mode outputs (probabilities for a Softmax/Sigmoid output); Keras
        callbacks' ``on_predict_*`` hooks run around each batch (32 rows by default). ``x``
        may be a generator or PyDataset of batches (``x``, or ``(x, y)``: its ``x``), and
        ``steps`` stops after that many batches."""
        batches = keras_data.is_batches(x) or steps is not None
        if batches:
            source, inputs = keras_data.predict_batches(self, x, batch_size=batch_size, steps=steps)
        else:
            self._require_built()
            x = self._inputs(x)
            self._check_examples(x, "x")
        model = self.model
        masked = masks.is_masked_output(model, self._build_shape)
        hooks = inference.keras_callbacks(callbacks, self)
        if batches:
            return inference.predict_batches(
                hooks, model, self.params, self.state, keras_data.each(source, inputs),
                masks.values if masked else (lambda pred: pred),
            )  # fmt: skip
        if hooks:
            return inference.predict(
                hooks, model, self.params, self.state, x, batch_size or 32,
                masks.values if masked else (lambda pred: pred),
            )  # fmt: skip
        pred = train.predict(model, self.params, x, batch_size=batch_size or 256, state=self.state)
        return masks.values(pred) if masked else pred

    def __call__(self, x: Any, training: bool | None = None) -> Any:
        """``model(x)``: the outputs for a batch of arrays (inference mode only).

        On the tensors of the functional API, ``y = base_model(x)`` puts this model in the
        model being built as one layer, its weights shared (see :class:`Model`);
        ``training=False`` runs it in inference mode always, as Keras' transfer-learning
        recipe asks (its BatchNormalization normalizes by the moving statistics, its
        Dropout drops nothing, even while the outer model trains)."""
        items = list(x) if isinstance(x, (list, tuple)) else [x]
        if items and all(isinstance(t, K.KerasTensor) for t in items):
            if training is not None:
                check.boolean("training", training)
            tensor = super().__call__(x)  # the flag is the call's, not the model's
            return K.KerasTensor(tensor.shape, self, tensor.parents, training=training)
        if training:
            raise ValueError("model(x, training=True) is not supported: use fit")
        return self.predict(x)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        sample_weight: Any = None,
        return_dict: bool = False,
        steps: Any = None,
        callbacks: Any = None,
        **unused: Any,
    ) -> Any:
        """The loss and each metric on ``(x, y)``: ``[loss, *metrics]`` (a float without
        metrics), or a dict with ``return_dict=True``. Keras callbacks' ``on_test_*``
        hooks run around each batch (32 rows by default), with the running scores. ``x``
        may be a generator or PyDataset of batches ``(x, y)`` or ``(x, y, sample_weight)``,
        and ``steps`` stops after that many batches."""
        loss, _ = self._require_compiled()
        batches = keras_data.is_batches(x) or steps is not None
        if batches:
            source, labelled = keras_data.evaluate_batches(
                self, x, y, sample_weight, batch_size=batch_size, steps=steps
            )
        else:
            self._require_built()
            x, y = self._inputs(x), self._targets(y)
        model, loss, metrics = self._scoring(loss)  # the loss fit's val_loss reports
        if sample_weight is not None and not batches:
            loss, y = losses.weighted(loss), (y, self._weights(y, sample_weight, None))
        hooks = inference.keras_callbacks(callbacks, self)
        if batches:
            scores = inference.evaluate_batches(
                hooks, model, self.params, self.state, loss, metrics,
                keras_data.each(source, labelled),
            )  # fmt: skip
        elif hooks:
            scores = inference.evaluate(
                hooks, model, self.params, self.state, loss, metrics, x, y, batch_size or 32
            )
        else:
            scores = train.evaluate(
                model, self.params, loss, x, y,
                metrics=metrics, batch_size=batch_size or 256, state=self.state,
            )  # fmt: skip
        regularized = regularizers.penalty(self._specs, self.params)
        if regularized is not None:  # Keras' loss includes the layers' regularizers
            scores["loss"] += regularized(self.params)
        if verbose:  # Keras prints the scores unless verbose=0
            print(" - ".join(f"{k}: {v:.4f}" for k, v in scores.items()))
        if return_dict:
            return scores
        values = list(scores.values())
        return values[0] if len(values) == 1 else values

    # -- inspection

    def summary(self, print_fn: Callable[[str], Any] | None = print, **unused: Any) -> str:
        """A table of layers, output shapes and parameter counts; printed and returned."""
        self._require_built()
        text = summary.table(self)
        if print_fn is not None:
            print_fn(text)
        return text

    def count_params(self) -> int:
        self._require_built()
        return weights.count_params(self.params)

    def get_weights(self) -> list[np.ndarray]:
        """Every weight as a list of arrays, in Keras' order (see :mod:`.weights`)."""
        self._require_built()
        if self._nested():  # a nested model's weights in its place, layer by layer
            values = self._layer_values(self.params, self.state)
            return weights.get_weights(tuple(p for p, _ in values), tuple(s for _, s in values))
        return weights.get_weights(self.params, self.state)

    def set_weights(self, arrays: Sequence[Any]) -> None:
        """The inverse of :meth:`get_weights`: arrays of the same shapes, in its order."""
        self._require_built()
        if self._nested():
            values = self._layer_values(self.params, self.state)
            params, state = weights.set_weights(
                tuple(p for p, _ in values), tuple(s for _, s in values), arrays
            )
            self.params, self.state = self._nest_values(iter(zip(params, state)))
            return
        self.params, self.state = weights.set_weights(self.params, self.state, arrays)

    def get_config(self) -> dict[str, Any]:
        arch = self._architecture()
        if arch is None:
            raise TypeError("a model with wrapped funcnn layers has no Keras config")
        return arch

    def to_json(self, **unused: Any) -> str:
        """The architecture as JSON (no weights): ``model_from_json`` builds it again."""
        return json.dumps(self.get_config())

    def _architecture(self) -> dict[str, Any] | None:
        name = self.name or _snake(type(self).__name__)  # a layer's name may be None; never here
        arch = config.architecture(
            type(self).__name__, name, self._specs, self._wiring, self.input_shape
        )
        if arch is not None:
            for i in self._inference_calls:  # a model called with training=False
                arch["layers"][i]["config"]["training"] = False
        return arch

    # -- files

    def _metadata(self) -> dict[str, Any]:
        return config.metadata(self.compile_config, self._architecture())

    def save(self, path: str | os.PathLike[str], **unused: Any) -> Path:
        """Save layers, params, state, optimizer state, history and compile settings,
        atomically (``.json``: one readable file; any other suffix, ``.keras`` or
        ``.h5`` included: funcnn's npz format); ``load_model`` gives the model back."""
        self._require_built()
        return io.save(
            path, self.model, self.params, state=self.state, opt_state=self.opt_state,
            history=self.history, input_shape=self._build_shape, metadata=self._metadata(),
        )  # fmt: skip

    def save_weights(self, path: str | os.PathLike[str], **unused: Any) -> Path:
        """Save the params and state only (no optimizer state or history)."""
        self._require_built()
        return io.save(
            path, self.model, self.params, state=self.state, input_shape=self._build_shape,
            metadata=self._metadata(),
        )  # fmt: skip

    def load_weights(self, path: str | os.PathLike[str], **unused: Any) -> None:
        """Params and state from a file that :meth:`save_weights` or :meth:`save` wrote for
        a model of this architecture."""
        checkpoint = io.load(path)
        self._require_built()
        self.params, self.state = weights.from_checkpoint(self.params, self.state, checkpoint, path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self._specs)} layers>"
