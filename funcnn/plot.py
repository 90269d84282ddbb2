"""Plots of training and predictions. Each returns a matplotlib Figure and saves a PNG if asked.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas: no pyplot
state, no display needed, nothing global changed. matplotlib is imported only
when a plot is made.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _history_dict(history: Any) -> dict[str, list[float]]:
    data = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    if not data:
        raise ValueError("the history is empty")
    return data


def plot_history(
    history: Any, path: str | os.PathLike[str] | None = None, keys: Sequence[str] | None = None
) -> Figure:
    """Loss and each metric per epoch, training and validation side by side.

    ``history`` is a History or a dict of lists; ``keys`` picks quantities (default:
    every logged one except ``val_*``, ``lr``, ``time``, ``epoch``).
    """
    data = _history_dict(history)
    skip = {"epoch", "lr", "time"}
    names = list(keys) if keys else [k for k in data if k not in skip and not k.startswith("val_")]
    missing = [k for k in names if k not in data]
    if missing:
        raise ValueError(f"history has no {missing}; it has {sorted(data)}")
    epochs = data.get("epoch") or list(range(len(data[names[0]])))
    fig = _figure(5 * len(names), 3.6)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        ax.plot([e + 1 for e in epochs], data[name], label="training", marker=".")
        if f"val_{name}" in data:
            ax.plot([e + 1 for e in epochs], data[f"val_{name}"], label="validation", marker=".")
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(alpha=0.3)
        ax.legend()
    return _finish(fig, path)


def plot_learning_rate(history: Any, path: str | os.PathLike[str] | None = None) -> Figure:
    """The learning rate per epoch (``history["lr"]``), or any sequence of rates."""
    if isinstance(history, (list, tuple, np.ndarray)):
        rates = list(history)
    else:
        data = _history_dict(history)
        if "lr" not in data:
            raise ValueError("the history holds no learning rate ('lr')")
        rates = data["lr"]
    fig = _figure(6, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(range(1, len(rates) + 1), rates, marker=".")
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def plot_confusion_matrix(
    matrix: Any,
    class_names: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    normalize: bool = False,
) -> Figure:
    """A (C, C) confusion matrix (rows true, columns predicted) with counts in the cells."""
    cm = np.asarray(matrix, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {cm.shape}")
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(cm))]
    size = max(4.0, 0.5 * len(cm) + 2)
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shown, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(
        xticks=range(len(cm)), yticks=range(len(cm)), xticklabels=names, yticklabels=names,
        xlabel="predicted", ylabel="true", title="Confusion matrix",
    )  # fmt: skip
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(len(cm)):
        for j in range(len(cm)):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
    return _finish(fig, path)


def plot_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    x: Any,
    y: Any,
    path: str | os.PathLike[str] | None = None,
    resolution: int = 200,
    threshold: float = 0.5,
) -> Figure:
    """Predicted classes over the plane around 2-D points ``x``, with the points colored by ``y``.

    ``predict`` maps ``(n, 2)`` points to scores: one column (thresholded at
    ``threshold``; use 0 for logits) or one column per class (argmax).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision boundaries need 2-D points (n, 2), got shape {x.shape}")
    labels = np.asarray(y).reshape(len(x), -1)
    labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]
    pad = 0.1 * (x.max(axis=0) - x.min(axis=0)) + 1e-3
    lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(
        x.dtype if x.dtype.kind == "f" else np.float32
    )
    scores = np.asarray(predict(grid)).reshape(len(grid), -1)
    classes = (
        scores.argmax(axis=1) if scores.shape[1] > 1 else (scores[:, 0] > threshold).astype(int)
    )
    fig = _figure(6, 5)
    ax = fig.add_subplot(1, 1, 1)
    ax.contourf(gx, gy, classes.reshape(gx.shape), alpha=0.3, cmap="coolwarm")
    ax.scatter(x[:, 0], x[:, 1], c=labels, cmap="coolwarm", edgecolors="k", s=18)
    ax.set(title="Decision boundary", xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    return _finish(fig, path)


def plot_images(
    images: Any,
    predicted: Any = None,
    true: Any = None,
    path: str | os.PathLike[str] | None = None,
    image_shape: tuple[int, ...] | None = None,
    columns: int = 8,
) -> Figure:
    """A grid of images titled "pred 3" (with ``true``: "pred 3, true 5"); wrong predictions
    in red.

    ``images``: ``(n, H, W)``, ``(n, H, W, C)`` or flat ``(n, H*W)`` with ``image_shape``
    (square images are inferred).
    """
    images = np.asarray(images)
    n = len(images)
    if image_shape is None and images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError("flat images need image_shape=(H, W)")
        image_shape = (side, side)
    if image_shape is not None:
        images = images.reshape(n, *image_shape)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = _figure(1.4 * cols, 1.6 * rows)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(images[i], cmap="gray" if images.ndim == 3 else None)
        ax.axis("off")
        if predicted is not None:
            p = int(np.asarray(predicted)[i])
            t = None if true is None else int(np.asarray(true)[i])
            title = f"pred {p}" if t is None else f"pred {p}, true {t}"
            ax.set_title(title, fontsize=9, color="red" if t is not None and p != t else "black")
    return _finish(fig, path)
