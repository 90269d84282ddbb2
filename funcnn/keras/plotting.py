"""Keras' ``keras.utils.plot_model``: a model's layers as boxes and its graph as arrows,
drawn with funcnn's own figures (:mod:`funcnn.plot`; no pydot or graphviz needed).

One box per input and per layer (a nested model is one box), arrows from each layer's
inputs to it: a chain for a ``Sequential``, the graph of a functional model (several
inputs, branches and merges included). The layers are placed in ranks, each layer one
rank below the deepest of its inputs, from the top (``rankdir="TB"``) or the left
("LR"; "BT" and "RL" the other way). The file is written whole or not at all
(:func:`funcnn.io.files.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from funcnn import plot
from funcnn import validate as check
from funcnn.io.files import atomic_write
from funcnn.keras.base import symbolic_shape
from funcnn.layers.base import is_shape_tuple
from funcnn.layers.masking import is_masked_shape

__all__ = ["plot_model"]

_FONT = 9.0  # points
_CHAR = 0.6 * _FONT / 72  # a monospace character's width, inches
_LINE = 1.35 * _FONT / 72  # a line's height, inches
_GAP = (0.45, 0.5)  # between boxes across and along the arrows, inches
_MARGIN = 0.3  # around the drawing, inches
_RANKDIRS = ("TB", "LR", "BT", "RL")


def _shape_text(shape: Any) -> str:
    """A shape as Keras prints it, with the batch axis: ``(None, 64)``; several as a list."""
    if is_masked_shape(shape):  # a masked sequence: the values' shape, as Keras shows it
        shape = shape[0]
    if is_shape_tuple(shape):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return str((None, *shape))


def _nodes(model: Any) -> tuple[list[tuple[str, str, Any]], list[tuple[int, ...]], list[Any]]:
    """``(name, class, layer or None)`` per node (the inputs first), each node's parents,
    and each node's output shape."""
    specs = list(model.layers)
    core = model.model
    nodes: list[tuple[str, str, Any]] = []
    parents: list[tuple[int, ...]] = []
    if model._wiring is None:  # a Sequential: one input, a chain
        shapes = list(symbolic_shape(core.input_shapes, model.input_shape, "plot_model"))
        if specs and type(specs[0]).__name__ == "InputLayer":
            shapes = shapes[1:]  # its InputLayer is the input's box
        else:
            nodes.append(("input_layer", "InputLayer", None))
        nodes += [(spec.name, type(spec).__name__, spec) for spec in specs]
        parents = [(), *((i,) for i in range(len(nodes) - 1))]
        return nodes, parents, shapes
    wiring_parents, inputs, _ = model._wiring
    names = ["input_layer"] + [f"input_layer_{i}" for i in range(1, inputs)]
    nodes += [(name, "InputLayer", None) for name in names]
    nodes += [(spec.name, type(spec).__name__, spec) for spec in specs]
    parents += [() for _ in range(inputs)]
    parents += [tuple(p) for p in wiring_parents]
    return nodes, parents, list(symbolic_shape(core._shapes, model.input_shape, "plot_model"))


def _label(
    node: tuple[str, str, Any],
    inputs: list[Any],
    output: Any,
    options: dict[str, bool],
) -> list[str]:
    """The lines of one node's box."""
    name, kind, spec = node
    if kind == "Wrap" and spec is not None:  # a funcnn layer in a Keras model
        kind = f"{spec.layer!r:.40}"
    lines = [f"{name} ({kind})" if options["show_layer_names"] else kind]
    if options["show_shapes"]:
        shown = inputs[0] if len(inputs) == 1 else tuple(inputs) if inputs else output
        lines += [f"Input shape: {_shape_text(shown)}", f"Output shape: {_shape_text(output)}"]
    if options["show_dtype"]:
        lines.append("Input dtype: float32, Output dtype: float32")
    if options["show_layer_activations"] and spec is not None:
        activation = getattr(spec, "activation", None)
        if activation is not None:
            lines.append(f"Activation: {activation if isinstance(activation, str) else 'custom'}")
    if options["show_trainable"] and spec is not None:
        lines.append(f"Trainable: {spec.trainable}")
    return lines


def _ranks(parents: list[tuple[int, ...]]) -> list[int]:
    """Each node's rank: 0 for an input, one more than its deepest parent's otherwise."""
    ranks: list[int] = []
    for ids in parents:  # parents always come before their children
        ranks.append(1 + max(ranks[i] for i in ids) if ids else 0)
    return ranks


def _places(ranks: list[int], parents: list[tuple[int, ...]]) -> list[int]:
    """Each node's place within its rank: ranks in order, a rank's nodes by the mean place
    of their parents (then by their order), so that arrows cross less."""
    places = [0] * len(ranks)
    for rank in range(max(ranks) + 1):
        members = [n for n, r in enumerate(ranks) if r == rank]
        key = {
            n: (sum(places[i] for i in parents[n]) / len(parents[n]) if parents[n] else n, n)
            for n in members
        }
        for place, n in enumerate(sorted(members, key=key.__getitem__)):
            places[n] = place
    return places


def plot_model(
    model: Any,
    to_file: str | os.PathLike[str] = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = False,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs: Any,
) -> Any:
    """Keras 3's ``plot_model``, its keywords and defaults: the model's diagram written to
    ``to_file`` in the format of its suffix (PNG without one; PDF, SVG, JPEG... as the
    suffix says). Each box holds the class (``show_layer_names``: ``name (Class)``), and
    as asked the input and output shapes, dtypes, activation and ``trainable`` flag.

    Returns what Keras returns: an ``IPython.display.Image`` of the file where IPython is
    installed (a notebook shows it; not for PDF), else None. Differs from Keras: a nested
    model is always one box (``expand_nested`` is taken, not drawn) and arrows are straight
    (``splines`` is taken, not used).
    """
    if kwargs:
        raise TypeError(f"plot_model got unexpected keyword(s) {', '.join(map(repr, kwargs))}")
    if not hasattr(model, "_wiring") or not hasattr(model, "layers"):
        raise TypeError(f"plot_model takes a Keras model of funcnn.keras, got {type(model)}")
    options = {
        "show_shapes": check.boolean("show_shapes", show_shapes),
        "show_dtype": check.boolean("show_dtype", show_dtype),
        "show_layer_names": check.boolean("show_layer_names", show_layer_names),
        "show_layer_activations": check.boolean("show_layer_activations", show_layer_activations),
        "show_trainable": check.boolean("show_trainable", show_trainable),
    }
    check.boolean("expand_nested", expand_nested)
    check.text("splines", splines)
    check.choice("rankdir", rankdir, _RANKDIRS)
    dpi = check.positive_int("dpi", dpi)
    path = Path(os.fspath(to_file))
    fmt = path.suffix[1:].lower() or "png"
    if model.input_shape is None or not model.layers:
        raise ValueError(
            f"the model {model.name!r} is not built: its input shape is unknown. Give the "
            "first layer input_shape=..., start with keras.Input(shape=...), or call "
            "build(input_shape) first"
        )
    nodes, parents, shapes = _nodes(model)
    labels = [
        _label(node, [shapes[i] for i in ids], shapes[n], options)
        for n, (node, ids) in enumerate(zip(nodes, parents))
    ]
    width = max(len(line) for lines in labels for line in lines) * _CHAR + 0.3
    height = max(len(lines) for lines in labels) * _LINE + 0.2
    ranks = _ranks(parents)
    places = _places(ranks, parents)
    counts = [ranks.count(r) for r in range(max(ranks) + 1)]
    across, along = max(counts), len(counts)
    vertical = rankdir in ("TB", "BT")
    step_x = width + _GAP[0] if vertical else width + _GAP[1]
    step_y = height + _GAP[1] if vertical else height + _GAP[0]
    fig_w = 2 * _MARGIN + (across if vertical else along) * step_x
    fig_h = 2 * _MARGIN + (along if vertical else across) * step_y

    def centre(n: int) -> tuple[float, float]:
        rank, place = ranks[n], places[n] + (across - counts[ranks[n]]) / 2
        if rankdir in ("BT", "RL"):
            rank = along - 1 - rank
        if vertical:
            return _MARGIN + (place + 0.5) * step_x, fig_h - _MARGIN - (rank + 0.5) * step_y
        return _MARGIN + (rank + 0.5) * step_x, fig_h - _MARGIN - (place + 0.5) * step_y

    fig = plot._figure(fig_w, fig_h)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, fig_w)
    ax.set_ylim(0, fig_h)
    ax.axis("off")
    for n, lines in enumerate(labels):
        x, y = centre(n)
        xs = [x - width / 2, x + width / 2, x + width / 2, x - width / 2]
        ys = [y - height / 2, y - height / 2, y + height / 2, y + height / 2]
        ax.fill(xs, ys, facecolor="#eef3fb", edgecolor="#3b5b92", linewidth=1.0)
        ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=_FONT,
                family="monospace", linespacing=1.2)  # fmt: skip
    half = {"TB": (0, -height / 2), "BT": (0, height / 2), "LR": (width / 2, 0),
            "RL": (-width / 2, 0)}[rankdir]  # fmt: skip
    for n, ids in enumerate(parents):
        x, y = centre(n)
        for i in ids:
            px, py = centre(i)
            ax.annotate(
                "", xy=(x - half[0], y - half[1]), xytext=(px + half[0], py + half[1]),
                arrowprops={"arrowstyle": "-|>", "color": "#333333", "shrinkA": 0,
                            "shrinkB": 0, "linewidth": 1.0},
            )  # fmt: skip
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"to_file={os.fspath(to_file)!r}: the format {fmt!r} is not one funcnn writes; "
            f"use one of {', '.join(sorted(supported))}"
        )
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))
    if fmt == "pdf":
        return None
    try:
        from IPython import display  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return display.Image(filename=os.fspath(path))
