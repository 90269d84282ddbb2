"""Save and load models, params, state, optimizer state and history. No pickle, ever.

The whole of it lives in :mod:`funcnn.io.saving` for now; this package re-exports it.
"""

from funcnn.io.saving import (
    FORMAT,
    FORMAT_VERSION,
    LOAD_FACTOR,
    LOAD_FLOOR,
    MAX_DEPTH,
    MAX_META_BYTES,
    Checkpoint,
    LoadError,
    from_spec,
    load,
    load_budget,
    parse_json,
    provenance,
    register,
    save,
    to_spec,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LOAD_FACTOR",
    "LOAD_FLOOR",
    "MAX_DEPTH",
    "MAX_META_BYTES",
    "Checkpoint",
    "LoadError",
    "from_spec",
    "load",
    "load_budget",
    "parse_json",
    "provenance",
    "register",
    "save",
    "to_spec",
]
