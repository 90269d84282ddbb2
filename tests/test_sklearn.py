"""funcnn.sklearn: scikit-learn's own estimator checks, and the places its users put
estimators (Pipeline, GridSearchCV on joblib and on Dask, cross_val_score, clone)."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from funcnn import layers as L
from funcnn import optim, tree
from funcnn.sklearn import NeuralNetClassifier, NeuralNetRegressor

# Short fits for speed: their "more epochs may help" warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# scikit-learn's checks that a minibatch-SGD network cannot pass, and why (its own
# MLPClassifier and SGDClassifier are excused from the same ones).
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "an integer sample weight is not the same as repeating the sample: the repeated "
        "sample changes which mini-batch every later sample falls in, so training takes "
        "another path (the weights do scale each sample's gradient exactly; tested below)"
    ),
}


@parametrize_with_checks(
    [NeuralNetClassifier(epochs=50), NeuralNetRegressor(epochs=50)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def iris():
    x, y = load_iris(return_X_y=True)
    return x, y


def test_classifier_learns_iris_in_a_pipeline():
    x, y = iris()
    model = make_pipeline(
        StandardScaler(), NeuralNetClassifier(hidden_layer_sizes=(16,), epochs=150)
    )
    model.fit(x, y)
    assert model.score(x, y) > 0.95
    proba = model.predict_proba(x[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.log(proba), model.predict_log_proba(x[:5]), atol=1e-5)
    assert list(model.classes_) == [0, 1, 2]


def test_string_labels_and_any_funcnn_model():
    x, y = iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    body = L.serial(L.Dense(16), L.Tanh, L.Dropout(0.1), L.Dense(8), L.Relu)
    clf = NeuralNetClassifier(body, epochs=60, learning_rate=0.01, n_iter_no_change=0)
    with pytest.warns(ConvergenceWarning, match="ran all 60 epochs"):
        clf.fit(StandardScaler().fit_transform(x), names)
    assert set(clf.predict(StandardScaler().fit_transform(x))) <= set(names)
    assert clf.n_iter_ == 60 and len(clf.loss_curve_) == 60
    assert clf.network_.layers[0] is body  # the model, then the output layer


def test_same_seed_same_bits_and_pickle():
    x, y = iris()
    a = NeuralNetClassifier(epochs=5, n_iter_no_change=0).fit(x, y)
    b = NeuralNetClassifier(epochs=5, n_iter_no_change=0).fit(x, y)
    for u, v in zip(tree.leaves(a.params_), tree.leaves(b.params_)):
        assert u.tobytes() == v.tobytes()
    c = pickle.loads(pickle.dumps(a))
    assert np.array_equal(c.predict_proba(x), a.predict_proba(x))
    assert clone(a).get_params() == a.get_params() and not hasattr(clone(a), "params_")


def test_class_weight_and_sample_weight():
    gen = np.random.default_rng(0)
    x = gen.standard_normal((200, 2))
    y = (x[:, 0] + 0.3 * gen.standard_normal(200) > 1.0).astype(int)  # about 1 in 6 positive
    kwargs = {"epochs": 40, "n_iter_no_change": 0, "hidden_layer_sizes": (8,)}
    plain = NeuralNetClassifier(**kwargs).fit(x, y)
    balanced = NeuralNetClassifier(class_weight="balanced", **kwargs).fit(x, y)
    heavy = NeuralNetClassifier(**kwargs).fit(x, y, sample_weight=np.where(y == 1, 5.0, 1.0))
    positive = [m.predict(x).mean() for m in (plain, balanced, heavy)]
    assert positive[1] > positive[0] and positive[2] > positive[0]
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced' or a dict"):
        NeuralNetClassifier(class_weight="even").fit(x, y)
    with pytest.raises(ValueError, match="only 1 class"):
        NeuralNetClassifier(epochs=1).fit(x, y, sample_weight=(y == 0).astype(float))


def test_sample_weights_scale_each_gradient_exactly():
    """One full batch, plain SGD: weights 2 for every sample equal a learning rate twice as
    large, and weight 0 leaves a sample out (the property the excused check asks for,
    without the mini-batches that make it fail)."""
    x, y = iris()
    kwargs = {"epochs": 1, "n_iter_no_change": 0, "batch_size": 150, "optimizer": "sgd"}
    a = NeuralNetClassifier(learning_rate=0.2, **kwargs).fit(x, y, sample_weight=np.full(150, 2.0))
    b = NeuralNetClassifier(learning_rate=0.4, **kwargs).fit(x, y)
    for u, v in zip(tree.leaves(a.params_), tree.leaves(b.params_)):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


def test_warm_start_partial_fit_and_early_stopping():
    x, y = iris()
    warm = NeuralNetClassifier(epochs=3, warm_start=True, n_iter_no_change=0)
    warm.fit(x, y)
    first = tree.leaves(warm.params_)[0].copy()
    warm.fit(x, y)
    assert warm.n_iter_ == 6 and not np.array_equal(first, tree.leaves(warm.params_)[0])
    part = NeuralNetClassifier()
    part.partial_fit(x[:50], y[:50], classes=[0, 1, 2])
    part.partial_fit(x[50:], y[50:])
    assert part.n_iter_ == 2 and list(part.classes_) == [0, 1, 2]
    with pytest.raises(ValueError, match="needs classes"):
        NeuralNetClassifier().partial_fit(x, y)
    with pytest.raises(ValueError, match=r"classes \[7\] that the fitted model does not know"):
        part.partial_fit(x[:2], [0, 7])
    stopped = NeuralNetClassifier(epochs=500, early_stopping=True, n_iter_no_change=5)
    stopped.fit(StandardScaler().fit_transform(x), y)
    assert stopped.n_iter_ < 500 and "val_loss" in stopped.history_


def test_regressor_one_and_several_targets():
    x, y = make_regression(120, 4, n_targets=2, noise=0.1, random_state=0)
    y = y / y.std(axis=0)
    kwargs = {"epochs": 150, "learning_rate": 0.01, "hidden_layer_sizes": (32,)}
    two = NeuralNetRegressor(**kwargs).fit(x, y)
    one = NeuralNetRegressor(**kwargs).fit(x, y[:, 0])
    assert two.predict(x).shape == (120, 2) and one.predict(x).shape == (120,)
    assert two.score(x, y) > 0.95 and one.score(x, y[:, 0]) > 0.95


def test_bad_settings_are_clear_errors_at_fit():
    x, y = iris()
    for kwargs, error, message in [
        ({"epochs": 0}, ValueError, "epochs must be a positive int"),
        ({"activation": "swish"}, ValueError, "activation must be one of"),
        ({"optimizer": "adamm"}, ValueError, "'adamm' is not in funcnn.optim"),
        ({"optimizer": 3}, TypeError, "optimizer must be a name"),
        ({"model": "mlp"}, TypeError, "model must be a funcnn Layer"),
        ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes"),
        ({"early_stopping": True, "validation_fraction": 1.5}, ValueError, "validation_fraction"),
    ]:
        with pytest.raises(error, match=message):
            NeuralNetClassifier(**kwargs).fit(x, y)
    fitted = NeuralNetClassifier(optimizer=optim.sgd(0.1), epochs=2, n_iter_no_change=0)
    fitted.fit(x, y)  # an optimizer object works too
    with pytest.raises(
        ValueError, match="X has 2 features, but NeuralNetClassifier is expecting 4"
    ):
        fitted.predict(x[:, :2])


def _threads(estimator, x, y):
    """A scorer that reports the threads a fit ran on: funcnn's workers and the BLAS's."""
    from threadpoolctl import threadpool_info

    from funcnn import linalg

    blas = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    return float(10 * linalg.workers() + blas)


def grid(n_jobs):
    x, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(epochs=8, n_iter_no_change=0))
    search = GridSearchCV(
        pipe, {"neuralnetclassifier__hidden_layer_sizes": [(8,), (32,)]}, cv=3, n_jobs=n_jobs
    )
    return search.fit(x, y)


def test_grid_search_in_parallel_has_the_bits_of_one_process():
    one, two = grid(1), grid(2)
    assert np.array_equal(one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"])
    assert one.best_params_ == two.best_params_ and one.best_score_ > 0.95


def test_parallel_workers_are_held_to_one_thread_each():
    x, y = iris()
    est = NeuralNetClassifier(epochs=1, n_iter_no_change=0)
    scores = cross_val_score(est, x, y, cv=2, n_jobs=2, scoring=_threads)
    assert list(scores) == [11.0, 11.0]  # 1 funcnn worker, 1 BLAS thread, in each process


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_has_the_same_bits():
    distributed = pytest.importorskip("distributed")
    import joblib

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        with joblib.parallel_config(backend="dask"):
            on_dask = grid(-1)
    local = grid(1)
    assert np.array_equal(
        on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )


@pytest.mark.parametrize("name", ["scale_by_adam", "trace", "clip_by_global_norm", "tree"])
def test_an_optimizer_name_must_name_an_optimizer_with_a_learning_rate(name):
    """A building block has no learning rate and no descent sign: it would climb."""
    X, y = np.zeros((8, 2)), np.arange(8) % 2
    with pytest.raises(ValueError, match=f"optimizer '{name}' is .*use one of adadelta"):
        NeuralNetClassifier(optimizer=name, epochs=1).fit(X, y)


@pytest.mark.parametrize("estimator", [NeuralNetClassifier, NeuralNetRegressor])
def test_data_beyond_float32_is_refused_not_turned_into_inf(estimator):
    X, y = np.ones((8, 2)), np.arange(8) % 2
    big = X.copy()
    big[3, 1] = -1e39
    with pytest.raises(ValueError, match=r"X holds values up to 1e\+39, beyond float32"):
        estimator(epochs=1).fit(big, y)
    fitted = estimator(epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="beyond float32"):
        fitted.predict(big)
    if estimator is NeuralNetRegressor:
        with pytest.raises(ValueError, match=r"y holds values up to 1e\+39"):
            estimator(epochs=1).fit(X, y * 1e39)


def test_absurd_hidden_layer_sizes_are_refused_before_allocating():
    X, y = np.ones((8, 2)), np.arange(8) % 2
    for sizes in [(10**9,), (10**5, 10**5)]:
        with pytest.raises(ValueError, match=r"training a network of [\d,]+ params .* GiB"):
            NeuralNetClassifier(hidden_layer_sizes=sizes, epochs=1).fit(X, y)


def test_a_batch_size_larger_than_the_data_trains_on_the_whole_data():
    """The memory estimate counts the batch fit will use, min(batch_size, samples)."""
    X, y = np.random.default_rng(0).random((100, 10)), np.arange(100) % 2
    NeuralNetClassifier(epochs=2, batch_size=10**9).fit(X, y)


def test_learning_rate_is_never_silently_ignored_and_may_be_a_schedule():
    from funcnn import schedules

    X, y = iris()
    with pytest.raises(ValueError, match=r"learning_rate=0.5 would not be used: the optimizer"):
        NeuralNetClassifier(optimizer=optim.sgd(0.1), learning_rate=0.5, epochs=1).fit(X, y)
    decay = schedules.exponential_decay(0.05, 10, 0.5)
    kwargs = {"epochs": 3, "n_iter_no_change": 0}
    scheduled = NeuralNetClassifier(optimizer="sgd", learning_rate=decay, **kwargs).fit(X, y)
    same = NeuralNetClassifier(optimizer=optim.sgd(decay), **kwargs).fit(X, y)
    for u, v in zip(tree.leaves(scheduled.params_), tree.leaves(same.params_)):
        assert u.tobytes() == v.tobytes()
    assert scheduled.history_["lr"][-1] < 0.05


@pytest.mark.parametrize("estimator", [NeuralNetClassifier, NeuralNetRegressor])
def test_help_shows_every_parameter(estimator):
    import pydoc

    text = pydoc.render_doc(estimator, renderer=pydoc.plaintext)
    for name in estimator().get_params():
        assert f"{name} :" in text or f"{name} " in text.split("Parameters")[1]


def test_the_convergence_warning_points_at_the_callers_line():
    X, y = iris()
    with pytest.warns(ConvergenceWarning, match="ran all 2 epochs") as caught:
        NeuralNetClassifier(epochs=2).fit(X, y)
    assert caught[0].filename == __file__
