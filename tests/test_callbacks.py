"""Each callback's behaviour."""

import numpy as np
import pytest

from funcnn import callbacks as C
from funcnn import fit, io, losses, optim, tree
from funcnn import layers as L
from funcnn.train import History, TrainingContext

MODEL = L.serial(L.Dense(8), L.Tanh, L.Dense(2))


def data(n=40):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def context(lr=0.1):
    params = MODEL.init(0, (3,))
    opt = optim.sgd(lr)
    return TrainingContext(MODEL, params, None, opt.init(params), History(), (3,))


def feed(callback, values, key="val_loss", ctx=None, mark=True):
    """Run the callback over epochs whose monitored value is given; return the ctx.

    With ``mark`` the params of epoch i are ("params of epoch", i), to see which come back."""
    ctx = ctx or context()
    callback.on_train_begin(ctx)
    for epoch, v in enumerate(values):
        if mark:
            ctx.params = ("params of epoch", epoch)
        callback.on_epoch_end(epoch, {key: v}, ctx)
        if ctx.stop_training:
            break
    callback.on_train_end(ctx)
    return ctx


def test_early_stopping_patience_and_min_delta():
    es = C.EarlyStopping(patience=2)
    ctx = feed(es, [1.0, 0.9, 0.95, 0.91, 0.5])
    assert es.stopped_epoch == 3 and ctx.stop_training and "did not improve" in ctx.stop_reason
    es = C.EarlyStopping(patience=1, min_delta=0.2)
    feed(es, [1.0, 0.85, 0.7])
    assert es.stopped_epoch == 1


def test_early_stopping_mode_and_restore_best():
    es = C.EarlyStopping(monitor="val_accuracy", patience=1, restore_best=True)
    ctx = feed(es, [0.5, 0.8, 0.7, 0.9], key="val_accuracy")
    assert es.stopped_epoch == 2 and ctx.params == ("params of epoch", 1)
    es = C.EarlyStopping(monitor="val_loss", patience=1, mode="max")
    feed(es, [0.5, 0.4])
    assert es.stopped_epoch == 1


def test_early_stopping_missing_monitor_is_clear():
    with pytest.raises(ValueError, match=r"monitors 'val_loss'.*available: loss"):
        feed(C.EarlyStopping(), [1.0], key="loss")


def test_early_stopping_in_fit_restores_best_params(quick_fit):
    x, y = data()
    es = C.EarlyStopping("loss", patience=0, restore_best=True)
    # lr so large that the loss goes up after the first epochs
    _, history = quick_fit(MODEL, x, y, optimizer=optim.sgd(30.0), epochs=20, callbacks=[es])
    assert len(history.epochs) < 20
    assert history.stopped_reason.startswith("EarlyStopping")


def test_model_checkpoint_every_epoch_and_best_only(tmp_path, quick_fit):
    x, y = data()
    every = C.ModelCheckpoint(tmp_path / "e{epoch}.npz")
    quick_fit(MODEL, x, y, epochs=3, validation_split=0.25, callbacks=[every])
    assert [p.name for p in every.saved] == ["e1.npz", "e2.npz", "e3.npz"]
    c = io.load(tmp_path / "e3.npz")
    assert c.epoch == 3 and len(c.history["loss"]) == 3 and c.input_shape == (3,)
    best = C.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    feed(best, [1.0, 0.8, 0.9, 0.7, 0.75], mark=False)
    assert len(best.saved) == 3


class ParamsOfEachEpoch(C.Callback):
    def on_train_begin(self, ctx):
        self.seen = []

    def on_epoch_end(self, epoch, logs, ctx):
        self.seen.append(ctx.params)


def test_model_checkpoint_runs_the_model_once_per_fit(tmp_path, quick_fit, monkeypatch):
    from funcnn.io import architecture

    runs = []
    check_part = architecture._check_part
    monkeypatch.setattr(architecture, "_check_part", lambda *a: runs.append(a) or check_part(*a))
    x, y = data()
    every, params = C.ModelCheckpoint(tmp_path / "e{epoch}.json"), ParamsOfEachEpoch()
    for fit_number in (1, 2):
        quick_fit(MODEL, x, y, epochs=3, callbacks=[every, params])
        assert len(runs) == 3 * fit_number  # its first save ran each of the 3 layers once
    assert len(every.saved) == 6 and len(params.seen) == 3
    for path, seen in zip(every.saved[3:], params.seen):
        c = io.load(path)  # each file loads (and load runs the model on one example)
        assert tree.structure_difference(c.params, seen) is None
        assert all(np.array_equal(a, b) for a, b in zip(tree.leaves(c.params), tree.leaves(seen)))
    # a model the params do not fit is refused at the first save, before a file is written
    other = L.serial(L.Dense(5), L.Tanh, L.Dense(2))  # the same structure, other shapes
    wrong = C.ModelCheckpoint(tmp_path / "w{epoch}.npz", model=other)
    with pytest.raises(ValueError, match=r"do not fit the architecture: model\.layers\[0\]"):
        quick_fit(MODEL, x, y, epochs=2, callbacks=[wrong])
    assert not list(tmp_path.glob("w*"))


def test_model_checkpoint_checks_again_when_the_params_change_shape(tmp_path):
    """ModelCheckpoint skips running the model only for params of the nesting, shapes and
    dtypes it checked; a callback that swaps in params of other shapes is caught, and the
    good file from the first epoch stays."""
    x, y = data()
    other = L.serial(L.Dense(5), L.Tanh, L.Dense(2)).init(0, (3,))

    class Swap(C.Callback):
        def on_epoch_end(self, epoch, logs, ctx):
            if epoch == 1:
                ctx.params = other

    path = tmp_path / "m.npz"
    keep = C.ModelCheckpoint(path)
    with pytest.raises(ValueError, match="do not fit the architecture"):
        fit(MODEL, MODEL.init(0, (3,)), losses.softmax_cross_entropy, optim.sgd(0.1), x, y,
            epochs=3, verbose=0, callbacks=[Swap(), keep])  # fmt: skip
    assert io.load(path).epoch == 1  # the first epoch's file, untouched


def test_learning_rate_scheduler_sets_rate_per_epoch(quick_fit):
    x, y = data()
    sched = C.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)
    _, history = quick_fit(MODEL, x, y, optimizer=optim.sgd(1.0), epochs=3, callbacks=[sched])
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_reduce_lr_on_plateau():
    ctx = context(lr=1.0)
    cb = C.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0, cooldown=1, min_lr=0.2)
    seen = []
    cb.on_train_begin(ctx)
    for epoch, v in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        cb.on_epoch_end(epoch, {"val_loss": v}, ctx)
        seen.append(optim.current_learning_rate(ctx.opt_state))
    assert seen == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2])  # Keras' rules


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_terminate_on_nan_returns_last_finite_params(capsys):
    x, _ = data()
    y = np.ones((len(x), 1), np.float32)
    model = L.serial(L.Dense(8), L.Relu, L.Dense(1))
    params = model.init(0, (3,))
    # a learning rate that makes the weights overflow to inf and the loss NaN
    new, history = fit(
        model, params, losses.mean_squared_error, optim.sgd(1e30), x, y,
        epochs=5, batch_size=8, callbacks=[C.TerminateOnNaN()], verbose=1,
    )  # fmt: skip
    assert history.stopped_reason.startswith("TerminateOnNaN")
    assert all(np.all(np.isfinite(leaf)) for leaf in tree.leaves(new))
    assert not np.isfinite(history["loss"][-1])
    assert "TerminateOnNaN" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_terminate_on_nan_returns_the_params_of_the_last_finite_loss():
    """A step that overflows (SGD at 1e30 on inputs of scale 1e15: updates of 1e45 are
    inf in float32) shows only in the next batch's loss, so the params from before that
    batch are spoiled already; those that gave the last finite loss come back."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32) * 1e15
    y = rng.standard_normal((64, 1)).astype(np.float32)
    model = L.serial(L.Dense(4), L.Relu, L.Dense(1))
    params = model.init(0, (3,))
    new, history = fit(
        model, params, losses.mean_squared_error, optim.sgd(1e30), x, y,
        epochs=5, batch_size=8, shuffle=False, verbose=0, callbacks=[C.TerminateOnNaN()],
    )  # fmt: skip
    assert "batch 2 of epoch 1 gave loss" in history.stopped_reason
    assert "(batch 1 of epoch 1)" in history.stopped_reason
    assert all(np.array_equal(a, b) for a, b in zip(tree.leaves(new), tree.leaves(params)))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_terminate_on_nan_at_the_first_batch_returns_the_starting_params():
    x = np.full((16, 3), 3e38, np.float32)  # the first loss overflows already
    model = L.serial(L.Dense(2))
    params = model.init(0, (3,))
    new, history = fit(
        model, params, losses.mean_squared_error, optim.sgd(0.1), x, np.zeros((16, 2)),
        epochs=2, batch_size=8, callbacks=[C.TerminateOnNaN()], verbose=0,
    )  # fmt: skip
    assert "the first batch of this fit" in history.stopped_reason
    assert all(np.array_equal(a, b) for a, b in zip(tree.leaves(new), tree.leaves(params)))


def test_csv_logger(tmp_path, quick_fit):
    x, y = data()
    path = tmp_path / "log.csv"
    quick_fit(MODEL, x, y, epochs=3, metrics=["accuracy"], callbacks=[C.CSVLogger(path)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,lr,time" and len(lines) == 4
    assert lines[3].startswith("3,")
    quick_fit(MODEL, x, y, metrics=["accuracy"], callbacks=[C.CSVLogger(path, append=True)])
    assert len(path.read_text().splitlines()) == 5


def test_lambda_callback_counts(quick_fit):
    x, y = data(20)
    counts = {"batch": 0, "epoch": 0, "begin": 0, "end": 0}
    cb = C.LambdaCallback(
        on_train_begin=lambda ctx: counts.__setitem__("begin", counts["begin"] + 1),
        on_batch_end=lambda b, loss, ctx: counts.__setitem__("batch", counts["batch"] + 1),
        on_epoch_end=lambda e, logs, ctx: counts.__setitem__("epoch", counts["epoch"] + 1),
        on_train_end=lambda ctx: counts.__setitem__("end", counts["end"] + 1),
    )
    quick_fit(MODEL, x, y, epochs=2, batch_size=8, callbacks=[cb])
    assert counts == {"batch": 6, "epoch": 2, "begin": 1, "end": 1}


def test_bad_callback_arguments():
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'min', 'max', got 'up'"):
        C.EarlyStopping(mode="up")  # at construction, not when fit starts
    with pytest.raises(ValueError, match="patience"):
        C.EarlyStopping(patience=-1)
    bad = [
        (lambda: C.EarlyStopping(patience=1.5), TypeError, "patience must be an int"),
        (lambda: C.EarlyStopping(min_delta=-0.1), ValueError, "min_delta must be >= 0"),
        (lambda: C.EarlyStopping(min_delta="x"), TypeError, "min_delta must be a number"),
        (lambda: C.EarlyStopping(monitor=3), TypeError, "monitor must be a non-empty string"),
        (lambda: C.EarlyStopping(restore_best="yes"), TypeError, "restore_best must be True"),
        (lambda: C.EarlyStopping(baseline=float("nan")), ValueError, "baseline must be finite"),
        (lambda: C.ReduceLROnPlateau(factor="half"), TypeError, "factor must be a number"),
        (lambda: C.ReduceLROnPlateau(cooldown=-1), ValueError, "cooldown"),
        (lambda: C.ReduceLROnPlateau(min_lr=-1), ValueError, "min_lr must be >= 0"),
        (lambda: C.ModelCheckpoint(3), TypeError, "path must be a str or os.PathLike"),
        (lambda: C.ModelCheckpoint(), TypeError, "path or filepath"),
        (lambda: C.ModelCheckpoint("a.npz", save_best_only=1), TypeError, "save_best_only"),
        (lambda: C.CSVLogger("a.csv", separator=";;"), ValueError, "one character"),
        (lambda: C.LearningRateScheduler(0.1), TypeError, "function of the epoch"),
        (lambda: C.LambdaCallback(on_epoch_end=1), TypeError, "on_epoch_end must be"),
    ]
    for make, error, message in bad:
        with pytest.raises(error, match=message):
            make()


def test_keras_keywords_of_the_callbacks(tmp_path, capsys):
    es = C.EarlyStopping(patience=1, restore_best_weights=True, verbose=1)
    ctx = feed(es, [1.0, 0.5, 0.6, 0.7])
    assert es.restore_best and ctx.params == ("params of epoch", 1)
    out = capsys.readouterr().out
    assert "Epoch 3: early stopping" in out and "best epoch: 2." in out
    # a baseline to beat from the start: nothing beats 0.1, so it stops after patience
    es = C.EarlyStopping(patience=2, baseline=0.1)
    ctx = feed(es, [0.5, 0.4, 0.3])
    assert es.stopped_epoch == 1 and "none beat the baseline 0.1" in ctx.stop_reason
    # warm-up epochs are not monitored
    es = C.EarlyStopping(patience=0, start_from_epoch=2)
    feed(es, [1.0, 2.0, 3.0, 4.0])
    assert es.stopped_epoch == 3
    best = C.ModelCheckpoint(
        filepath=tmp_path / "b.npz", save_best_only=True, initial_value_threshold=0.85, verbose=1
    )
    feed(best, [1.0, 0.8, 0.9], mark=False)
    assert len(best.saved) == 1
    assert "val_loss improved from 0.85000 to 0.80000" in capsys.readouterr().out
    weights, ctx = C.ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True), context()
    weights.on_train_begin(ctx)
    weights.on_epoch_end(0, {"val_loss": 1.0}, ctx)
    c = io.load(tmp_path / "w.npz")
    assert c.opt_state is None and c.params is not None
    named = C.ModelCheckpoint(tmp_path / "{val_acc}.npz")
    named.on_train_begin(ctx)
    with pytest.raises(ValueError, match="names 'val_acc'"):
        named.on_epoch_end(0, {"val_loss": 1.0}, ctx)
    logger = C.CSVLogger(filename=tmp_path / "log.csv")
    feed(logger, [1.0, 0.5])
    assert (tmp_path / "log.csv").read_text().splitlines()[0] == "epoch,val_loss"
