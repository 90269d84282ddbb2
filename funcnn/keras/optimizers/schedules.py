"""``keras.optimizers.schedules``: Keras 3's learning-rate schedules, with its argument
names, defaults and formulas.

A schedule is given to any optimizer as its ``learning_rate``
(``SGD(learning_rate=ExponentialDecay(0.1, decay_steps=100, decay_rate=0.9))``) and is
called with the optimizer's update count, from 0 (Keras' ``optimizer.iterations``): the
first batch trains at ``schedule(0)``. Each one has Keras' ``get_config`` and
``from_config`` (a saved model keeps its schedule) and a repr that shows its settings.
Where Keras' formula is a funcnn schedule's (:mod:`funcnn.optim.schedules`) the schedule
is built over it; the others (PiecewiseConstantDecay's boundaries, PolynomialDecay's
``cycle``, CosineDecayRestarts) are Keras' formula here. Values are computed in float64
(Keras: in the initial learning rate's dtype, float32).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any, ClassVar

from funcnn import validate as check
from funcnn.optim import schedules as core

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "serialize",
]


class LearningRateSchedule:
    """Keras' base class of learning-rate schedules: a callable ``step -> rate``.

    A schedule of one's own subclasses it and writes ``__call__(self, step)`` (and
    ``get_config`` to describe itself); any optimizer takes it as its ``learning_rate``.
    Only this module's schedules are written in a saved model's compile settings.
    """

    def __call__(self, step: Any) -> float:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
            "order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        """The schedule ``get_config`` described."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return f"<{type(self).__name__} learning rate schedule>"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


def _step(step: Any) -> float:
    """The update count a schedule is called with: a number >= 0 (a NumPy scalar too)."""
    if isinstance(step, bool):
        raise TypeError(f"a schedule's step is a number of updates, got {step!r}")
    try:
        value = float(step)
    except (TypeError, ValueError):
        raise TypeError(
            f"a schedule's step is a number of updates, got {type(step).__name__} {step!r:.60}"
        ) from None
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"a schedule's step must be a finite number >= 0, got {step!r}")
    return value


def _whole(name: str, value: Any, *, positive: bool = True) -> int:
    """A count of steps: an int (a whole float such as Keras' example ``decay_steps=1.0`` too)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check.positive_int(name, value) if positive else check.non_negative_int(name, value)


def _name(name: Any, default: str) -> str:
    """A schedule's name (Keras' configs may hold None: the class's default)."""
    return default if name is None else check.text("name", name)


def _rate(name: str, value: Any) -> float:
    return check.non_negative(name, value)


class _Schedule(LearningRateSchedule):
    """A built-in schedule: ``fn`` computes it; ``defaults`` are Keras' for the repr."""

    fn: Callable[[Any], float]
    default_name: ClassVar[str]

    def __call__(self, step: Any) -> float:
        value = _step(step)
        return float(self.fn(int(value) if value.is_integer() else value))

    def __repr__(self) -> str:
        config = self.get_config()
        if config.get("name") == self.default_name:
            del config["name"]
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


class ExponentialDecay(_Schedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase``
    the exponent is ``floor(step / decay_steps)``."""

    default_name = "ExponentialDecay"

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = "ExponentialDecay",
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _whole("decay_steps", decay_steps)
        self.decay_rate = check.positive("decay_rate", decay_rate)
        self.staircase = check.boolean("staircase", staircase)
        self.name = _name(name, self.default_name)
        self.fn = core.exponential_decay(
            self.initial_learning_rate, self.decay_steps, self.decay_rate, self.staircase
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(_Schedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary
    (Keras' rule: a boundary step still has the value before it)."""

    default_name = "PiecewiseConstant"

    def __init__(
        self, boundaries: Any, values: Any, name: str | None = "PiecewiseConstant"
    ) -> None:
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(
                "boundaries and values must be lists of numbers, got "
                f"{type(boundaries).__name__} and {type(values).__name__}"
            )
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={list(boundaries)} of length {len(boundaries)}, and "
                f"values={list(values)} of length {len(values)}."
            )
        self.boundaries = [check.number("boundaries", b) for b in boundaries]
        self.boundaries = [int(b) if b.is_integer() else b for b in self.boundaries]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries}")
        self.values = [_rate("values", v) for v in values]
        self.name = _name(name, self.default_name)
        self.fn = self._value

    def _value(self, step: float) -> float:
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class PolynomialDecay(_Schedule):
    """``(initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power +
    end_learning_rate`` with ``step = min(step, decay_steps)``; with ``cycle``,
    ``decay_steps`` times ``ceil(step / decay_steps)`` (1 at step 0) instead of the min."""

    default_name = "PolynomialDecay"

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str | None = "PolynomialDecay",
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _whole("decay_steps", decay_steps)
        self.end_learning_rate = _rate("end_learning_rate", end_learning_rate)
        self.power = check.positive("power", power)
        self.cycle = check.boolean("cycle", cycle)
        self.name = _name(name, self.default_name)
        self.fn = (
            self._cycled
            if self.cycle
            else core.polynomial_decay(
                self.initial_learning_rate, self.end_learning_rate, self.power, self.decay_steps
            )
        )

    def _cycled(self, step: float) -> float:
        steps = self.decay_steps * (1 if step == 0 else math.ceil(step / self.decay_steps))
        delta = self.initial_learning_rate - self.end_learning_rate
        return delta * (1 - step / steps) ** self.power + self.end_learning_rate

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(_Schedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with
    ``staircase``, ``floor(step / decay_steps)``."""

    default_name = "InverseTimeDecay"

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = "InverseTimeDecay",
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _whole("decay_steps", decay_steps)
        self.decay_rate = check.non_negative("decay_rate", decay_rate)
        self.staircase = check.boolean("staircase", staircase)
        self.name = _name(name, self.default_name)
        self.fn = core.inverse_time_decay(
            self.initial_learning_rate, self.decay_steps, self.decay_rate, self.staircase
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class CosineDecay(_Schedule):
    """Cosine decay over ``decay_steps``, after an optional linear warm-up.

    Without ``warmup_target``: ``initial_learning_rate * ((1 - alpha) * 0.5 * (1 +
    cos(pi * t / decay_steps)) + alpha)`` with ``t = min(step, decay_steps)``. With it: a
    line from ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then
    that decay from ``warmup_target`` (``t`` counted from the end of the warm-up).
    """

    default_name = "CosineDecay"

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str | None = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _whole("decay_steps", decay_steps)
        self.alpha = check.non_negative("alpha", alpha)
        self.name = _name(name, self.default_name)
        self.warmup_target = (
            None if warmup_target is None else _rate("warmup_target", warmup_target)
        )
        self.warmup_steps = _whole("warmup_steps", warmup_steps, positive=False)
        if self.warmup_target is None:  # Keras ignores warmup_steps then
            self.fn = core.cosine_decay(self.initial_learning_rate, self.decay_steps, self.alpha)
            return
        decay = core.cosine_decay(self.warmup_target, self.decay_steps, self.alpha)
        if self.warmup_steps == 0:
            self.fn = decay
            return
        warmup = core.linear_schedule(
            self.initial_learning_rate, self.warmup_target, self.warmup_steps
        )
        self.fn = core.join_schedules([warmup, decay], [self.warmup_steps])

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(_Schedule):
    """SGDR: cosine decay from ``initial_learning_rate`` over ``first_decay_steps``, then
    restarts, each period ``t_mul`` times longer and starting ``m_mul`` times lower."""

    default_name = "SGDRDecay"

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str | None = "SGDRDecay",
    ) -> None:
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _whole("first_decay_steps", first_decay_steps)
        self.t_mul = check.positive("t_mul", t_mul)
        self.m_mul = check.non_negative("m_mul", m_mul)
        self.alpha = check.non_negative("alpha", alpha)
        self.name = _name(name, self.default_name)
        self.fn = self._value

    def _value(self, step: float) -> float:
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            t_mul = self.t_mul
            left = 1.0 - fraction * (1.0 - t_mul)
            if left <= 0:  # t_mul < 1: the shrinking periods ended before this step
                raise ValueError(
                    f"CosineDecayRestarts(t_mul={t_mul}) has no period left at step {step:g}: "
                    f"its periods sum to {self.first_decay_steps / (1 - t_mul):g} steps"
                )
            restart = math.floor(math.log(left) / math.log(t_mul))
            done = (1.0 - t_mul**restart) / (1.0 - t_mul)
            fraction = (fraction - done) / t_mul**restart
        cosine = 0.5 * self.m_mul**restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


CLASSES: dict[str, type[_Schedule]] = {
    c.__name__: c
    for c in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def serialize(learning_rate_schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` of one of this module's schedules (what a
    saved model's compile settings hold); a TypeError for any other."""
    cls = type(learning_rate_schedule)
    if CLASSES.get(cls.__name__) is not cls:
        raise TypeError(
            f"{cls.__name__} is not one of keras.optimizers.schedules' schedules "
            f"({', '.join(CLASSES)}): it has no config a file can keep"
        )
    return {"class_name": cls.__name__, "config": learning_rate_schedule.get_config()}


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> LearningRateSchedule:
    """The schedule :func:`serialize` described (``custom_objects``: classes of one's own,
    by name)."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(
            "a schedule's config is a JSON object {class_name, config}, got "
            f"{type(config).__name__} {config!r:.80}"
        )
    classes: dict[str, Any] = {**CLASSES, **(custom_objects or {})}
    cls = classes.get(config["class_name"])
    if cls is None:
        raise ValueError(
            f"unknown learning rate schedule {config['class_name']!r:.80}; the schedules are "
            f"{', '.join(CLASSES)}"
        )
    settings = config.get("config", {})
    if not isinstance(settings, dict):
        raise ValueError(
            f"the config of {config['class_name']} must be a JSON object, got "
            f"{type(settings).__name__}"
        )
    return cls.from_config(dict(settings))
