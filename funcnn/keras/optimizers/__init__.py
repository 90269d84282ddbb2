"""Keras' optimizer objects: ``Adam(learning_rate=1e-3)``, ``SGD(lr=0.01, momentum=0.9)``,
``RMSprop()``..., with Keras' argument names and defaults, built on funcnn's optimizers.

Keras 2's names are accepted where the meaning is plain: ``lr`` for ``learning_rate``,
and ``decay`` (the learning rate at update t is ``lr / (1 + decay * t)``, Keras 2's
time-based decay). ``learning_rate`` may also be a schedule (:mod:`.schedules`, Keras'
``ExponentialDecay``, ``CosineDecay``...; or any function ``step -> rate``), called with
the update count from 0, once per batch. Each object ``build()``-s a funcnn
GradientTransformation; ``get_config()`` gives what rebuilds it, schedule included
(``load_model`` restores a compiled optimizer with it).

Compiled into a model, the object is ``model.optimizer``: ``model.optimizer.learning_rate``
is the rate the next batch trains with (a float, read from the model's optimizer state),
and setting it (``= 0.01``, ``.learning_rate.assign(0.01)``, Keras 2's
``backend.set_value(model.optimizer.lr, 0.01)``), from a callback during ``fit`` too, takes
effect from the next batch. As in Keras, a number cannot be set over a schedule.

Where Keras' formula differs from optax's (RMSprop's epsilon is added outside the
square root in Keras, inside in optax) funcnn keeps optax's; the defaults are Keras'.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from funcnn import optim
from funcnn import validate as check
from funcnn.keras.optimizers import schedules
from funcnn.optim import schedules as core_schedules
from funcnn.types import OptState

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Given",
    "LearningRate",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "get",
    "schedules",
]


class LearningRate(float):
    """An optimizer's learning rate as Keras scripts read it: a float (the rate the next
    update uses) with the methods of Keras' variable: ``assign(value)`` sets it, as
    ``optimizer.learning_rate = value`` does, and ``numpy()`` is the number."""

    optimizer: Optimizer | None

    def __new__(cls, value: float, optimizer: Optimizer | None = None) -> LearningRate:
        self = super().__new__(cls, value)
        self.optimizer = optimizer
        return self

    def assign(self, value: Any) -> None:
        """Set the optimizer's learning rate to ``value`` (from the next update on)."""
        if self.optimizer is None:
            raise TypeError("this learning rate belongs to no optimizer: there is nothing to set")
        self.optimizer.learning_rate = value

    def numpy(self) -> float:
        return float(self)


def _rate_states(state: Any) -> list[optim.ScaleByLearningRateState]:
    """The learning-rate states in an optimizer state (none for None)."""
    if isinstance(state, optim.ScaleByLearningRateState):
        return [state]
    if isinstance(state, (tuple, list)):
        return [s for child in state for s in _rate_states(child)]
    return []


def _with_multiplier(state: OptState, multiplier: float, rate: Any) -> OptState:
    """``state`` whose learning rates are ``rate`` (a number or a schedule) times
    ``multiplier`` from the next update on."""
    if isinstance(state, optim.ScaleByLearningRateState):
        at = rate(state.step) if callable(rate) else rate
        return state._replace(learning_rate=at * multiplier, multiplier=multiplier)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_with_multiplier(s, multiplier, rate) for s in state))
    if isinstance(state, tuple):
        return tuple(_with_multiplier(s, multiplier, rate) for s in state)
    return state


class Optimizer:
    """A Keras optimizer: its settings, and the funcnn transformation they build.

    Compiled into a model it reads and sets that model's optimizer state
    (``learning_rate``, ``iterations``); alone it holds its settings only.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    default_rate = 0.001
    _model: weakref.ref[Any] | None = None

    def __init__(
        self,
        learning_rate: Any = None,
        *,
        lr: Any = None,
        decay: float = 0.0,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> None:
        if learning_rate is not None and lr is not None:
            raise ValueError("give learning_rate or lr (its Keras 2 name), not both")
        rate = learning_rate if learning_rate is not None else lr
        rate = self.default_rate if rate is None else rate
        self._learning_rate: Any = (
            rate if callable(rate) else check.non_negative("learning_rate", rate)
        )
        self.decay = check.non_negative("decay", decay)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        unknown = set(settings) - set(self.defaults)
        if unknown:
            valid = ", ".join(["learning_rate", "lr", "decay", "clipnorm", "clipvalue",
                               "global_clipnorm", *self.defaults])  # fmt: skip
            raise TypeError(
                f"{type(self).__name__} got unknown argument(s) {', '.join(sorted(unknown))}; "
                f"it takes {valid}"
            )
        self.settings = {**self.defaults, **settings}
        self.build()  # every setting is checked here, where it was written

    def _rate(self) -> Any:
        if self.decay:
            if callable(self._learning_rate):
                raise ValueError("give decay with a number learning_rate, not a schedule")
            return core_schedules.inverse_time_decay(self._learning_rate, 1, self.decay)
        return self._base(self._opt_state())

    def _base(self, state: OptState) -> Any:
        """The constant rate the multiplier in ``state`` scales: the rate given, or, where
        the state's rate is not that times its multiplier (a model loaded with the rate it
        was saved at, :meth:`get_config`'s), the rate it was built with (the state's rate
        over its multiplier). A schedule, and a rate under ``decay``, as given."""
        rate = self._learning_rate
        found = _rate_states(state)
        if callable(rate) or self.decay or not found or found[0].multiplier == 0:
            return rate
        s = found[0]
        return rate if rate * s.multiplier == s.learning_rate else s.learning_rate / s.multiplier

    def _make(self, *args: Any, **kwargs: Any) -> optim.GradientTransformation:
        raise NotImplementedError

    def build(self) -> optim.GradientTransformation:
        """The funcnn GradientTransformation for these settings."""
        opt = self._make(self._rate(), **self.settings)
        clips = []
        if self.clipvalue is not None:
            clips.append(optim.clip(check.positive("clipvalue", self.clipvalue)))
        if self.clipnorm is not None:  # Keras clips each tensor's norm
            clips.append(optim.clip_by_leaf_norm(check.positive("clipnorm", self.clipnorm)))
        if self.global_clipnorm is not None:
            clips.append(
                optim.clip_by_global_norm(check.positive("global_clipnorm", self.global_clipnorm))
            )
        return optim.chain(*clips, opt) if clips else opt

    # -- the learning rate, as a compiled model trains with it

    def _bind(self, model: Any) -> None:
        """Read and set ``model``'s optimizer state from now on (``compile`` calls it).

        One object is one model's optimizer: a ValueError for an object compiled into
        another model that still has it (Keras 3 refuses to update another model's
        variables with an optimizer built for one; here its learning rate would read and
        set the other model's)."""
        other = self._bound()
        if other is not None and other is not model and other.optimizer is self:
            raise ValueError(
                f"this {type(self).__name__} object is compiled into another model "
                f"({getattr(other, 'name', None) or type(other).__name__}) already: an "
                "optimizer object trains one model (its learning_rate and iterations are "
                "that model's). Give each model its own, e.g. "
                f"{type(self).__name__}.from_config(optimizer.get_config()) or a new "
                f"keras.optimizers.{type(self).__name__}(...)"
            )
        self._model = weakref.ref(model)

    def _bound(self) -> Any:
        """The model this optimizer is compiled into, or None."""
        return None if self._model is None else self._model()

    def _opt_state(self) -> OptState:
        model = self._bound()
        return None if model is None else model.opt_state

    @property
    def learning_rate(self) -> LearningRate:
        """The learning rate the next update uses: a float (under a schedule, the
        schedule at :attr:`iterations`; under Keras 2's ``decay``, the rate before it).

        Setting a number sets it from the next update on (a callback's setting, during
        ``fit``, counts from the next batch). Setting a schedule replaces the rate, before
        training starts. As in Keras, a number cannot be set over a schedule (TypeError).
        """
        return LearningRate(self._current_rate(), self)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._set_rate(value)

    lr = learning_rate  # Keras 2's name

    @property
    def iterations(self) -> int:
        """The updates done so far (0 before training): the step a schedule is at."""
        found = _rate_states(self._opt_state())
        return int(found[0].step) if found else 0

    def _current_rate(self) -> float:
        found = _rate_states(self._opt_state())
        rate = self._learning_rate
        if not found:
            return float(rate(0) if callable(rate) else rate)
        if self.decay:  # Keras 2's lr variable: the rate its time decay divides
            return float(rate * found[0].multiplier)
        return float(found[0].learning_rate)

    def _set_rate(self, value: Any) -> None:
        if callable(value):  # a schedule replaces the rate, as in Keras
            if _rate_states(self._opt_state()):
                raise ValueError(
                    "a schedule replaces the learning rate before training starts: this "
                    "model's optimizer state has its rate and step already; compile with "
                    "the schedule (optimizer=SGD(learning_rate=schedule)) instead"
                )
            self._replace_rate(value)
            return
        value = check.non_negative("learning_rate", value)
        if callable(self._learning_rate):
            raise TypeError(
                f"This optimizer was created with a schedule ({self._learning_rate!r:.80}) as its "
                "learning_rate, hence its learning rate is not settable (as in Keras). If you "
                "need the learning rate to be settable, create the optimizer with a float "
                "learning_rate."
            )
        model, state = self._bound(), self._opt_state()
        if not _rate_states(state):  # not trained yet: the setting itself changes
            self._replace_rate(value)
            return
        model.opt_state = self._state_with_rate(state, value)

    def _replace_rate(self, rate: Any) -> None:
        before = self._learning_rate
        self._learning_rate = rate
        try:
            self.build()
        except (TypeError, ValueError):
            self._learning_rate = before
            raise

    def _state_with_rate(self, state: OptState, value: float) -> OptState:
        """``state`` whose learning rate is ``value`` from the next update on."""
        base = self._base(state)
        if base == 0:
            if self.decay:
                raise ValueError(
                    "a learning rate of 0 with decay stays 0: create the optimizer with the "
                    "rate to start from"
                )
            return optim.set_learning_rate(state, value)  # a constant 0 is a placeholder
        return _with_multiplier(state, value / base, base if self.decay == 0 else self._rate())

    # -- configs

    def get_config(self) -> dict[str, Any]:
        """Keras' config: the settings that rebuild this optimizer, its schedule included,
        and a number learning rate as it is now (one set since, by a callback during
        ``fit`` too, counts, as Keras' variable does; under Keras 2's ``decay``, the rate
        given). A TypeError for a learning rate that is a function or a schedule class of
        one's own (a model compiled with it is saved without its compile settings)."""
        rate = self._learning_rate
        if not callable(rate) and not self.decay:
            rate = self._current_rate()
        elif isinstance(rate, schedules.LearningRateSchedule):
            rate = schedules.serialize(rate)
        elif callable(rate):
            raise TypeError(
                "an optimizer whose learning rate is a function has no config: give a "
                "keras.optimizers.schedules object to have it saved"
            )
        config: dict[str, Any] = {"learning_rate": rate, **self.settings}
        for key in ("decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """The optimizer :meth:`get_config` described."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        items: dict[str, Any] = {"learning_rate": self._learning_rate, **self.settings}
        for key in ("decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key):
                items[key] = getattr(self, key)
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in items.items())})"


class SGD(Optimizer):
    """``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``."""

    default_rate = 0.01
    defaults: ClassVar[dict[str, Any]] = {"momentum": 0.0, "nesterov": False}

    def _make(self, rate: Any, momentum: float, nesterov: bool) -> optim.GradientTransformation:
        momentum = check.number("momentum", momentum)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        return optim.sgd(rate, momentum=momentum or None, nesterov=bool(nesterov))


class RMSprop(Optimizer):
    """``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``."""

    defaults: ClassVar[dict[str, Any]] = {
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-7,
        "centered": False,
    }

    def _make(
        self, rate: Any, rho: float, momentum: float, epsilon: float, centered: bool
    ) -> optim.GradientTransformation:
        return optim.rmsprop(
            rate, decay=rho, eps=epsilon, centered=bool(centered), momentum=momentum or None
        )


class Adam(Optimizer):
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)``;
    ``amsgrad=True`` is :func:`funcnn.optim.amsgrad` (the largest second moment so far)."""

    defaults: ClassVar[dict[str, Any]] = {
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }

    def _make(
        self, rate: Any, beta_1: float, beta_2: float, epsilon: float, amsgrad: bool
    ) -> optim.GradientTransformation:
        if check.boolean("amsgrad", amsgrad):
            return optim.amsgrad(rate, b1=beta_1, b2=beta_2, eps=epsilon)
        return optim.adam(rate, b1=beta_1, b2=beta_2, eps=epsilon)


class AdamW(Optimizer):
    """``AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7, amsgrad=False)``."""

    defaults: ClassVar[dict[str, Any]] = {
        "weight_decay": 0.004,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }

    def _make(
        self,
        rate: Any,
        weight_decay: float,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        amsgrad: bool,
    ) -> optim.GradientTransformation:
        if check.boolean("amsgrad", amsgrad):
            return optim.chain(
                optim.scale_by_amsgrad(beta_1, beta_2, epsilon),
                optim.add_decayed_weights(weight_decay),
                optim.scale_by_learning_rate(rate),
            )
        return optim.adamw(rate, b1=beta_1, b2=beta_2, eps=epsilon, weight_decay=weight_decay)


class _AdamLike(Optimizer):
    """Adam's settings (without amsgrad) for another of its family: ``alias``, the funcnn
    optimizer it builds."""

    defaults: ClassVar[dict[str, Any]] = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    alias: ClassVar[Callable[..., optim.GradientTransformation]]

    def _make(
        self, rate: Any, beta_1: float, beta_2: float, epsilon: float
    ) -> optim.GradientTransformation:
        return type(self).alias(rate, b1=beta_1, b2=beta_2, eps=epsilon)


class Nadam(_AdamLike):
    """``Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``."""

    alias = staticmethod(optim.nadam)


class Adamax(_AdamLike):
    """``Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``."""

    alias = staticmethod(optim.adamax)


class Adagrad(Optimizer):
    """``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``."""

    defaults: ClassVar[dict[str, Any]] = {"initial_accumulator_value": 0.1, "epsilon": 1e-7}

    def _make(
        self, rate: Any, initial_accumulator_value: float, epsilon: float
    ) -> optim.GradientTransformation:
        return optim.adagrad(rate, initial_accumulator_value, eps=epsilon)


class Adadelta(Optimizer):
    """``Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)``: Keras' defaults (its
    learning rate of 0.001 moves slowly; the paper's is 1.0)."""

    defaults: ClassVar[dict[str, Any]] = {"rho": 0.95, "epsilon": 1e-7}

    def _make(self, rate: Any, rho: float, epsilon: float) -> optim.GradientTransformation:
        return optim.adadelta(rate, rho=rho, eps=epsilon)


class Lion(Optimizer):
    """``Lion(learning_rate=0.001, beta_1=0.9, beta_2=0.99)`` (no weight decay, as Keras)."""

    defaults: ClassVar[dict[str, Any]] = {"beta_1": 0.9, "beta_2": 0.99}

    def _make(self, rate: Any, beta_1: float, beta_2: float) -> optim.GradientTransformation:
        return optim.lion(rate, b1=beta_1, b2=beta_2, weight_decay=0.0)


class Given(Optimizer):
    """A funcnn optimizer given to ``compile`` (a GradientTransformation, or a name of
    ``funcnn.keras.OPTIMIZERS`` such as "adam") as ``model.optimizer``: the transformation
    as it was built, its learning rate read from and set in the model's optimizer state."""

    def __init__(
        self, transformation: optim.GradientTransformation, name: str | None = None
    ) -> None:
        if not isinstance(transformation, optim.GradientTransformation):
            raise TypeError(
                f"Given wraps a funcnn GradientTransformation, got {type(transformation).__name__}"
            )
        self.transformation, self.name = transformation, name
        self._learning_rate = None
        self.decay = 0.0
        self.settings = {}
        self.clipnorm = self.clipvalue = self.global_clipnorm = None

    def build(self) -> optim.GradientTransformation:
        return self.transformation

    def _current_rate(self) -> float:
        state = self._opt_state()
        if not _rate_states(state):  # not trained yet: the rate a fresh state starts with
            state = self.transformation.init(())
        return float(optim.current_learning_rate(state))

    def _set_rate(self, value: Any) -> None:
        if callable(value):
            raise TypeError(
                f"{self!r} has the rate it was built with: give a keras.optimizers object to "
                "compile (optimizer=SGD(learning_rate=schedule)) to train with a schedule"
            )
        value = check.non_negative("learning_rate", value)
        model = self._bound()
        if model is None:
            raise ValueError(f"{self!r} is not compiled into a model: it has no rate to set")
        if not _rate_states(model.opt_state):  # not trained yet: a fresh state holds it
            if model.params is None:
                try:
                    model.build()
                except ValueError as e:
                    raise ValueError(
                        f"the learning rate of {self!r} is set in the model's optimizer state, "
                        f"which needs the model built: {e}"
                    ) from e
            model.opt_state = self.transformation.init(model.params)
        model.opt_state = optim.set_learning_rate(model.opt_state, value)

    def get_config(self) -> dict[str, Any]:
        raise TypeError(f"{self!r} is a funcnn optimizer: it has no Keras config")

    def __repr__(self) -> str:
        return "<funcnn optimizer>" if self.name is None else f"<funcnn optimizer {self.name!r}>"


CLASSES = {
    c.__name__: c for c in (SGD, RMSprop, Adam, AdamW, Nadam, Adamax, Adagrad, Adadelta, Lion)
}


def get(identifier: Any) -> Optimizer:
    """An optimizer object from Keras' name ("adam", "RMSprop", "sgd"...) with its defaults."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        by_lower = {name.lower(): cls for name, cls in CLASSES.items()}
        cls = by_lower.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"unknown optimizer {identifier!r}; valid names: {', '.join(sorted(by_lower))}"
            )
        return cls()
    raise TypeError(f"an optimizer must be a name or an optimizer object, got {identifier!r}")


def from_config(name: str, config: dict[str, Any]) -> Optimizer:
    """The optimizer :meth:`Optimizer.get_config` described."""
    if name not in CLASSES:
        raise ValueError(f"unknown optimizer class {name!r}")
    return CLASSES[name].from_config(config)
