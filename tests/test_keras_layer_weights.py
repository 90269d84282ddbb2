"""A layer's weights in the Keras facade: ``layer.get_weights()`` and ``set_weights`` (in
Keras' order, shape-checked, changing the model's params so that training continues
from them), ``layer.weights``, ``trainable_weights`` and ``non_trainable_weights`` (live
objects with ``name``, ``path``, ``shape`` and ``numpy()``), on every kind of layer, and
clear errors for a layer in no built model. Keras 3 (JAX backend) is the oracle for the
order and names where it is installed."""

import os

import numpy as np
import pytest

from funcnn import keras
from funcnn.keras import layers

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x @ rng.standard_normal((4, 1))).astype(np.float32)


def _dense_bn_model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(3, activation="relu", name="hidden"),
            layers.BatchNormalization(),
            layers.Dense(1),
        ]
    )


def test_get_weights_names_and_kinds_of_dense_and_batch_normalization():
    model = _dense_bn_model()
    dense, bn, _ = model.layers
    assert [w.shape for w in dense.get_weights()] == [(4, 3), (3,)]
    assert [w.name for w in dense.weights] == ["kernel", "bias"]
    assert [w.path for w in dense.weights] == ["hidden/kernel", "hidden/bias"]
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert all(isinstance(a, np.ndarray) for a in bn.get_weights())
    every = [a for layer in model.layers for a in layer.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(every, model.get_weights(), strict=True))
    kernel = dense.weights[0]
    assert kernel.shape == (4, 3) and kernel.dtype == "float32" and kernel.ndim == 2
    assert np.array_equal(np.asarray(kernel), dense.get_weights()[0])
    assert dense.kernel.path == "hidden/kernel" and bn.moving_variance.name == "moving_variance"
    bn.trainable = False
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    trainable = [w for layer in model.layers for w in layer.trainable_weights]
    assert sum(int(np.prod(w.shape)) for w in trainable) == 4 * 3 + 3 + 3 + 1


def test_set_weights_changes_the_model_and_training_continues_from_there():
    x, y = _data()
    model = _dense_bn_model()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    dense = model.get_layer("hidden")
    new = [np.full((4, 3), 0.25), np.arange(3.0)]  # float64, cast to the weights' float32
    dense.set_weights(new)
    assert dense.get_weights()[0].dtype == np.float32
    assert np.array_equal(model.get_weights()[0], np.full((4, 3), 0.25, np.float32))
    assert np.array_equal(model.get_weights()[1], np.arange(3.0, dtype=np.float32))
    twin = _dense_bn_model()
    twin.compile(keras.optimizers.SGD(0.05), "mse")
    twin.set_weights(model.get_weights())
    for m in (model, twin):
        m.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))
    kernel = dense.weights[0]
    assert not np.array_equal(kernel.numpy(), np.full((4, 3), 0.25))  # live: fit moved it
    kernel.assign(np.zeros((4, 3)))
    assert not model.get_weights()[0].any()
    new[0][0, 0] = 7.0  # the model holds its own copy
    assert model.get_weights()[0][0, 0] == 0.0


def test_set_weights_refuses_wrong_lists_naming_the_weight():
    model = _dense_bn_model()
    dense, bn = model.layers[:2]
    with pytest.raises(
        ValueError, match=r"Dense 'hidden'.*has 2 weights \(kernel, bias\), got a list of 1"
    ):
        dense.set_weights([np.zeros((4, 3))])
    with pytest.raises(
        ValueError, match=r"weight 'kernel' has shape \(4, 3\), got an array of shape \(3, 4\)"
    ):
        dense.set_weights([np.zeros((3, 4)), np.zeros(3)])
    with pytest.raises(ValueError, match="'moving_variance' has shape"):
        bn.set_weights([np.ones(3)] * 3 + [np.ones(4)])
    with pytest.raises(TypeError, match="takes a list of arrays"):
        dense.set_weights(np.zeros((4, 3)))
    with pytest.raises(TypeError, match="takes numbers"):
        dense.set_weights([np.zeros((4, 3)), np.array(["a", "b", "c"])])
    assert model.layers[0].get_weights()[1].shape == (3,)  # nothing changed


def test_a_layer_outside_a_built_model_says_so():
    with pytest.raises(ValueError, match="Dense is not in a model"):
        layers.Dense(3).get_weights()
    loose = keras.Sequential([layers.Dense(3), layers.Dense(1)])
    with pytest.raises(ValueError, match=r"not built yet.*build\(input_shape\)"):
        _ = loose.layers[0].weights
    assert not hasattr(loose.layers[0], "kernel")  # no build as a side effect
    loose.build((5,))
    assert loose.layers[0].get_weights()[0].shape == (5, 3)
    popped = keras.Sequential([keras.Input((2,)), layers.Dense(2), layers.Dense(1)])
    last = popped.pop()
    with pytest.raises(ValueError, match="no longer in its model"):
        last.get_weights()
    declared = keras.Sequential([layers.Dense(2, input_shape=(3,))])
    assert declared.layers[0].get_weights()[0].shape == (3, 2)  # built when asked


LAYERS = {
    "conv2d": ((6, 6, 2), lambda: layers.Conv2D(3, 3), ["kernel", "bias"]),
    "conv1d": ((7, 2), lambda: layers.Conv1D(3, 2), ["kernel", "bias"]),
    "separable": (
        (6, 6, 2),
        lambda: layers.SeparableConv2D(3, 2),
        ["depthwise_kernel", "pointwise_kernel", "bias"],
    ),
    "depthwise": ((6, 6, 2), lambda: layers.DepthwiseConv2D(2), ["kernel", "bias"]),
    "transpose": ((4, 4, 2), lambda: layers.Conv2DTranspose(2, 2), ["kernel", "bias"]),
    "embedding": ((5,), lambda: layers.Embedding(10, 4), ["embeddings"]),
    "simple_rnn": ((5, 3), lambda: layers.SimpleRNN(2), ["kernel", "recurrent_kernel", "bias"]),
    "lstm": ((5, 3), lambda: layers.LSTM(2), ["kernel", "recurrent_kernel", "bias"]),
    "gru": ((5, 3), lambda: layers.GRU(2), ["kernel", "recurrent_kernel", "bias"]),
    "bidirectional": (
        (5, 3),
        lambda: layers.Bidirectional(layers.LSTM(2)),
        ["kernel", "recurrent_kernel", "bias"] * 2,
    ),
    "time_distributed": (
        (5, 3),
        lambda: layers.TimeDistributed(layers.Dense(2)),
        ["kernel", "bias"],
    ),
    "layer_norm": ((3,), lambda: layers.LayerNormalization(), ["gamma", "beta"]),
    "flatten": ((2, 3), lambda: layers.Flatten(), []),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_get_and_set_weights_on_every_kind_of_layer(kind):
    shape, make, names = LAYERS[kind]
    layer = make()
    model = keras.Sequential([keras.Input(shape), layer])
    assert [w.name for w in layer.weights] == names
    got = layer.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(got, model.get_weights(), strict=True))
    layer.set_weights([a + 1 for a in got])
    assert all(np.array_equal(a + 1, b) for a, b in zip(got, model.get_weights(), strict=True))
    assert all(np.array_equal(a + 1, b) for a, b in zip(got, layer.get_weights(), strict=True))


def test_the_bidirectional_weights_are_the_forward_layers_then_the_backward_ones():
    layer = layers.Bidirectional(layers.GRU(2))
    keras.Sequential([keras.Input((5, 3)), layer])
    assert [w.path for w in layer.weights][::3] == [
        "bidirectional/forward/kernel",
        "bidirectional/backward/kernel",
    ]


# ---------------------------------------------------------------- Keras as the oracle


def _oracle_pairs(module):
    image = module.Sequential([
        module.Input((6, 6, 2)), module.layers.Conv2D(3, 3), module.layers.BatchNormalization(),
        module.layers.Flatten(), module.layers.Dense(2),
    ])  # fmt: skip
    text = module.Sequential([
        module.Input((5,)), module.layers.Embedding(10, 4), module.layers.LSTM(3),
        module.layers.Dense(1),
    ])  # fmt: skip
    return image, text


def test_layer_weights_order_shapes_and_names_match_keras():
    k = keras_real()
    for theirs, ours in zip(_oracle_pairs(k), _oracle_pairs(keras)):
        ours.build()
        ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
        for mine, real in zip(ours.layers, theirs.layers, strict=True):
            assert [w.name for w in mine.weights] == [w.name for w in real.weights]
            assert [w.name for w in mine.trainable_weights] == [
                w.name for w in real.trainable_weights
            ]
            assert [w.name for w in mine.non_trainable_weights] == [
                w.name for w in real.non_trainable_weights
            ]
            assert [w.shape for w in mine.weights] == [tuple(w.shape) for w in real.weights]
            for a, b in zip(mine.get_weights(), real.get_weights(), strict=True):
                assert np.array_equal(a, np.asarray(b))  # the same values, place by place
