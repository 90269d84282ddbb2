"""fit / evaluate / predict / train_step: batches, validation, history, determinism, resuming."""

import io as io_
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from funcnn import callbacks, evaluate, fit, io, losses, optim, predict, train_step, tree
from funcnn import layers as L
from funcnn.losses import FunctionLoss
from funcnn.progress import Progress


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


MODEL = L.serial(L.Dense(8), L.Relu, L.Dropout(0.3), L.Dense(2))


def recording_loss(seen):
    """softmax cross-entropy that records the targets of each batch it sees."""

    def fn(pred, target):
        seen.append(np.array(target))
        return losses.mean_squared_error.value_and_grad(
            pred[:, :1], np.asarray(target, np.float32)[:, None]
        )[0], np.zeros_like(pred)

    return FunctionLoss("recording", fn)


def test_every_sample_every_epoch_including_the_last_partial_batch(quick_fit):
    x = np.zeros((10, 3), np.float32)
    y = np.arange(10)
    seen = []
    quick_fit(MODEL, x, y, loss=recording_loss(seen), optimizer=optim.sgd(0.1), epochs=2,
              batch_size=4)  # fmt: skip
    assert [len(s) for s in seen] == [4, 4, 2, 4, 4, 2]
    for epoch in (seen[:3], seen[3:]):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(10))
    assert not np.array_equal(np.concatenate(seen[:3]), np.arange(10))  # shuffled


def test_shuffle_false_keeps_order(quick_fit):
    seen = []
    x, y = np.zeros((5, 3), np.float32), np.arange(5)
    quick_fit(MODEL, x, y, loss=recording_loss(seen), optimizer=optim.sgd(0.1), batch_size=2,
              shuffle=False)  # fmt: skip
    assert np.array_equal(np.concatenate(seen), np.arange(5))


def test_validation_split_holds_out_the_last_samples_before_shuffling(quick_fit):
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    y = np.arange(50)
    seen = []
    quick_fit(MODEL, x, y, loss=recording_loss(seen), optimizer=optim.sgd(0.0),
              validation_split=0.2)  # fmt: skip
    assert sorted(np.concatenate(seen[:-1]).tolist()) == list(range(40))
    assert np.array_equal(seen[-1], np.arange(40, 50))  # the validation pass


def test_validation_scores_are_those_of_the_epochs_params(quick_fit):
    x, y = data()
    params, history = quick_fit(MODEL, x, y, validation_split=0.25, metrics=["accuracy"])
    scores = evaluate(
        MODEL, params, losses.softmax_cross_entropy, x[30:], y[30:], metrics=["accuracy"]
    )
    assert history["val_loss"][0] == pytest.approx(scores["loss"], rel=1e-6)
    assert history["val_accuracy"][0] == scores["accuracy"]


def test_history_contents(quick_fit):
    x, y = data()
    result = quick_fit(
        MODEL, x, y, epochs=3, validation_data=(x[:8], y[:8]), metrics=["accuracy", "f1"]
    )
    history = result.history
    d = history.to_dict()
    assert list(d) == [
        "epoch",
        "loss",
        "accuracy",
        "f1",
        "val_loss",
        "val_accuracy",
        "val_f1",
        "lr",
        "time",
    ]
    assert d["epoch"] == [0, 1, 2] and all(len(v) == 3 for v in d.values())
    assert d["lr"] == [0.01] * 3 and all(t > 0 for t in d["time"])
    assert d["loss"][2] < d["loss"][0]
    assert history.stopped_reason is None


def test_fit_returns_a_record_that_unpacks_as_params_and_history(quick_fit):
    x, y = data()
    model = L.serial(L.Dense(4), L.BatchNorm(), L.Relu, L.Dense(2))
    result = quick_fit(model, x, y, epochs=2)
    params, history = result  # the pair that fit returned before it returned a record
    assert params is result.params and history is result.history
    assert history.epochs == [0, 1] and result.opt_state is not None
    assert result.state is not None
    with pytest.raises(AttributeError, match=r"write `result = fit\(...\)` then `result.state`"):
        history.state  # noqa: B018 (where it was before: the error says where it is now)
    prediction = predict(model, params, x, state=result.state)  # BatchNorm's statistics
    assert prediction.shape == (40, 2)


def test_fit_is_deterministic_and_pure(quick_fit):
    x, y = data()
    params = MODEL.init(0, (3,))
    before = tree.map(np.copy, (params, x, y))
    runs = [quick_fit(MODEL, x, y, params=params, epochs=2, rng=seed).params for seed in (5, 5, 6)]
    for a, b in zip(tree.leaves(runs[0]), tree.leaves(runs[1])):
        assert np.array_equal(a, b)
    assert not np.array_equal(runs[0][0].w, runs[2][0].w)
    for a, b in zip(tree.leaves(before), tree.leaves((params, x, y))):
        assert np.array_equal(a, b)


def test_resuming_from_a_checkpoint_is_bit_identical(tmp_path):
    x, y = data(60)
    params = MODEL.init(0, (3,))
    args = (MODEL, params, losses.softmax_cross_entropy, optim.adam(0.01), x, y)
    full, _ = fit(*args, epochs=4, batch_size=8, rng=3, verbose=0)
    ckpt = callbacks.ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", monitor="loss")
    fit(*args, epochs=2, batch_size=8, rng=3, verbose=0, callbacks=[ckpt])
    c = io.load(tmp_path / "ckpt-2.npz")
    assert c.epoch == 2
    resumed, history = fit(
        *args[:1], c.params, *args[2:], epochs=4, batch_size=8, rng=3, verbose=0,
        opt_state=c.opt_state, initial_epoch=c.epoch,
    )  # fmt: skip
    assert history.epochs == [2, 3]
    for a, b in zip(tree.leaves(full), tree.leaves(resumed)):
        assert np.array_equal(a, b)


def test_train_step_is_pure_and_descends():
    x, y = data()
    params = MODEL.init(0, (3,))
    opt = optim.sgd(0.5)
    step = train_step(MODEL, losses.softmax_cross_entropy, opt)
    state = opt.init(params)
    before = tree.map(np.copy, params)
    new_params, new_state, loss0 = step(params, state, x, y, 0)
    for a, b in zip(tree.leaves(before), tree.leaves(params)):
        assert np.array_equal(a, b)
    for _ in range(20):
        new_params, new_state, loss = step(new_params, new_state, x, y, 0)
    assert loss < loss0


def test_predict_in_batches_equals_one_pass():
    x, _ = data(103)
    params = MODEL.init(0, (3,))
    assert np.array_equal(predict(MODEL, params, x, batch_size=10), MODEL.apply(params, x))


def test_verbose_output(capsys, quick_fit):
    x, y = data()
    quick_fit(MODEL, x, y, epochs=2, batch_size=8, metrics=["accuracy"], verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "\r" not in out and "5/5 - " in out  # not a terminal: plain lines, as Keras
    assert "loss: " in out and "accuracy: " in out and "lr: 0.01" in out

    class Terminal(io_.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    bar = Progress(1, 2, 5, screen)
    bar.epoch_begin(0)
    for step in range(1, 6):
        bar.batch(step, 0.5)
    bar.epoch_end({"loss": 0.5, "time": 0.1})
    assert "5/5 [" in screen.getvalue() and "steps/s" in screen.getvalue()  # the bar
    quick_fit(MODEL, x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_fit_bad_input():
    x, y = data()
    params = MODEL.init(0, (3,))
    args = (MODEL, params, losses.softmax_cross_entropy, optim.adam(0.01))
    with pytest.raises(ValueError, match="40 samples but y has 39"):
        fit(*args, x, y[:-1], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit(*args, x, y, epochs=0, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\)"):
        fit(*args, x, y, epochs=1, validation_split=1.0, verbose=0)
    with pytest.raises(TypeError, match="GradientTransformation"):
        fit(MODEL, params, losses.softmax_cross_entropy, "adam", x, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="must be numeric"):
        fit(*args, x.astype(str), y, epochs=1, verbose=0)


def test_fit_is_kind_to_what_users_write():
    x, y = data()
    params = MODEL.init(0, (3,))
    args = (MODEL, params, losses.softmax_cross_entropy, optim.adam(0.01), x, y)
    _, history = fit(*args, epochs=1, verbose=0, metrics="accuracy")  # a bare string
    assert "accuracy" in history
    seen = []
    one = callbacks.LambdaCallback(on_epoch_end=lambda e, logs, ctx: seen.append(e))
    fit(*args, epochs=2, verbose=0, callbacks=one)  # one callback, not in a list
    assert seen == [0, 1]
    with pytest.raises(TypeError, match=r"class EarlyStopping, not a callback: construct it"):
        fit(*args, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping])
    for bad in (-1, 1.5):
        with pytest.raises((TypeError, ValueError), match="initial_epoch must be an int >= 0"):
            fit(*args, epochs=2, verbose=0, initial_epoch=bad)
    for kwargs, message in (
        ({"verbose": 3}, "verbose must be one of 0, 1, 2, got 3"),
        ({"verbose": True}, "verbose must be one of 0, 1, 2, got True"),
        ({"verbose": 0, "shuffle": "yes"}, "shuffle must be True or False"),
    ):
        with pytest.raises((TypeError, ValueError), match=message):
            fit(*args, epochs=1, **kwargs)
    rates = []
    keras_style = callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    spy = callbacks.LambdaCallback(
        on_epoch_begin=lambda e, ctx: rates.append(optim.current_learning_rate(ctx.opt_state))
    )
    fit(*args, epochs=2, verbose=0, callbacks=[keras_style, spy])
    np.testing.assert_allclose(rates, [0.1, 0.05])
    with pytest.raises(ValueError, match="the validation data does not fit the model"):
        fit(*args, epochs=1, verbose=0, validation_data=(np.ones((4, 5)), np.zeros(4, int)))


def test_constructors_refuse_what_they_would_silently_misuse():
    for make, error, match in [
        (lambda: L.LeakyRelu(float("nan")), ValueError, "finite"),
        (lambda: L.LeakyRelu(float("inf")), ValueError, "finite"),
        (lambda: L.Dense(3, use_bias="no"), TypeError, "True or False"),
        (lambda: L.Reshape((2.5, 2)), TypeError, "tuple of ints"),
        (lambda: L.MaxPool2D(2.5), TypeError, "int >= 1"),
        (lambda: L.MaxPool2D(0), ValueError, "int >= 1"),
        (lambda: L.AvgPool2D(2, strides=-1), ValueError, "int >= 1"),
        (lambda: optim.adam(1e-3, eps=0.0), ValueError, "eps > 0"),
        (lambda: optim.nadam(1e-3, eps=0.0), ValueError, "eps > 0"),
        (lambda: optim.adamax(1e-3, eps=0.0), ValueError, "eps must be > 0"),
        (lambda: optim.adadelta(eps=0.0), ValueError, "eps must be > 0"),
        (lambda: optim.rmsprop(1e-3, eps=0.0), ValueError, "eps must be > 0"),
    ]:
        with pytest.raises(error, match=match):
            make()
    assert L.Dropout(np.float32(0.5)) == L.Dropout(0.5)  # NumPy scalars as Python's
    for dtype in (np.int32, bool, np.complex64, object, str):
        with pytest.raises(TypeError, match="float dtype"):
            L.serial(L.Dense(2), L.BatchNorm()).init(0, (3,), dtype=dtype)


def test_fit_takes_tuples_of_inputs_and_targets():
    gen = np.random.default_rng(0)
    x1, x2 = gen.standard_normal((64, 3)), gen.standard_normal((64, 2))
    x1, x2 = x1.astype(np.float32), x2.astype(np.float32)
    y = ((x1[:, 0] + x2[:, 1]) > 0).astype(np.int64)
    two_in = L.serial(L.parallel(L.Dense(4), L.Dense(4)), L.FanInConcat(), L.Relu, L.Dense(2))
    params = two_in.init(0, ((3,), (2,)))
    args = (two_in, params, losses.softmax_cross_entropy, optim.adam(0.05))
    _, h = fit(*args, (x1, x2), y, epochs=3, verbose=0, validation_split=0.25, metrics="accuracy")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(h.history)
    # the same as a list (Keras' form), and in predict and evaluate
    p_list, _ = fit(*args, [x1, x2], y, epochs=1, verbose=0)
    p_tuple, _ = fit(*args, (x1, x2), y, epochs=1, verbose=0)
    assert tree.leaves(p_list)[0].tobytes() == tree.leaves(p_tuple)[0].tobytes()
    assert predict(two_in, p_tuple, (x1, x2), batch_size=10).shape == (64, 2)
    # two outputs, one loss each
    two_out = L.serial(L.Dense(8), L.Relu, L.FanOut(2), L.parallel(L.Dense(1), L.Dense(2)))
    loss = losses.per_output(losses.mean_squared_error, losses.softmax_cross_entropy)
    target = (x1[:, :1] * 2, y)
    p, h = fit(two_out, two_out.init(0, (3,)), loss, optim.adam(0.05), x1, target, epochs=15,
               verbose=0, validation_data=(x1[:8], (target[0][:8], y[:8])))  # fmt: skip
    assert h["loss"][-1] < h["loss"][0] / 3 and "val_loss" in h.history
    scores = evaluate(two_out, p, loss, x1, target)
    assert scores["loss"] == pytest.approx(loss(predict(two_out, p, x1), target))
    with pytest.raises(ValueError, match=r"the arrays of x differ in their numbers of samples"):
        fit(*args, (x1, x2[:10]), y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="x has 64 samples but y has 10"):
        fit(*args, (x1, x2), y[:10], epochs=1, verbose=0)


def test_fit_with_sample_weights_through_a_weighted_loss():
    x, y = data()
    model = L.serial(L.Dense(8), L.Tanh, L.Dense(2))  # no Dropout: its masks follow the rows
    weighted = losses.weighted(losses.softmax_cross_entropy)
    ones = np.ones(len(y))
    args = (model, model.init(0, (3,)))
    p1, h1 = fit(*args, weighted, optim.sgd(0.1), x, (y, ones), epochs=2, verbose=0,
                 shuffle=False, metrics="accuracy")  # fmt: skip
    p2, h2 = fit(*args, losses.softmax_cross_entropy, optim.sgd(0.1), x, y, epochs=2,
                 verbose=0, shuffle=False, metrics="accuracy")  # fmt: skip
    # weights of one are no weights (the same params to rounding), and metrics see labels
    np.testing.assert_allclose(tree.leaves(p1)[0], tree.leaves(p2)[0], rtol=1e-6)
    assert h1["accuracy"] == h2["accuracy"]
    # a zero weight leaves a sample out of the gradient entirely
    zero = np.ones(len(y))
    zero[::2] = 0
    p3, _ = fit(*args, weighted, optim.sgd(0.1), x, (y, zero), epochs=1, verbose=0,
                shuffle=False, batch_size=len(y))  # fmt: skip
    kept = slice(1, None, 2)
    p4, _ = fit(*args, losses.softmax_cross_entropy, optim.sgd(0.05), x[kept], y[kept],
                epochs=1, verbose=0, shuffle=False, batch_size=len(y))  # fmt: skip
    np.testing.assert_allclose(tree.leaves(p3)[0], tree.leaves(p4)[0], rtol=1e-5)


def test_validation_split_of_sorted_classes_warns():
    x, y = data(40)
    order = np.argsort(y, kind="stable")
    args = (MODEL, MODEL.init(0, (3,)), losses.softmax_cross_entropy, optim.sgd(0.1))
    with pytest.warns(UserWarning, match="every one of them is of class 1.*Shuffle them first"):
        fit(*args, x[order], y[order], epochs=1, verbose=0, validation_split=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(*args, x, y, epochs=1, verbose=0, validation_split=0.2)  # mixed: no warning


BLAS_THREADS = """
import json
import numpy as np
from threadpoolctl import threadpool_info
from funcnn import callbacks, evaluate, fit, linalg, losses, optim, predict
from funcnn import layers as L

def blas():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

seen, during = {"start": blas()}, []
model = L.serial(L.Dense(64), L.Relu, L.Dense(2))
x = np.random.default_rng(0).standard_normal((300, 100)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
spy = callbacks.LambdaCallback(on_epoch_end=lambda e, logs, ctx: during.append(blas()))
params, _ = fit(model, model.init(0, (100,)), losses.softmax_cross_entropy, optim.adam(0.01),
                x, y, epochs=1, verbose=0, callbacks=[spy], validation_split=0.2)
seen["fit"] = blas()
predict(model, params, x)
seen["predict"] = blas()
evaluate(model, params, losses.softmax_cross_entropy, x, y)
seen["evaluate"] = blas()
model.apply(params, x)  # a layer called directly holds the BLAS, as before
seen["apply"] = blas()
linalg.release_blas()
seen["released"] = blas()
print(json.dumps({"seen": seen, "during": during}))
"""


def test_fit_predict_and_evaluate_give_the_blas_back_its_threads():
    """In a fresh process: the BLAS runs on one thread inside fit, and on the thread count
    the process started with after fit, predict and evaluate."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", BLAS_THREADS], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    seen = report["seen"]
    assert seen["start"] and set(seen["start"]) == {2}, seen
    assert report["during"] == [[1] * len(seen["start"])]
    for moment in ("fit", "predict", "evaluate", "released"):
        assert seen[moment] == seen["start"], f"after {moment}: {seen}"
    assert set(seen["apply"]) == {1}


def test_fit_result_indexes_as_the_pair_fit_returned(quick_fit):
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = L.serial(L.Dense(2))
    result = quick_fit(model, x, y, epochs=1)
    assert len(result) == 2 and result[0] is result.params and result[1] is result.history
    assert result[-1] is result.history and list(result) == [result.params, result.history]
