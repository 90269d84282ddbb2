"""Keep glibc's malloc from handing training-step memory back to the kernel every step.

Why: a functional training step allocates its outputs afresh (new params, new
optimizer moments, gradients, activations) and frees the previous step's. With
glibc's default settings an array above the *mmap threshold* (128 KiB, raised
adaptively up to the largest block freed so far) gets its own ``mmap`` and is
unmapped when freed, and free memory above the *trim threshold* at the top of the
heap is returned with ``brk``. Either way the next step touches brand-new pages:
one page fault per 4 KiB. Measured on a 2-core VM (``benchmarks/``): an MLP step at
batch 128 took 768 page faults and 6.6 ms (3.9 ms without them); a small CNN step
5,600 page faults and 42 ms (23 ms without them).

What: :func:`tune_allocator` sets the two thresholds to the ceilings that glibc's
own adaptive rule can reach (mmap threshold 32 MiB, trim threshold twice that), so
arrays below 32 MiB are recycled from the heap and up to 64 MiB of free heap is kept
for the next step. It changes how fast memory is reused, never a result, and
applies only where the C library is glibc; elsewhere it does nothing.

It is a setting of the whole process, so funcnn never makes it on its own
(importing funcnn changes nothing): a training script calls it once, as the
examples and benchmarks do::

    funcnn.allocator.tune_allocator()

``FUNCNN_MALLOC_TUNING=0`` in the environment turns that call into a no-op (to
time a script both ways without editing it). Settings of your own (the
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``/``MALLOC_TOP_PAD_``/
``MALLOC_MMAP_MAX_`` environment variables, or ``glibc.malloc`` tunables in
``GLIBC_TUNABLES``) are left alone.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc's adaptive rule pairs with it

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3

_USER_SETTINGS = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)

_status = "not tuned yet: call tune_allocator()"


def status() -> str:
    """One line saying what :func:`tune_allocator` did in this process (and why)."""
    return _status


def _glibc_version() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; fails off glibc
    except (AttributeError, ValueError, OSError):
        return None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring).

    Returns True if the settings were applied now or before, False where they were
    not: another C library, ``FUNCNN_MALLOC_TUNING=0``, or malloc settings of the
    user's own in the environment. :func:`status` says which.
    """
    global _status
    if _status.startswith("tuned"):
        return True
    if os.environ.get("FUNCNN_MALLOC_TUNING", "1").strip() == "0":
        _status = "glibc defaults: FUNCNN_MALLOC_TUNING=0"
        return False
    own = [name for name in _USER_SETTINGS if name in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        own.append("GLIBC_TUNABLES")
    if own:
        _status = f"left alone: the environment sets {', '.join(own)}"
        return False
    version = _glibc_version()
    if not version or not version.startswith("glibc"):
        _status = f"left alone: the C library is not glibc ({version or 'unknown'})"
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ):
        _status = f"left alone: {version} refused mallopt"
        return False
    _status = (
        f"tuned ({version}): mmap threshold {MMAP_THRESHOLD >> 20} MiB, "
        f"trim threshold {TRIM_THRESHOLD >> 20} MiB"
    )
    return True
