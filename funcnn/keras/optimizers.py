"""Keras' optimizer objects: ``Adam(learning_rate=1e-3)``, ``SGD(lr=0.01, momentum=0.9)``,
``RMSprop()``..., with Keras' argument names and defaults, built on funcnn's optimizers.

Keras 2's names are accepted where the meaning is plain: ``lr`` for ``learning_rate``,
and ``decay`` (the learning rate at update t is ``lr / (1 + decay * t)``, Keras 2's
time-based decay). ``learning_rate`` may also be a funcnn schedule. Each object
``build()``-s a funcnn GradientTransformation; ``get_config()`` gives what rebuilds it
(``load_model`` restores a compiled optimizer with it).

Where Keras' formula differs from optax's (RMSprop's epsilon is added outside the
square root in Keras, inside in optax) funcnn keeps optax's; the defaults are Keras'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from funcnn import optim
from funcnn import validate as check
from funcnn.optim import schedules

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "get",
]


class Optimizer:
    """A Keras optimizer: its settings, and the funcnn transformation they build."""

    defaults: ClassVar[dict[str, Any]] = {}
    default_rate = 0.001

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
        self.learning_rate = self.default_rate if rate is None else rate
        if not callable(self.learning_rate):
            check.non_negative("learning_rate", self.learning_rate)
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
            if callable(self.learning_rate):
                raise ValueError("give decay with a number learning_rate, not a schedule")
            return schedules.inverse_time_decay(self.learning_rate, 1, self.decay)
        return self.learning_rate

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

    def get_config(self) -> dict[str, Any]:
        if callable(self.learning_rate):
            raise TypeError("an optimizer with a schedule as its learning rate has no config")
        config: dict[str, Any] = {"learning_rate": self.learning_rate, **self.settings}
        for key in ("decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        return config

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({settings})"


def _no(flag: str, value: Any, who: str) -> None:
    if value:
        raise ValueError(f"{who}({flag}=True) is not in funcnn; leave it False")


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
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``."""

    defaults: ClassVar[dict[str, Any]] = {
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }

    def _make(
        self, rate: Any, beta_1: float, beta_2: float, epsilon: float, amsgrad: bool
    ) -> optim.GradientTransformation:
        _no("amsgrad", amsgrad, "Adam")
        return optim.adam(rate, b1=beta_1, b2=beta_2, eps=epsilon)


class AdamW(Optimizer):
    """``AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
    epsilon=1e-7)``."""

    defaults: ClassVar[dict[str, Any]] = {
        "weight_decay": 0.004,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
    }

    def _make(
        self, rate: Any, weight_decay: float, beta_1: float, beta_2: float, epsilon: float
    ) -> optim.GradientTransformation:
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
    return CLASSES[name](**config)
