"""fit's running batch logs (Keras' on_train_batch_end logs) cost each batch once, not a
pass over the epoch so far: the work is counted in samples a metric is called on."""

import numpy as np
import pytest

from funcnn import keras, losses, optim, train
from funcnn import layers as L
from funcnn import metrics as metrics_lib
from funcnn.keras import layers

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

N, BATCH = 320, 8  # 40 batches an epoch


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)).astype(np.int64)
    return x, y


def _model(metrics, activation="softmax"):
    """Softmax outputs (fit trains on logits and scores the softmax's outputs), or logits."""
    model = keras.Sequential([layers.Input((4,)), layers.Dense(3, activation=activation)])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=activation is None)
    model.compile(keras.optimizers.SGD(0.1), loss, metrics=metrics)
    return model


def _logs():
    """A callback that keeps each batch's logs (reading them, as Keras' callbacks do)."""
    kept = []
    return kept, keras.callbacks.LambdaCallback(on_batch_end=lambda b, logs: kept.append(logs))


def _generator(x, y):
    for i in range(0, len(x), BATCH):
        yield x[i : i + BATCH], y[i : i + BATCH]


@pytest.mark.parametrize("source", ["arrays", "generator"])
def test_a_metric_function_sees_each_sample_once_for_the_running_logs(source):
    x, y = _data()
    rows = []

    def hits(y_true, y_pred):  # a per-sample metric, wrapped as Keras wraps functions
        rows.append(len(y_pred))
        return (np.argmax(y_pred, axis=-1) == np.asarray(y_true).reshape(-1)).astype(float)

    kept, cb = _logs()
    model = _model([hits])
    data = (x, y) if source == "arrays" else (_generator(x, y), None)
    model.fit(*data, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    assert len(kept) == N // BATCH
    # each batch once for the running logs, and all the rows once for the epoch's logs
    # (a pass over the epoch so far at each batch was N * (N / BATCH + 1) / 2 = 6560)
    assert sum(rows) == 2 * N
    final = model.history.history["hits"][-1]
    assert kept[-1]["hits"] == pytest.approx(final, rel=1e-12)


@pytest.mark.parametrize("activation", ["softmax", None])
def test_accuracy_counts_each_batch_once_and_matches_the_prefix(monkeypatch, activation):
    """funcnn's accuracy (a mean per sample), on a fused softmax's outputs too."""
    x, y = _data()
    rows = []
    real = metrics_lib.class_predictions

    def counting(pred, *args, **kwargs):
        rows.append(len(pred))
        return real(pred, *args, **kwargs)

    monkeypatch.setattr(metrics_lib, "class_predictions", counting)
    kept, cb = _logs()
    model = _model(["accuracy"], activation=activation)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    assert sum(rows) == 2 * N
    assert all(0.0 <= logs["accuracy"] <= 1.0 for logs in kept)
    assert kept[-1]["accuracy"] == pytest.approx(model.history.history["accuracy"][-1])


def test_running_values_equal_the_metric_on_the_outputs_so_far():
    """Each kind of Running (a batch mean, a Keras state, a metric scored again) gives the
    metric on all the batches so far."""
    rng = np.random.default_rng(1)
    batches = [
        (rng.random((n, 3)), rng.integers(0, 3, n)) for n in (5, 8, 8, 3)
    ]  # fmt: skip
    auc = keras.metrics.resolve(keras.metrics.AUC(), logits=False)[0]

    def macro_f1(p, t):  # not a mean of samples: scored again
        return metrics_lib.f1_score(p, t)

    found = [
        metrics_lib.get("accuracy"),
        metrics_lib.get("accuracy", logits=True),
        metrics_lib.get("top_k_accuracy"),
        metrics_lib.get(macro_f1),
        auc,
        metrics_lib.on_outputs(metrics_lib.get("accuracy"), lambda p: -p),
    ]
    onehot = lambda t: np.eye(3)[t]  # noqa: E731
    for m in found:
        running = m.running()
        for k, (p, t) in enumerate(batches):
            target = onehot(t) if m is auc else t
            running.add(p, target)
            pred = np.concatenate([b[0] for b in batches[: k + 1]])
            truth = np.concatenate([b[1] for b in batches[: k + 1]])
            want = m(pred, onehot(truth) if m is auc else truth)
            assert running.value() == pytest.approx(want, rel=1e-12), m.name


def test_regression_means_are_weighted_by_elements():
    rng = np.random.default_rng(2)
    batches = [(rng.random((n, 2)), rng.random((n, 2))) for n in (4, 7, 1)]
    for name in ("mse", "mae"):
        m = metrics_lib.get(name)
        running = m.running()
        for p, t in batches:
            running.add(p, t)
        pred, truth = (np.concatenate(a) for a in zip(*batches))
        assert running.value() == pytest.approx(m(pred, truth), rel=1e-12)


def test_funcnn_fit_batch_logs_cost_each_batch_once(monkeypatch):
    """funcnn.train.fit's TrainingContext.batch_logs, read at each batch's end."""
    x, y = _data()
    rows = []
    real = metrics_lib.class_predictions

    def counting(pred, *args, **kwargs):
        rows.append(len(pred))
        return real(pred, *args, **kwargs)

    monkeypatch.setattr(metrics_lib, "class_predictions", counting)
    seen = []

    class Read(train.Callback):
        def on_batch_end(self, batch, loss, ctx):
            seen.append(ctx.batch_logs())

    model = L.serial(L.Dense(3))
    params = model.init(0, (4,))
    _, history = train.fit(
        model, params, losses.softmax_cross_entropy, optim.sgd(0.1), x, y, epochs=1,
        batch_size=BATCH, shuffle=False, metrics=["accuracy"], callbacks=[Read()], verbose=0,
    )  # fmt: skip
    assert len(seen) == N // BATCH
    assert sum(rows) == 2 * N
    assert seen[-1]["accuracy"] == pytest.approx(history.history["accuracy"][-1])
