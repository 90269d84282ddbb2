"""The Keras facade's MultiHeadAttention (Keras' call signature: query, value, key,
attention_mask, use_causal_mask) with LayerNormalization on sequences, Add and Embedding:
models, configs and files, what is refused, and Keras 3 itself as the oracle (JAX
backend; skipped where keras is not installed): outputs from Keras' initial weights, and
the weights after a few epochs of SGD."""

import os

import numpy as np
import pytest

from funcnn import keras
from funcnn import layers as L
from funcnn.keras import layers

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

IDS = np.random.default_rng(0).integers(1, 10, (4, 6))
SEQ = np.random.default_rng(1).standard_normal((4, 6, 8)).astype(np.float32)
CONTEXT = np.random.default_rng(2).standard_normal((4, 5, 3)).astype(np.float32)
ALLOWED = (np.random.default_rng(3).random((4, 6, 5)) < 0.7).astype(np.float32)
ALLOWED[:, :, 0] = 1  # every query attends to a key (Keras weighs a row with none uniformly)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def self_attention(lib, layers_, **call):
    inputs = lib.Input((6, 8))
    y = layers_.MultiHeadAttention(2, 4)(inputs, inputs, **call)
    return lib.Model(inputs, y)


def cross_attention(lib, layers_, value_dim=None):
    # Keras 3.x on JAX fails on a value_dim other than key_dim (jax.nn.dot_product_attention
    # is handed mismatched shapes), so the oracle's case keeps them equal
    query, context = lib.Input((6, 8)), lib.Input((5, 3))
    key = lib.Input((5, 7))
    mha = layers_.MultiHeadAttention(3, 2, value_dim=value_dim, output_shape=4)
    y = mha(query, context, key)
    return lib.Model([query, context, key], y)


def masked_attention(lib, layers_):
    query, context, allowed = lib.Input((6, 8)), lib.Input((5, 3)), lib.Input((6, 5))
    y = layers_.MultiHeadAttention(2, 3, use_bias=False)(query, context, attention_mask=allowed)
    return lib.Model([query, context, allowed], y)


def transformer_classifier(lib, layers_):
    """keras-io's transformer block, functional: Embedding, self-attention, Add and
    LayerNormalization twice around a Dense MLP, pooled, a softmax Dense."""
    inputs = lib.Input((6,), dtype="int32")
    x = layers_.Embedding(10, 8)(inputs)
    attention = layers_.MultiHeadAttention(2, 8)(x, x)
    x = layers_.LayerNormalization(epsilon=1e-6)(layers_.Add()([x, attention]))
    mlp = layers_.Dense(8)(layers_.Dense(16, activation="relu")(x))
    x = layers_.LayerNormalization(epsilon=1e-6)(layers_.Add()([x, mlp]))
    x = layers_.GlobalAveragePooling1D()(x)
    return lib.Model(inputs, layers_.Dense(3, activation="softmax")(x))


CASES = {
    "self": (self_attention, SEQ),
    "self causal": (lambda lib, l_: self_attention(lib, l_, use_causal_mask=True), SEQ),
    "cross with its own keys": (
        cross_attention,
        [SEQ, CONTEXT, np.random.default_rng(4).standard_normal((4, 5, 7)).astype(np.float32)],
    ),
    "attention mask": (masked_attention, [SEQ, CONTEXT, ALLOWED]),
    "transformer classifier": (transformer_classifier, IDS),
}


# ---------------------------------------------------------------- the facade alone


def test_a_call_builds_the_core_it_describes():
    model = self_attention(keras, layers, use_causal_mask=True)
    core = model.model.layers[0]
    assert core == L.MultiHeadAttention(2, 4, causal=True)
    assert model.predict(SEQ).shape == (4, 6, 8)
    model = masked_attention(keras, layers)
    assert model.model.layers[0].attention_mask
    assert model.predict([SEQ, CONTEXT, ALLOWED]).shape == (4, 6, 8)
    assert model.count_params() == 8 * 2 * 3 + 2 * (3 * 2 * 3) + 2 * 3 * 8  # no biases


def test_the_weights_are_in_keras_layout():
    model = cross_attention(keras, layers, value_dim=5)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(8, 3, 2), (3, 2), (7, 3, 2), (3, 2), (3, 3, 5), (3, 5), (3, 5, 4), (4,)]


def test_config_json_and_files_round_trip(tmp_path):
    model = transformer_classifier(keras, layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(IDS, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    again = keras.models.model_from_json(model.to_json())
    again.set_weights(model.get_weights())
    np.testing.assert_array_equal(again.predict(IDS), model.predict(IDS))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(IDS), model.predict(IDS))
    causal = self_attention(keras, layers, use_causal_mask=True)
    assert keras.models.model_from_json(causal.to_json()).model == causal.model


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.MultiHeadAttention(2, 4, attention_axes=(1,)), "attention_axes"),
        (lambda: layers.MultiHeadAttention(2, 4, kernel_regularizer="l2"), "kernel_regularizer"),
        (lambda: layers.MultiHeadAttention(2, 4, output_shape=(3, 4)), "one output size"),
    ],
)
def test_unsupported_options_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unsupported_calls_are_refused():
    x = keras.Input((6, 8))
    mha = layers.MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match="return_attention_scores"):
        mha(x, x, return_attention_scores=True)
    with pytest.raises(TypeError, match=r"mha\(x, x\)"):
        mha(x)
    with pytest.raises(TypeError, match="attention_mask too"):
        mha(x, x, attention_mask=np.ones((6, 6)))
    ids = keras.Input((6,))
    masked = layers.Embedding(10, 8, mask_zero=True)(ids)
    with pytest.raises(ValueError, match="masked sequence"):
        mha(masked, masked)


# ---------------------------------------------------------------- Keras 3 as the oracle


def _both(build):
    real = keras_real()
    theirs = build(real, real.layers)
    ours = build(keras, layers)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    return ours, theirs


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_model_matches_keras_from_its_initial_weights(name):
    build, x = CASES[name]
    ours, theirs = _both(build)
    expected = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=2e-5, atol=2e-6)
    assert ours.count_params() == theirs.count_params()


def test_layer_normalization_on_sequences_matches_keras():
    real = keras_real()

    def build(lib, layers_):
        return lib.Sequential([lib.Input((6, 8)), layers_.LayerNormalization()])

    ours, theirs = _both(build)
    weights = [np.linspace(0.5, 2, 8, dtype=np.float32), np.linspace(-1, 1, 8, dtype=np.float32)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    np.testing.assert_allclose(
        ours.predict(SEQ), np.asarray(theirs.predict(SEQ, verbose=0)), rtol=1e-5, atol=1e-6
    )
    assert real is not None


@pytest.mark.parametrize("name", ["self causal", "transformer classifier"])
def test_training_with_sgd_matches_keras(name):
    real = keras_real()
    build, x = CASES[name]
    ours, theirs = _both(build)
    if name == "transformer classifier":
        y, loss = np.array([0, 1, 2, 1]), "sparse_categorical_crossentropy"
    else:
        y, loss = np.random.default_rng(5).standard_normal((4, 6, 8)).astype(np.float32), "mse"
    theirs.compile(loss=loss, optimizer=real.optimizers.SGD(0.1))
    ours.compile(loss=loss, optimizer=keras.optimizers.SGD(0.1))
    h_theirs = theirs.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0).history
    h_ours = ours.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
