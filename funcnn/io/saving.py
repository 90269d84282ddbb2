"""save and load: a model and its trees in one file, and what load gives back (Checkpoint).

A file is one JSON document (see :mod:`funcnn.io.files` for where it and the arrays
are stored) with the keys ``format`` (``"funcnn"``), ``version``, ``sha256`` (a
SHA-256 digest of the rest of the document and of every array's name, dtype, shape and
bytes), ``model`` (the layer spec, :mod:`funcnn.io.registry`), ``params``, ``state``,
``opt_state`` and ``input_shape`` (trees, :mod:`funcnn.io.codec`), ``history``,
``epoch``, ``metadata`` and ``provenance``. A truncated or tampered file, a wrong
version, or arrays that do not fit the architecture raise :class:`LoadError`.

Save checks everything before a byte is written: what load would refuse (the budget,
the architecture check of :mod:`funcnn.io.architecture`), a model that keeps state saved
without it, and values load would not give back as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from funcnn import linalg, tree
from funcnn import validate as check
from funcnn.io import architecture, files
from funcnn.io.codec import decode, encode, from_json, to_json
from funcnn.io.files import MAX_META_BYTES, META_KEY, Budget
from funcnn.io.registry import from_spec, to_spec
from funcnn.layers.base import Layer
from funcnn.version import __version__

FORMAT = "funcnn"
FORMAT_VERSION = 1


@attrs.frozen
class Checkpoint:
    """What :func:`load` returns."""

    model: Layer
    params: Any
    state: Any = None
    opt_state: Any = None
    history: dict[str, Any] | None = None
    epoch: int | None = None
    input_shape: Any = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    provenance: dict[str, Any] | None = None  # what made the bits (None in older files)


class LoadError(ValueError):
    """A file :func:`load` refuses (truncated, corrupted, foreign or hostile); names the file."""


def _digest(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """The SHA-256 of the document (keys sorted) and of each array's name, dtype, shape and
    bytes, in the order of their names."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


_KEYS = (
    "format", "version", "sha256", "model", "params", "state", "opt_state", "history",
    "epoch", "input_shape", "metadata",
)  # fmt: skip


def save(
    path: str | os.PathLike[str],
    model: Layer,
    params: Any,
    *,
    state: Any = None,
    opt_state: Any = None,
    history: Any = None,
    epoch: int | None = None,
    input_shape: Any = None,
    metadata: dict[str, Any] | None = None,
    check_layers: bool = True,
) -> Path:
    """Write a model and its trees to ``path`` atomically (``.json``: human-readable).

    ``history`` may be a History or a dict of lists; ``history`` and ``metadata`` hold
    JSON values (non-finite floats included), which load gives back exactly. A model
    that keeps state (BatchNorm) needs its ``state``. ``input_shape`` (one example's
    shape) lets :func:`load` check that the params fit the architecture. Everything is
    checked before a byte is written: what :func:`load` would refuse, or not give back
    as it was, raises TypeError or ValueError and leaves the file as it was.

    ``check_layers=False`` skips running each layer on one example, the costly part of
    the architecture check, for a caller that has checked params of the same structure,
    shapes and dtype against this ``model`` and ``input_shape`` already (ModelCheckpoint,
    after its first save of a fit); the rest is checked still. Params that do not fit
    then make a file that load refuses.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a funcnn Layer, got {type(model).__name__}")
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    history_dict = history.to_dict() if hasattr(history, "to_dict") else history
    if history_dict is not None and not (
        isinstance(history_dict, dict)
        and all(isinstance(v, (list, tuple)) for v in history_dict.values())
    ):
        raise TypeError(f"history must be a History or a dict of lists, got {history!r:.80}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    if epoch is not None:
        epoch = check.non_negative_int("epoch", epoch)
    shape = None
    if input_shape is not None:
        try:
            shape = _shape_tree(input_shape)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"cannot save to {path}: input_shape must be one example's shape (a tuple of "
                f"ints) or a tuple of them, got {input_shape!r:.80}"
            ) from e
    architecture.check_state(model, state, shape)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": to_spec(model),
        "input_shape": None if shape is None else encode(shape, {}),
        "params": encode(params, arrays),
        "state": encode(state, arrays),
        "opt_state": encode(opt_state, arrays),
        "history": None if history_dict is None else to_json(history_dict, "history"),
        "epoch": epoch,
        "metadata": to_json(metadata or {}, "metadata"),
        "provenance": provenance(),
    }
    if path.suffix.lower() == ".json":
        meta["arrays"] = {k: files.json_entry(a) for k, a in arrays.items()}
        meta["sha256"] = _digest({k: v for k, v in meta.items() if k != "arrays"}, arrays)
        text = json.dumps(meta, indent=1, allow_nan=False).encode()
        budget = Budget(len(text))  # what load will spend on this file, step by step
        steps = [(len(text), "reading it"), (files.json_cost(text), "parsing the file")]

        def write(f: Any) -> None:
            f.write(text)

    else:
        meta["sha256"] = _digest(meta, arrays)
        document = json.dumps(meta, allow_nan=False)
        if 4 * len(document) + 256 > MAX_META_BYTES:
            raise ValueError(
                f"cannot save to {path}: its metadata would take {4 * len(document):,} bytes, "
                f"more than the {MAX_META_BYTES:,} load reads (a history or metadata too long)"
            )
        payload = {META_KEY: np.array(document), **arrays}
        budget = Budget(sum(a.nbytes for a in payload.values()))  # the file holds more
        steps = [(4 * len(document), "unpacking its metadata")] * 2  # and decoding it
        steps.append((files.json_cost(document), "parsing its metadata"))

        def write(f: Any) -> None:
            np.savez(f, **payload)  # type: ignore[arg-type]

    steps += [(a.nbytes, f"array {k!r}") for k, a in arrays.items()]
    try:
        for nbytes, what in steps:
            budget.spend(nbytes, what)
        if shape is not None:  # what load will check, checked before a byte is written
            architecture.check_fit(model, params, state, shape, budget, run_layers=check_layers)
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"cannot save to {path}: {e}") from e
    files.atomic_write(path, write)
    return path


def _shape_tree(shape: Any) -> Any:
    if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], (tuple, list)):
        return tuple(_shape_tree(s) for s in shape)
    return tuple(int(s) for s in shape)


def provenance() -> dict[str, Any]:
    """What the bits of a result depend on: funcnn's and NumPy's versions, the BLAS and its
    CPU kernel, and funcnn's block sizes. Saved in every file, so that a comparison across
    machines can say why two runs' bits differ."""
    return {
        "funcnn": __version__,
        "numpy": np.__version__,
        "blas": linalg.blas_description(),
        "blocks": linalg.settings(),
    }


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read what :func:`save` wrote. Safe on any file: anything truncated, tampered, foreign
    or hostile raises :class:`LoadError` (a ValueError) naming the file; the only other
    errors are the OS's (FileNotFoundError, PermissionError, IsADirectoryError). Time and
    memory are bounded by the file's size: it allocates at most
    :func:`funcnn.io.files.load_budget` of it, counted before each step (see
    :mod:`funcnn.io.files`); no code in the file is ever run."""
    path = Path(path)
    try:
        return _load(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError, LoadError):
        raise
    except (RecursionError, MemoryError) as e:
        raise LoadError(f"{path}: too deep or too large to load ({type(e).__name__})") from e
    except Exception as e:  # whatever a damaged file makes a parser raise (NumPy's header
        # parser raises SyntaxError): the file is refused, with the cause attached
        raise LoadError(f"{path}: {e}") from e


def _load(path: Path) -> Checkpoint:
    meta, arrays, budget = files.read(path)
    if meta.get("format") != FORMAT:
        raise ValueError("it is not a funcnn file")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"it has format version {meta.get('version')!r:.40}; this funcnn reads version "
            f"{FORMAT_VERSION}"
        )
    missing = [key for key in _KEYS if key not in meta]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    expected = meta.pop("sha256")
    if expected != _digest(meta, arrays):
        raise ValueError("it fails its SHA-256 check: the file was modified or damaged")
    model = from_spec(meta["model"])
    if not isinstance(model, Layer):
        raise ValueError("the model spec does not describe a layer")
    params = tree.freeze(decode(meta["params"], arrays))
    state = tree.freeze(decode(meta["state"], arrays))
    epoch = meta["epoch"]
    history = None if meta["history"] is None else from_json(meta["history"])
    metadata = from_json(meta["metadata"])
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise ValueError(f"its epoch is {epoch!r:.40}, not an int >= 0")
    if history is not None and not (
        isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
    ):
        raise ValueError("its history is not a JSON object of lists")
    if not isinstance(metadata, dict):
        raise ValueError("its metadata is not a JSON object")
    input_shape = None if meta["input_shape"] is None else decode(meta["input_shape"], {})
    if input_shape is not None:
        architecture.check_fit(model, params, state, input_shape, budget)
    return Checkpoint(
        model=model,
        params=params,
        state=state,
        opt_state=tree.freeze(decode(meta["opt_state"], arrays)),
        history=history,
        epoch=epoch,
        input_shape=input_shape,
        metadata=metadata,
        provenance=meta.get("provenance"),
    )
