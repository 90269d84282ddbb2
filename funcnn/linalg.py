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
  runs in blocks. In inference mode they hold a fixed number of samples, the last
  one padded with zero samples, so every BLAS call has one fixed shape and each
  sample's row depends only on that sample (and on its place in its block, which
  does not change its bits with NumPy's OpenBLAS: the tests check it). In training
  mode each chunk of :data:`CHUNK` samples is one product or a fixed cut of it, so
  the blocks depend on the batch's size alone.
- A sum over the batch (a weight gradient ``x.T @ dy``, a bias gradient, batch
  statistics) runs over fixed chunks of :data:`CHUNK` samples counted from the
  first sample of the batch, and adds the chunks' results in a fixed pairwise
  tree. The chunks are also the unit that :mod:`funcnn.distributed` hands to
  processes, so N processes add the same numbers in the same order as one.
- The blocks run on funcnn's thread pool (:func:`set_workers`; by default one
  worker per core this process may use), each with the BLAS held to one thread.
  The worker count decides only which thread computes a block, never a result.

Small products (under :data:`INLINE_FLOPS`) run in the calling thread: handing
them to another thread costs more than they do. The products and sums are pure; the
process-wide settings are the worker count and the BLAS held to one thread, which
``fit``, ``predict`` and ``evaluate`` give back when they end (:func:`blas_held`).
Another module changes what this one does only through arguments and a context
value (:func:`across_processes`), never by setting its globals.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

ROWS = 32
"""The most samples in one (padded) block of an inference-mode product."""
BLOCK_FLOPS = 2 * 32 * 784 * 512
"""An inference block holds as many samples as fit this many flops (a power of two)."""
CHUNK = 256
"""Samples per chunk of a sum over the batch; the most samples in a training-mode block."""
TRAIN_BLOCK_FLOPS = 4 * BLOCK_FLOPS
"""A training block holds as many samples as fit this many flops (a power of two)."""
COLS = 256
"""About this many output columns per block of a product."""
INLINE_FLOPS = 2**25
"""Products smaller than this run in the calling thread."""
MIN_TASKS = 2
"""Training products and weight gradients are cut into at least this many blocks where
their shapes allow (a constant: the cut never depends on the worker count)."""


def settings() -> dict[str, int]:
    """The block sizes and cuts that the bits of a product or a batch sum depend on, by name
    (what a saved file's provenance records). :data:`INLINE_FLOPS` is not one: it decides
    only which thread computes a product."""
    return {
        "ROWS": ROWS,
        "BLOCK_FLOPS": BLOCK_FLOPS,
        "CHUNK": CHUNK,
        "TRAIN_BLOCK_FLOPS": TRAIN_BLOCK_FLOPS,
        "COLS": COLS,
        "MIN_TASKS": MIN_TASKS,
    }


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
    """Use ``n`` threads for funcnn's products (None: the default, below).

    Changes speed only: every result has the same bits with any number of workers.
    The default is ``FUNCNN_WORKERS`` from the environment if set, else the cores this
    process may run on (:func:`available_cores`), at most ``OMP_NUM_THREADS`` where that
    is set: joblib's workers (``GridSearchCV(n_jobs=2)``), Dask's and batch schedulers
    set it to the share of the cores each process should use.
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
    global _workers
    if _workers is not None:
        return _workers
    env = os.environ.get("FUNCNN_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"FUNCNN_WORKERS must be a positive int, got {env!r}")
        _workers = int(env)
        return _workers
    _workers = available_cores()
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) >= 1:  # what joblib, Dask and schedulers allow a process
        _workers = min(_workers, int(limit))
    return _workers


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:  # the calling thread is a worker too
            _pool = ThreadPoolExecutor(max(1, workers() - 1), thread_name_prefix="funcnn")
        return _pool


# ---------------------------------------------------------------- the BLAS held to one thread

_blas: list[Any] | None = None
_blas_saved: list[tuple[Any, int]] = []  # (library, its thread count) while funcnn holds it
_blas_lock = threading.RLock()
_blas_users = 0  # the calls inside blas_held() now, in every thread
_release_at_exit = False  # whether the last of them gives the BLAS its threads back


def _blas_libraries() -> list[Any]:
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _blas


def hold_blas_to_one_thread() -> None:
    """Set every loaded BLAS to one thread, for the whole process, until
    :func:`release_blas` (or the end of the outermost :func:`blas_held` that found it free).

    funcnn's products call this before their BLAS calls (changing the BLAS's thread
    count back and forth around each product costs more than the product), so a layer
    called outside ``fit``, ``predict`` and ``evaluate`` holds it from then on.
    """
    if _blas_saved:  # held already: the products' path, with no lock
        return
    with _blas_lock:
        if _blas_saved:
            return
        for lib in _blas_libraries():
            _blas_saved.append((lib, lib.get_num_threads()))
            lib.set_num_threads(1)


def release_blas() -> None:
    """Give every BLAS the thread count it had before funcnn held it to one (until funcnn's
    next product, which holds it again)."""
    with _blas_lock:
        while _blas_saved:
            lib, n = _blas_saved.pop()
            lib.set_num_threads(n)


@contextmanager
def blas_held() -> Iterator[None]:
    """The BLAS held to one thread inside the block, and given back the thread counts it had
    when the outermost such block began (in any thread) when that block ends.

    ``fit``, ``predict`` and ``evaluate`` run in it, so that a user's own ``x @ w`` after
    them runs on the BLAS's threads as before. Re-entrant: a ``predict`` inside ``fit``
    changes nothing. The thread count is the process's (OpenBLAS's
    ``openblas_set_num_threads_local`` changes other threads' count too in NumPy's
    build), so while one thread is inside, every thread's BLAS calls run on one thread.
    """
    global _blas_users, _release_at_exit
    with _blas_lock:
        if _blas_users == 0:
            _release_at_exit = not _blas_saved  # held by a product before: leave it held
            hold_blas_to_one_thread()
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _release_at_exit:
                release_blas()


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


_alone_until = 0.0  # perf_counter time until which products run on the calling thread alone
_late_in_a_row = 0  # products in a row whose helper threads had not started by their end
BUSY_PAUSE = 0.1
"""Seconds to run alone after products found the other cores busy (then try again)."""
BUSY_EVIDENCE = 3
"""Products in a row that must find the other cores busy before they run alone. One
helper thread waking late (a virtual CPU rescheduled) says little on an idle machine,
and a long pause lets the idle cores sleep deeper, so that the next wake-up is late
too: measured on a 2-core VM, with a 1 s pause after one late product, 41-58% of an
idle MLP training step's products ran alone; with 0.1 s after three in a row, 2-4%
(and under load the CNN step was no slower)."""


ELEMENTWISE_MIN = 2**17
"""Elementwise work on fewer elements than this stays on the calling thread."""


def run_elementwise(tasks: Sequence[Callable[[], None]], elements: int) -> None:
    """Run independent tasks, each writing its own slice of fresh arrays (an optimizer's
    update cut into spans), on funcnn's threads when they cover at least
    :data:`ELEMENTWISE_MIN` elements, else on the calling thread. Which thread runs a
    task never changes a result."""
    _run(list(tasks), elements >= ELEMENTWISE_MIN)


POINTWISE_SPAN = 2**18
""":func:`pointwise` cuts its work into spans of this many bytes of its first input (64 Ki
float32 elements): a span's inputs, output and temporaries stay near one core's L2 cache,
where NumPy's passes run 2-3x faster than over arrays that spill to memory (measured:
Gelu's forward and backward over (32, 64, 256) float32 took 1.5 and 2.9 ms in spans of
64 Ki on two threads, 3.6 and 6.7 ms as one call, on a 2-core Xeon with 2 MiB of L2)."""


def pointwise(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """``fn(*arrays)`` for an ``fn`` that computes each output element from the elements
    at the same position of its inputs (NumPy ufuncs with scalars: an activation and its
    derivative), run over spans of :data:`POINTWISE_SPAN` bytes of the first input, on
    funcnn's threads when there are at least :data:`ELEMENTWISE_MIN` elements. Each goes through
    the same operations as in one call, so the bits are one call's; inputs of different
    shapes, non-contiguous or small ones get that one call."""
    first = arrays[0]
    size = first.size
    step = max(1, POINTWISE_SPAN // max(1, first.itemsize))
    if size < 2 * step or not all(
        type(a) is np.ndarray and a.shape == first.shape and a.flags.c_contiguous for a in arrays
    ):
        return fn(*arrays)
    flat = [a.reshape(-1) for a in arrays]
    out = np.empty(size, np.asarray(fn(*(f[:1] for f in flat))).dtype)

    def span(lo: int, hi: int) -> None:
        out[lo:hi] = fn(*(f[lo:hi] for f in flat))

    edges = range(0, size, step)
    run_elementwise([functools.partial(span, lo, min(lo + step, size)) for lo in edges], size)
    return out.reshape(first.shape)


def _run(tasks: list[Callable[[], None]], worth_threads: bool) -> None:
    """Run the tasks (each writes its own part of an output) on the calling thread and, when
    ``worth_threads``, funcnn's pool: every thread takes the next task until none is left.

    Which thread runs a task never changes a result, so this may adapt to the machine:
    when, in :data:`BUSY_EVIDENCE` products in a row, no helper thread even started while
    this thread ran two or more tasks, the other cores are busy (other programs), and
    handing work to threads that wait for a core only adds latency; products then run
    on this thread alone for :data:`BUSY_PAUSE`.
    """
    global _alone_until, _late_in_a_row
    hold_blas_to_one_thread()
    n = workers()
    if len(tasks) == 1 or not worth_threads or n == 1 or time.perf_counter() < _alone_until:
        for task in tasks:
            task()
        return
    todo = iter(tasks)  # next() on a list iterator is atomic under the GIL
    mine = 0

    def drain() -> None:
        for task in todo:
            task()

    helpers = [_executor().submit(drain) for _ in range(min(n, len(tasks)) - 1)]
    for task in todo:  # the calling thread drains too
        task()
        mine += 1
    late = 0
    for helper in helpers:  # a helper that has not started by now is not needed
        if helper.cancel():
            late += 1
        else:
            helper.result()
    if late and mine >= 2 and mine == len(tasks):
        _late_in_a_row += 1
        if _late_in_a_row >= BUSY_EVIDENCE:
            _alone_until, _late_in_a_row = time.perf_counter() + BUSY_PAUSE, 0
    else:
        _late_in_a_row = 0


# ---------------------------------------------------------------- sums across processes

Gather = Callable[[list[Any]], list[Any]]
"""Every process's chunk results of a batch sum, in chunk order, from this process's."""

# (gather, samples in the whole batch) while this process computes a part of a batch. A
# context variable: each thread (and each asyncio task) sees only what its own caller set.
_across: ContextVar[tuple[Gather, int] | None] = ContextVar("funcnn_across", default=None)


@contextmanager
def across_processes(gather: Gather, total_samples: int) -> Iterator[None]:
    """Inside the block, this thread's products hold only some chunks of a batch of
    ``total_samples`` samples (whole chunks, in rank order): batch sums hand this process's
    chunk results to ``gather``, which returns every process's, and add those in the
    one-process tree. :mod:`funcnn.distributed` sets it around each step, with a ``gather``
    that calls MPI; this module never does."""
    token = _across.set((gather, total_samples))
    try:
        yield
    finally:
        _across.reset(token)


def batch_samples(local: int) -> int:
    """The samples in the whole batch: ``local`` in one process, the total across processes
    inside :func:`across_processes`."""
    across = _across.get()
    return local if across is None else across[1]


def _all_parts(parts: list[Any]) -> list[Any]:
    """Every process's chunk results in chunk order (this process's alone outside
    :func:`across_processes`)."""
    across = _across.get()
    return parts if across is None else across[0](parts)


def sum_chunks(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    """The sum over a batch of its chunks' results: ``parts`` holds this process's, one per
    chunk of :data:`CHUNK` samples in chunk order; every process's are added in the fixed
    pairwise tree (:func:`tree_sum`), so the bits do not depend on the worker or process
    count. ``empty`` when no process has a chunk. A layer's own batch sum (an embedding's
    scatter-add, say) goes through this to keep the reproducibility contract."""
    parts = _all_parts(parts)
    return tree_sum(parts) if parts else empty


# ---------------------------------------------------------------- products and sums


def block_samples(k: int, n: int, group: int = 1, *, padded: bool = True) -> int:
    """The most samples per block of an ``(samples * group, k) @ (k, n)`` product: a power
    of two set by the shapes of one sample and of ``b`` alone, never by the batch."""
    budget, cap = (BLOCK_FLOPS, ROWS) if padded else (TRAIN_BLOCK_FLOPS, CHUNK)
    fit = max(1, budget // max(2 * k * n * group, 1))
    return min(cap, 1 << (fit.bit_length() - 1))


def cut(n: int, parts: int) -> list[slice]:
    """``range(n)`` cut into ``parts`` (at most) blocks of one width, a multiple of 16."""
    width = -(-n // max(1, parts))
    width = max(16, -(-width // 16) * 16)
    return [slice(lo, min(lo + width, n)) for lo in range(0, n, width)]


def _grid(blocks: int, n: int) -> int:
    """How many column blocks to cut ``n`` output columns into: about ``n / COLS``, more when
    ``blocks`` row blocks would leave fewer than :data:`MIN_TASKS` tasks."""
    parts = max(1, round(n / COLS))
    while blocks * parts < MIN_TASKS and -(-n // (parts * 2)) >= 16:
        parts *= 2
    return parts


def matmul(a: np.ndarray, b: np.ndarray, *, group: int = 1, padded: bool = False) -> np.ndarray:
    """``a @ b`` for ``a`` of shape ``(samples * group, k)`` (``group`` rows per sample)
    and ``b`` of shape ``(k, n)``, in blocks of rows run on funcnn's threads.

    Where the BLAS is row-split invariant for this product's shape (:func:`least_rows`,
    a self-test at first use), a row's bits do not depend on the block it is computed
    in, as long as the block holds at least :func:`least_rows` rows: the product is cut
    into :func:`row_blocks`, as few and as large as the work allows (the last padded with
    zero rows up to the least), so each sample's row is the same in any batch, any split
    and on any worker count.

    Elsewhere (a BLAS whose bits move with the rows, which the self-test finds for some
    tiny shapes): inference products (``padded=True``) cut the batch into blocks of
    :func:`block_samples` and pad the last with zero samples, so every block has one
    fixed shape; training products take each chunk of :data:`CHUNK` samples as one BLAS
    call when it is small (under :data:`INLINE_FLOPS`), else cut it into blocks of at
    most :func:`block_samples` and of about :data:`COLS` columns: the blocks depend on
    the batch's size, never on the worker or thread count.

    A small training product within one chunk is one BLAS call in either case.
    """
    a = np.ascontiguousarray(a)  # one memory layout: full and padded blocks take one path
    rows, k = a.shape
    n = b.shape[1]
    flops = 2.0 * rows * k * n
    one_chunk = not padded and rows <= CHUNK * group
    if one_chunk and flops < THREAD_FLOPS:
        hold_blas_to_one_thread()  # one small chunk: one BLAS call (the blocks agree)
        return a @ b
    tested = least_rows(k, n, a.dtype, b) if rows else None
    if tested is None:
        if one_chunk and flops < INLINE_FLOPS:
            hold_blas_to_one_thread()
            return a @ b
        return _matmul_fixed(a, b, group, padded)
    least, most = tested
    if one_chunk and rows < least:  # a small batch in training: as it is, one BLAS call
        hold_blas_to_one_thread()
        return a @ b
    out = np.empty((rows, n), dtype=np.result_type(a, b))
    blocks = row_blocks(rows, k, n, least, most)

    def block(lo: int, hi: int) -> Callable[[], None]:
        def task() -> None:
            if hi - lo >= least:
                np.matmul(a[lo:hi], b, out=out[lo:hi])
            else:  # too few rows for the tested kernel: pad with zero rows
                full = np.zeros((least, k), dtype=a.dtype)
                full[: hi - lo] = a[lo:hi]
                out[lo:hi] = (full @ b)[: hi - lo]

        return task

    tasks = [block(lo, hi) for lo, hi in blocks]
    if len(tasks) == 1:
        hold_blas_to_one_thread()
        tasks[0]()
        return out
    _run(tasks, True)
    return out


THREAD_FLOPS = 2**24
"""Products proven row-split invariant are cut for threads from this many flops (about
0.2 ms on one core): their blocks' bits are those of one call, so the cut costs nothing
but the hand-off. Below it, a hand-off per product costs more than it saves (a recurrent
step's 8.4 MFLOP product ran at 139 us on two threads against 92 us on one). (Products
not proven invariant wait for :data:`INLINE_FLOPS`.)"""
TARGET_FLOPS = 2**28
"""A product is cut into about one block of rows per this many flops (at least
:data:`MIN_TASKS` where it is worth threads): large blocks run at the BLAS's best."""
QUANTUM = 16
"""Blocks of rows hold a multiple of this many rows (but the last)."""


def row_blocks(rows: int, k: int, n: int, least: int, most: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` rows of each block of an ``(rows, k) @ (k, n)`` product whose
    BLAS is row-split invariant for blocks of ``least`` to ``most`` rows: as few blocks as
    :data:`TARGET_FLOPS` allows, at least :data:`MIN_TASKS` when the product is worth
    threads (:data:`THREAD_FLOPS`), each a multiple of :data:`QUANTUM` rows, at least
    ``least`` and at most ``most`` where ``most`` is past :data:`BIG_MNK`. Set by the
    shapes alone, never by the worker count (and the bits do not depend on them anyway:
    that is what :func:`least_rows` found)."""
    flops = 2.0 * rows * k * n
    parts = 1 if flops < THREAD_FLOPS else max(MIN_TASKS, int(-(-flops // TARGET_FLOPS)))
    units = -(-rows // QUANTUM)
    parts = max(1, min(parts, units, -(-rows // least)))
    base, extra = divmod(units, parts)  # the quanta shared out as evenly as they go
    widths = [max(least, (base + (i < extra)) * QUANTUM) for i in range(parts)]
    if most * k * n < BIG_MNK:  # the self-test's reference stopped short of the big kernel
        widths = [most] * -(-rows // most) if max(widths) > most else widths
    blocks, lo = [], 0
    for width in widths:
        if lo < rows:
            blocks.append((lo, min(lo + width, rows)))
            lo += width
    return blocks


_least: dict[tuple[Any, ...], tuple[int, int] | None] = {}
_least_lock = threading.Lock()
LEAST_CAP = 1024
"""The most rows a block may need for the row-split invariance (beyond it: fixed blocks)."""
BIG_MNK = 2**21
"""Rows times ``k`` times ``n`` past which a BLAS takes its general kernel (OpenBLAS's
"small matrix" kernels stop at 10**6): the self-test's reference products reach it."""
SELF_TEST_BYTES = 2**27
"""The most memory one operand of the self-test may take (larger products: fixed blocks)."""


def _layout(b: np.ndarray) -> str:
    return "C" if b.flags.c_contiguous else "F" if b.flags.f_contiguous else "strided"


def least_rows(k: int, n: int, a_dtype: Any, b: np.ndarray) -> tuple[int, int] | None:
    """``(least, most)``: the rows a block of an ``(m, k) @ b`` product (``b`` of shape
    ``(k, n)``, its dtype and memory layout) must hold for the BLAS in use to give each
    row the same bits in a block of any size in that range; None where no block size up
    to :data:`LEAST_CAP` does.

    A BLAS picks its kernel from the product's shape: OpenBLAS computes a row of a big
    product the same way whatever the rows around it (its one-thread driver cuts rows,
    never the sum over ``k``), but a one-row product goes to GEMV and a small one to a
    "small matrix" kernel, each adding in another order. So this self-test, run once per
    shape, dtype and layout in a process (cached), takes block sizes ``q`` = 1, 2, 4, ...
    in turn and compares the bits of blocks of ``q`` to ``q + 15`` and ``2q + 3`` rows
    with one product of ``most`` rows, past :data:`BIG_MNK` (at most 2**15 rows, or all
    those blocks' rows): the first ``q`` whose blocks all agree is ``least``."""
    key = (k, n, np.dtype(a_dtype).str, b.dtype.str, _layout(b))
    found = _least.get(key, False)
    if found is not False:
        return found  # type: ignore[return-value]
    with _least_lock:
        if key not in _least:
            _least[key] = _self_test(k, n, np.dtype(a_dtype), b.dtype, _layout(b))
        return _least[key]


def _self_test(
    k: int, n: int, a_dtype: np.dtype, b_dtype: np.dtype, layout: str
) -> tuple[int, int] | None:
    if n == 1:  # NumPy hands one column to GEMV, which adds a group's leftover rows apart
        return None
    if max(a_dtype.itemsize, b_dtype.itemsize) * k * max(n, _rows(LEAST_CAP)) > SELF_TEST_BYTES:
        return None  # a product too large to test cheaply takes the fixed blocks
    hold_blas_to_one_thread()
    gen = np.random.default_rng(20261204)
    big = min(2**15, -(-BIG_MNK // max(1, k * n)))
    b = gen.standard_normal((n, k) if layout == "F" else (k, n)).astype(b_dtype)
    b = b.T if layout == "F" else b
    if layout == "strided":
        b = np.repeat(b, 2, axis=1)[:, ::2]
    a = np.empty((0, k), a_dtype)
    q = 1
    while q <= LEAST_CAP:
        most = max(_rows(q), big)
        if len(a) < most:
            a = np.concatenate([a, gen.standard_normal((most - len(a), k)).astype(a_dtype)])
        ref = a[:most] @ b
        lo, same = 0, True
        for size in _sizes(q):
            if not np.array_equal(a[lo : lo + size] @ b, ref[lo : lo + size]):
                same = False
                break
            lo += size
        if same:
            return q, most
        q *= 2
    return None


def _sizes(q: int) -> list[int]:
    """The block sizes the self-test tries for ``q``: ``q`` to ``q + 15`` (a kernel that
    takes rows in groups, as GEMV's does for one column, adds a group's leftover rows in
    another order: every remainder shows) and ``2q + 3``."""
    return [*range(q, q + 16), 2 * q + 3]


def _rows(q: int) -> int:
    return sum(_sizes(q))


def _matmul_fixed(a: np.ndarray, b: np.ndarray, group: int, padded: bool) -> np.ndarray:
    """:func:`matmul` where the BLAS's bits move with the rows: fixed blocks (see there)."""
    rows, k = a.shape
    n = b.shape[1]
    out = np.empty((rows, n), dtype=np.result_type(a, b))
    most = block_samples(k, n, group, padded=padded)
    blocks: list[tuple[slice, slice]] = []
    if padded:  # blocks set by the shapes alone, as their fixed shape must be
        columns = cut(n, _grid(1, n))
        for lo in range(0, rows, most * group):
            blocks += [(slice(lo, lo + most * group), cols) for cols in columns]
    else:  # per chunk: one product when small, else blocks for MIN_TASKS or more tasks
        for chunk in _chunks(rows, group):
            size = chunk.stop - chunk.start
            if 2.0 * size * k * n < INLINE_FLOPS:
                blocks.append((chunk, slice(0, n)))
                continue
            col_parts = max(1, round(n / COLS))
            wanted = -(-MIN_TASKS // col_parts)
            per = min(most, 1 << max(0, (size // group // wanted).bit_length() - 1)) * group
            for lo in range(chunk.start, chunk.stop, per):
                hi = min(lo + per, chunk.stop)
                blocks += [(slice(lo, hi), cols) for cols in cut(n, col_parts)]
    if len(blocks) == 1 and blocks[0][0].stop == rows:  # the whole product is one block
        hold_blas_to_one_thread()
        return a @ b

    def block(rows_: slice, cols: slice) -> Callable[[], None]:
        def task() -> None:
            if rows_.stop <= rows:
                out[rows_, cols] = a[rows_] @ b[:, cols]
            else:  # the last inference block, padded with zero samples to its fixed shape
                full = np.zeros((rows_.stop - rows_.start, k), dtype=a.dtype)
                full[: rows - rows_.start] = a[rows_]
                out[rows_, cols] = (full @ b[:, cols])[: rows - rows_.start]

        return task

    _run([block(r, c) for r, c in blocks], 2.0 * rows * k * n >= INLINE_FLOPS)
    return out


def _chunks(rows: int, group: int) -> list[slice]:
    step = CHUNK * group
    return [slice(lo, min(lo + step, rows)) for lo in range(0, rows, step)]


def tree_sum(parts: list[np.ndarray]) -> np.ndarray:
    """The sum of ``parts`` in a fixed pairwise tree: the first power of two of them, then
    the rest (so the tree depends only on how many parts there are). The parts must be
    fresh arrays of the caller's: the sums are made in place, in the left operand."""
    if len(parts) == 1:
        return parts[0]
    half = 1 << ((len(parts) - 1).bit_length() - 1)
    left, right = tree_sum(parts[:half]), tree_sum(parts[half:])
    if isinstance(left, np.ndarray) and left.ndim and left.shape == np.shape(right):
        return np.add(left, right, out=left)
    return left + right


def matmul_tn(a: np.ndarray, b: np.ndarray, *, group: int = 1) -> np.ndarray:
    """``a.T @ b`` for ``a`` of shape ``(samples * group, k)`` and ``b`` of shape
    ``(samples * group, n)``: a sum over samples, by chunks of :data:`CHUNK` samples added
    in a fixed tree. A chunk's ``(k, n)`` product is one BLAS call when it is small
    (under :data:`INLINE_FLOPS`), else blocks of columns (and rows) set by ``k`` and
    ``n`` alone."""
    rows, k = a.shape
    n = b.shape[1]
    if _across.get() is None and 0 < rows <= CHUNK * group and 2.0 * rows * k * n < INLINE_FLOPS:
        hold_blas_to_one_thread()  # one small chunk in one process: one BLAS call
        return a.T @ b
    chunks = _chunks(rows, group)
    dtype = np.result_type(a, b)
    parts: list[np.ndarray] = [np.empty(0, dtype)] * len(chunks)
    columns = cut(n, _grid(1, n))
    out_rows = cut(k, _grid(len(columns), k) if len(columns) < MIN_TASKS else 1)

    def whole(i: int, chunk: slice) -> Callable[[], None]:
        def task() -> None:
            parts[i] = a[chunk].T @ b[chunk]

        return task

    def block(part: np.ndarray, rows_: slice, ks: slice, cols: slice) -> Callable[[], None]:
        def task() -> None:
            part[ks, cols] = a[rows_, ks].T @ b[rows_, cols]

        return task

    tasks = []
    for i, chunk in enumerate(chunks):
        if 2.0 * (chunk.stop - chunk.start) * k * n < INLINE_FLOPS:  # small: one product
            tasks.append(whole(i, chunk))
        else:
            parts[i] = np.empty((k, n), dtype)
            tasks += [block(parts[i], chunk, ks, cols) for ks in out_rows for cols in columns]
    _run(tasks, 2.0 * rows * k * n >= INLINE_FLOPS)
    return sum_chunks(parts, np.zeros((k, n), dtype))


def sum_rows(a: np.ndarray, *, group: int = 1) -> np.ndarray:
    """``a.sum(axis=0)`` for ``a`` of shape ``(samples * group, ...)``, by chunks of
    :data:`CHUNK` samples added in the same fixed tree as :func:`matmul_tn`."""
    if _across.get() is None and 0 < a.shape[0] <= CHUNK * group:  # one chunk in one process
        return a.sum(axis=0)
    parts = [a[chunk].sum(axis=0) for chunk in _chunks(a.shape[0], group)]
    return sum_chunks(parts, a.sum(axis=0))


def max_rows(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=0)`` over the whole batch, across processes too (a maximum is exact in
    any order, so no tree is needed)."""
    parts = _all_parts([a.max(axis=0)] if len(a) else [])
    return np.max(parts, axis=0) if parts else np.zeros(a.shape[1:], a.dtype)
