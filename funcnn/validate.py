"""Argument checks shared by every module: one message shape, raised where the value enters.

Each check returns the value in its plain Python type (NumPy scalars are accepted
wherever a Python number is) or raises TypeError (wrong kind) or ValueError (right
kind, wrong value). Every message names the argument, what was expected and what
was given.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def number(name: str, value: Any) -> float:
    """A finite real number (bool is not a number here)."""
    if isinstance(value, bool) or not _is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def real(name: str, value: Any) -> float:
    """A real number, NaN and infinities included (bool is not a number here)."""
    if isinstance(value, bool) or not _is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def non_negative(name: str, value: Any) -> float:
    value = number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def positive(name: str, value: Any) -> float:
    value = number(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def decay(name: str, value: Any) -> float:
    """A decay rate (an EMA's weight of the past): in [0, 1)."""
    value = number(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} is a decay rate and must be in [0, 1), got {value}")
    return value


def positive_int(name: str, value: Any) -> int:
    """An int >= 1: TypeError for anything not an int (a float 2.0 included), ValueError below 1."""
    return _int_from(name, value, 1, "a positive int")


def non_negative_int(name: str, value: Any) -> int:
    """An int >= 0: TypeError for anything not an int, ValueError below 0."""
    return _int_from(name, value, 0, "an int >= 0")


def _int_from(name: str, value: Any, low: int, expected: str) -> int:
    if not is_int(value):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def int_pair(name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """An int >= ``minimum`` used for both axes, or a pair (tuple or list) of them."""
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2 or not all(is_int(v) for v in items):
        raise TypeError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    if not all(v >= minimum for v in items):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def is_int(value: Any) -> bool:
    """A Python or NumPy int, not a bool."""
    return not isinstance(value, bool) and _is_int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, np.bool_
    )


def float_dtype(name: str, dtype: Any) -> np.dtype:
    """A floating-point dtype (params are floats: an int dtype would truncate every update)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{name} must be a NumPy float dtype, got {dtype!r}") from e
    if resolved.kind != "f":
        raise TypeError(f"{name} must be a float dtype such as np.float32, got {resolved}")
    return resolved


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def text(name: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    return value


def choice(name: str, value: Any, options: tuple[Any, ...]) -> Any:
    """One of ``options`` (strings or ints; True is not 1 here)."""
    kinds = {type(o) for o in options}
    if isinstance(value, np.integer):
        value = int(value)
    if type(value) not in kinds or value not in options:
        expected = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {expected}, got {value!r}")
    return value


def function(name: str, value: Any, what: str = "a function") -> Any:
    """A callable (``what`` says which, for the message)."""
    if not callable(value) or isinstance(value, type):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    return value


def field(check: Any) -> Any:
    """An attrs validator from one of the checks above (the attribute's name in messages)."""

    def validator(instance: Any, attribute: Any, value: Any) -> None:
        check(f"{type(instance).__name__} {attribute.name}", value)

    return validator


def available_memory() -> int | None:
    """Bytes this process can still get: Linux's MemAvailable, or less where a cgroup (a
    container's memory limit) allows less; elsewhere the physical memory; None where the
    OS does not say."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: the container's limit less what its processes hold
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit():
            with open("/sys/fs/cgroup/memory.current") as f:
                found.append(max(0, int(limit) - int(f.read().strip())))
    except (OSError, ValueError):
        pass
    if found:
        return min(found)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def fits_in_memory(what: str, nbytes: int, hint: str = "") -> None:
    """A ValueError, before anything is allocated, when ``what`` needs more than the memory
    this machine can still give (MemoryError after trying, or the OS killing the process,
    would come later and say less)."""
    memory = available_memory()
    if memory is not None and nbytes > memory:
        raise ValueError(
            f"{what} needs {nbytes / 2**30:,.1f} GiB, more than the {memory / 2**30:,.1f} GiB "
            f"of memory this machine has free{hint}"
        )


def mask(who: object, value: Any, batch_time: tuple[int, ...]) -> np.ndarray:
    """A sequence mask as a bool array of shape ``batch_time`` (``(batch, time)``): True
    at real steps. Bools pass through; 0 and 1 become bools; anything else is refused."""
    m = np.asarray(value)
    if m.shape != tuple(batch_time):
        raise ValueError(
            f"{who} expects a mask of shape (batch, time) = {tuple(batch_time)}, "
            f"got shape {m.shape}"
        )
    if m.dtype.kind == "b":
        return m
    if m.dtype.kind not in "iuf":
        raise TypeError(f"{who} expects a bool mask, got dtype {m.dtype}")
    if m.size and not np.all((m == 0) | (m == 1)):
        raise ValueError(
            f"{who} expects a bool mask (or 0 and 1), got values in [{m.min()}, {m.max()}]"
        )
    return m != 0
