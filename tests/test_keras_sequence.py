"""The Keras facade's sequence layers (Embedding, SimpleRNN, LSTM, GRU, Bidirectional,
Masking, TimeDistributed): settings, masks through models, weights, files, the funcnn
layers the facade adds (float64 finite differences), and Keras 3 itself as the oracle
(JAX backend; skipped where keras is not installed)."""

import os

import numpy as np
import pytest

from funcnn import keras
from funcnn import layers as L
from funcnn.keras import layers
from funcnn.keras.core_layers import DropMask, MaskValues, ReverseSteps
from funcnn.testing import check_grads, check_layer

IDS = np.array(
    [
        [3, 1, 4, 1, 5, 0, 0],  # a padded tail
        [0, 0, 2, 6, 5, 3, 5],  # padded head (pad_sequences' default)
        [8, 9, 7, 9, 3, 2, 3],  # no padding
        [0, 0, 0, 0, 0, 0, 0],  # nothing real
    ]
)
MASK = IDS != 0

# Keras 3's variables meet NumPy 2's __array__ protocol with a warning (keras, not us).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


# ---------------------------------------------------------------- the funcnn layers added


def test_mask_values_finite_differences():
    layer = MaskValues(0.5)
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    x[0, 1] = x[2, 3] = 0.5  # every feature equals mask_value: padding
    x[1, 2, 0] = 0.5  # one feature only: a real step
    (values, mask), _ = layer.forward({}, x)
    assert mask.tolist() == [[1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert not values[0, 1].any() and np.array_equal(values[1], x[1])
    _, cache = layer.forward((), x)
    dx = layer.backward((), cache, (np.ones_like(x), np.zeros(mask.shape)))[1]
    assert np.array_equal(dx, np.where(mask[:, :, None], 1.0, 0.0) * np.ones_like(x))  # padding: 0
    # Finite differences where the mask does not flip (a padded step turns real when any
    # feature moves): every step real, one feature at mask_value.
    x[0, 1, 0] = x[2, 3, 1] = 1.5
    check_grads(layer, (), x)
    check_layer(MaskValues(), (4, 2))


def test_drop_mask_and_reverse_steps_finite_differences():
    x = np.random.default_rng(1).standard_normal((3, 5, 2))
    check_layer(ReverseSteps, (5, 2))
    check_layer(DropMask, (5, 2))
    rnn = L.serial(L.LSTM(3, return_sequences=True, return_state=True, reverse=True), ReverseSteps)
    check_grads(rnn, rnn.init(np.random.default_rng(0), (5, 2), dtype=np.float64), x)
    y, _, _ = rnn.apply(rnn.init(np.random.default_rng(0), (5, 2)), x)
    ahead = L.LSTM(3, return_sequences=True, reverse=True)
    aligned = ahead.apply(rnn.init(np.random.default_rng(0), (5, 2))[0], x)
    assert np.array_equal(y, aligned[:, ::-1])  # go_backwards: the reading order
    masked = L.serial(MaskValues(), DropMask, L.Dense(2))
    check_grads(masked, masked.init(np.random.default_rng(0), (5, 2), dtype=np.float64), x)


# ---------------------------------------------------------------- settings and masks


def test_keras_defaults_and_weights_in_keras_layout():
    model = keras.Sequential(
        [
            layers.Embedding(10, 4, input_length=7, mask_zero=True),
            layers.Bidirectional(layers.LSTM(5, return_sequences=True)),
            layers.GRU(3),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [
        (10, 4),  # embeddings
        (4, 20), (5, 20), (20,), (4, 20), (5, 20), (20,),  # forward LSTM, backward LSTM
        (10, 9), (3, 9), (2, 9),  # GRU, reset_after: bias (2, 3u)
        (3, 1), (1,),
    ]  # fmt: skip
    lstm_bias = model.get_weights()[3]
    assert np.array_equal(lstm_bias, np.repeat([0.0, 1.0, 0.0, 0.0], 5))  # unit_forget_bias
    text = model.summary(print_fn=None)
    for row in (
        "embedding (Embedding)  (None, 7, 4)",
        "bidirectional (Bidirectional)  (None, 7, 10)",
        "gru (GRU)",
        "(None, 3)",
    ):
        assert row.split()[0] in text and row.split()[-1] in text
    assert "Total params: " + f"{40 + 2 * (4 * 20 + 5 * 20 + 20) + 90 + 27 + 18 + 4:,}" in text
    assert model.count_params() == 40 + 400 + 135 + 4


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.LSTM(4, dropout=1.0), r"dropout=1.0\): a rate .* \[0, 1\)"),
        (lambda: layers.GRU(4, recurrent_dropout=-0.1), "recurrent_dropout=-0.1"),
        (lambda: layers.LSTM(4, recurrent_activation="hard_sigmoid"), "'sigmoid'"),
        (lambda: layers.GRU(4, activation="relu"), "activation='tanh'"),
        (lambda: layers.GRU(4, reset_after=0), "reset_after must be"),
        (lambda: layers.LSTM(4, stateful=True), "stateful=True"),
        (lambda: layers.LSTM(4, kernel_constraint="max_norm"), "kernel_constraint"),
        (lambda: layers.Bidirectional(layers.Dense(3)), "SimpleRNN, LSTM or GRU"),
        (
            lambda: layers.Bidirectional(
                layers.LSTM(3), backward_layer=layers.GRU(3, go_backwards=True)
            ),
            "twin",
        ),
        (lambda: layers.TimeDistributed(layers.Conv1D(2, 3)), "last axis"),
        (lambda: layers.Bidirectional(layers.LSTM(3), merge_mode="max"), "merge_mode"),
    ],
)
def test_unsupported_options_are_refused_naming_what_works(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_masks_flow_into_the_loss_in_sequential_and_functional_models():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((4, 7, 2)).astype(np.float32)

    def sequential():
        return keras.Sequential(
            [
                keras.Input((7,), dtype="int32"),
                layers.Embedding(10, 3, mask_zero=True),
                layers.SimpleRNN(4, return_sequences=True),
                layers.TimeDistributed(layers.Dense(2)),
            ]
        )

    def functional():
        inputs = keras.Input((7,), dtype="int32")
        x = layers.Embedding(10, 3, mask_zero=True)(inputs)
        x = layers.SimpleRNN(4, return_sequences=True)(x)
        return keras.Model(inputs, layers.Dense(2)(x))

    for make in (sequential, functional):
        model = make()
        model.compile(loss="mse", optimizer="sgd")
        pred = model.predict(IDS)
        assert pred.shape == (4, 7, 2)  # the values alone, as Keras' predict
        expected = np.mean((pred - y)[MASK] ** 2)  # the real steps only
        assert model.evaluate(IDS, y, verbose=0) == pytest.approx(expected, rel=1e-5)
        y2 = y.copy()
        y2[~MASK] = 1e6  # targets at padded steps change nothing
        assert model.evaluate(IDS, y2, verbose=0) == pytest.approx(expected, rel=1e-5)
        history = model.fit(IDS, y2, epochs=3, verbose=0)
        assert np.isfinite(history["loss"]).all()


def test_masking_layer_and_pooling_over_real_steps():
    x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype(np.float32)
    x[0, 3:] = 0
    model = keras.Sequential(
        [keras.Input((5, 2)), layers.Masking(), layers.GlobalAveragePooling1D()]
    )
    expected = np.stack([x[0, :3].mean(0), x[1].mean(0), x[2].mean(0)])
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)
    flat = keras.Sequential([keras.Input((5, 2)), layers.Masking(), layers.Flatten()])
    assert flat.predict(x).shape == (3, 10)  # Flatten drops the mask, as Keras does


def test_save_load_and_json_round_trips(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            layers.Embedding(10, 3, mask_zero=True),
            layers.Bidirectional(layers.GRU(4, return_sequences=True), merge_mode="sum"),
            layers.LSTM(3, return_sequences=True, go_backwards=True),
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid")),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    y = (np.random.default_rng(0).random((4, 7, 1)) > 0.5).astype(np.float32)
    model.fit(IDS, y, epochs=2, verbose=0)
    pred = model.predict(IDS)
    for name in ("m.keras", "m.json"):
        again = keras.models.load_model(model.save(tmp_path / name))
        assert [type(s).__name__ for s in again.layers] == [
            "Embedding", "Bidirectional", "LSTM", "TimeDistributed",
        ]  # fmt: skip
        assert np.array_equal(again.predict(IDS), pred)
        assert again.evaluate(IDS, y, verbose=0) == model.evaluate(IDS, y, verbose=0)
    fresh = keras.models.model_from_json(model.to_json())
    assert fresh.get_config() == model.get_config()
    fresh.set_weights(model.get_weights())
    assert np.array_equal(fresh.predict(IDS), pred)


def test_return_state_in_a_sequential_and_in_the_functional_api():
    model = keras.Sequential([keras.Input((5, 2)), layers.LSTM(3, return_state=True)])
    out, h, c = model.predict(np.ones((2, 5, 2), np.float32))
    assert out.shape == h.shape == c.shape == (2, 3) and np.array_equal(out, h)
    inputs = keras.Input((5, 2))
    out_t, _, c_t = layers.LSTM(3, return_state=True)(inputs)  # taken apart
    functional = keras.Model(inputs, [out_t, c_t])
    functional.set_weights(model.get_weights())
    got = functional.predict(np.ones((2, 5, 2), np.float32))
    assert np.array_equal(got[0], out) and np.array_equal(got[1], c)
    with pytest.raises(TypeError, match="return_state=True"):
        _, _ = layers.LSTM(3)(inputs)


def test_merging_masked_sequences_is_refused():
    inputs = keras.Input((7,), dtype="int32")
    a = layers.Embedding(10, 3, mask_zero=True)(inputs)
    b = layers.Embedding(10, 3, mask_zero=True)(inputs)
    with pytest.raises(ValueError, match="merging masks"):
        layers.Concatenate()([a, b])


# ---------------------------------------------------------------- Keras 3 as the oracle


def _both(build):
    """(funcnn.keras model, Keras model) from one builder, Keras' initial weights in both."""
    real = keras_real()
    theirs = build(real, real.layers)
    ours = build(keras, layers)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _mask_of(model, x):
    """The mask Keras' model output carries, or None: each layer's compute_mask in turn
    (only the first layers' values matter to it: Embedding's ids, Masking's values)."""
    h, mask = x, None
    for layer in model.layers:
        h, mask = layer(h), layer.compute_mask(h, mask)
    return None if mask is None else np.asarray(mask)


SEQ = np.random.default_rng(3).standard_normal((4, 7, 3)).astype(np.float32)
SEQ[~MASK] = 0.0  # padding for Masking


def _recurrent(kind, **kw):
    return lambda lib: getattr(lib.layers, kind)(4, **kw)


ORACLE_CASES = {
    "embedding": (
        lambda lib, layers_: [lib.Input((7,), dtype="int32"), layers_.Embedding(10, 3)],
        IDS,
    ),
    "embedding_mask_zero": (
        lambda lib, layers_: [
            lib.Input((7,), dtype="int32"),
            layers_.Embedding(10, 3, mask_zero=True),
        ],
        IDS,
    ),
    "masking": (lambda lib, layers_: [lib.Input((7, 3)), layers_.Masking()], SEQ),
    "time_distributed": (
        lambda lib, layers_: [
            lib.Input((7, 3)),
            layers_.Masking(),
            layers_.TimeDistributed(layers_.Dense(2, activation="tanh")),
        ],
        SEQ,
    ),
}
for kind in ("SimpleRNN", "LSTM", "GRU"):
    for options in (
        {},
        {"return_sequences": True},
        {"go_backwards": True},
        {"return_sequences": True, "go_backwards": True},
    ):
        name = "_".join([kind.lower(), *options])

        def case(lib, layers_, kind=kind, options=options):
            return [
                lib.Input((7,), dtype="int32"),
                layers_.Embedding(10, 3, mask_zero=True),
                getattr(layers_, kind)(4, **options),
            ]

        ORACLE_CASES[name] = (case, IDS)
for mode in ("concat", "sum", "mul", "ave"):
    for sequences in (False, True):

        def case(lib, layers_, mode=mode, sequences=sequences):
            return [
                lib.Input((7,), dtype="int32"),
                layers_.Embedding(10, 3, mask_zero=True),
                layers_.Bidirectional(layers_.LSTM(4, return_sequences=sequences), merge_mode=mode),
            ]

        ORACLE_CASES[f"bidirectional_{mode}" + ("_sequences" if sequences else "")] = (case, IDS)


@pytest.mark.parametrize("name", sorted(ORACLE_CASES))
def test_each_layer_matches_keras(name):
    build, x = ORACLE_CASES[name]
    ours, theirs = _both(lambda lib, layers_: lib.Sequential(build(lib, layers_)))
    expected = np.asarray(theirs.predict(x, verbose=0))
    got = ours.predict(x)
    keras_mask = _mask_of(theirs, x)
    core_out = ours.model.apply(ours.params, x)
    our_mask = core_out[1] if isinstance(core_out, tuple) else None
    if keras_mask is None:
        assert our_mask is None
    else:
        assert np.array_equal(our_mask, keras_mask)
    if "bidirectional" in name and "sequences" in name:
        # Keras' Bidirectional zeros the outputs of masked steps; the core repeats the
        # last output there (what a single RNN does in both). Real steps agree.
        got, expected = got[MASK], expected[MASK]
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
    assert ours.count_params() == theirs.count_params()


def _train_both(build, x, y, loss, epochs=3):
    real = keras_real()
    ours, theirs = _both(build)
    theirs.compile(loss=loss, optimizer=real.optimizers.SGD(0.5))
    ours.compile(loss=loss, optimizer=keras.optimizers.SGD(0.5))
    h_theirs = theirs.fit(x, y, epochs=epochs, batch_size=2, shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, epochs=epochs, batch_size=2, shuffle=False, verbose=0)
    return ours, theirs, h_ours.history, h_theirs.history


def test_masked_sequence_training_matches_keras():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((4, 7, 2)).astype(np.float32)

    def build(lib, layers_):
        return lib.Sequential(
            [
                lib.Input((7,), dtype="int32"),
                layers_.Embedding(10, 3, mask_zero=True),
                layers_.LSTM(5, return_sequences=True),
                layers_.TimeDistributed(layers_.Dense(2)),
            ]
        )

    ours, theirs, h_ours, h_theirs = _train_both(build, IDS, y, "mse")
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


def test_bidirectional_gru_classifier_training_matches_keras():
    y = np.array([1.0, 0.0, 1.0, 0.0], np.float32)

    def build(lib, layers_):
        inputs = lib.Input((7,), dtype="int32")
        x = layers_.Embedding(10, 3, mask_zero=True)(inputs)
        x = layers_.Bidirectional(layers_.GRU(4, return_sequences=True))(x)
        x = layers_.SimpleRNN(3, go_backwards=True)(x)
        return lib.Model(inputs, layers_.Dense(1, activation="sigmoid")(x))

    ours, theirs, h_ours, h_theirs = _train_both(build, IDS, y, "binary_crossentropy")
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


def test_pad_sequences_and_the_imdb_loader():
    rows = [[1, 2, 3, 4], [5], []]
    assert keras.utils.pad_sequences(rows, maxlen=3).tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    post = keras.preprocessing.sequence.pad_sequences(
        rows, maxlen=3, padding="post", truncating="post", value=9
    )
    assert post.tolist() == [[1, 2, 3], [5, 9, 9], [9, 9, 9]] and post.dtype == np.int32
    assert keras.utils.pad_sequences(rows).shape == (3, 4)
    with pytest.raises(ValueError, match="'pre' or 'post'"):
        keras.utils.pad_sequences(rows, padding="left")
    with pytest.raises(RuntimeError, match="downloads nothing"):
        keras.datasets.imdb.load_data(num_words=100)
    real = keras_real()
    for options in ({"maxlen": 3}, {"maxlen": 2, "padding": "post", "truncating": "post"}, {}):
        expected = real.utils.pad_sequences(rows, **options)
        assert np.array_equal(keras.utils.pad_sequences(rows, **options), expected)


def test_masked_softmax_tagger_loss_and_accuracy_match_keras():
    # A fused softmax output (trained on its logits) over a masked sequence: the loss and
    # the accuracy of the real steps, as Keras weighs them by the mask.
    real = keras_real()
    tags = np.random.default_rng(1).integers(0, 3, IDS.shape)

    def build(lib, layers_):
        return lib.Sequential(
            [
                lib.Input((7,), dtype="int32"),
                layers_.Embedding(10, 3, mask_zero=True),
                layers_.GRU(4, return_sequences=True),
                layers_.TimeDistributed(layers_.Dense(3, activation="softmax")),
            ]
        )

    ours, theirs = _both(build)
    theirs.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=real.optimizers.SGD(0.5),
        metrics=["accuracy"],
    )
    ours.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(0.5),
        metrics=["accuracy"],
    )
    h_theirs = theirs.fit(IDS, tags, epochs=3, batch_size=2, shuffle=False, verbose=0).history
    h_ours = ours.fit(IDS, tags, epochs=3, batch_size=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
    loss, accuracy = ours.evaluate(IDS, tags, verbose=0)
    expected = theirs.evaluate(IDS, tags, verbose=0, return_dict=True)
    assert loss == pytest.approx(expected["loss"], rel=1e-4)
    assert accuracy == pytest.approx(expected["accuracy"], abs=1e-6)
