"""Learning-rate schedules: plain functions ``step -> value``.

Wherever funcnn takes a rate it takes a float or one of these (any callable
``int -> float`` works). ``step`` counts updates from 0. Each schedule checks its
arguments when it is built, not when it is first called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from funcnn import validate as check

Schedule = Callable[[int], float]


def constant(value: float) -> Schedule:
    """``value`` at every step."""
    value = check.number("value", value)
    return lambda step: value


def _power(base: float, exponent: float) -> float:
    """``base ** exponent``, inf where it overflows (Python raises OverflowError there)."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def _times(value: float, factor: float) -> float:
    """``value * factor`` where ``factor`` may be inf: 0 stays 0."""
    return value * factor if value else 0.0


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """``init_value * decay_rate ** (step / transition_steps)``.

    With ``staircase`` the exponent is ``floor(step / transition_steps)``. ``end_value``
    bounds the result: from below when decaying, from above when growing.
    """
    init_value = check.number("init_value", init_value)
    transition_steps = check.positive_int("transition_steps", transition_steps)
    decay_rate = check.positive("decay_rate", decay_rate)
    end = None if end_value is None else check.number("end_value", end_value)

    def schedule(step: int) -> float:
        p = step / transition_steps
        value = _times(init_value, _power(decay_rate, math.floor(p) if staircase else p))
        if end is not None:  # a growing value that overflowed is capped too
            value = max(value, end) if decay_rate < 1 else min(value, end)
        return value

    return schedule


def inverse_time_decay(
    init_value: float, decay_steps: int, decay_rate: float, staircase: bool = False
) -> Schedule:
    """``init_value / (1 + decay_rate * step / decay_steps)`` (floor of the ratio with staircase).

    The classic tutorials' ``lr0 / (1 + decay * t)`` is ``decay_steps=1``.
    """
    init_value = check.number("init_value", init_value)
    decay_steps = check.positive_int("decay_steps", decay_steps)
    decay_rate = check.non_negative("decay_rate", decay_rate)

    def schedule(step: int) -> float:
        p = step / decay_steps
        return init_value / (1 + decay_rate * (math.floor(p) if staircase else p))

    return schedule


def piecewise_constant(init_value: float, boundaries_and_scales: dict[int, float]) -> Schedule:
    """``init_value`` times the product of every scale whose boundary ``step`` has reached.

    ``piecewise_constant(0.1, {1000: 0.1, 2000: 0.5})``: 0.1, then 0.01 from step
    1000, then 0.005 from step 2000.
    """
    init_value = check.number("init_value", init_value)
    if not isinstance(boundaries_and_scales, dict):
        raise TypeError(
            "boundaries_and_scales must be a dict {step: scale}, got "
            f"{type(boundaries_and_scales).__name__}"
        )
    items = sorted(
        (check.non_negative_int("boundary", b), check.non_negative("scale", s))
        for b, s in boundaries_and_scales.items()
    )

    def schedule(step: int) -> float:
        value = init_value
        for boundary, scale in items:
            if step >= boundary:
                value *= scale
        return value

    return schedule


def step_decay(init_value: float, drop_rate: float, steps_per_drop: int) -> Schedule:
    """``init_value * drop_rate ** floor(step / steps_per_drop)``: a drop every k steps."""
    init_value = check.number("init_value", init_value)
    drop_rate = check.non_negative("drop_rate", drop_rate)
    steps_per_drop = check.positive_int("steps_per_drop", steps_per_drop)
    return lambda step: _times(init_value, _power(drop_rate, step // steps_per_drop))


def polynomial_decay(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """``(init - end) * (1 - t / transition_steps) ** power + end``.

    t = clip(step - transition_begin, 0, transition_steps).
    """
    init_value = check.number("init_value", init_value)
    end_value = check.number("end_value", end_value)
    power = check.positive("power", power)
    transition_steps = check.positive_int("transition_steps", transition_steps)
    transition_begin = check.non_negative_int("transition_begin", transition_begin)

    def schedule(step: int) -> float:
        t = min(max(step - transition_begin, 0), transition_steps)
        return (init_value - end_value) * (1 - t / transition_steps) ** power + end_value

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Linear from ``init_value`` to ``end_value`` over ``transition_steps``, then constant."""
    return polynomial_decay(init_value, end_value, 1.0, transition_steps, transition_begin)


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """Linear from ``init_value`` to ``peak_value`` over ``warmup_steps``, then ``peak_value``."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """``init_value * ((1 - alpha) * 0.5 * (1 + cos(pi * t / decay_steps)) + alpha)``.

    t = min(step, decay_steps); the value ends at ``alpha * init_value``.
    """
    init_value = check.number("init_value", init_value)
    decay_steps = check.positive_int("decay_steps", decay_steps)
    alpha = check.non_negative("alpha", alpha)

    def schedule(step: int) -> float:
        t = min(step, decay_steps)
        return init_value * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / decay_steps)) + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[i]`` from ``boundaries[i-1]`` on, called with the steps since that boundary."""
    schedules = list(schedules)
    boundaries = [check.non_negative_int("boundary", b) for b in boundaries]
    if not all(callable(s) for s in schedules):
        raise TypeError("join_schedules takes callables step -> value as schedules")
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"join_schedules needs one more schedule than boundaries, got {len(schedules)} "
            f"schedules and {len(boundaries)} boundaries"
        )
    if list(boundaries) != sorted(boundaries):
        raise ValueError(f"boundaries must be increasing, got {list(boundaries)}")

    def schedule(step: int) -> float:
        start = 0
        index = 0
        for i, boundary in enumerate(boundaries):
            if step >= boundary:
                start, index = boundary, i + 1
        return schedules[index](step - start)

    return schedule


def warmup_cosine_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    ``decay_steps`` counts the whole schedule, warm-up included (as optax).
    """
    warmup_steps = check.non_negative_int("warmup_steps", warmup_steps)
    decay_steps = check.positive_int("decay_steps", decay_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps}): "
            "it counts the whole schedule"
        )
    peak = check.number("peak_value", peak_value)
    alpha = 0.0 if peak == 0 else check.number("end_value", end_value) / peak
    return join_schedules(
        [
            linear_schedule(init_value, peak, warmup_steps),
            cosine_decay(peak, decay_steps - warmup_steps, alpha),
        ],
        [warmup_steps],
    )
