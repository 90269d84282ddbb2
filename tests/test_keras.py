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
