"""Save and load models, params, state, optimizer state and history. No pickle, ever.

``save(path, model, params, ...)`` writes a model and its trees to one file and
``load(path)`` reads it back as a :class:`Checkpoint`. Two formats, chosen by the file
name: ``.npz`` (arrays stored by NumPy with ``allow_pickle=False``, plus one JSON
document) and ``.json`` (one human-readable file); both are strict JSON. Every file
carries a format name, a version and a SHA-256 digest of its content. Load is safe on
any file and bounded by its size (:func:`load_budget`); save checks everything load
would refuse, or not give back as it was, before it writes a byte, and writes
atomically. docs/file-format.md describes the files and what is guaranteed.

One module per job; this package re-exports their public names:

- :mod:`funcnn.io.registry`: the names a file may use (:func:`register`) and layer
  specs (:func:`to_spec`, :func:`from_spec`).
- :mod:`funcnn.io.codec`: params, state and optimizer-state trees as tagged JSON, and
  history and metadata as JSON values (the ``$float`` and ``$dict`` tags).
- :mod:`funcnn.io.files`: atomic writes, the .npz and .json readers and the load budget
  (:func:`load_budget`, :func:`parse_json`).
- :mod:`funcnn.io.architecture`: the check that the params fit the model, one example
  through each layer, and that a model that keeps state is saved with it.
- :mod:`funcnn.io.saving`: :func:`save`, :func:`load`, :class:`Checkpoint`,
  :func:`provenance`.
"""

from funcnn.io.codec import MAX_DEPTH
from funcnn.io.files import LOAD_FACTOR, LOAD_FLOOR, MAX_META_BYTES, load_budget, parse_json
from funcnn.io.registry import from_spec, register, to_spec
from funcnn.io.saving import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    LoadError,
    load,
    provenance,
    save,
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
