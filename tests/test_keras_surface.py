"""The smaller Keras surface real scripts use: ``Conv1D(padding="causal")``,
``keras.utils.set_random_seed``, ``keras.utils.plot_model``, the function forms of the
losses, and a model used as a layer of another (``Sequential([base_model, Dense(10)])``,
``y = base_model(x)``) with its weights shared. Keras 3 (JAX backend) is the oracle where
it is installed; those tests skip elsewhere. (``keras.__version__`` and
``backend.image_data_format()`` are tested in test_keras_round2.py.)"""

import os
import random

import numpy as np
import pytest

from funcnn import keras
from funcnn.keras import layers, plotting, seeding

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _sequences(n=6, length=10, channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, length, channels)).astype(np.float32)


def _data(n=48, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = (2.0 * rng.standard_normal((n, features)) + 1.0).astype(np.float32)
    y = (x @ rng.standard_normal((features, 1)) + 0.1).astype(np.float32)
    return x, y


# ---------------------------------------------------------------- causal Conv1D


@pytest.mark.parametrize(
    ("kernel", "dilation", "strides"), [(3, 1, 1), (3, 2, 1), (2, 1, 2), (4, 3, 1)]
)
def test_causal_conv1d_matches_keras(kernel, dilation, strides):
    k = keras_real()
    x = _sequences()

    def model(module):
        return module.Sequential([
            module.Input((10, 3)),
            module.layers.Conv1D(4, kernel, strides=strides, padding="causal",
                                 dilation_rate=dilation, activation="tanh"),
        ])  # fmt: skip

    theirs, ours = model(k), model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    expected = np.asarray(theirs.predict(x, verbose=0))
    got = ours.predict(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_causal_conv1d_sees_no_later_step_and_keeps_the_length():
    model = keras.Sequential([keras.Input((10, 3)), layers.Conv1D(5, 3, padding="CAUSAL",
                                                                  dilation_rate=2)])  # fmt: skip
    x = _sequences()
    later = x.copy()
    later[:, 6:] = 100.0  # change every step from 6 on
    y, y_later = model.predict(x), model.predict(later)
    assert y.shape == (6, 10, 5)  # padded before: the length stays
    np.testing.assert_array_equal(y[:, :6], y_later[:, :6])
    assert not np.allclose(y[:, 6:], y_later[:, 6:])


def test_causal_padding_is_for_1d_convolutions_only_and_survives_a_config():
    with pytest.raises(ValueError, match=r"Conv2D\(padding='causal'\).*1-D"):
        layers.Conv2D(4, 3, padding="causal")
    model = keras.Sequential([keras.Input((10, 3)), layers.Conv1D(2, 3, padding="causal")])
    again = keras.models.model_from_json(model.to_json())
    assert again.layers[0].padding == "causal"
    again.build()
    again.set_weights(model.get_weights())
    x = _sequences()
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


# ---------------------------------------------------------------- set_random_seed


@pytest.fixture
def global_seeds(monkeypatch):
    """set_random_seed changes the facade's default seed and Python's and NumPy's global
    states: each is put back after the test."""
    monkeypatch.setattr(seeding, "_seed", seeding._seed)
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)  # noqa: NPY002


def _dropout_run():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"),
                              layers.Dropout(0.5), layers.Dense(1)])  # fmt: skip
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model.get_weights()


def test_set_random_seed_gives_the_same_bits_twice_and_other_bits_for_another_seed(global_seeds):
    assert keras.Sequential().seed == 0  # the default before any set_random_seed
    keras.utils.set_random_seed(1)
    first = _dropout_run()
    py, np_value = random.random(), np.random.rand()  # noqa: NPY002
    keras.utils.set_random_seed(1)
    again = _dropout_run()
    assert random.random() == py and np.random.rand() == np_value  # noqa: NPY002
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(2)
    assert keras.Model().seed == 2
    assert not np.array_equal(_dropout_run()[0], first[0])
    assert keras.Sequential(seed=5).seed == 5  # an explicit seed still wins


@pytest.mark.parametrize(
    ("seed", "error"),
    [("1", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError), (2**32, ValueError)],
)
def test_set_random_seed_refuses_what_is_not_a_seed(global_seeds, seed, error):
    with pytest.raises(error, match="seed"):
        keras.utils.set_random_seed(seed)
    assert seeding.default_seed() == 0


# ---------------------------------------------------------------- plot_model


def _branching_model():
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    left = layers.Dense(8, activation="relu", name="left")(a)
    right = layers.Dense(8, name="right")(b)
    merged = layers.Concatenate(name="merge")([left, right])
    head = layers.Dense(2, activation="softmax", name="head")(merged)
    skip = layers.Dense(1, name="skip")(left)
    return keras.Model([a, b], [head, skip])


def test_plot_model_draws_a_sequential_as_a_chain(tmp_path):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"),
                              layers.Dense(1)])  # fmt: skip
    path = tmp_path / "model.png"
    shown = keras.utils.plot_model(model, to_file=path, show_shapes=True, dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        import IPython  # noqa: F401
    except ImportError:
        assert shown is None  # Keras returns an IPython Image only where IPython is
    nodes, parents, shapes = plotting._nodes(model)
    assert [n[:2] for n in nodes] == [("input_layer", "InputLayer"), ("dense", "Dense"),
                                      ("dense_1", "Dense")]  # fmt: skip
    assert parents == [(), (0,), (1,)]
    label = plotting._label(nodes[1], [shapes[0]], shapes[1], {
        "show_shapes": True, "show_dtype": True, "show_layer_names": True,
        "show_layer_activations": True, "show_trainable": True})  # fmt: skip
    assert label == ["dense (Dense)", "Input shape: (None, 4)", "Output shape: (None, 8)",
                     "Input dtype: float32, Output dtype: float32", "Activation: relu",
                     "Trainable: True"]  # fmt: skip


def test_plot_model_follows_a_functional_graph(tmp_path):
    model = _branching_model()
    nodes, parents, shapes = plotting._nodes(model)
    names = [n[0] for n in nodes]
    assert names == ["input_layer", "input_layer_1", "left", "right", "merge", "head", "skip"]
    assert parents[names.index("merge")] == (2, 3)
    assert parents[names.index("skip")] == (2,)
    ranks = plotting._ranks(parents)
    assert ranks == [0, 0, 1, 1, 2, 3, 2]
    assert plotting._places(ranks, parents) == [0, 1, 0, 1, 1, 0, 0]  # skip under left
    assert plotting._shape_text((shapes[2], shapes[3])) == "[(None, 8), (None, 8)]"
    for rankdir in ("TB", "LR", "BT", "RL"):
        path = tmp_path / f"graph_{rankdir}.svg"
        keras.utils.plot_model(model, to_file=str(path), show_shapes=True,
                               show_layer_names=True, rankdir=rankdir, dpi=50)  # fmt: skip
        assert path.read_text().lstrip().startswith("<?xml")


def test_plot_model_writes_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    path = tmp_path / "model.png"
    path.write_bytes(b"the old picture")
    real = plotting.plot._figure

    def failing_figure(width, height):
        fig = real(width, height)

        def savefig(f, **kwargs):
            f.write(b"half a picture")
            raise OSError("disk full")

        fig.savefig = savefig
        return fig

    monkeypatch.setattr(plotting.plot, "_figure", failing_figure)
    with pytest.raises(OSError, match="disk full"):
        keras.utils.plot_model(model, to_file=path)
    assert path.read_bytes() == b"the old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.png"]


def test_plot_model_refuses_what_it_cannot_draw(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        keras.utils.plot_model(keras.Sequential([layers.Dense(2)]), to_file=tmp_path / "a.png")
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"format 'xyz'.*png"):
        keras.utils.plot_model(model, to_file=tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="rankdir"):
        keras.utils.plot_model(model, to_file=tmp_path / "a.png", rankdir="UP")
    with pytest.raises(TypeError, match="layer_range"):
        keras.utils.plot_model(model, to_file=tmp_path / "a.png", layer_range=["a", "b"])
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- losses and constants


LOSS_FUNCTIONS = [
    "categorical_crossentropy", "binary_crossentropy", "mean_squared_error",
    "mean_absolute_error", "huber", "kl_divergence", "poisson", "log_cosh",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "hinge",
    "squared_hinge", "categorical_hinge", "cosine_similarity",
]  # fmt: skip


@pytest.mark.parametrize("name", LOSS_FUNCTIONS)
def test_loss_functions_give_keras_values_per_sample(name):
    k = keras_real()
    rng = np.random.default_rng(3)
    y_pred = rng.dirichlet(np.ones(4), 5).astype(np.float32)
    y_true = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 5)]
    ours = getattr(keras.losses, name)(y_true, y_pred)
    theirs = np.asarray(getattr(k.losses, name)(y_true, y_pred))
    assert np.shape(ours) == theirs.shape == (5,)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_sparse_categorical_crossentropy_and_huber_match_keras():
    k = keras_real()
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), 6).astype(np.float32)
    labels = rng.integers(0, 3, 6)
    np.testing.assert_allclose(
        keras.losses.sparse_categorical_crossentropy(labels, probs),
        np.asarray(k.losses.sparse_categorical_crossentropy(labels, probs)), rtol=1e-5,
    )  # fmt: skip
    a, b = rng.standard_normal((6, 3)) * 2, rng.standard_normal((6, 3))
    np.testing.assert_allclose(
        keras.losses.huber(a, b, delta=0.7), np.asarray(k.losses.huber(a, b, delta=0.7)),
        rtol=1e-5,
    )  # fmt: skip


def test_huber_function_values_and_compile():
    value = keras.losses.huber([[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 0.6]])
    np.testing.assert_allclose(value, [0.18, 0.13])  # Keras' docstring example: mean 0.155
    with pytest.raises(ValueError, match="delta"):
        keras.losses.huber([[0.0]], [[1.0]], delta=-1.0)
    assert keras.losses.mse is keras.losses.mean_squared_error
    assert keras.losses.mae is keras.losses.mean_absolute_error
    x, y = _data()
    runs = []
    for loss in (keras.losses.huber, "huber"):
        model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
        model.compile("sgd", loss=loss)
        model.fit(x, y, epochs=1, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- a model as a layer


def _base(module, batch_norm=False):
    return module.Sequential([
        module.Input((4,)), module.layers.Dense(6, activation="relu"),
        *([module.layers.BatchNormalization()] if batch_norm else []),
        module.layers.Dense(5, activation="tanh"),
    ], name="base")  # fmt: skip


def test_a_sequential_in_a_sequential_shares_its_weights():
    x, y = _data()
    base = _base(keras)
    pretrained = base.get_weights()
    model = keras.Sequential([base, layers.Dense(1)])
    assert model.layers[0] is base and model.input_shape == (4,)
    model.build()
    for a, b in zip(model.get_weights()[:4], pretrained):  # the base's weights, kept
        np.testing.assert_array_equal(a, b)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    trained = base.get_weights()
    assert not np.array_equal(trained[0], pretrained[0])  # training moved the base
    for a, b in zip(model.get_weights()[:4], trained):
        np.testing.assert_array_equal(a, b)
    kernel, bias = model.get_weights()[4:]  # the base alone computes with the shared weights
    np.testing.assert_allclose(model.predict(x), base.predict(x) @ kernel + bias, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    model.set_weights([w + 1 for w in model.get_weights()])
    np.testing.assert_array_equal(base.get_weights()[0], trained[0] + 1)


def test_summary_shows_a_nested_model_as_one_row_and_freezing_as_keras():
    x, y = _data()
    base = _base(keras, batch_norm=True)
    model = keras.Sequential([base, layers.Dense(1)])
    base.trainable = False  # transfer learning: the base frozen, a new head trained
    model.compile(keras.optimizers.SGD(0.05), "mse")
    before = base.get_weights()
    text = model.summary(print_fn=None)
    rows = [line for line in text.splitlines() if line.startswith(("base ", "dense"))]
    assert len(rows) == 2 and rows[0].split()[:2] == ["base", "(Sequential)"]
    base_count = sum(w.size for w in before)  # 30 + 24 (BatchNormalization) + 35
    assert f"Non-trainable params: {base_count:,}" in text
    assert "Trainable params: 6" in text
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(base.get_weights(), before):  # the moving statistics too
        np.testing.assert_array_equal(a, b)
    assert model.layers[0].trainable is False


def _functional_base(module):
    inputs = module.Input((4,))
    h = module.layers.Dense(6, activation="relu")(inputs)
    h = module.layers.BatchNormalization()(h)
    return module.Model(inputs, module.layers.Dense(5)(h), name="base")


def test_a_functional_model_called_with_training_false_runs_in_inference_mode(tmp_path):
    x, y = _data()
    base = _functional_base(keras)
    inputs = keras.Input((4,))
    outputs = layers.Dense(1)(base(inputs, training=False))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    before = base.get_weights()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    after = base.get_weights()
    assert not np.array_equal(after[0], before[0])  # trainable: the kernel moved
    for a, b in zip(after[4:6], before[4:6]):  # inference mode: the moving statistics stay
        np.testing.assert_array_equal(a, b)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded._inference_calls == {0} and loaded.layers[0].name == "base"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_multi_input_model_as_a_layer():
    a, b = keras.Input((4,)), keras.Input((3,))
    joined = layers.Concatenate()([layers.Dense(3)(a), b])
    base = keras.Model([a, b], layers.Dense(2)(joined))
    p, q = keras.Input((4,)), keras.Input((3,))
    model = keras.Model([p, q], base([p, q]))
    x = [np.ones((5, 4), np.float32), np.arange(15, dtype=np.float32).reshape(5, 3)]
    np.testing.assert_allclose(model.predict(x), base.predict(x), rtol=1e-6)


def test_a_nested_model_is_saved_and_loaded_with_its_weights(tmp_path):
    x, y = _data()
    model = keras.Sequential([_base(keras, batch_norm=True), layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.layers[0]).__name__ == "Sequential" and loaded.layers[0].name == "base"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.layers[0].get_weights(), model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.fit(x, y, epochs=1, verbose=0)  # resumes, and moves the loaded base
    assert not np.array_equal(loaded.layers[0].get_weights()[0], model.get_weights()[0])
    again = keras.models.model_from_json(model.to_json())
    assert [type(s).__name__ for s in again.layers] == ["Sequential", "Dense"]


def test_nesting_refuses_what_does_not_fit():
    base = _base(keras)
    base.build()
    model = keras.Sequential([keras.Input((7,)), base])
    with pytest.raises(ValueError, match=r"'base' was built for the input shape \(4,\)"):
        model.build()
    with pytest.raises(ValueError, match="itself"):
        base.add(base)
    with pytest.raises(ValueError, match="masked sequence"):
        ids = keras.Input((5,))
        base(layers.Embedding(10, 4, mask_zero=True)(ids))


@pytest.mark.parametrize("how", ["sequential", "functional", "frozen_bn"])
def test_a_nested_model_trains_as_keras(how):
    k = keras_real()
    x, y = _data(64)

    def build(module):
        base = _base(module, batch_norm=how == "frozen_bn")
        if how == "functional":
            inputs = module.Input((4,))
            return base, module.Model(inputs, module.layers.Dense(1)(base(inputs)))
        if how == "frozen_bn":
            base.trainable = False
        return base, module.Sequential([module.Input((4,)), base, module.layers.Dense(1)])

    (their_base, theirs), (our_base, ours) = build(k), build(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model in (theirs, ours):
        model.compile(optimizer=(k if model is theirs else keras).optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), rtol=1e-4, atol=1e-5
    )
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
    for a, b in zip(our_base.get_weights(), their_base.get_weights()):  # shared, as Keras
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
