"""Matrix products and batch sums with the same bits on any thread count, worker count and
batch split, run on funcnn's own threads.

Why: a BLAS's result bits depend on how it splits a product. OpenBLAS computes a
float32 ``x @ w`` differently with 1 and 2 threads, and a row of ``x @ w`` can
come out differently when ``x`` has 3 rows than when it has 64. A seeded
training run would then depend on the machine's core count, and a sample's
prediction on the batch it was in. And under load OpenBLAS's own threads spin
and wait for each other, which slows a small product by 10-30x.

What funcnn does instead, in every layer:

- A product whose rows are samples (``x @ w``, ``dy @ w.T``, im2col convolutions)
  runs in blocks of a fixed number of samples, the last block padded with zero
  samples, so every BLAS call has one fixed shape and each sample's row depends
  only on that sample (and on its place in its block, which does not change its
  bits with NumPy's OpenBLAS: the tests check it).
- A sum over the batch (a weight gradient ``x.T @ dy``, a bias gradient, batch
  statistics) runs over fixed chunks of :data:`CHUNK` samples counted from the
  first sample of the batch, and adds the chunks' results in a fixed pairwise
  tree. The chunks are also the unit that :mod:`funcnn.distributed` hands to
  processes, so N processes add the same numbers in the same order as one.
- The blocks run on funcnn's thread pool (:func:`set_workers`; by default one
  worker per core this process may use), each with the BLAS held to one thread.
  The worker count decides only which thread computes a block, never a result.

Small products (under :data:`INLINE_FLOPS`) run in the calling thread: handing
them to another thread costs more than they do. Every function here is pure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

ROWS = 64
"""The most samples in one block of a product whose rows are samples."""
BLOCK_FLOPS = 2 * 64 * 784 * 512
"""A block holds as many samples as fit this many flops (a power of two, 1 to :data:`ROWS`)."""
CHUNK = 128
"""Samples per chunk of a sum over the batch (a multiple of :data:`ROWS`)."""
COLS = 256
"""Output columns per block of a weight-gradient product."""
INLINE_FLOPS = 2**21
"""Products smaller than this run in the calling thread."""

_workers: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_workers(n: int | None) -> None:
    """Use ``n`` threads for funcnn's products (None: :func:`available_cores`, the default).

    Changes speed only: every result has the same bits with any number of workers.
    ``FUNCNN_WORKERS`` in the environment sets the default.
    """
    global _workers, _pool
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"workers must be a positive int or None, got {n!r}")
    with _pool_lock:
        _workers = n
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def workers() -> int:
    """The number of threads funcnn's products run on."""
    if _workers is not None:
        return _workers
    env = os.environ.get("FUNCNN_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"FUNCNN_WORKERS must be a positive int, got {env!r}")
        return int(env)
    return available_cores()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(workers(), thread_name_prefix="funcnn")
        return _pool


# ---------------------------------------------------------------- the BLAS held to one thread

_blas: list[Any] | None = None


def _blas_libraries() -> list[Any]:
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _blas


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold every loaded BLAS to one thread inside the block (the setting is process-wide)."""
    saved = [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
    for lib, n in saved:
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in saved:
            if n != 1:
                lib.set_num_threads(n)


def blas_description() -> str:
    """The BLAS in use, its version and CPU kernel: what a result's bits depend on."""
    parts = []
    for lib in _blas_libraries():
        info = lib.info()
        parts.append(
            f"{info.get('internal_api')} {info.get('version') or ''} "
            f"({info.get('architecture') or 'unknown kernel'})".replace("  ", " ")
        )
    return ", ".join(parts) or "no BLAS found"


def _run(tasks: list[Callable[[], None]], flops: float) -> None:
    """Run the tasks (each writes its own part of an output), in parallel when worth it."""
    with single_threaded_blas():
        if len(tasks) == 1 or flops < INLINE_FLOPS or workers() == 1:
            for task in tasks:
                task()
            return
        for future in [_executor().submit(task) for task in tasks]:
            future.result()


# ---------------------------------------------------------------- products and sums


def block_samples(k: int, n: int, group: int = 1) -> int:
    """Samples per block of an ``(samples * group, k) @ (k, n)`` product: set by the shapes
    of one sample and of ``b`` alone, never by the batch."""
    per_sample = 2 * k * n * group
    fit = max(1, BLOCK_FLOPS // max(per_sample, 1))
    return min(ROWS, 1 << (fit.bit_length() - 1))


def matmul(a: np.ndarray, b: np.ndarray, *, group: int = 1) -> np.ndarray:
    """``a @ b`` for ``a`` of shape ``(samples * group, k)`` (``group`` rows per sample)
    and ``b`` of shape ``(k, n)``, in fixed blocks of samples (see the module docstring)."""
    a = np.ascontiguousarray(a)  # one memory layout: full and padded blocks take one path
    rows, k = a.shape
    n = b.shape[1]
    per_block = block_samples(k, n, group) * group
    out = np.empty((rows, n), dtype=np.result_type(a, b))

    def block(lo: int) -> Callable[[], None]:
        hi = lo + per_block

        def task() -> None:
            if hi <= rows:
                np.matmul(a[lo:hi], b, out=out[lo:hi])
            else:  # the last block, padded with zero samples to the block's fixed shape
                padded = np.zeros((per_block, k), dtype=a.dtype)
                padded[: rows - lo] = a[lo:]
                out[lo:] = (padded @ b)[: rows - lo]

        return task

    _run([block(lo) for lo in range(0, rows, per_block)], 2.0 * rows * k * n)
    return out


def _chunks(rows: int, group: int) -> list[slice]:
    step = CHUNK * group
    return [slice(lo, min(lo + step, rows)) for lo in range(0, rows, step)]


def tree_sum(parts: list[np.ndarray]) -> np.ndarray:
    """The sum of ``parts`` in a fixed pairwise tree: the first power of two of them, then
    the rest (so the tree depends only on how many parts there are)."""
    if len(parts) == 1:
        return parts[0]
    half = 1 << ((len(parts) - 1).bit_length() - 1)
    return tree_sum(parts[:half]) + tree_sum(parts[half:])


def matmul_tn(a: np.ndarray, b: np.ndarray, *, group: int = 1) -> np.ndarray:
    """``a.T @ b`` for ``a`` of shape ``(samples * group, k)`` and ``b`` of shape
    ``(samples * group, n)``: a sum over samples, by chunks of :data:`CHUNK` samples added
    in a fixed tree, each chunk in blocks of :data:`COLS` output columns."""
    rows, k = a.shape
    n = b.shape[1]
    chunks = _chunks(rows, group)
    if not chunks:
        return np.zeros((k, n), dtype=np.result_type(a, b))
    parts = [np.empty((k, n), dtype=np.result_type(a, b)) for _ in chunks]

    def block(part: np.ndarray, rows_: slice, cols: slice) -> Callable[[], None]:
        def task() -> None:
            np.matmul(a[rows_].T, b[rows_, cols], out=part[:, cols])

        return task

    tasks = [
        block(part, chunk, slice(lo, lo + COLS))
        for part, chunk in zip(parts, chunks)
        for lo in range(0, n, COLS)
    ]
    _run(tasks, 2.0 * rows * k * n)
    return tree_sum(parts)


def sum_rows(a: np.ndarray, *, group: int = 1) -> np.ndarray:
    """``a.sum(axis=0)`` for ``a`` of shape ``(samples * group, ...)``, by chunks of
    :data:`CHUNK` samples added in the same fixed tree as :func:`matmul_tn`."""
    chunks = _chunks(a.shape[0], group)
    if not chunks:
        return a.sum(axis=0)
    return tree_sum([a[chunk].sum(axis=0) for chunk in chunks])
