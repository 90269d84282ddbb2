"""Each plot returns a figure and writes a non-empty PNG."""

import subprocess
import sys

import numpy as np
import pytest

import funcnn
from funcnn import plot
from funcnn.train import History

PNG = b"\x89PNG\r\n\x1a\n"


def check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000


def history():
    h = History()
    for e in range(4):
        h.append(
            e,
            {
                "loss": 1 / (e + 1),
                "accuracy": 0.5 + e / 10,
                "val_loss": 1.2 / (e + 1),
                "val_accuracy": 0.5 + e / 12,
                "lr": 0.1 / (e + 1),
            },
        )
    return h


def test_history_and_learning_rate(tmp_path):
    fig = plot.plot_history(history(), tmp_path / "h.png")
    assert len(fig.axes) == 2
    check_png(tmp_path / "h.png")
    plot.plot_history(history().to_dict(), tmp_path / "h2.png", keys=["loss"])
    check_png(tmp_path / "h2.png")
    plot.plot_learning_rate(history(), tmp_path / "lr.png")
    check_png(tmp_path / "lr.png")
    with pytest.raises(ValueError, match="has no"):
        plot.plot_history(history(), keys=["f1"])


def test_confusion_matrix_and_images(tmp_path):
    plot.plot_confusion_matrix(
        np.array([[5, 1], [2, 7]]), ["no", "yes"], tmp_path / "cm.png", normalize=True
    )
    check_png(tmp_path / "cm.png")
    images = np.random.default_rng(0).random((10, 64))
    plot.plot_images(images, np.arange(10), np.arange(10)[::-1], tmp_path / "img.png")
    check_png(tmp_path / "img.png")
    with pytest.raises(ValueError, match="square"):
        plot.plot_confusion_matrix(np.zeros((2, 3)))


def test_decision_boundary(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 2))
    y = (x[:, 0] > 0).astype(int)
    plot.plot_decision_boundary(lambda g: g[:, :1], x, y, tmp_path / "db.png", threshold=0.0)
    check_png(tmp_path / "db.png")
    with pytest.raises(ValueError, match="2-D points"):
        plot.plot_decision_boundary(lambda g: g, np.zeros((3, 3)), np.zeros(3))


def test_plotting_never_touches_pyplot():
    # Figures are built on the Agg canvas directly: no global pyplot state, no display.
    code = (
        "import sys, funcnn.plot as p; "
        "p.plot_learning_rate([0.1, 0.05]); "
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_funcnn_does_not_import_matplotlib():
    code = "import sys, funcnn; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_funcnn_defers_io_callbacks_datasets_and_testing():
    # Loaded on first use (module __getattr__), to keep `import funcnn` short.
    code = (
        "import sys, funcnn; "
        "lazy = ['funcnn.io', 'funcnn.callbacks', 'funcnn.datasets', 'funcnn.testing']; "
        "assert not any(m in sys.modules for m in lazy), [m for m in lazy if m in sys.modules]; "
        "assert funcnn.save is sys.modules['funcnn.io'].save and funcnn.load; "
        "assert funcnn.callbacks.EarlyStopping and funcnn.datasets.xor and funcnn.testing; "
        "assert {'io', 'load', 'save', 'testing'} <= set(dir(funcnn)); "
        "from funcnn import callbacks, datasets, io, load, save, testing"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        funcnn.nope  # noqa: B018
