"""funcnn.sklearn's MLPClassifier and MLPRegressor: scikit-learn's own estimator checks, and
the drop-in promise (scikit-learn's parameters, attributes and results)."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from funcnn import tree
from funcnn.sklearn import MLPClassifier, MLPRegressor

# Short fits: scikit-learn and funcnn both warn that they have not converged.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_scikit_learn_estimator_checks(estimator, check):
    """Every check passes, the sample-weight equivalence that scikit-learn excuses for its
    own MLP included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def scaled(load):
    X, y = load(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def twins(name, **kwargs):
    """funcnn's estimator and scikit-learn's, with the same parameters."""
    return getattr(neural_network, name)(**kwargs), globals()[name](**kwargs)


def fit_both(name, X, y, **kwargs):
    ours_warned, theirs_warned = [], []
    theirs, ours = twins(name, **kwargs)
    for est, log in ((theirs, theirs_warned), (ours, ours_warned)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            est.fit(X, y)
        log += [w for w in caught if w.category is ConvergenceWarning]
    assert len(ours_warned) == len(theirs_warned)
    return theirs, ours


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.1},
        {"solver": "sgd", "learning_rate": "adaptive", "max_iter": 60, "n_iter_no_change": 2},
        {"solver": "sgd", "momentum": 0.0, "activation": "tanh"},
        {"early_stopping": True, "activation": "logistic", "hidden_layer_sizes": (8, 8)},
        {"solver": "lbfgs", "max_iter": 50},
        {"batch_size": 32, "alpha": 0.1, "shuffle": False},
    ],
)
def test_the_classifier_walks_scikit_learns_path(kwargs):
    """The same random_state gives the same initial weights, shuffles and stopping epoch as
    scikit-learn: the losses and predictions agree (float64 data computes in float64)."""
    X, y = scaled(load_iris)
    theirs, ours = fit_both("MLPClassifier", X, y, **{"random_state": 0, "max_iter": 40, **kwargs})
    assert ours.n_iter_ == theirs.n_iter_ and ours.out_activation_ == "softmax"
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-3)
    if kwargs.get("solver") != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)
        assert ours.best_loss_ == theirs.best_loss_ or ours.best_loss_ == pytest.approx(
            theirs.best_loss_, rel=1e-3
        )
    if kwargs.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=2e-3)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64


def test_binary_multilabel_and_string_classes_as_scikit_learn():
    X, y = scaled(load_breast_cancer)
    names = np.array(["benign", "malignant"])[y]
    theirs, ours = fit_both("MLPClassifier", X, names, random_state=1, max_iter=20)
    assert ours.out_activation_ == "logistic" and list(ours.classes_) == list(theirs.classes_)
    assert ours.predict_proba(X).shape == (len(X), 2)
    assert np.mean(ours.predict(X) == theirs.predict(X)) > 0.99
    labels = np.column_stack([y, 1 - y, X[:, 0] > 0]).astype(int)
    theirs, ours = fit_both("MLPClassifier", X, labels, random_state=0, max_iter=20)
    assert ours.predict(X).shape == labels.shape
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_the_regressor_walks_scikit_learns_path(loss):
    X, y = scaled(load_diabetes)
    y = y / 100 if loss == "poisson" else y
    theirs, ours = fit_both("MLPRegressor", X, y, random_state=0, max_iter=30, loss=loss)
    assert ours.out_activation_ == theirs.out_activation_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-3, atol=1e-3)
    two = np.column_stack([y, -y if loss == "squared_error" else y])
    assert ours.fit(X, two).predict(X).shape == (len(X), 2)


def test_float32_data_trains_in_float32_with_the_same_bits_each_time():
    X, y = scaled(load_iris)
    X = X.astype(np.float32)
    a = MLPClassifier(random_state=3, max_iter=5).fit(X, y)
    b = MLPClassifier(random_state=3, max_iter=5).fit(X, y)
    assert a.coefs_[0].dtype == np.float32
    assert [u.tobytes() for u in tree.leaves(a.params_)] == [
        v.tobytes() for v in tree.leaves(b.params_)
    ]


def test_warm_start_partial_fit_and_the_funcnn_model():
    X, y = scaled(load_iris)
    theirs, ours = twins("MLPClassifier", random_state=0, max_iter=5, warm_start=True)
    for _ in range(2):
        for est in (theirs, ours):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)
    assert len(ours.loss_curve_) == 10 and ours.n_iter_ == 5 and ours.t_ == 10 * len(X)
    theirs, ours = twins("MLPClassifier", random_state=0)
    for est in (theirs, ours):
        est.partial_fit(X[:75], y[:75], classes=[0, 1, 2])
        est.partial_fit(X[75:], y[75:])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(AttributeError, match="partial_fit is only available"):
        MLPClassifier(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])
    logits = ours.network_.apply(ours.params_, X)
    np.testing.assert_allclose(np.argmax(logits, axis=1), np.argmax(ours.predict_proba(X), 1))
    again = clone(ours)
    assert again.get_params() == ours.get_params() and not hasattr(again, "coefs_")


def test_scikit_learns_parameter_errors():
    X, y = scaled(load_iris)
    for kwargs, message in [
        ({"solver": "newton"}, "The 'solver' parameter of MLPClassifier must be"),
        ({"learning_rate_init": 0}, "learning_rate_init"),
        ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be > 0"),
        ({"early_stopping": True, "validation_fraction": 0.001}, "validation set is too small"),
    ]:
        with pytest.raises(ValueError, match=message):
            MLPClassifier(**kwargs).fit(X, y)
    with pytest.raises(ValueError, match="does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warnings_point_at_the_callers_line():
    X, y = scaled(load_iris)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\)") as caught:
        MLPClassifier(max_iter=2, random_state=0).fit(X, y)
    assert caught[0].filename == __file__
