"""The Keras facade's data forms beyond arrays (issue 25): ``fit`` from generators and
``keras.utils.PyDataset``/``Sequence`` objects, ``steps_per_epoch`` (arrays too),
``validation_data`` from a generator with ``validation_steps``, ``evaluate``/``predict``
with ``steps``, and Keras 3's batch logs (the running loss and metrics of the epoch so
far). Each batch is one step of the training step array batches run, so the same batches
train to the same bits. Keras 3 (JAX) is the oracle for the batch logs where installed."""

import io
import math
import os
import sys
import warnings

import numpy as np
import pytest

from funcnn import keras, train
from funcnn.keras import callbacks as keras_callbacks
from funcnn.keras import layers

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

N, BATCH = 50, 16  # four batches an epoch, the last of two rows


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def _model(module=keras, dropout=True):
    stack = [module.Input((4,)), module.layers.Dense(8, activation="relu")]
    if dropout:
        stack.append(module.layers.Dropout(0.25))
    model = module.Sequential([*stack, module.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _batches(x, y=None, w=None, size=BATCH):
    """The batches fit cuts from arrays with shuffle=False."""
    for i in range(0, len(x), size):
        batch = (x[i : i + size],)
        if y is not None:
            batch += (y[i : i + size],)
        if w is not None:
            batch += (w[i : i + size],)
        yield batch


class Batches(keras.utils.PyDataset):
    """A PyDataset of the batches of arrays; records what fit asks of it."""

    def __init__(self, x, y=None, size=BATCH, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.size = x, y, size
        self.asked, self.begun, self.ended = [], 0, 0

    def __len__(self):
        return math.ceil(len(self.x) / self.size)

    def __getitem__(self, i):
        self.asked.append(i)
        rows = slice(i * self.size, (i + 1) * self.size)
        return self.x[rows] if self.y is None else (self.x[rows], self.y[rows])

    def on_epoch_begin(self):
        self.begun += 1

    def on_epoch_end(self):
        self.ended += 1


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def _forever(x, y):
    while True:
        yield from _batches(x, y)


# ---------------------------------------------------------------- fit


def test_a_generator_and_a_pydataset_train_as_the_same_batches_of_arrays_do():
    x, y = _data()
    arrays, generator, dataset = _model(), _model(), _model()
    h = arrays.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    hg = generator.fit(_forever(x, y), steps_per_epoch=4, epochs=2, verbose=0)
    hd = dataset.fit(Batches(x, y), epochs=2, shuffle=False, verbose=0)
    assert _same_weights(arrays, generator) and _same_weights(arrays, dataset)  # dropout too
    for other in (hg, hd):
        assert other.epoch == [0, 1]
        for key in ("loss", "accuracy"):
            assert other.history[key] == h.history[key]


def test_sample_weights_from_batches_weight_the_loss_as_arrays_do():
    x, y = _data()
    w = np.linspace(0.5, 2.0, N)
    arrays, generator = _model(), _model()
    arrays.fit(x, y, batch_size=BATCH, sample_weight=w, shuffle=False, verbose=0)
    generator.fit(_batches(x, y, w), verbose=0)
    assert _same_weights(arrays, generator)


def test_steps_per_epoch_on_arrays_cuts_epochs_as_keras():
    x, y = _data()
    whole, steps = _model(), _model()
    whole.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)  # shuffled
    steps.fit(x, y, batch_size=BATCH, epochs=2, steps_per_epoch=4, verbose=0)
    assert _same_weights(whole, steps)
    # fewer steps than a pass: the next epoch goes on where the last stopped
    one, halves = _model(dropout=False), _model(dropout=False)
    one.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    h = halves.fit(x, y, batch_size=BATCH, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)
    assert _same_weights(one, halves) and h.epoch == [0, 1]
    # no batch_size: what steps_per_epoch batches take (Keras' rule)
    sized, ten = _model(), _model()
    sized.fit(x, y, steps_per_epoch=5, shuffle=False, verbose=0)
    ten.fit(x, y, batch_size=10, shuffle=False, verbose=0)
    assert _same_weights(sized, ten)


def test_an_infinite_generator_runs_steps_per_epoch_batches_an_epoch():
    x, y = _data()
    taken = []

    def forever():
        while True:
            for batch in _batches(x, y):
                taken.append(len(batch[0]))
                yield batch

    model = _model()
    h = model.fit(forever(), steps_per_epoch=3, epochs=2, verbose=0)
    assert h.epoch == [0, 1] and len(taken) == 6  # nothing read ahead of the steps


def test_a_generator_that_runs_out_warns_as_keras_and_stops():
    x, y = _data()
    model = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = model.fit(_batches(x, y), steps_per_epoch=3, epochs=4, verbose=0)
    assert h.epoch == [0, 1]  # 3 batches, then the last one; then nothing is left
    assert h.stopped_reason == "the input ran out of data"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # one pass without steps: no warning
        assert _model().fit(_batches(x, y), verbose=0).epoch == [0]


def test_a_pydataset_calls_its_epoch_hooks_and_shuffles_its_batch_order():
    x, y = _data()
    data = Batches(x, y, workers=4, use_multiprocessing=True, max_queue_size=3)
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (4, True, 3)
    _model().fit(data, epochs=3, verbose=0)  # shuffle=True: the batches' order
    assert data.begun == data.ended == 3
    orders = [data.asked[i : i + 4] for i in range(len(data.asked) - 12, len(data.asked), 4)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1
    plain = Batches(x, y)
    _model().fit(plain, epochs=2, shuffle=False, verbose=0)
    assert plain.asked[-8:] == [0, 1, 2, 3] * 2
    assert issubclass(keras.utils.Sequence, keras.utils.PyDataset)


def test_steps_per_epoch_beyond_a_pydataset_warns_and_each_epoch_is_one_pass():
    x, y = _data()
    data = Batches(x, y)
    with pytest.warns(UserWarning, match="ran out of data"):
        h = _model().fit(data, steps_per_epoch=6, epochs=2, shuffle=False, verbose=0)
    assert h.epoch == [0, 1] and data.asked[-8:] == [0, 1, 2, 3] * 2


def test_validation_from_a_generator_or_a_pydataset_scores_as_arrays():
    x, y = _data()
    xv, yv = _data(20, seed=1)
    arrays, generator, dataset, once = _model(), _model(), _model(), _model()
    h = arrays.fit(x, y, epochs=2, validation_data=(xv, yv), verbose=0)
    hg = generator.fit(
        x, y, epochs=2, validation_data=_forever(xv, yv), validation_steps=2, verbose=0
    )
    hd = dataset.fit(x, y, epochs=2, validation_data=Batches(xv, yv), verbose=0)
    ho = once.fit(x, y, epochs=2, validation_data=_batches(xv, yv), verbose=0)  # kept
    assert _same_weights(arrays, generator)  # arrays shuffled through Keras' epochs: same bits
    for other in (hg, hd, ho):
        for key in ("val_loss", "val_accuracy"):
            assert other.history[key] == pytest.approx(h.history[key], rel=1e-12)


def test_a_generator_trains_with_callbacks_and_stops_on_request():
    x, y = _data()

    class StopAfterTwo(keras_callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    h = _model().fit(_forever(x, y), steps_per_epoch=4, epochs=3, verbose=0,
                     callbacks=[StopAfterTwo()])  # fmt: skip
    assert h.epoch == [0]


# ---------------------------------------------------------------- evaluate and predict


def test_evaluate_and_predict_take_generators_pydatasets_and_steps():
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0)
    first = model.evaluate(x[:32], y[:32], verbose=0, return_dict=True)
    assert model.evaluate(_forever(x, y), steps=2, verbose=0, return_dict=True) == first
    assert model.evaluate(x, y, batch_size=16, steps=2, verbose=0, return_dict=True) == first
    whole = model.evaluate(x, y, verbose=0, return_dict=True)
    assert model.evaluate(Batches(x, y), verbose=0, return_dict=True) == pytest.approx(whole)
    pred = model.predict(x, verbose=0)
    assert np.array_equal(model.predict(Batches(x), verbose=0), pred)  # x-only batches
    assert np.array_equal(model.predict(_batches(x, y), verbose=0), pred)  # (x, y): its x
    assert np.array_equal(model.predict(_forever(x, y), steps=2, verbose=0), pred[:32])
    assert np.array_equal(model.predict(x, batch_size=10, steps=2, verbose=0), pred[:20])
    with pytest.warns(UserWarning, match="ran out of data"):
        model.evaluate(Batches(x, y), steps=9, verbose=0)


def test_evaluate_from_a_generator_gives_keras_callbacks_running_logs():
    x, y = _data()
    model = _model()
    seen = []
    model.evaluate(_batches(x, y), verbose=0, callbacks=[keras_callbacks.LambdaCallback(
        on_test_batch_end=lambda b, logs: seen.append(logs))])  # fmt: skip
    assert len(seen) == 4
    assert seen[0] == model.evaluate(x[:16], y[:16], verbose=0, return_dict=True)
    assert seen[-1] == model.evaluate(x, y, verbose=0, return_dict=True)


def test_bad_batches_and_arguments_are_clear_errors():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="4 items"):
        model.fit(iter([(x, y, np.ones(N), y)]), verbose=0)
    with pytest.raises(ValueError, match="without targets"):
        model.fit(_batches(x), verbose=0)
    with pytest.raises(ValueError, match="without targets"):
        model.evaluate(Batches(x), verbose=0)
    with pytest.raises(TypeError, match="dict"):
        model.fit(iter([{"x": x, "y": y}]), verbose=0)
    with pytest.raises(ValueError, match="no y is given"):
        model.fit(_batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="yielded no batch"):
        model.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="x has 16 samples but y has 15"):
        model.fit(iter([(x[:16], y[:15])]), verbose=0)
    with pytest.raises(ValueError, match="validation_split works on arrays"):
        model.fit(_batches(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(_batches(x, y), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="fit needs x"):
        model.fit(verbose=0)
    with pytest.raises(ValueError, match="fit needs y"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(x, y, steps_per_epoch=0, verbose=0)

    class Loader:  # a torch DataLoader's form: iterable, not an iterator nor indexable
        def __iter__(self):
            return _batches(x, y)

        def __len__(self):
            return 4

    with pytest.raises(TypeError, match="a Loader is not read"):
        model.fit(Loader(), verbose=0)

    class Endless(keras.utils.PyDataset):
        num_batches = None

        def __getitem__(self, i):
            return x[:16], y[:16]

    with pytest.raises(ValueError, match="infinite PyDataset"):
        model.fit(Endless(), verbose=0)
    assert model.fit(Endless(), steps_per_epoch=2, verbose=0).epoch == [0]


def test_an_unbuilt_model_is_built_from_the_first_batch():
    x, y = _data()
    model = keras.Sequential([layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(_batches(x, y), verbose=0)
    assert model.input_shape == (4,)


# ---------------------------------------------------------------- batch logs


class Logs(keras_callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


class Values(train.Callback):
    """Each batch's own loss, as funcnn's callbacks get it."""

    def __init__(self):
        self.values = []

    def on_batch_end(self, batch, loss, ctx):
        self.values.append(loss)


def test_batch_logs_are_the_running_averages_of_the_epoch():
    x, y = _data()
    model, logs, values = _model(), Logs(), Values()
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[logs, values])
    sizes = [16, 16, 16, 2] * 2
    for i, (b, seen) in enumerate(logs.batches):
        assert b == i % 4 and set(seen) == {"loss", "accuracy"}
        start = i - b
        rows = sizes[start : i + 1]
        mean = sum(v * n for v, n in zip(values.values[start : i + 1], rows)) / sum(rows)
        assert seen["loss"] == pytest.approx(mean, rel=1e-12)
        assert seen["accuracy"] * sum(rows) == pytest.approx(round(seen["accuracy"] * sum(rows)))
    for epoch, last in zip(logs.epochs, (logs.batches[3][1], logs.batches[7][1])):
        assert last == {k: epoch[k] for k in last}  # the last batch's logs: the epoch's
    # a generator of the same batches logs the same bits
    again = Logs()
    _model().fit(_forever(x, y), steps_per_epoch=4, epochs=2, verbose=0, callbacks=[again])
    assert again.batches == logs.batches


def test_the_progress_bar_shows_the_running_loss(monkeypatch):
    x, y = _data()

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out, logs = Terminal(), Logs()
    monkeypatch.setattr(sys, "stdout", out)
    _model().fit(x, y, batch_size=BATCH, epochs=1, verbose=1, callbacks=[logs])
    drawn = [part for part in out.getvalue().split("\r") if "steps/s" in part]
    assert drawn[0].startswith("1/4 ") and drawn[-1].startswith("4/4 ")
    for part, index in ((drawn[0], 0), (drawn[-1], 3)):
        assert part.rstrip().endswith(f"loss: {logs.batches[index][1]['loss']:.4f}")


def test_batch_logs_match_keras():
    k = keras_real()
    x, y = _data(40)
    theirs, ours = _model(k, dropout=False), _model(keras, dropout=False)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    seen = {}
    for name, model, base in (("theirs", theirs, k.callbacks.Callback), ("ours", ours, None)):

        class Keep(base or keras_callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seen = []

            def on_train_batch_end(self, batch, logs=None):
                self.seen.append((batch, {n: float(v) for n, v in logs.items()}))

        keep = Keep()
        model.compile(
            (k if model is theirs else keras).optimizers.SGD(0.1),
            "sparse_categorical_crossentropy", metrics=["accuracy"],
        )  # fmt: skip
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[keep])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras: shuffle ignored, and the end of the data
            model.fit(_batches(x, y), verbose=0, callbacks=[keep])  # then the same from batches
        seen[name] = keep.seen
    assert [b for b, _ in seen["ours"]] == [b for b, _ in seen["theirs"]] == [0, 1, 2] * 3
    for (_, a), (_, b) in zip(seen["ours"], seen["theirs"]):
        assert a.keys() == b.keys()
        for n in a:
            assert a[n] == pytest.approx(b[n], rel=1e-5, abs=1e-6)
