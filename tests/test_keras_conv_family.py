"""The Keras facade's convolution family (Conv2DTranspose, Conv1DTranspose, DepthwiseConv2D,
SeparableConv2D, UpSampling2D/1D, Cropping2D/1D, ZeroPadding1D/2D, grouped Conv2D/1D):
settings, weights in Keras' layout, files and configs, and Keras 3 itself as the oracle
(JAX backend; skipped where keras is not installed): each layer's outputs from Keras'
initial weights, and a convolutional autoencoder's weights after a few epochs of SGD."""

import os

import numpy as np
import pytest

from funcnn import keras
from funcnn.keras import layers

# Keras 3's variables meet NumPy 2's __array__ protocol with a warning (keras, not us).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


IMAGES = np.random.default_rng(0).standard_normal((3, 6, 5, 4)).astype(np.float32)
SEQUENCES = np.random.default_rng(1).standard_normal((3, 7, 4)).astype(np.float32)

# name -> (the layer, given the layers module; the input)
ORACLE_CASES = {
    "conv2d_transpose": (lambda m: m.Conv2DTranspose(3, 3), IMAGES),
    "conv2d_transpose_same_strides": (
        lambda m: m.Conv2DTranspose(3, (3, 2), strides=2, padding="same", activation="relu"),
        IMAGES,
    ),
    "conv2d_transpose_even_kernel_same": (
        lambda m: m.Conv2DTranspose(2, 4, strides=(2, 3), padding="same"),
        IMAGES,
    ),
    "conv2d_transpose_output_padding": (
        lambda m: m.Conv2DTranspose(2, 3, strides=2, output_padding=1),
        IMAGES,
    ),
    "conv2d_transpose_same_output_padding": (
        lambda m: m.Conv2DTranspose(2, 3, strides=3, padding="same", output_padding=(2, 1)),
        IMAGES,
    ),
    "conv2d_transpose_dilation": (
        lambda m: m.Conv2DTranspose(2, 3, dilation_rate=2, padding="same", use_bias=False),
        IMAGES,
    ),
    "conv1d_transpose": (lambda m: m.Conv1DTranspose(3, 3, strides=2, padding="same"), SEQUENCES),
    "conv1d_transpose_valid_output_padding": (
        lambda m: m.Conv1DTranspose(2, 4, strides=3, output_padding=2),
        SEQUENCES,
    ),
    "conv2d_groups": (lambda m: m.Conv2D(6, 3, groups=2, padding="same"), IMAGES),
    "conv1d_groups": (lambda m: m.Conv1D(4, 3, groups=4, strides=2), SEQUENCES),
    "depthwise_conv2d": (lambda m: m.DepthwiseConv2D(3, depth_multiplier=2), IMAGES),
    "depthwise_conv2d_strides_same": (
        lambda m: m.DepthwiseConv2D((3, 2), strides=2, padding="same", activation="tanh"),
        IMAGES,
    ),
    "separable_conv2d": (lambda m: m.SeparableConv2D(5, 3, depth_multiplier=2), IMAGES),
    "separable_conv2d_same_strides": (
        lambda m: m.SeparableConv2D(3, 2, strides=2, padding="same", activation="relu"),
        IMAGES,
    ),
    "upsampling2d": (lambda m: m.UpSampling2D(), IMAGES),
    "upsampling2d_size": (lambda m: m.UpSampling2D((3, 2)), IMAGES),
    "upsampling2d_bilinear": (lambda m: m.UpSampling2D(2, interpolation="bilinear"), IMAGES),
    "upsampling2d_bilinear_size": (
        lambda m: m.UpSampling2D((2, 3), interpolation="bilinear"),
        IMAGES,
    ),
    "upsampling1d": (lambda m: m.UpSampling1D(3), SEQUENCES),
    "cropping2d": (lambda m: m.Cropping2D(((1, 2), (0, 1))), IMAGES),
    "cropping2d_int": (lambda m: m.Cropping2D(1), IMAGES),
    "cropping1d": (lambda m: m.Cropping1D((2, 1)), SEQUENCES),
    "zero_padding2d_asymmetric": (lambda m: m.ZeroPadding2D(((1, 0), (2, 3))), IMAGES),
    "zero_padding1d": (lambda m: m.ZeroPadding1D((0, 2)), SEQUENCES),
}


@pytest.mark.parametrize("name", sorted(ORACLE_CASES))
def test_each_layer_matches_keras(name):
    """The output of Keras' layer (called eagerly) and of the facade's, given its weights."""
    real = keras_real()
    build, x = ORACLE_CASES[name]
    theirs = build(real.layers)
    expected = np.asarray(theirs(x))
    ours = keras.Sequential([keras.Input(x.shape[1:]), build(layers)])
    weights = [np.asarray(w) for w in theirs.get_weights()]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    ours.set_weights(weights)
    got = ours.predict(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    assert ours.count_params() == theirs.count_params()


def _autoencoder(lib, layers_):
    """A small convolutional autoencoder with a U-Net-style skip: every new layer once."""
    inputs = lib.Input((8, 8, 2))
    x = layers_.Conv2D(4, 3, activation="relu", padding="same")(inputs)
    skip = x
    x = layers_.SeparableConv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = layers_.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = layers_.Conv2D(4, 1, groups=2)(x)
    x = layers_.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(x)
    x = layers_.Concatenate()([x, skip])
    x = layers_.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = layers_.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers_.Cropping2D(((1, 1), (0, 2)))(x)
    x = layers_.Conv2D(4, 2, strides=2)(x)
    outputs = layers_.Conv2D(2, 1, activation="sigmoid")(x)
    return lib.Model(inputs, outputs)


@pytest.mark.slow
def test_autoencoder_training_matches_keras():
    """Keras' weights after 3 epochs of SGD, from the same initial weights, batches in order."""
    real = keras_real()
    theirs = _autoencoder(real, real.layers)
    ours = _autoencoder(keras, layers)
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(2)
    x = rng.random((8, 8, 8, 2)).astype(np.float32)
    out = ours.predict(x)
    np.testing.assert_allclose(out, np.asarray(theirs.predict(x, verbose=0)), rtol=1e-4, atol=1e-5)
    theirs.compile(loss="mse", optimizer=real.optimizers.SGD(0.5))
    ours.compile(loss="mse", optimizer=keras.optimizers.SGD(0.5))
    h_theirs = theirs.fit(x, x, epochs=3, batch_size=4, shuffle=False, verbose=0).history
    h_ours = ours.fit(x, x, epochs=3, batch_size=4, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    assert h_ours["loss"][-1] < h_ours["loss"][0]
    for mine, keras_w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, np.asarray(keras_w), rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------- without Keras


def test_keras_defaults_and_weight_shapes():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            layers.DepthwiseConv2D(3),
            layers.SeparableConv2D(4, 3, depth_multiplier=2),
            layers.Conv2DTranspose(2, 3, strides=2, padding="same"),
            layers.UpSampling2D(),
            layers.Cropping2D(1),
        ]
    )
    assert [w.shape for w in model.get_weights()] == [
        (3, 3, 3, 1), (3,),  # depthwise kernel and bias
        (3, 3, 3, 2), (1, 1, 6, 4), (4,),  # depthwise, pointwise, bias
        (3, 3, 2, 4), (2,),  # Conv2DTranspose: (kh, kw, filters, channels)
    ]  # fmt: skip
    assert model.predict(np.zeros((1, 6, 6, 3), np.float32)).shape == (1, 6, 6, 2)
    text = model.summary(print_fn=None)
    for name in ("depthwise_conv2d", "separable_conv2d", "conv2d_transpose", "up_sampling2d"):
        assert name in text


def test_configs_and_files_round_trip(tmp_path):
    model = _autoencoder(keras, layers)
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(3).random((4, 8, 8, 2)).astype(np.float32)
    model.fit(x, x, epochs=1, batch_size=2, verbose=0)
    path = tmp_path / "autoencoder.npz"
    model.save(path)
    again = keras.models.load_model(path)
    assert np.array_equal(again.predict(x), model.predict(x))
    rebuilt = keras.models.model_from_json(model.to_json())
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in model.get_weights()]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.UpSampling2D(interpolation="bicubic"), "'nearest', 'bilinear'"),
        (lambda: layers.Conv2DTranspose(2, 3, data_format="channels_first"), "channels-last"),
        (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), "smaller than"),
        (lambda: layers.Conv2D(3, 3, groups=2), "multiple of groups"),
        (lambda: layers.Cropping2D(((1, 2), (3,))), "cropping"),
        (lambda: layers.SeparableConv2D(4, 3, depthwise_constraint="max_norm"), "constraint"),
    ],
)
def test_unsupported_or_wrong_settings_are_refused(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()
