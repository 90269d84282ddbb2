"""``funcnn.keras.metrics``: Keras' metric classes and names, with Keras' semantics, checked
by hand where the number is plain and against Keras 3 itself (JAX backend; skipped where
keras is not installed): each class on the same data, sample weights and several updates
included, and ``evaluate``'s logs of a model given Keras' weights."""

import os
import re

import numpy as np
import pytest

from funcnn import keras
from funcnn.keras import layers
from funcnn.keras import metrics as M

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning"),  # jax
]


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _binary(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float32)[:, None]
    p = np.clip(0.25 * y + 0.6 * rng.random((n, 1)), 0, 1).astype(np.float32)
    return y, p, rng.random(n).astype(np.float32)


def _categorical(n=90, classes=4, seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int32)
    p = rng.random((n, classes)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    return np.eye(classes, dtype=np.float32)[labels], labels, p, rng.random(n).astype(np.float32)


def _regression(n=80, seed=2):
    rng = np.random.default_rng(seed)
    y = rng.random((n, 3)).astype(np.float32) + 0.1
    return y, (y + 0.3 * rng.standard_normal((n, 3))).astype(np.float32)


# ---------------------------------------------------------------- by hand


def test_precision_and_recall_are_the_positive_class_on_a_binary_model():
    """The bug: metrics=["precision"] logged the macro average over both classes."""
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=np.float32)[:, None]
    p = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.1, 0.6, 0.3, 0.1, 0.2], dtype=np.float32)[:, None]
    # positive class: TP = 1 (0.6), FP = 3 (0.9, 0.8, 0.7), FN = 1 (0.3)
    assert M.Precision()(y, p) == pytest.approx(0.25)
    assert M.Recall()(y, p) == pytest.approx(0.5)
    # through compile and evaluate: a Dense(1, sigmoid) of weight 1 on the logits gives p
    model = keras.Sequential([keras.Input((1,)), layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["precision", "recall"])
    model.build()
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    scores = model.evaluate(np.log(p / (1 - p)), y, verbose=0, return_dict=True)
    assert scores["precision"] == pytest.approx(0.25)  # the macro average was 0.53
    assert scores["recall"] == pytest.approx(0.5)


def test_confusion_counts_thresholds_weights_and_reset():
    y, p, w = _binary()
    positive, predicted = y[:, 0] != 0, p[:, 0] > 0.5
    assert M.TruePositives()(y, p) == np.sum(positive & predicted)
    assert M.FalsePositives()(y, p) == np.sum(~positive & predicted)
    assert M.TrueNegatives()(y, p) == np.sum(~positive & ~predicted)
    assert M.FalseNegatives()(y, p) == np.sum(positive & ~predicted)
    counts = M.TruePositives(thresholds=[0.3, 0.5])(y, p)
    assert counts.shape == (2,) and counts[0] >= counts[1]
    tp = M.TruePositives()
    tp.update_state(y, p, sample_weight=w)
    assert tp.result() == pytest.approx(float(np.sum(w[positive & predicted])))
    tp.reset_state()
    assert tp.result() == 0.0
    with pytest.raises(ValueError, match="thresholds"):
        M.Precision(thresholds=1.5)


def test_mean_metrics_accumulate_over_updates_as_over_all_at_once():
    y, p = _regression()
    m = M.MeanSquaredError()
    m.update_state(y[:30], p[:30])
    m.update_state(y[30:], p[30:])
    assert m.result() == pytest.approx(float(np.mean((p - y) ** 2)))
    assert M.RootMeanSquaredError()(y, p) == pytest.approx(float(np.sqrt(np.mean((p - y) ** 2))))
    assert M.MeanAbsoluteError()(y, p) == pytest.approx(float(np.mean(np.abs(p - y))))
    onehot, labels, scores, _ = _categorical()
    right = float(np.mean(scores.argmax(1) == labels))
    assert M.SparseCategoricalAccuracy()(labels, scores) == pytest.approx(right)
    assert M.SparseCategoricalAccuracy()(labels[:, None], scores) == pytest.approx(right)
    assert M.CategoricalAccuracy()(onehot, scores) == pytest.approx(right)
    assert M.TopKCategoricalAccuracy(k=4)(onehot, scores) == 1.0


def test_names_log_as_keras_logs_them_and_unknown_names_list_the_valid_ones():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile(
        "adam", "binary_crossentropy",
        metrics=["AUC", M.AUC(), M.AUC(), "precision", M.Recall(name="r"), "mse", "acc"],
    )  # fmt: skip
    history = model.fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    names = ["AUC", "auc", "auc_1", "precision", "r", "mse", "acc"]
    assert model.metrics_names == ["loss", *names]
    assert [k for k in history.keys() if not k.startswith("val_")][1:8] == names
    assert {f"val_{n}" for n in names} <= set(history.keys())
    with pytest.raises(ValueError, match=r"unknown metric 'aucc'; valid names: .*auc"):
        model.compile("adam", "binary_crossentropy", metrics=["aucc"])
    with pytest.raises(ValueError, match="average='macro'"):
        model.compile("adam", "binary_crossentropy", metrics=["f1_score"])


def test_metric_objects_are_saved_with_the_compile_settings(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=[M.AUC(curve="PR", name="pr"), "recall"])
    model.fit(x, y, epochs=1, verbose=0)
    back = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert back.metrics_names == ["loss", "pr", "recall"]
    assert back.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_keras_style_metric_functions_take_y_true_first():
    def off_by(y_true, y_pred):
        return np.abs(np.asarray(y_pred)[:, 0] - np.asarray(y_true)[:, 0] - 1.0)

    y, p = _regression()
    m = M.MeanMetricWrapper(off_by)
    assert m.name == "off_by"
    assert m(y, p) == pytest.approx(float(np.mean(np.abs(p[:, 0] - y[:, 0] - 1))))
    assert M.get(M.mean_absolute_error).name == "mean_absolute_error"


# ---------------------------------------------------------------- Keras 3 as the oracle


def _cases():
    y, p, w = _binary()
    onehot, labels, scores, wc = _categorical()
    yr, pr = _regression()
    logits = np.log(p / (1 - p + 1e-7) + 1e-7)
    return [
        ("AUC", {}, y, p, w), ("AUC", {"curve": "PR"}, y, p, w),
        ("AUC", {"num_thresholds": 20, "summation_method": "minoring"}, y, p, None),
        ("AUC", {"from_logits": True}, y, logits, None),
        ("AUC", {"multi_label": True}, onehot, scores, None),
        ("Precision", {}, y, p, w), ("Recall", {}, y, p, w),
        ("Precision", {"thresholds": 0.3}, y, p, None), ("Precision", {}, onehot, scores, None),
        ("Recall", {"class_id": 2}, onehot, scores, None),
        ("Precision", {"top_k": 2}, onehot, scores, None),
        ("TruePositives", {}, y, p, w), ("FalsePositives", {}, y, p, None),
        ("TrueNegatives", {}, y, p, w), ("FalseNegatives", {}, y, p, None),
        ("BinaryAccuracy", {}, y, p, w), ("BinaryAccuracy", {"threshold": 0.3}, y, p, None),
        ("CategoricalAccuracy", {}, onehot, scores, wc),
        ("SparseCategoricalAccuracy", {}, labels, scores, wc),
        ("TopKCategoricalAccuracy", {"k": 2}, onehot, scores, None),
        ("SparseTopKCategoricalAccuracy", {"k": 2}, labels, scores, None),
        ("MeanSquaredError", {}, yr, pr, None), ("MeanAbsoluteError", {}, yr, pr, None),
        ("RootMeanSquaredError", {}, yr, pr, None),
        ("MeanAbsolutePercentageError", {}, yr, pr, None),
        ("MeanSquaredLogarithmicError", {}, yr, np.abs(pr), None),
        ("LogCoshError", {}, yr, pr, None), ("Poisson", {}, yr, np.abs(pr), None),
        ("KLDivergence", {}, onehot, scores, None), ("Hinge", {}, y, p, None),
        ("SquaredHinge", {}, y, p, None), ("CategoricalHinge", {}, onehot, scores, None),
        ("CosineSimilarity", {}, yr, pr, None), ("BinaryCrossentropy", {}, y, p, w),
        ("BinaryCrossentropy", {"from_logits": True}, y, logits, None),
        ("CategoricalCrossentropy", {}, onehot, scores, None),
        ("CategoricalCrossentropy", {"label_smoothing": 0.1}, onehot, scores, None),
        ("SparseCategoricalCrossentropy", {}, labels, scores, None),
        ("Accuracy", {}, np.round(p), np.round(np.roll(p, 3)), None),
        ("BinaryIoU", {}, y, p, None), ("BinaryIoU", {"target_class_ids": [1]}, y, p, None),
        ("R2Score", {}, yr, pr, None), ("F1Score", {"average": "macro"}, onehot, scores, None),
        ("F1Score", {}, onehot, scores, None),
        ("FBetaScore", {"beta": 2.0, "average": "micro", "threshold": 0.3}, onehot, scores, None),
        ("FBetaScore", {"average": "weighted"}, onehot, scores, None),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(len(_cases())))
def test_each_metric_class_against_keras(case):
    k = keras_real()
    name, kwargs, y, p, w = _cases()[case]
    ours, theirs = getattr(M, name)(**kwargs), getattr(k.metrics, name)(**kwargs)
    assert re.fullmatch(re.escape(ours.name) + r"(_\d+)?", theirs.name), (ours.name, theirs.name)
    half = len(y) // 2
    for part in (slice(0, half), slice(half, None)):  # two updates: the state accumulates
        wp = None if w is None else w[part]
        ours.update_state(y[part], p[part], sample_weight=wp)
        theirs.update_state(y[part], p[part], sample_weight=wp)
    expected = np.asarray(theirs.result())
    assert np.allclose(ours.result(), expected, rtol=2e-5, atol=2e-6), (name, kwargs)


def test_every_name_keras_compile_takes_is_known_and_logged_as_given():
    k = keras_real()
    from keras.src.metrics import ALL_OBJECTS_DICT

    needs_arguments = {"IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "PrecisionAtRecall",
                       "RecallAtPrecision", "SensitivityAtSpecificity",
                       "SpecificityAtSensitivity", "Mean", "Sum", "Metric",
                       "MeanMetricWrapper"}  # fmt: skip
    batch_correlations = {"PearsonCorrelation", "ConcordanceCorrelation"}
    skipped = set()
    for name, cls in ALL_OBJECTS_DICT.items():
        if cls.__name__ in needs_arguments | batch_correlations:
            skipped.add(name)
            continue
        if name in ("accuracy",):
            continue
        assert name in M.NAMES, name
        assert M.get(name).name == name
    assert {"auc", "precision", "sparse_categorical_accuracy", "mse"} <= set(M.NAMES)
    del k, skipped


def test_evaluate_logs_what_keras_logs_from_the_same_weights():
    k = keras_real()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(150) > 1.0).astype(np.float32)[:, None]
    names = ["precision", "recall", "auc", "AUC", "binary_accuracy", "true_positives",
             "false_negatives", "mse", "binary_crossentropy", "hinge"]  # fmt: skip
    real = k.Sequential([k.Input((5,)), k.layers.Dense(4, activation="relu"),
                         k.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    real.compile("sgd", "binary_crossentropy", metrics=names)
    ours = keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="relu"),
                             layers.Dense(1, activation="sigmoid")])  # fmt: skip
    ours.compile("sgd", "binary_crossentropy", metrics=names)
    ours.build()
    ours.set_weights([np.asarray(a) for a in real.get_weights()])
    theirs = real.evaluate(x, y, verbose=0, return_dict=True)
    mine = ours.evaluate(x, y, verbose=0, return_dict=True)
    assert set(mine) == set(theirs)
    for name in names:
        assert mine[name] == pytest.approx(float(theirs[name]), rel=1e-4, abs=1e-5), name
    # sparse labels and several classes
    labels = rng.integers(0, 3, 150).astype(np.int32)
    names = ["sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
             "sparse_categorical_crossentropy"]  # fmt: skip
    real = k.Sequential([k.Input((5,)), k.layers.Dense(3, activation="softmax")])
    real.compile("sgd", "sparse_categorical_crossentropy", metrics=names)
    ours = keras.Sequential([keras.Input((5,)), layers.Dense(3, activation="softmax")])
    ours.compile("sgd", "sparse_categorical_crossentropy", metrics=names)
    ours.build()
    ours.set_weights([np.asarray(a) for a in real.get_weights()])
    theirs = real.evaluate(x, labels, verbose=0, return_dict=True)
    mine = ours.evaluate(x, labels, verbose=0, return_dict=True)
    for name in names:
        assert mine[name] == pytest.approx(float(theirs[name]), rel=1e-4, abs=1e-5), name
