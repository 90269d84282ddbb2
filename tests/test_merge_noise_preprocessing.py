"""The merges (Merge: multiply, subtract, average, maximum, minimum), the moves
(RepeatVector, Permute), the noise layers (SpatialDropout, GaussianNoise, GaussianDropout)
and the preprocessing layers (Rescaling, Normalization with normalization_state): their
values by hand, their randomness (per example, any batch split), and the Keras facade's
classes for them with Keras 3 (JAX) as the oracle where it is installed. Gradients,
purity and files: tests/test_protocol.py."""

import os

import numpy as np
import pytest

from funcnn import keras
from funcnn import layers as L
from funcnn.random import Key

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

RNG = np.random.default_rng(0)
A, B, C = (RNG.standard_normal((4, 3)) for _ in range(3))


# ---------------------------------------------------------------- the core layers


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("multiply", A * B * C),
        ("average", (A + B + C) / 3),
        ("maximum", np.maximum(np.maximum(A, B), C)),
        ("minimum", np.minimum(np.minimum(A, B), C)),
    ],
)
def test_merge_values(op, expected):
    np.testing.assert_allclose(L.Merge(op).apply((), (A, B, C)), expected, rtol=1e-15)


def test_merge_subtract_and_its_checks():
    np.testing.assert_array_equal(L.Merge("subtract").apply((), (A, B)), A - B)
    with pytest.raises(ValueError, match="exactly two"):
        L.Merge("subtract").output_shape(((3,), (3,), (3,)))
    with pytest.raises(ValueError, match="broadcast together"):
        L.Merge("multiply").output_shape(((3,), (4,)))
    assert L.Merge("multiply").output_shape(((4, 1, 3), (5, 1), (3,))) == (4, 5, 3)
    with pytest.raises(ValueError, match="must be one of"):
        L.Merge("divide")


def test_maximum_gives_a_tie_to_the_first_input():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 5.0, 3.0]])
    _, cache = L.Merge("maximum").forward((), (a, b))
    _, (da, db) = L.Merge("maximum").backward((), cache, np.ones_like(a))
    np.testing.assert_array_equal(da, [[1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(db, [[0.0, 1.0, 0.0]])


def test_repeat_vector_and_permute():
    x = RNG.standard_normal((2, 3))
    y = L.RepeatVector(4).apply((), x)
    assert y.shape == (2, 4, 3) and all(np.array_equal(y[:, i], x) for i in range(4))
    z = RNG.standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(L.Permute((3, 1, 2)).apply((), z), z.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="permutation"):
        L.Permute((1, 1))
    with pytest.raises(ValueError, match="vectors"):
        L.RepeatVector(2).output_shape((3, 4))


def test_spatial_dropout_drops_whole_channels():
    x = np.ones((50, 6, 8), np.float32)
    y = L.SpatialDropout(0.5).apply((), x, train=True, rng=3)
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert np.all(y == y[:, :1, :])  # one decision per example and channel
    assert 0.3 < np.mean(y == 0) < 0.7
    np.testing.assert_array_equal(L.SpatialDropout(0.5).apply((), x), x)  # inference


@pytest.mark.parametrize(
    "layer", [L.SpatialDropout(0.3), L.GaussianNoise(0.7), L.GaussianDropout(0.4)]
)
def test_noise_of_a_row_does_not_depend_on_the_batch_split(layer):
    x = RNG.standard_normal((10, 4, 3)).astype(np.float32)
    key = Key((7, 1, 2))
    whole = layer.apply((), x, train=True, rng=key)
    parts = [
        layer.apply((), x[lo:hi], train=True, rng=key.at_row(lo)) for lo, hi in ((0, 3), (3, 10))
    ]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_gaussian_layers_have_the_moments_they_say():
    x = np.ones((400, 500))
    noisy = L.GaussianNoise(0.5).apply((), x, train=True, rng=1)
    assert abs(noisy.mean() - 1) < 0.01 and abs(noisy.std() - 0.5) < 0.01
    dropped = L.GaussianDropout(0.2).apply((), x, train=True, rng=1)
    assert abs(dropped.mean() - 1) < 0.01 and abs(dropped.std() - 0.5) < 0.01  # sqrt(.2/.8)
    assert L.GaussianNoise(0.5).apply((), x, train=True, rng=1).dtype == x.dtype
    with pytest.raises(ValueError, match="needs a random key"):
        L.GaussianNoise(0.5).apply((), x, train=True)
    with pytest.raises(ValueError, match="GaussianDropout rate"):
        L.GaussianDropout(1.0)


def test_key_normal_is_standard_and_row_by_row():
    key = Key((3,))
    z = key.normal((2000, 50))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    np.testing.assert_array_equal(key.at_row(5).normal((3, 50)), z[5:8])


def test_rescaling():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) * 51
    y = L.Rescaling(1 / 255, offset=-0.5).apply((), x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x / 255 - 0.5, rtol=1e-6)


def test_normalization_state_and_its_use():
    x = RNG.standard_normal((200, 3, 4)) * [1.0, 2.0, 3.0, 4.0] + [0.0, 1.0, -1.0, 5.0]
    layer = L.Normalization()
    state = L.normalization_state(layer, x, dtype=np.float64)
    np.testing.assert_allclose(state.means, x.reshape(-1, 4).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(state.variances, x.reshape(-1, 4).var(axis=0), rtol=1e-12)
    assert state.counted == 600
    y, _ = layer.apply_with_state((), state, x)
    np.testing.assert_allclose(y.reshape(-1, 4).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.reshape(-1, 4).std(axis=0), 1, rtol=1e-12)
    by_row = L.Normalization(axis=1)  # statistics per step: one per position of axis 1
    assert L.normalization_state(by_row, x).means.shape == (3,)
    overall = L.normalization_state(L.Normalization(axis=None), x)
    assert overall.means.shape == () and overall.counted == x.size


def test_normalization_checks():
    with pytest.raises(ValueError, match="both mean and variance"):
        L.Normalization(mean=[1.0])
    with pytest.raises(TypeError, match="not the batch axis"):
        L.Normalization(axis=0)
    with pytest.raises(ValueError, match="3 means for 2 positions"):
        L.Normalization(mean=[0, 0, 0], variance=[1, 1, 1]).output_shape((2,))
    with pytest.raises(ValueError, match="NaN"):
        L.normalization_state(L.Normalization(), np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="needs its state"):
        L.Normalization().apply((), np.ones((2, 3)))


# ---------------------------------------------------------------- the Keras facade


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _same(ours, theirs, x, rtol=1e-5):
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(
        ours.predict(x, verbose=0), np.asarray(theirs.predict(x, verbose=0)), rtol=rtol, atol=1e-6
    )


@pytest.mark.parametrize("name", ["Multiply", "Subtract", "Average", "Maximum", "Minimum"])
def test_merges_match_keras(name):
    k = _keras()

    def make(module):
        a, b = module.Input((3,)), module.Input((3,))
        da, db = module.layers.Dense(4)(a), module.layers.Dense(4)(b)
        out = getattr(module.layers, name)()([da, db])
        return module.Model([a, b], module.layers.Dense(1)(out))

    x = [RNG.standard_normal((5, 3)).astype("float32") for _ in range(2)]
    _same(make(keras), make(k), x)


def test_moves_rescaling_and_aliases_match_keras():
    k = _keras()

    def make(module):
        lay = module.layers
        return module.Sequential([
            module.Input((6, 6, 2)), lay.Rescaling(1 / 4, offset=-1.0),
            lay.Convolution2D(3, 3), lay.MaxPool2D(), lay.Reshape((4, 3)), lay.Permute((2, 1)),
            lay.GlobalAvgPool1D(), lay.RepeatVector(2), lay.SpatialDropout1D(0.5),
            lay.GaussianNoise(0.3), lay.GaussianDropout(0.2), lay.ELU(), lay.Identity(),
            lay.Flatten(), lay.Dense(2),
        ])  # fmt: skip

    _same(make(keras), make(k), RNG.standard_normal((3, 6, 6, 2)).astype("float32"))


def test_normalization_adapt_matches_keras_and_trains_without_moving():
    k = _keras()
    x = (RNG.standard_normal((64, 5)) * 3 + 2).astype("float32")
    y = RNG.standard_normal((64, 1)).astype("float32")
    models = []
    for module in (k, keras):
        norm = module.layers.Normalization()
        norm.adapt(x)
        np.testing.assert_allclose(np.asarray(norm(x[:2])), (x[:2] - x.mean(0)) / x.std(0),
                                   rtol=1e-4, atol=1e-5)  # fmt: skip
        models.append(module.Sequential([module.Input((5,)), norm, module.layers.Dense(1)]))
    theirs, ours = models
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model, module in ((theirs, k), (ours, keras)):
        model.compile(module.optimizers.SGD(0.05), "mse")
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
    assert [w.name for w in ours.layers[0].weights] == ["mean", "variance", "count"]


def test_normalization_adapted_in_a_built_model_sets_its_weights(tmp_path):
    norm = keras.layers.Normalization(axis=None)
    model = keras.Sequential([keras.Input((3,)), norm, keras.layers.Dense(1)])
    model.build()
    x = RNG.standard_normal((20, 3)).astype("float32") * 5
    norm.adapt(x)
    mean, variance, count = norm.get_weights()
    assert mean.shape == () and mean == pytest.approx(x.mean(), rel=1e-5)
    assert variance == pytest.approx(x.var(), rel=1e-5) and count == 0  # Keras 3's count
    model.compile("sgd", "mse")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    np.testing.assert_array_equal(norm.get_weights()[0], mean)  # not trained
    again = keras.load_model(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    rebuilt = keras.models.model_from_json(model.to_json())  # no weights, as in Keras:
    rebuilt.build()  # the adapted statistics are weights, not settings
    assert rebuilt.layers[0].get_weights()[0] == 0


def test_facade_classes_check_their_settings():
    with pytest.raises(ValueError, match=r"alpha 1\.0 only"):
        keras.layers.ELU(alpha=0.5)
    with pytest.raises(ValueError, match="invert"):
        keras.layers.Normalization(invert=True)
    with pytest.raises(ValueError, match="permutation"):
        keras.layers.Permute((1, 3))
    assert keras.layers.MaxPool2D is keras.layers.MaxPooling2D


def test_spatial_dropout_passes_a_mask_on_as_keras():
    k = _keras()

    def make(module):
        lay = module.layers
        return module.Sequential([
            module.Input((6,)), lay.Embedding(20, 4, mask_zero=True), lay.SpatialDropout1D(0.5),
            lay.LSTM(3),
        ])  # fmt: skip

    x = np.array([[3, 4, 0, 0, 0, 0], [5, 6, 7, 8, 9, 1]])
    _same(make(keras), make(k), x)


def test_normalization_given_its_statistics_has_no_weights_as_keras():
    k = _keras()

    def make(module):
        norm = module.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])
        return module.Sequential([module.Input((3,)), norm, module.layers.Dense(1)])

    ours, theirs = make(keras), make(k)
    assert len(ours.get_weights()) == len(theirs.get_weights()) == 2
    _same(ours, theirs, RNG.standard_normal((4, 3)).astype("float32") * 3)
    with pytest.raises(ValueError, match="its constants"):
        ours.layers[0].adapt(np.ones((4, 3)))
    again = keras.models.model_from_json(ours.to_json())
    np.testing.assert_array_equal(np.asarray(again.layers[0].mean), [1.0, 2.0, 3.0])


def test_one_number_an_example_as_a_vector_as_keras():
    """The TensorFlow regression tutorial's one-feature model: 1-D data throughout."""
    horsepower = RNG.uniform(50, 200, 100).astype("float32")
    normalizer = keras.layers.Normalization(input_shape=[1], axis=None)
    normalizer.adapt(horsepower)
    model = keras.Sequential([normalizer, keras.layers.Dense(units=1)])
    assert model.predict(horsepower[:10], verbose=0).shape == (10, 1)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error")
    history = model.fit(horsepower, horsepower * 0.1, epochs=3, verbose=0, validation_split=0.2)
    assert len(history.history["val_loss"]) == 3


# ---------------------------------------------------------------- image augmentation

IMAGES = RNG.standard_normal((5, 7, 9, 3)).astype("float32")


def test_random_flip_flips_whole_examples_in_training_only():
    x = RNG.standard_normal((200, 4, 5, 2))
    for mode, axes in (
        ("horizontal", (2,)),
        ("vertical", (1,)),
        ("horizontal_and_vertical", (1, 2)),
    ):
        y = L.RandomFlip(mode).apply((), x, train=True, rng=4)
        flipped = np.array([not np.array_equal(a, b) for a, b in zip(x, y)])
        np.testing.assert_array_equal(y[flipped], np.flip(x[flipped], axis=axes))
        np.testing.assert_array_equal(y[~flipped], x[~flipped])
        assert 0.35 < flipped.mean() < 0.65
    np.testing.assert_array_equal(L.RandomFlip().apply((), x), x)


@pytest.mark.parametrize(
    "layer",
    [L.RandomFlip(), L.RandomRotation(0.3), L.RandomZoom(0.2, 0.3), L.RandomTranslation(0.2, 0.1)],
)
def test_augmentation_of_a_row_does_not_depend_on_the_batch_split(layer):
    key = Key((5, 0, 3))
    whole = layer.apply((), IMAGES, train=True, rng=key)
    parts = [
        layer.apply((), IMAGES[lo:hi], train=True, rng=key.at_row(lo))
        for lo, hi in ((0, 2), (2, 5))
    ]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_a_quarter_turn_is_rot90():
    x = RNG.standard_normal((2, 6, 6, 1))
    y = L.RandomRotation((0.25, 0.25)).apply((), x, train=True, rng=0)
    np.testing.assert_allclose(y, np.rot90(x, k=1, axes=(1, 2)), atol=1e-12)
    np.testing.assert_array_equal(L.RandomRotation(0.5).apply((), x), x)  # inference


# fixed transforms (each range one value), so that Keras' draws and ours agree
AFFINE = [
    ("RandomRotation", ((0.1, 0.1),)),
    ("RandomZoom", ((0.2, 0.2), (-0.3, -0.3))),
    ("RandomZoom", ((-0.25, -0.25),)),
    ("RandomTranslation", ((0.1, 0.1), (-0.25, -0.25))),
]


@pytest.mark.parametrize(("name", "args"), AFFINE)
@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "nearest", "wrap"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_layers_sample_as_keras(name, args, fill_mode, interpolation):
    k = _keras()
    settings = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 0.3}
    theirs = np.asarray(getattr(k.layers, name)(*args, **settings)(IMAGES, training=True))
    ours = getattr(L, name)(*args, **settings).apply((), IMAGES, train=True, rng=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_zoom_and_translation_by_hand():
    x = RNG.standard_normal((1, 6, 8, 1))
    shifted = L.RandomTranslation((0.5, 0.5), (0.25, 0.25), fill_mode="constant")
    y = shifted.apply((), x, train=True, rng=0)  # down 3 rows, right 2 columns
    np.testing.assert_allclose(y[:, 3:, 2:], x[:, :3, :6], atol=1e-12)
    assert np.all(y[:, :3] == 0) and np.all(y[:, :, :2] == 0)
    half = L.RandomZoom((-0.5, -0.5), interpolation="nearest").apply((), x, train=True, rng=0)
    assert half.shape == x.shape  # zoomed in 2x: the centre half of the image fills it
    with pytest.raises(ValueError, match=r"fractions in \[-1, 1\]"):
        L.RandomZoom(1.5)


def test_augmentation_in_a_keras_model():
    """keras-io's "Image classification from scratch" augmentation, on small images."""
    k = _keras()

    def make(module):
        lay = module.layers
        return module.Sequential([
            module.Input((8, 8, 3)), lay.RandomFlip("horizontal"), lay.RandomRotation(0.1),
            lay.RandomZoom(0.1), lay.RandomTranslation(0.1, 0.1),
            lay.Rescaling(1.0 / 255), lay.Conv2D(4, 3, activation="relu"),
            lay.GlobalAveragePooling2D(), lay.Dense(1),
        ])  # fmt: skip

    x = RNG.uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    ours = make(keras)
    _same(ours, make(k), x)  # inference: the augmentations are the identity
    ours.compile("adam", "mse")
    history = ours.fit(x, RNG.standard_normal((6, 1)), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="channels last"):
        keras.layers.RandomFlip(data_format="channels_first")
    with pytest.raises(ValueError, match="fill_mode must be one of"):
        keras.layers.RandomRotation(0.1, fill_mode="mirror")


def test_a_squeeze_and_excitation_gate_broadcasts_as_keras():
    """Multiply()([maps, gate]) with a (1, 1, channels) gate, as SE blocks write it."""
    k = _keras()

    def make(module):
        lay = module.layers
        inputs = module.Input((5, 5, 4))
        maps = lay.Conv2D(4, 3, padding="same")(inputs)
        gate = lay.Dense(4, activation="sigmoid")(lay.GlobalAveragePooling2D()(maps))
        gated = lay.Multiply()([maps, lay.Reshape((1, 1, 4))(gate)])
        return module.Model(inputs, lay.Dense(2)(lay.Flatten()(gated)))

    ours, theirs = make(keras), make(k)
    x = RNG.standard_normal((6, 5, 5, 4)).astype("float32")
    _same(ours, theirs, x)
    y = RNG.standard_normal((6, 2)).astype("float32")
    for model, module in ((theirs, k), (ours, keras)):
        model.compile(module.optimizers.SGD(0.05), "mse")
        model.fit(x, y, epochs=2, batch_size=3, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
