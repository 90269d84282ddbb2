"""Learning-rate schedules and the optimizer's learning rate in the Keras facade:
``keras.optimizers.schedules`` (Keras 3's formulas, configs and reprs), a schedule as any
optimizer's ``learning_rate`` (stepped once per batch, saved and loaded with the compile
settings, resumed), and ``model.optimizer.learning_rate`` read and set, from a callback
too. Keras 3 itself is the oracle where it is installed (JAX backend; skipped elsewhere);
every value is also checked by hand."""

import math
import os

import numpy as np
import pytest

from funcnn import keras, optim
from funcnn.keras import callbacks as keras_callbacks
from funcnn.keras import optimizers
from funcnn.keras.optimizers import schedules
from funcnn.keras.optimizers.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

STEPS = (0, 1, 5, 100, 1000)

# (class name, args, kwargs): each schedule, and each of its options
CASES = [
    ("ExponentialDecay", (0.1, 10, 0.5), {}),
    ("ExponentialDecay", (0.1, 7, 0.9), {"staircase": True}),
    ("PiecewiseConstantDecay", ([1, 5, 100], [1.0, 0.5, 0.1, 0.01]), {}),
    ("PolynomialDecay", (0.1, 200), {}),
    ("PolynomialDecay", (0.1, 30, 0.01), {"power": 2.0, "cycle": True}),
    ("InverseTimeDecay", (0.1, 10, 0.5), {}),
    ("InverseTimeDecay", (0.1, 3, 0.5), {"staircase": True}),
    ("CosineDecay", (0.1, 500), {"alpha": 0.1}),
    ("CosineDecay", (0.0, 500), {"warmup_target": 0.2, "warmup_steps": 50}),
    ("CosineDecay", (0.05, 50), {"warmup_target": 0.2, "warmup_steps": 0}),
    ("CosineDecayRestarts", (0.1, 10), {}),
    ("CosineDecayRestarts", (0.1, 10), {"t_mul": 1.0, "m_mul": 0.5, "alpha": 0.1}),
]


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _data(n=64, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = (2.0 * rng.standard_normal((n, features)) + 1.0).astype(np.float32)
    y = (x @ rng.standard_normal((features, 1)) + 0.1).astype(np.float32)
    return x, y


def _model(module):
    return module.Sequential([module.Input((4,)), module.layers.Dense(3, activation="tanh"),
                              module.layers.Dense(1)])  # fmt: skip


# ---------------------------------------------------------------- the schedules' values


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES)
def test_each_schedule_gives_keras_values(name, args, kwargs):
    k = keras_real()
    ours = getattr(schedules, name)(*args, **kwargs)
    theirs = getattr(k.optimizers.schedules, name)(*args, **kwargs)
    for step in STEPS:
        assert ours(step) == pytest.approx(float(theirs(step)), rel=2e-6, abs=1e-9), step


def test_schedule_values_by_hand():
    e = ExponentialDecay(0.1, 10, 0.5)
    assert [e(s) for s in STEPS] == pytest.approx([0.1 * 0.5 ** (s / 10) for s in STEPS])
    assert ExponentialDecay(0.1, 10, 0.5, staircase=True)(19) == pytest.approx(0.05)
    p = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])  # a boundary has the value before it
    assert [p(s) for s in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    poly = PolynomialDecay(0.1, 10, 0.01, power=2.0)
    assert [poly(s) for s in (0, 5, 10, 100)] == pytest.approx([0.1, 0.0325, 0.01, 0.01])
    assert PolynomialDecay(0.1, 10, power=1.0)(5) == pytest.approx(0.05 + 0.00005)  # end 1e-4
    cycled = PolynomialDecay(0.1, 10, 0.01, power=2.0, cycle=True)  # decay_steps 20 at 15
    assert [cycled(s) for s in (0, 10, 15)] == pytest.approx([0.1, 0.01, 0.09 * 0.25**2 + 0.01])
    inv = InverseTimeDecay(0.1, 10, 0.5)
    assert [inv(s) for s in (0, 5, 100)] == pytest.approx([0.1, 0.1 / 1.25, 0.1 / 6])
    assert InverseTimeDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.1 / 1.5)
    assert InverseTimeDecay(0.1, 1.0, 0.5)(2) == pytest.approx(0.05)  # Keras' decay_steps=1.0
    cos = CosineDecay(0.1, 10, alpha=0.1)
    assert [cos(s) for s in (0, 5, 10, 1000)] == pytest.approx([0.1, 0.055, 0.01, 0.01])
    warm = CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=4)
    assert [warm(s) for s in (0, 2, 4, 9, 14, 1000)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.05, 0.0, 0.0], abs=1e-15
    )
    assert CosineDecay(0.5, 10, warmup_steps=4)(5) == pytest.approx(0.25)  # no target: no warm-up
    sgdr = CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert [sgdr(s) for s in (0, 5, 10, 20, 30)] == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25])
    assert e(np.int64(5)) == e(5.0) == e(5)  # a NumPy step, as Keras' iterations


def test_schedules_check_their_arguments():
    with pytest.raises(ValueError, match="decay_steps"):
        ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(TypeError, match="decay_steps"):
        ExponentialDecay(0.1, 2.5, 0.5)
    with pytest.raises(ValueError, match="1 less than the length of values"):
        PiecewiseConstantDecay([1, 2], [0.1, 0.01])
    with pytest.raises(ValueError, match="strictly increasing"):
        PiecewiseConstantDecay([5, 2], [0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="initial_learning_rate"):
        CosineDecay(-0.1, 10)
    with pytest.raises(ValueError, match="step"):
        ExponentialDecay(0.1, 10, 0.5)(-1)
    with pytest.raises(NotImplementedError, match="must override"):
        schedules.LearningRateSchedule()(0)


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES)
def test_configs_rebuild_each_schedule_and_the_repr_shows_it(name, args, kwargs):
    schedule = getattr(schedules, name)(*args, **kwargs)
    again = type(schedule).from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()
    assert [again(s) for s in STEPS] == [schedule(s) for s in STEPS]
    back = schedules.deserialize(schedules.serialize(schedule))
    assert type(back) is type(schedule) and back.get_config() == schedule.get_config()
    assert repr(schedule).startswith(f"{name}(initial_learning_rate=" if "Piece" not in name
                                     else f"{name}(boundaries=")  # fmt: skip
    assert "name=" not in repr(schedule)  # the default name is left out


def test_schedule_configs_and_names_are_keras():
    e = ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96, staircase=True)
    assert e.get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96,
        "staircase": True, "name": "ExponentialDecay",
    }  # fmt: skip
    assert repr(e) == (
        "ExponentialDecay(initial_learning_rate=0.1, decay_steps=100, decay_rate=0.96, "
        "staircase=True)"
    )
    assert CosineDecay(0.1, 10).get_config()["warmup_target"] is None
    assert PolynomialDecay(0.1, 10).get_config()["end_learning_rate"] == 0.0001
    assert keras.optimizers.schedules.ExponentialDecay is ExponentialDecay
    with pytest.raises(ValueError, match="unknown learning rate schedule"):
        schedules.deserialize({"class_name": "Nope", "config": {}})

    class Mine(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1

    with pytest.raises(TypeError, match="no config"):
        schedules.serialize(Mine())
    assert repr(Mine()) == "<Mine learning rate schedule>"


def test_keras_configs_load_here():
    k = keras_real()
    for name, args, kwargs in CASES:
        config = getattr(k.optimizers.schedules, name)(*args, **kwargs).get_config()
        ours = getattr(schedules, name).from_config(config)
        assert ours.get_config() == config
        assert ours(5) == pytest.approx(getattr(schedules, name)(*args, **kwargs)(5))


# ---------------------------------------------------------------- a schedule trains


def test_any_optimizer_steps_a_schedule_once_per_update():
    schedule = ExponentialDecay(0.1, 1, 0.5)
    transformation = optimizers.SGD(learning_rate=schedule).build()
    params = (np.ones(1),)
    state = transformation.init(params)
    steps = []
    for _ in range(3):
        updates, state = transformation.update((np.ones(1),), state, params)
        steps.append(-float(updates[0][0]))
    assert steps == pytest.approx([0.1, 0.05, 0.025])  # from step 0, as Keras' iterations
    for cls in optimizers.CLASSES.values():
        cls(learning_rate=schedule).build()  # every optimizer takes one


def test_a_model_trains_with_the_schedule_per_batch():
    x, y = _data()
    schedule = ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    model = _model(keras)
    model.compile(keras.optimizers.SGD(learning_rate=schedule), "mse")
    assert model.optimizer.learning_rate == pytest.approx(0.05)  # schedule(0) before training
    history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 12  # 4 batches an epoch
    assert history["lr"] == pytest.approx([schedule(4), schedule(8), schedule(12)])
    assert model.optimizer.learning_rate == pytest.approx(schedule(12))
    assert isinstance(model.optimizer.learning_rate, float)


def test_sgd_with_exponential_decay_matches_keras():
    k = keras_real()
    x, y = _data()
    theirs, ours = _model(k), _model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model, module in ((theirs, k), (ours, keras)):
        schedule = module.optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)
        model.compile(module.optimizers.SGD(learning_rate=schedule), "mse")
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-6)
    their_rate = float(np.asarray(theirs.optimizer.learning_rate))
    assert ours.optimizer.learning_rate == pytest.approx(their_rate, rel=1e-6)


# ---------------------------------------------------------------- repr, save, load


def test_an_optimizer_with_a_schedule_has_a_repr_and_a_config():
    schedule = ExponentialDecay(0.1, 10, 0.5)
    opt = optimizers.SGD(learning_rate=schedule, momentum=0.9)
    assert repr(opt) == (
        "SGD(learning_rate=ExponentialDecay(initial_learning_rate=0.1, decay_steps=10, "
        "decay_rate=0.5, staircase=False), momentum=0.9, nesterov=False)"
    )
    config = opt.get_config()
    assert config["learning_rate"] == {"class_name": "ExponentialDecay",
                                       "config": schedule.get_config()}  # fmt: skip
    again = optimizers.SGD.from_config(config)
    assert repr(again) == repr(opt)
    assert "lambda" in repr(optimizers.Adam(learning_rate=lambda step: 0.1))
    with pytest.raises(TypeError, match="function has no config"):
        optimizers.Adam(learning_rate=lambda step: 0.1).get_config()


@pytest.mark.parametrize(
    "schedule",
    [
        ExponentialDecay(0.05, 3, 0.5),
        PiecewiseConstantDecay([2, 6], [0.05, 0.02, 0.01]),
        CosineDecay(0.01, 20, warmup_target=0.05, warmup_steps=3),
    ],
)
def test_save_and_load_keep_the_schedule_and_the_compile_settings(tmp_path, schedule):
    x, y = _data()
    model = _model(keras)
    model.compile(keras.optimizers.Adam(learning_rate=schedule), "mse", metrics=["mae"])
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert model.compile_config is not None  # was None: the schedule dropped the settings
    back = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert back.compile_config == model.compile_config
    assert type(back.optimizer) is optimizers.Adam
    assert repr(back.optimizer) == repr(model.optimizer)
    assert back.optimizer.iterations == 4
    assert back.optimizer.learning_rate == pytest.approx(schedule(4))
    for m in (model, back):  # the loaded model resumes with the same schedule
        m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert back.optimizer.learning_rate == pytest.approx(schedule(12))


def test_a_function_as_learning_rate_is_saved_without_compile_settings(tmp_path):
    x, y = _data()
    model = _model(keras)
    model.compile(keras.optimizers.SGD(learning_rate=lambda step: 0.01), "mse")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.compile_config is None
    back = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert back.optimizer is None  # as a funcnn optimizer: the weights only


# ---------------------------------------------------------------- the learning rate


class SetRate(keras_callbacks.Callback):
    """Sets the learning rate at the start of an epoch, or after a batch, one way of three."""

    def __init__(self, value, *, epoch=None, batch=None, how="attribute"):
        self.value, self.epoch, self.batch, self.how = value, epoch, batch, how

    def _set(self):
        opt = self.model.optimizer
        if self.how == "attribute":
            opt.learning_rate = self.value
        elif self.how == "assign":
            opt.learning_rate.assign(self.value)
        else:  # Keras 2's spelling
            keras.backend.set_value(opt.lr, self.value)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self._set()

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self._set()
            self.batch = None  # once


@pytest.mark.parametrize("how", ["attribute", "assign", "set_value"])
def test_a_learning_rate_set_from_a_callback_trains_from_the_next_epoch(how):
    x, y = _data()
    once, stopped = _model(keras), _model(keras)
    for model in (once, stopped):
        model.compile(keras.optimizers.SGD(0.01), "mse")
    once.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    callback = SetRate(0.0, epoch=1, how=how)
    history = stopped.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
                          callbacks=[callback])  # fmt: skip
    for a, b in zip(once.get_weights(), stopped.get_weights()):  # nothing moved after epoch 0
        np.testing.assert_array_equal(a, b)
    assert history["lr"] == [0.01, 0.0, 0.0]
    assert stopped.optimizer.learning_rate == 0.0
    assert keras.backend.get_value(stopped.optimizer.lr) == 0.0


def test_a_learning_rate_set_after_a_batch_trains_from_the_next_batch():
    x, y = _data()
    first, stopped = _model(keras), _model(keras)
    for model in (first, stopped):
        model.compile(keras.optimizers.Adam(0.01), "mse")
    first.fit(x[:16], y[:16], epochs=1, batch_size=16, shuffle=False, verbose=0)
    stopped.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
                callbacks=[SetRate(0.0, batch=0)])  # fmt: skip
    for a, b in zip(first.get_weights(), stopped.get_weights()):  # the first batch only
        np.testing.assert_array_equal(a, b)


def test_a_learning_rate_set_from_a_callback_matches_keras():
    k = keras_real()
    x, y = _data()
    theirs, ours = _model(k), _model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model, module in ((theirs, k), (ours, keras)):

        class Schedule(module.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                rate = float(np.asarray(self.model.optimizer.learning_rate))
                self.model.optimizer.learning_rate = rate * 0.5

        model.compile(module.optimizers.SGD(0.02, momentum=0.0), "mse")
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[Schedule()])
    assert ours.optimizer.learning_rate == pytest.approx(0.0025)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-6)


def test_a_number_cannot_be_set_over_a_schedule_as_in_keras():
    model = _model(keras)
    model.compile(keras.optimizers.SGD(ExponentialDecay(0.1, 10, 0.5)), "mse")
    with pytest.raises(TypeError, match="not settable"):
        model.optimizer.learning_rate = 0.01
    try:
        k = keras_real()
    except pytest.skip.Exception:
        return
    with pytest.raises(TypeError, match="not settable"):
        k.optimizers.SGD(k.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)).learning_rate = 0.1


def test_a_rate_set_before_training_is_the_optimizer_setting(tmp_path):
    x, y = _data()
    model = _model(keras)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.optimizer.learning_rate = 0.05  # nothing trained: the setting itself
    assert model.compile_config["optimizer"]["config"]["learning_rate"] == 0.05
    model.optimizer.learning_rate = ExponentialDecay(0.05, 4, 0.5)  # a schedule replaces it
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.025)
    with pytest.raises(ValueError, match="before training"):
        model.optimizer.learning_rate = ExponentialDecay(0.1, 4, 0.5)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.optimizer.learning_rate = 0.02  # in the optimizer state: saved with it
    back = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert back.optimizer.learning_rate == pytest.approx(0.02)
    # the rate as it is now, as Keras' get_config gives it
    assert back.compile_config["optimizer"]["config"]["learning_rate"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        model.optimizer.learning_rate = -1.0


def test_the_existing_rate_callbacks_still_set_it():
    x, y = _data()
    model = _model(keras)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[scheduler])
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)
    model.optimizer.learning_rate = 0.2  # from the rate the callback left: 0.2 exactly
    assert model.optimizer.learning_rate == pytest.approx(0.2)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                                min_delta=1e9)  # fmt: skip
    model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert model.optimizer.learning_rate < 0.2  # reduced, and read from the state it set
    assert model.optimizer.learning_rate == optim.current_learning_rate(model.opt_state)


def test_keras_2_decay_keeps_its_lr_variable():
    """``SGD(lr, decay)``: ``lr`` is Keras 2's variable, the rate its time decay divides."""

    class Holder:
        opt_state = None

    holder = Holder()
    opt = optimizers.SGD(lr=0.1, decay=0.5)
    opt._bind(holder)
    transformation = opt.build()
    params = (np.ones(1),)
    holder.opt_state = transformation.init(params)
    for _ in range(2):
        _, holder.opt_state = transformation.update((np.ones(1),), holder.opt_state, params)
    assert opt.lr == pytest.approx(0.1)
    opt.lr = 0.2
    updates, _ = transformation.update((np.ones(1),), holder.opt_state, params)
    assert -float(updates[0][0]) == pytest.approx(0.2 / (1 + 0.5 * 2))


def test_a_named_or_funcnn_optimizer_has_a_learning_rate_too():
    x, y = _data()
    model = _model(keras)
    model.compile("sgd", "mse")  # a Keras name: Keras' object
    assert isinstance(model.optimizer, optimizers.SGD)
    assert model.compile_config["optimizer"]["class"] == "SGD"
    model.compile("momentum", "mse")  # a name only funcnn has: its transformation
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert repr(model.optimizer) == "<funcnn optimizer 'momentum'>"
    assert model.compile_config["optimizer"] == "momentum"
    model.optimizer.learning_rate = 0.02  # before training: in a fresh optimizer state
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[SetRate(0.03, epoch=1)])
    assert history["lr"] == pytest.approx([0.02, 0.03])
    model.compile(optim.adam(0.005), "mse")
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    with pytest.raises(TypeError, match="schedule"):
        model.optimizer.learning_rate = ExponentialDecay(0.1, 10, 0.5)


def test_backend_values():
    assert keras.backend.get_value(0.5) == 0.5
    np.testing.assert_array_equal(keras.backend.get_value([1, 2]), np.array([1, 2]))
    with pytest.raises(TypeError, match="assigned"):
        keras.backend.set_value(0.5, 0.1)
    rate = optimizers.SGD(0.1).learning_rate
    assert rate == 0.1 and rate.numpy() == 0.1 and math.isclose(round(rate, 3), 0.1)
