"""How ``fit`` shares its work among processes: the :class:`Plan` it is given.

``fit(..., plan=LOCAL)`` runs one code path for one process or many: the plan says
which model to train, which rows of each batch this process computes, how every
process's rows come together, where training starts, who prints and writes files,
what to check before training and what a failure does. :data:`LOCAL` is the plan
of one process; :class:`funcnn.distributed.Plan` (what ``fit(..., comm=...)``
builds) is the plan of the processes of an MPI communicator.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from funcnn.layers.base import Layer

T = TypeVar("T")


@runtime_checkable
class Plan(Protocol):
    """What ``fit`` asks of the processes it trains on."""

    @property
    def is_main_process(self) -> bool:
        """Whether this process prints and runs the callbacks that write files."""
        ...

    def wrap(self, model: Layer) -> Layer:
        """The model ``fit`` trains: in training mode it takes this process's rows of a
        batch (:meth:`share`) and returns the whole batch's output."""
        ...

    def share(self, samples: int) -> slice:
        """The rows of a batch of ``samples`` samples that this process computes."""
        ...

    def gather(self, part: Any) -> Any:
        """Every process's ``part`` (rows of one array, or None for no rows) in order."""
        ...

    def start(self, values: T) -> T:
        """``values`` (params, state, optimizer state and seed) as the main process has them,
        on every process: where training starts."""
        ...

    def check(
        self, x: Any, y: Any, validation: Any, *, validation_split: float, **settings: Any
    ) -> None:
        """Raise, before training, if the processes were given different data or settings."""
        ...

    def on_failure(self) -> contextlib.AbstractContextManager[None]:
        """The context ``fit``'s work runs in: what an error does to the other processes."""
        ...


@attrs.frozen
class Local:
    """The plan of one process: it computes every row, prints and writes files."""

    @property
    def is_main_process(self) -> bool:
        return True

    def wrap(self, model: Layer) -> Layer:
        return model

    def share(self, samples: int) -> slice:
        return slice(0, samples)

    def gather(self, part: Any) -> Any:
        return part

    def start(self, values: T) -> T:
        return values

    def check(
        self, x: Any, y: Any, validation: Any, *, validation_split: float, **settings: Any
    ) -> None:
        del x, y, validation, validation_split, settings  # one process agrees with itself

    def on_failure(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # nobody waits on this process: the error goes up


LOCAL = Local()
"""The plan of one process, ``fit``'s default."""
