"""The recurrent cells' options: GRU(reset_after=False), use_bias=False, dropout and
recurrent_dropout (issue 23). Float64 finite differences, a NumPy reference of Keras 3's
formulas with the layer's own masks, the same bits for any batch split, files, and
Keras 3 itself as the oracle (JAX backend; skipped where keras is not installed)."""

import os

import attrs
import numpy as np
import pytest

from funcnn import io, keras, nn, tree
from funcnn import layers as L
from funcnn.keras import layers
from funcnn.random import Key
from funcnn.testing import check_grads, check_layer

# Keras 3's variables meet NumPy 2's __array__ protocol with a warning (keras, not us).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
nan_run = pytest.mark.usefixtures("empty_memory")  # the core's tests, also on NaN memory

MASK = np.array(
    [
        [True, True, False, True, False],  # a hole and a masked tail
        [False, False, True, True, True],  # masked head (pre-padding)
        [False, False, False, False, False],  # nothing real
    ]
)
DROP = {"dropout": 0.3, "recurrent_dropout": 0.4}
CELLS = {
    "simple": lambda **kw: L.SimpleRNN(3, **kw),
    "lstm": lambda **kw: L.LSTM(3, **kw),
    "gru": lambda **kw: L.GRU(3, **kw),
    "gru_before": lambda **kw: L.GRU(3, reset_after=False, **kw),
}
OPTIONS = {
    "plain": {},
    "no_bias": {"use_bias": False},
    "dropout": {"dropout": 0.3},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "both_dropouts_no_bias": {**DROP, "use_bias": False},
}


@attrs.frozen(repr=False)
class WithMask(L.Layer):
    """``layer`` given ``(x, mask, ...)`` with a fixed mask (finite differences never
    perturb it)."""

    layer: L.Layer
    mask: np.ndarray = attrs.field(eq=False)

    def forward_with_state(self, params, state, x, *, train=False, rng=None):
        full = (x[0], self.mask, x[1]) if isinstance(x, tuple) else (x, self.mask)
        return self.layer.forward_with_state(params, state, full, train=train, rng=rng)

    def backward(self, params, cache, dy, *, need_dx=True):
        grads, dx = self.layer.backward(params, cache, dy, need_dx=need_dx)
        return grads, ((dx[0], dx[2]) if len(dx) == 3 else dx[0])


def init64(layer, shape, seed=0):
    params = layer.init(np.random.default_rng(seed), shape, dtype=np.float64)
    gen = np.random.default_rng(seed + 100)  # biases away from their zeros
    return tree.map(lambda a: a + 0.1 * gen.standard_normal(a.shape), params)


# ---------------------------------------------------------------- finite differences


@nan_run
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_options_match_finite_differences(kind, option):
    layer = CELLS[kind](return_sequences=True, return_state=True, **OPTIONS[option])
    gen = np.random.default_rng(1)
    x = gen.standard_normal((3, 5, 2))
    h0 = tuple(gen.standard_normal((3, *s)) for s in layer.cell.state_shapes())
    params = init64(layer, (5, 2))
    for train in (False, True):
        check_grads(layer, params, x, train=train, rng_seed=3)
        check_grads(WithMask(layer, MASK), params, (x, h0), train=train, rng_seed=4)
    reverse = attrs.evolve(layer, return_sequences=False, reverse=True)
    check_grads(reverse, params, x, train=True, rng_seed=5)


@nan_run
@pytest.mark.parametrize(
    "cell",
    [
        L.GRUCell(3, reset_after=False),
        L.GRUCell(3, reset_after=False, use_bias=False, **DROP),
        L.LSTMCell(3, use_bias=False, **DROP),
        L.SimpleRNNCell(3, **DROP),
    ],
    ids=repr,
)
def test_cells_with_options_are_layers_of_one_step(cell):
    shapes = ((2,), *cell.state_shapes())
    check_layer(cell, shapes)
    check_layer(cell, shapes, train=True)


@nan_run
def test_bidirectional_with_dropout_matches_finite_differences():
    layer = L.Bidirectional(L.GRU(2, reset_after=False, return_sequences=True, **DROP))
    x = np.random.default_rng(2).standard_normal((3, 5, 2))
    params = init64(layer, (5, 2))
    check_grads(layer, params, x, train=True, rng_seed=6)
    check_grads(WithMask(layer, MASK), params, x, train=True, rng_seed=7)


# ---------------------------------------------------------------- Keras 3's formulas


def _reference(cell, params, x, masks):
    """Keras 3's cells (implementation 1: a mask per gate) in NumPy, float64, with the
    masks once per sequence: the last output."""
    batch, time, _ = x.shape
    u, k = cell.units, cell.gates
    ones_x = np.ones((k, batch, x.shape[2]))
    ones_h = np.ones((k, batch, u))
    dm = ones_x if masks.inputs is None else masks.inputs
    rm = ones_h if masks.recurrent is None else masks.recurrent
    kernel, rec = params.kernel, params.recurrent_kernel
    bias = np.zeros((2, k * u)) if params.bias is None else np.atleast_2d(params.bias)

    def block(a, g):
        return a[..., g * u : (g + 1) * u]

    h = np.zeros((batch, u))
    c = np.zeros((batch, u))
    for t in range(time):
        xg = [(x[:, t] * dm[g]) @ block(kernel, g) + block(bias[0], g) for g in range(k)]
        hg = [h * rm[g] for g in range(k)]
        if isinstance(cell, L.SimpleRNNCell):
            h = np.tanh(xg[0] + hg[0] @ rec)
        elif isinstance(cell, L.LSTMCell):
            i, f, cc, o = (xg[g] + hg[g] @ block(rec, g) for g in range(4))
            c = nn.sigmoid(f) * c + nn.sigmoid(i) * np.tanh(cc)
            h = nn.sigmoid(o) * np.tanh(c)
        elif cell.reset_after:
            hz, hr, hh = (hg[g] @ block(rec, g) + block(bias[1], g) for g in range(3))
            z, r = nn.sigmoid(xg[0] + hz), nn.sigmoid(xg[1] + hr)
            h = z * h + (1 - z) * np.tanh(xg[2] + r * hh)
        else:
            z = nn.sigmoid(xg[0] + hg[0] @ block(rec, 0))
            r = nn.sigmoid(xg[1] + hg[1] @ block(rec, 1))
            h = z * h + (1 - z) * np.tanh(xg[2] + (r * hg[2]) @ block(rec, 2))
    return h


@nan_run
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_training_follows_keras_formulas_with_masks_fixed_over_time(kind, option):
    layer = CELLS[kind](**OPTIONS[option])
    x = np.random.default_rng(8).standard_normal((6, 7, 4))
    params = init64(layer, (7, 4))
    key = Key((9,))
    masks = layer.cell.dropout_masks(key, 6, 4, np.float64, train=True)
    for mask, rate in ((masks.inputs, layer.cell.dropout), (masks.recurrent, 0.4)):
        if mask is not None:  # some units kept, some dropped, the kept scaled
            assert set(np.unique(mask)) == {0.0, 1 / (1 - rate)}
    got = layer.apply(params, x, train=True, rng=key)
    np.testing.assert_allclose(got, _reference(layer.cell, params, x, masks), rtol=1e-12)
    plain = attrs.evolve(layer, cell=attrs.evolve(layer.cell, dropout=0.0, recurrent_dropout=0.0))
    inference = layer.apply(params, x)
    assert np.array_equal(inference, plain.apply(params, x))  # no dropout in inference
    if masks.inputs is not None or masks.recurrent is not None:
        assert not np.allclose(got, inference)
        with pytest.raises(ValueError, match=r"needs a random key.*rng=seed"):
            layer.apply(params, x, train=True)
    else:
        assert np.array_equal(got, plain.apply(params, x, train=True))


@nan_run
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_dropout_gives_the_same_bits_for_any_batch_split(kind, dtype):
    layer = L.Bidirectional(CELLS[kind](return_sequences=True, **DROP))
    model = L.serial(layer, L.per_step(L.Dense(2)))
    x = np.random.default_rng(10).standard_normal((7, 5, 3)).astype(dtype)
    params = model.init(0, (5, 3), dtype=dtype)
    key = Key((11, 2))
    whole, cache = model.forward(params, x, train=True, rng=key)
    grads = model.backward(params, cache, np.ones_like(whole))[0]
    parts = [
        model.apply(params, x[a:b], train=True, rng=key.at_row(a)) for a, b in ((0, 3), (3, 7))
    ]
    assert np.array_equal(np.concatenate(parts), whole)
    _, cache_again = model.forward(params, x, train=True, rng=key)
    again = model.backward(params, cache_again, np.ones_like(whole))[0]
    assert all(np.array_equal(a, b) for a, b in zip(tree.leaves(grads), tree.leaves(again)))
    other = model.apply(params, x, train=True, rng=Key((11, 3)))
    assert not np.array_equal(other, whole)


# ---------------------------------------------------------------- params and files


def test_params_shapes_and_errors():
    assert L.GRU(4, reset_after=False).init(0, (3, 2)).bias.shape == (12,)
    for kind in sorted(CELLS):
        params = CELLS[kind](use_bias=False).init(0, (3, 2))
        assert params.bias is None and len(tree.leaves(params)) == 2
    with pytest.raises(ValueError, match=r"expects params of shapes .*\(12,\)\), got .*\(2, 12\)"):
        L.GRU(4, reset_after=False).apply(L.GRU(4).init(0, (3, 2)), np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r"None\), got"):
        L.LSTM(4, use_bias=False).apply(L.LSTM(4).init(0, (3, 2)), np.zeros((1, 3, 2)))
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        L.GRU(4, reset_after=1)
    with pytest.raises(ValueError, match=r"recurrent_dropout is the probability.*got 1.5"):
        L.LSTMCell(4, recurrent_dropout=1.5)


def test_the_options_save_and_load(tmp_path):
    model = L.serial(
        L.Embedding(20, 4, mask_zero=True),
        L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True, **DROP)),
        L.LSTM(3, use_bias=False, dropout=0.2, return_sequences=True),
        L.SimpleRNN(2, use_bias=False, recurrent_dropout=0.1),
    )
    params = model.init(0, (6,))
    ids = np.random.default_rng(13).integers(0, 20, (3, 6))
    loaded = io.load(io.save(tmp_path / "m.npz", model, params, input_shape=(6,)))
    assert loaded.model == model
    assert loaded.model.layers[1].layer.cell.reset_after is False
    assert all(
        np.array_equal(a, b) for a, b in zip(tree.leaves(params), tree.leaves(loaded.params))
    )
    for train in (False, True):
        assert np.array_equal(
            loaded.model.apply(loaded.params, ids, train=train, rng=3),
            model.apply(params, ids, train=train, rng=3),
        )


# ---------------------------------------------------------------- the Keras facade


def test_facade_options_build_the_core_and_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            layers.Embedding(10, 3, mask_zero=True),
            layers.GRU(4, reset_after=False, return_sequences=True, **DROP),
            layers.LSTM(3, use_bias=False, dropout=0.1),
            layers.Dense(1),
        ]
    )
    assert [w.shape for w in model.get_weights()] == [
        (10, 3), (3, 12), (4, 12), (12,), (4, 12), (3, 12), (3, 1), (1,),
    ]  # fmt: skip
    gru = model.model.layers[1].cell
    assert (gru.reset_after, gru.dropout, gru.recurrent_dropout) == (False, 0.3, 0.4)
    ids = np.random.default_rng(0).integers(0, 10, (8, 7))
    y = np.random.default_rng(1).standard_normal((8, 1)).astype(np.float32)
    model.compile(loss="mse", optimizer="sgd")
    model.fit(ids, y, epochs=2, verbose=0)
    pred = model.predict(ids)
    for name in ("m.keras", "m.json"):
        again = keras.models.load_model(model.save(tmp_path / name))
        assert again.get_config() == model.get_config()
        assert np.array_equal(again.predict(ids), pred)


def _keras_real():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


IDS = np.array(
    [[3, 1, 4, 1, 5, 0, 0], [0, 0, 2, 6, 5, 3, 5], [8, 9, 7, 9, 3, 2, 3], [1, 2, 3, 4, 5, 6, 7]]
)

KERAS_CASES = {
    "gru_reset_before": ("GRU", {"reset_after": False}),
    "gru_reset_before_sequences_backwards": (
        "GRU",
        {"reset_after": False, "return_sequences": True, "go_backwards": True},
    ),
    "gru_reset_before_no_bias": ("GRU", {"reset_after": False, "use_bias": False}),
    "gru_no_bias": ("GRU", {"use_bias": False}),
    "lstm_no_bias": ("LSTM", {"use_bias": False, "return_sequences": True}),
    "simple_no_bias": ("SimpleRNN", {"use_bias": False}),
    "lstm_dropouts_inference": ("LSTM", DROP),
    "gru_reset_before_dropouts_inference": ("GRU", {"reset_after": False, **DROP}),
}


def _build(lib, layers_, kind, options):
    return lib.Sequential(
        [
            lib.Input((7,), dtype="int32"),
            layers_.Embedding(10, 3, mask_zero=True),
            getattr(layers_, kind)(4, **options),
            layers_.Dense(2),
        ]
    )


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_options_match_keras_outputs_and_training(name):
    real = _keras_real()
    kind, options = KERAS_CASES[name]
    theirs = _build(real, real.layers, kind, options)
    ours = _build(keras, layers, kind, options)
    ours.set_weights(theirs.get_weights())
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    np.testing.assert_allclose(
        ours.predict(IDS), np.asarray(theirs.predict(IDS, verbose=0)), rtol=2e-5, atol=2e-6
    )
    if "dropout" in name:
        return  # Keras' masks are its own random draws: inference only
    shape = (4, 7, 2) if options.get("return_sequences") else (4, 2)
    y = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    theirs.compile(loss="mse", optimizer=real.optimizers.SGD(0.5))
    ours.compile(loss="mse", optimizer=keras.optimizers.SGD(0.5))
    h_theirs = theirs.fit(IDS, y, epochs=3, batch_size=2, shuffle=False, verbose=0).history
    h_ours = ours.fit(IDS, y, epochs=3, batch_size=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- states in the functional API


def _seq2seq(lib, layers_, *, masked=False, units=5):
    """keras-io's character-level seq2seq training model (fixed lengths here)."""
    if masked:
        enc_in = lib.Input((7,), dtype="int32")
        encoder_inputs = layers_.Embedding(10, 4, mask_zero=True)(enc_in)
    else:
        enc_in = encoder_inputs = lib.Input((6, 4))
    encoder = layers_.LSTM(units, return_state=True)
    _encoder_outputs, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]
    dec_in = lib.Input((5, 3))
    decoder_lstm = layers_.LSTM(units, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(dec_in, initial_state=encoder_states)
    decoder_dense = layers_.Dense(3, activation="softmax")
    return lib.Model([enc_in, dec_in], decoder_dense(decoder_outputs))


def _seq2seq_data(masked):
    gen = np.random.default_rng(20)
    a = IDS if masked else gen.random((4, 6, 4)).astype(np.float32)
    b = gen.random((4, 5, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[gen.integers(0, 3, (4, 5))]
    return a, b, y


def test_seq2seq_functional_api_runs_trains_and_round_trips(tmp_path):
    model = _seq2seq(keras, layers)
    a, b, y = _seq2seq_data(False)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit([a, b], y, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history["loss"]).all()
    pred = model.predict([a, b])
    assert pred.shape == (4, 5, 3)
    for name in ("m.keras", "m.json"):
        again = keras.models.load_model(model.save(tmp_path / name))
        assert again.get_config() == model.get_config()
        assert np.array_equal(again.predict([a, b]), pred)
    # the core: the states enter the decoder as inputs; float64 finite differences
    core = model.model
    params = core.init(np.random.default_rng(0), ((6, 4), (5, 3)), dtype=np.float64)
    check_grads(core, params, (a.astype(np.float64), b.astype(np.float64)))


def test_bidirectional_states_taken_apart():
    inputs = keras.Input((6, 4))
    out, fh, _, _, bc = layers.Bidirectional(layers.LSTM(3, return_state=True))(inputs)
    assert [t.shape for t in (out, fh, bc)] == [(6,), (3,), (3,)]
    joined = layers.Concatenate()([out, fh, bc])
    model = keras.Model(inputs, layers.Dense(2)(joined))
    x = np.random.default_rng(21).standard_normal((3, 6, 4))
    params = model.model.init(np.random.default_rng(0), (6, 4), dtype=np.float64)
    check_grads(model.model, params, x)
    h0 = [keras.Input((3,)) for _ in range(4)]
    seq = layers.Bidirectional(layers.GRU(3, return_sequences=True))(inputs, initial_state=h0[:2])
    assert seq.shape == (6, 6)


def test_functional_states_say_what_was_expected():
    inputs = keras.Input((6, 4))
    with pytest.raises(TypeError, match="return_state=True"):
        _, _ = layers.LSTM(3)(inputs)
    with pytest.raises(TypeError, match="one tensor, an Input's"):
        _, _ = inputs
    with pytest.raises(TypeError, match="returns one output"):
        _, _ = layers.Dense(3)(inputs)
    _, h, c = layers.LSTM(3, return_state=True)(inputs)
    with pytest.raises(ValueError, match="initial_state as a list of 2 tensors, got 1"):
        layers.LSTM(3)(inputs, initial_state=[h])
    with pytest.raises(ValueError, match="expects input shapes"):
        layers.LSTM(4)(inputs, initial_state=[h, c])  # 3 units of state for 4
    with pytest.raises(TypeError, match=r"mask=\.\.\.") as info:
        layers.LSTM(3)(inputs, mask=h)
    assert "Embedding(mask_zero=True)" in str(info.value)


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
def test_seq2seq_matches_keras(masked):
    real = _keras_real()
    theirs = _seq2seq(real, real.layers, masked=masked)
    ours = _seq2seq(keras, layers, masked=masked)
    ours.set_weights(theirs.get_weights())
    a, b, y = _seq2seq_data(masked)
    np.testing.assert_allclose(
        ours.predict([a, b]), np.asarray(theirs.predict([a, b], verbose=0)), rtol=2e-5, atol=2e-6
    )
    theirs.compile(loss="categorical_crossentropy", optimizer=real.optimizers.SGD(0.5))
    ours.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5))
    h_theirs = theirs.fit([a, b], y, epochs=3, batch_size=2, shuffle=False, verbose=0).history
    h_ours = ours.fit([a, b], y, epochs=3, batch_size=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours["loss"], h_theirs["loss"], rtol=1e-4)
    for w_ours, w_theirs in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(w_ours, np.asarray(w_theirs), rtol=1e-4, atol=1e-5)
