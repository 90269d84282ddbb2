"""Metrics against hand-computed values."""

import numpy as np
import pytest

from funcnn import metrics as M


def test_multiclass_accuracy_counts_samples_not_binary_decisions():
    y = np.array([0, 1, 2, 3])
    scores = np.eye(4)[[1, 2, 3, 0]]  # every sample wrong
    assert M.accuracy(scores, y) == 0.0
    # the tutorial's per-element comparison of one-hot rows would report 50%
    assert M.binary_accuracy(scores, np.eye(4)[y]) == 0.5
    assert M.accuracy(np.eye(4)[[0, 1, 3, 3]], np.eye(4)[y]) == 0.75


def test_binary_accuracy_and_thresholds():
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.2], [0.7], [0.4], [0.6]])
    assert M.accuracy(p, y) == 0.5
    assert M.accuracy(p, y, threshold=0.3) == 0.75
    logits = np.array([[-1.0], [2.0], [0.5], [-0.1]])
    assert M.get("accuracy", logits=True)(logits, y) == 1.0
    assert M.get("accuracy")(logits, y) == 0.75


def test_top_k():
    y = np.array([2, 0, 1])
    s = np.array([[0.1, 0.5, 0.4], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    assert M.top_k_accuracy(s, y, k=1) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(s, y, k=2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy(s, y, k=3) == 1.0


def test_confusion_precision_recall_f1():
    y = np.array([0, 0, 1, 1, 1, 2])
    pred = np.eye(3)[[0, 1, 1, 1, 2, 2]]
    cm = M.confusion_matrix(pred, y)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    p, r, f = M.precision(pred, y, None), M.recall(pred, y, None), M.f1_score(pred, y, None)
    np.testing.assert_allclose(p, [1, 2 / 3, 1 / 2])
    np.testing.assert_allclose(r, [1 / 2, 2 / 3, 1])
    np.testing.assert_allclose(f, [2 / 3, 2 / 3, 2 / 3])
    assert M.precision(pred, y) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    yb, pb = np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.7])
    assert M.precision(pb, yb, "binary") == pytest.approx(2 / 3)
    assert M.recall(pb, yb, "binary") == pytest.approx(2 / 3)
    assert M.precision(np.array([0.1, 0.2]), np.array([0, 0]), "binary") == 0.0  # no positives


def test_regression_metrics():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([[1.5], [2.0], [2.5], [4.0]])
    assert M.mean_squared_error(p, t) == pytest.approx(0.125)
    assert M.mean_absolute_error(p, t) == pytest.approx(0.25)
    assert M.r2_score(p, t) == pytest.approx(1 - 0.5 / 5.0)
    assert M.r2_score(t, t) == 1.0


def test_metric_names_and_errors():
    assert M.get("acc").name == "acc" and M.get("mse").name == "mse"  # logged as asked
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'; valid names: .*accuracy"):
        M.get("acuracy")
    with pytest.raises(ValueError, match="pred has 2 samples, target has 3"):
        M.accuracy(np.zeros((2, 2)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"binary predictions need \(N,\) or \(N, 1\) targets"):
        M.accuracy(np.zeros((2, 1)), np.zeros((2, 2)))
    custom = M.get(lambda p, t: 1.0)
    assert custom(None, None) == 1.0


def test_nan_predictions_have_no_class():
    with pytest.raises(ValueError, match="hold NaN"):
        M.accuracy(np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]))


def test_wrong_shapes_labels_and_nan_are_clear_errors():
    bad = [
        (lambda: M.accuracy(np.zeros((0, 3)), np.zeros(0, int)), "no samples"),
        (lambda: M.mean_squared_error(np.zeros((0, 2)), np.zeros((0, 2))), "no samples"),
        (lambda: M.accuracy(np.float32(1), np.float32(1)), "sample axis"),
        (lambda: M.binary_accuracy(np.zeros((4, 2)), np.zeros((4, 3))), "differ in size"),
        (lambda: M.binary_accuracy(np.full((4, 1), np.nan), np.zeros(4)), "NaN"),
        (lambda: M.top_k_accuracy(np.zeros((4, 3)), np.zeros(4, int), k=0), "positive int"),
        (lambda: M.top_k_accuracy(np.zeros((4, 3)), np.zeros((4, 2))), "expected labels"),
        (lambda: M.top_k_accuracy(np.zeros((4, 3)), np.array([0, 1, 2, 7])), r"in \[0, 3\)"),
        (lambda: M.accuracy(np.zeros((4, 3)), np.array([0, 1, 2, -1])), "from -1 to 2"),
        (lambda: M.accuracy(np.zeros((4, 3)), np.array([0, 1, 2, 7])), "from 0 to 7"),
        (lambda: M.accuracy(np.zeros(3), np.zeros(3), threshold=float("nan")), "finite"),
        (lambda: M.confusion_matrix(np.eye(3), np.array([0, 1, 2]), num_classes=2), "hold 3"),
    ]
    for call, message in bad:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="num_classes"):
        M.confusion_matrix(np.eye(3), np.array([0, 1, 2]), num_classes="2")


def test_keras_label_shapes():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert M.accuracy(scores, np.array([[0], [1], [1]])) == pytest.approx(2 / 3)  # (N, 1)
    assert M.accuracy(scores, np.array([0.0, 1.0, 1.0])) == pytest.approx(2 / 3)  # floats
    assert M.top_k_accuracy(scores, np.array([[0], [1], [1]]), k=1) == pytest.approx(2 / 3)
