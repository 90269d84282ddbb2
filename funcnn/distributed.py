"""Data-parallel training over MPI processes, with the bits of one process.

``fit(..., comm=MPI.COMM_WORLD)`` (see :func:`funcnn.fit`) trains on every process
of ``comm`` at once. Every process holds the whole data set (a memory-mapped
``.npy`` works: a process reads only its own samples) and follows the same
shuffle from the same seed. Each mini-batch is cut into the chunks of
:data:`funcnn.linalg.CHUNK` samples that one process would sum its gradients
over; process ``r`` of ``R`` takes the ``r``-th contiguous share of those chunks.
Then, in every step:

1. each process computes the forward pass of its own samples (dropout masks
   come from the global row index, so they are the ones one process would draw);
2. the outputs are gathered (``allgather``), and every process computes the loss
   and its gradient on the whole batch, as one process would;
3. each process computes the backward pass of its own samples; every sum over the
   batch (weight and bias gradients, BatchNorm's statistics) gathers the chunks'
   results of all processes and adds them in the one-process tree
   (:func:`funcnn.linalg.across_processes`), never with ``Allreduce(SUM)``, whose
   order of summation belongs to the MPI library;
4. every process applies the same update to the same params.

So a run on any number of processes ends with the params, state and history of
the run on one, bit for bit. Validation predictions are computed once,
each process predicting its share of the validation set (a prediction does not
depend on its batch), and gathered, so every process scores the same numbers;
callbacks run everywhere and decide alike; only rank 0 prints
and writes files. A process that raises prints its error and aborts the whole
job (``comm.Abort``), so no process waits forever on the others.

Needs the ``distributed`` extra: ``pip install 'funcnn[distributed]'`` (mpi4py and
Open MPI's wheel).
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import attrs
import numpy as np

from funcnn import linalg
from funcnn.layers.base import Layer, RngArg
from funcnn.random import as_key
from funcnn.types import Cache, LayerState, Params, Shape


def share(samples: int, rank: int, size: int) -> slice:
    """The rows of a batch of ``samples`` that process ``rank`` of ``size`` computes: a
    contiguous run of whole chunks of :data:`funcnn.linalg.CHUNK` samples."""
    chunks = -(-samples // linalg.CHUNK)
    first, last = rank * chunks // size, (rank + 1) * chunks // size
    return slice(min(first * linalg.CHUNK, samples), min(last * linalg.CHUNK, samples))


def gather_rows(comm: Any, part: Any) -> Any:
    """Every process's ``part`` (rows of one array; None or no rows for none) in rank order;
    ``part`` itself when no process has a row."""
    parts = [p for p in comm.allgather(part) if p is not None and len(p)]
    return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else part)


def check_comm(comm: Any) -> Any:
    """``comm`` if it looks like an mpi4py communicator; a TypeError saying what it needs."""
    for method in ("Get_rank", "Get_size", "allgather", "bcast", "Abort"):
        if not callable(getattr(comm, method, None)):
            raise TypeError(
                "comm must be an mpi4py communicator such as mpi4py.MPI.COMM_WORLD "
                f"(pip install 'funcnn[distributed]'), got {type(comm).__name__}"
            )
    return comm


@attrs.frozen(repr=False, eq=False)
class DataParallel(Layer):
    """``model`` computed by every process of ``comm`` on its share of each batch.

    Its forward takes this process's rows (``rng.row`` says where they start in the
    batch) and returns the whole batch's output; its backward takes the whole
    batch's output gradient. In inference mode it is ``model`` itself, run on
    whatever batch it is given. What ``fit(..., comm=...)`` trains; it is not saved.
    """

    model: Layer
    comm: Any

    def __repr__(self) -> str:
        return f"DataParallel({self.model!r})"

    def init(self, rng: Any, input_shape: Shape, *, dtype: Any = np.float32) -> Params:
        return self.model.init(rng, input_shape, dtype=dtype)

    def init_state(self, input_shape: Shape, *, dtype: Any = np.float32) -> LayerState:
        return self.model.init_state(input_shape, dtype=dtype)

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.model.output_shape(input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if not train:
            return self.model.forward_with_state(params, state, x, train=False, rng=rng)
        counts = self.comm.allgather(len(x))
        start = sum(counts[: self.comm.Get_rank()])
        key = as_key(rng)  # this process's rows start at row `start` of the batch
        with linalg.across_processes(self.comm, sum(counts)):
            y, new_state, cache = self.model.forward_with_state(
                params, state, x, train=True, rng=None if key is None else key.at_row(start)
            )
        whole = gather_rows(self.comm, y)
        return whole, new_state, (cache, start, len(x), sum(counts))

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        inner, start, count, total = cache
        with linalg.across_processes(self.comm, total):
            grads, dx = self.model.backward(
                params, inner, dy[start : start + count], need_dx=need_dx
            )
        return grads, dx


def abort(comm: Any, error: BaseException) -> None:
    """Print ``error`` with this process's rank and end every process of ``comm``."""
    rank = comm.Get_rank()
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    sys.stderr.write(
        f"funcnn.distributed: rank {rank} of {comm.Get_size()} raised "
        f"{type(error).__name__}: {error}\n{''.join(lines)}"
        "funcnn.distributed: aborting every process of the job\n"
    )
    sys.stderr.flush()
    comm.Abort(1)
