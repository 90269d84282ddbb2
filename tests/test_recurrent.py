"""Sequences: Embedding, masks, the recurrent cells, RNN's backpropagation through time,
Bidirectional; float64 finite differences, PyTorch as the oracle, and the sums' bits."""

import attrs
import numpy as np
import pytest

from funcnn import io, linalg, losses, sequence, tree
from funcnn import layers as L
from funcnn.testing import check_grads, check_layer, check_loss_grads

pytestmark = pytest.mark.usefixtures("empty_memory")

CELLS = {
    "simple": lambda **kw: L.SimpleRNN(3, **kw),
    "lstm": lambda **kw: L.LSTM(3, **kw),
    "gru": lambda **kw: L.GRU(3, **kw),
}
MASK = np.array(
    [
        [True, True, False, True, False],  # a hole and a masked tail
        [False, False, True, True, True],  # masked head (pre-padding)
        [False, False, False, False, False],  # nothing real
    ]
)


@attrs.frozen(repr=False)
class WithMask(L.Layer):
    """``layer`` given ``(x, mask, ...)`` with a fixed mask: the checked input is ``x`` (or
    ``(x, state)``), so finite differences never perturb the mask."""

    layer: L.Layer
    mask: np.ndarray = attrs.field(eq=False)

    def forward_with_state(self, params, state, x, *, train=False, rng=None):
        full = (x[0], self.mask, x[1]) if isinstance(x, tuple) else (x, self.mask)
        return self.layer.forward_with_state(params, state, full, train=train, rng=rng)

    def backward(self, params, cache, dy, *, need_dx=True):
        grads, dx = self.layer.backward(params, cache, dy, need_dx=need_dx)
        assert not np.any(dx[1]) and dx[1].shape == self.mask.shape
        return grads, ((dx[0], dx[2]) if len(dx) == 3 else dx[0])


def init64(layer, shape):
    return layer.init(np.random.default_rng(0), shape, dtype=np.float64)


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True},
        {"return_sequences": True, "return_state": True, "reverse": True},
        {"return_state": True},
    ],
    ids=["last", "sequences", "reverse-state", "state"],
)
def test_bptt_matches_finite_differences_with_masks_and_initial_states(kind, options, train):
    layer = CELLS[kind](**options)
    gen = np.random.default_rng(1)
    x = gen.standard_normal((3, 5, 2))
    states = layer.cell.state_shapes()
    h0 = tuple(gen.standard_normal((3, *s)) for s in states)
    params = init64(layer, (5, 2))
    check_grads(layer, params, x, train=train)
    check_grads(layer, params, (x, h0), train=train)
    check_grads(WithMask(layer, MASK), params, x, train=train)
    check_grads(WithMask(layer, MASK), params, (x, h0), train=train)


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_matches_finite_differences(mode):
    layer = L.Bidirectional(L.LSTM(2, return_sequences=True, return_state=True), merge_mode=mode)
    gen = np.random.default_rng(2)
    x = gen.standard_normal((3, 5, 2))
    h0 = tuple(gen.standard_normal((3, 2)) for _ in range(4))
    params = init64(layer, (5, 2))
    for train in (False, True):
        check_grads(layer, params, x, train=train)
        check_grads(WithMask(layer, MASK), params, (x, h0), train=train)


@pytest.mark.parametrize("cell", [L.SimpleRNNCell(3), L.LSTMCell(3), L.GRUCell(3)])
def test_cells_are_layers_of_one_step(cell):
    shapes = ((2,), *cell.state_shapes())
    check_layer(cell, shapes)
    check_layer(cell, shapes, train=True)


def test_masked_pools_and_per_step_match_finite_differences():
    gen = np.random.default_rng(3)
    x = gen.standard_normal((3, 5, 4))
    dense = L.per_step(L.Dense(2))
    for layer in (L.MaskedGlobalAvgPool1D, L.MaskedGlobalMaxPool1D, dense):
        check_grads(WithMask(layer, MASK), init64(layer, (5, 4)), x)
    y = L.MaskedGlobalAvgPool1D.apply((), (x, MASK))
    np.testing.assert_allclose(y[0], x[0, [0, 1, 3]].mean(axis=0))
    assert np.array_equal(y[2], np.zeros(4))  # no real step: zeros
    y = L.MaskedGlobalMaxPool1D.apply((), (x, MASK))
    np.testing.assert_allclose(y[1], x[1, 2:].max(axis=0))
    assert np.array_equal(L.MaskedGlobalAvgPool1D.apply((), x), x.mean(axis=1))
    values, mask = dense.apply(init64(dense, (5, 4)), (x, MASK))
    assert values.shape == (3, 5, 2) and mask is MASK


# ---------------------------------------------------------------- what a mask does


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_masked_steps_hold_the_state_and_repeat_the_last_output(kind):
    layer = CELLS[kind](return_sequences=True, return_state=True)
    gen = np.random.default_rng(4)
    x = gen.standard_normal((3, 5, 2))
    params = layer.init(0, (5, 2))
    y, mask, *final = layer.apply(params, (x, MASK))
    assert mask is MASK
    # row 0: steps 0, 1, 3 are real; the sequence without its holes gives the same outputs
    real = CELLS[kind](return_sequences=True, return_state=True)
    y0, *final0 = real.apply(params, x[:1, [0, 1, 3]])
    np.testing.assert_allclose(y[0, [0, 1, 3]], y0[0], rtol=1e-6)
    assert np.array_equal(y[0, 2], y[0, 1]) and np.array_equal(y[0, 4], y[0, 3])
    for a, b in zip(final, final0):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    # row 1: masked head gives zeros, then the real steps as a sequence of their own
    assert not np.any(y[1, :2])
    y1, *_ = real.apply(params, x[1:2, 2:])
    np.testing.assert_allclose(y[1, 2:], y1[0], rtol=1e-6)
    # row 2: nothing real: zeros out, the initial (zero) state back
    assert not np.any(y[2]) and all(not np.any(s[2]) for s in final)


def test_a_masked_row_keeps_its_initial_state():
    layer = L.LSTM(3, return_state=True)
    h0 = (np.ones((3, 3), np.float32), np.full((3, 3), 2, np.float32))
    x = np.random.default_rng(5).standard_normal((3, 5, 2)).astype(np.float32)
    y, h, c = layer.apply(layer.init(0, (5, 2)), (x, MASK, h0))
    assert np.array_equal(h[2], h0[0][2]) and np.array_equal(c[2], h0[1][2])
    assert not np.any(y[2])  # Keras: no real step, zero output


def test_reverse_reads_from_the_end_and_aligns_outputs_with_steps():
    forward = L.GRU(3, return_sequences=True)
    backward = L.GRU(3, return_sequences=True, reverse=True)
    x = np.random.default_rng(6).standard_normal((2, 4, 2))
    params = forward.init(0, (4, 2), dtype=np.float64)
    np.testing.assert_allclose(
        backward.apply(params, x), forward.apply(params, x[:, ::-1])[:, ::-1], rtol=1e-12
    )


def test_step_and_scan_carry_the_state_of_the_whole_sequence():
    layer = L.LSTM(4, return_sequences=True)
    x = np.random.default_rng(7).standard_normal((2, 6, 3))
    params = layer.init(0, (6, 3), dtype=np.float64)
    whole = layer.apply(params, x)
    head, state = layer.scan(params, x[:, :4])
    ys = [head]
    for t in (4, 5):
        y, state = layer.step(params, state, x[:, t])
        ys.append(y[:, None])
    np.testing.assert_allclose(np.concatenate(ys, axis=1), whole, rtol=1e-12)


# ---------------------------------------------------------------- PyTorch as the oracle


def _torch_check(ours, params, module, x, *, sequences=True):
    """Outputs, input gradients and the modules' params' gradients agree; returns ours."""
    torch = pytest.importorskip("torch")
    gen = np.random.default_rng(8)
    y, cache = ours.forward(params, x, train=True)
    dy = gen.standard_normal(y.shape)
    grads, dx = ours.backward(params, cache, dy)
    xt = torch.tensor(x, requires_grad=x.dtype.kind == "f")
    out = module(xt)
    yt = out[0] if isinstance(out, tuple) else out
    if not sequences:
        yt = yt[:, -1]
    (yt * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    if xt.requires_grad:
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    return grads


def _torch_grads(module, name):
    return getattr(module, name).grad.numpy()


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    layer = L.Embedding(7, 3)
    params = init64(layer, (4,))
    module = torch.nn.Embedding(7, 3).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(params.embeddings))
    ids = np.random.default_rng(9).integers(0, 7, (5, 4))
    grads = _torch_check(layer, params, module, ids)
    np.testing.assert_allclose(grads.embeddings, _torch_grads(module, "weight"), rtol=1e-12)


def _gates(a, order, u):
    return np.concatenate([a[..., i * u : (i + 1) * u] for i in order], axis=-1)


@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("sequences", [True, False])
def test_recurrent_layers_match_torch(kind, sequences):
    torch = pytest.importorskip("torch")
    u, f = 3, 2
    layer = CELLS[kind](return_sequences=sequences)
    params = init64(layer, (5, f))
    gen = np.random.default_rng(10)
    params = type(params)(*(a + 0.1 * gen.standard_normal(a.shape) for a in params))
    # PyTorch's gate order, as a permutation of our blocks: GRU r, z, n from our z, r, h
    order = [1, 0, 2] if kind == "gru" else list(range(layer.cell.gates))
    module_class = {"simple": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    module = module_class(f, u, batch_first=True).double()
    bias_in = params.bias[0] if kind == "gru" else params.bias
    bias_rec = params.bias[1] if kind == "gru" else np.zeros_like(params.bias)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(_gates(params.kernel, order, u).T))
        module.weight_hh_l0.copy_(torch.tensor(_gates(params.recurrent_kernel, order, u).T))
        module.bias_ih_l0.copy_(torch.tensor(_gates(bias_in, order, u)))
        module.bias_hh_l0.copy_(torch.tensor(_gates(bias_rec, order, u)))
    x = gen.standard_normal((4, 5, f))
    grads = _torch_check(layer, params, module, x, sequences=sequences)
    back = np.argsort(order)
    np.testing.assert_allclose(
        grads.kernel, _gates(_torch_grads(module, "weight_ih_l0").T, back, u), rtol=1e-9
    )
    np.testing.assert_allclose(
        grads.recurrent_kernel, _gates(_torch_grads(module, "weight_hh_l0").T, back, u), rtol=1e-9
    )
    b_ih = _gates(_torch_grads(module, "bias_ih_l0"), back, u)
    b_hh = _gates(_torch_grads(module, "bias_hh_l0"), back, u)
    expected = np.stack([b_ih, b_hh]) if kind == "gru" else b_ih
    np.testing.assert_allclose(grads.bias, expected, rtol=1e-9, atol=1e-12)


def test_bidirectional_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    layer = L.Bidirectional(L.LSTM(3, return_sequences=True))
    params = init64(layer, (5, 2))
    module = torch.nn.LSTM(2, 3, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for suffix, p in (("", params.forward), ("_reverse", params.backward)):
            getattr(module, f"weight_ih_l0{suffix}").copy_(torch.tensor(p.kernel.T))
            getattr(module, f"weight_hh_l0{suffix}").copy_(torch.tensor(p.recurrent_kernel.T))
            getattr(module, f"bias_ih_l0{suffix}").copy_(torch.tensor(p.bias))
            getattr(module, f"bias_hh_l0{suffix}").zero_()
    x = np.random.default_rng(11).standard_normal((4, 5, 2))
    grads = _torch_check(layer, params, module, x)
    np.testing.assert_allclose(
        grads.backward.kernel, _torch_grads(module, "weight_ih_l0_reverse").T, rtol=1e-9
    )


# ---------------------------------------------------------------- Embedding


def test_embedding_ids_floats_masks_and_errors():
    layer = L.Embedding(5, 2, mask_zero=True)
    params = layer.init(0, (3,))
    assert np.all(np.abs(params.embeddings) <= 0.05)  # Keras' uniform(-0.05, 0.05)
    ids = np.array([[1, 0, 4], [0, 0, 2]])
    values, mask = layer.apply(params, ids)
    assert np.array_equal(values, params.embeddings[ids])
    assert np.array_equal(mask, ids != 0) and mask.dtype == bool
    assert np.array_equal(layer.apply(params, ids.astype(np.float32))[0], values)
    assert L.Embedding(5, 2).apply(params, np.array([3]))[0].shape == (2,)  # any shape
    with pytest.raises(ValueError, match=r"ids in \[0, 5\), got ids in \[0, 5\]"):
        layer.apply(params, np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"not whole numbers \(e.g. 1.5\).*astype\(int\)"):
        layer.apply(params, np.array([[1.5]]))
    with pytest.raises(TypeError, match="integer token ids"):
        layer.apply(params, np.array([["a"]]))
    with pytest.raises(ValueError, match="positive"):
        L.Embedding(0, 2)


def test_embedding_gradient_has_the_same_bits_across_processes_and_workers(workers):
    layer = L.Embedding(11, 3)
    n = 2 * linalg.CHUNK + 70  # three chunks
    gen = np.random.default_rng(12)
    ids = gen.integers(0, 11, (n, 4))
    dy = gen.standard_normal((n, 4, 3)).astype(np.float32)
    params = layer.init(0, (4,))
    _, cache = layer.forward(params, ids, train=True)
    whole = layer.backward(params, cache, dy)[0].embeddings
    chunks = [slice(i, min(i + linalg.CHUNK, n)) for i in range(0, n, linalg.CHUNK)]
    tables = []  # the sum by hand: each chunk's rows in order into zeros, then the tree
    for c in chunks:
        table = np.zeros((11, 3), np.float32)
        np.add.at(table, ids[c].reshape(-1), dy[c].reshape(-1, 3))
        tables.append(table)
    assert np.array_equal(whole, (tables[0] + tables[1]) + tables[2])
    for count in (1, 2):
        workers(count)
        assert np.array_equal(layer.backward(params, cache, dy)[0].embeddings, whole)
    # two processes: the first holds chunk 0, the second chunks 1 and 2
    ranks = (chunks[0], slice(chunks[1].start, n))
    recorded = []

    def record(mine):
        recorded.append([a.copy() for a in mine])
        return mine

    for rows in ranks:
        with linalg.across_processes(record, n):
            _, c = layer.forward(params, ids[rows], train=True)
            layer.backward(params, c, dy[rows])
    everyone = recorded[0] + recorded[1]
    for rows in ranks:
        with linalg.across_processes(lambda mine: [a.copy() for a in everyone], n):
            _, c = layer.forward(params, ids[rows], train=True)
            assert np.array_equal(layer.backward(params, c, dy[rows])[0].embeddings, whole)


@pytest.fixture
def workers():
    yield linalg.set_workers
    linalg.set_workers(None)


# ---------------------------------------------------------------- checks, init, files


def test_keras_default_inits():
    params = L.LSTM(4).init(0, (3, 2))
    assert np.array_equal(params.bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    u = params.recurrent_kernel.astype(np.float64)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)  # orthogonal rows
    assert L.LSTM(4, unit_forget_bias=False).init(0, (3, 2)).bias.sum() == 0
    gru = L.GRU(4).init(0, (3, 2))
    assert gru.kernel.shape == (2, 12) and gru.bias.shape == (2, 12)
    assert repr(L.LSTM(4, return_sequences=True)) == "RNN(LSTMCell(4), return_sequences=True)"


def test_bad_inputs_say_what_was_expected():
    layer = L.LSTM(3)
    params = layer.init(0, (4, 2))
    x = np.zeros((2, 4, 2), np.float32)
    with pytest.raises(ValueError, match=r"\(batch, time, features\), got \(2, 2\)"):
        layer.apply(params, x[:, 0])
    with pytest.raises(ValueError, match="input shapes are"):
        layer.output_shape((4,))
    with pytest.raises(ValueError, match="expects params of shapes"):
        layer.apply(params, np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"mask of shape \(batch, time\) = \(2, 4\)"):
        layer.apply(params, (x, np.ones((2, 3), bool)))
    with pytest.raises(ValueError, match="bool mask"):
        layer.apply(params, (x, np.full((2, 4), 0.5)))
    with pytest.raises(ValueError, match="tuple of 2 arrays"):
        layer.apply(params, (x, (np.zeros((2, 3)),)))
    with pytest.raises(ValueError, match="initial states of shapes"):
        layer.apply(params, (x, (np.zeros((2, 3)), np.zeros((2, 4)))))
    with pytest.raises(ValueError, match="positive"):
        L.LSTM(0)
    with pytest.raises(ValueError, match="merge_mode"):
        L.Bidirectional(layer, merge_mode="max")
    with pytest.raises(ValueError, match=r"dropout is the probability .* in \[0, 1\); got 1"):
        L.GRU(3, dropout=1)
    with pytest.raises(TypeError, match="recurrent_dropout must be a number"):
        L.LSTM(3, recurrent_dropout="0.1")
    with pytest.raises(TypeError, match="LSTMCell"):
        L.LSTM(3, units_forget=1)
    with pytest.raises(TypeError, match="CellParams"):
        layer.apply((), x)


def test_a_model_with_lstm_and_masks_saves_and_loads(tmp_path):
    model = L.serial(
        L.Embedding(20, 4, mask_zero=True),
        L.Bidirectional(L.LSTM(3, return_sequences=True)),
        L.GRU(2, return_sequences=True),
        L.per_step(L.Dense(5)),
        L.MaskedGlobalMaxPool1D,
    )
    params = model.init(0, (6,))
    ids = np.random.default_rng(13).integers(0, 20, (3, 6))
    loaded = io.load(io.save(tmp_path / "m.npz", model, params, input_shape=(6,)))
    assert loaded.model == model
    assert all(
        np.array_equal(a, b) for a, b in zip(tree.leaves(params), tree.leaves(loaded.params))
    )
    assert np.array_equal(loaded.model.apply(loaded.params, ids), model.apply(params, ids))


# ---------------------------------------------------------------- masked losses


def test_masked_softmax_cross_entropy_is_the_mean_over_real_steps():
    loss = sequence.masked(losses.softmax_cross_entropy)
    gen = np.random.default_rng(14)
    logits = gen.standard_normal((3, 5, 4))
    labels = gen.integers(0, 4, (3, 5))
    value, (dlogits, dmask) = loss.value_and_grad((logits, MASK), labels)
    z = logits[MASK]
    each = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), labels[MASK]]
    np.testing.assert_allclose(value, each.mean(), rtol=1e-12)
    assert not np.any(dlogits[~MASK]) and not np.any(dmask) and dmask.shape == MASK.shape
    np.testing.assert_allclose(loss.per_example((logits, MASK), labels).mean(), value)
    value2, grad2 = loss.value_and_grad(logits, (labels, MASK))  # the mask with the target
    assert value2 == value and np.array_equal(grad2, dlogits)

    def fixed_mask(pred, target):
        v, (g, _) = loss.value_and_grad((pred, MASK), target)
        return v, g

    check_loss_grads(losses.FunctionLoss("masked", fixed_mask), logits, labels)
    nothing = np.zeros_like(MASK)
    assert loss.value_and_grad((logits, nothing), labels)[0] == 0.0
    with pytest.raises(ValueError, match="the pair"):
        loss(logits, labels)
    with pytest.raises(ValueError, match="same"):
        loss((logits, MASK), labels[:, :4])


def test_a_masked_sequence_model_trains(quick_fit):
    gen = np.random.default_rng(15)
    ids = gen.integers(1, 6, (64, 7))
    ids[:32, :3] = 0  # left padding
    targets = np.roll(ids, -1, axis=1)
    model = L.serial(
        L.Embedding(6, 4, mask_zero=True),
        L.LSTM(8, return_sequences=True),
        L.per_step(L.Dense(6)),
    )
    loss = sequence.masked(losses.softmax_cross_entropy)
    result = quick_fit(model, ids, targets, loss=loss, epochs=5, batch_size=16)
    history = result.history["loss"]
    assert history[-1] < history[0]


# ---------------------------------------------------------------- sampling


def test_sample_is_seeded_and_top_k_one_is_greedy():
    logits = np.random.default_rng(16).standard_normal((50, 7))
    a = sequence.sample(logits, 3)
    assert np.array_equal(a, sequence.sample(logits, 3)) and a.dtype == np.int64
    assert not np.array_equal(a, sequence.sample(logits, 4))
    greedy = sequence.sample(logits, 3, top_k=1, temperature=5.0)
    assert np.array_equal(greedy, logits.argmax(axis=1))
    top2 = np.argsort(-logits, axis=1)[:, :2]
    drawn = sequence.sample(logits, 5, top_k=2)
    assert all(d in row for d, row in zip(drawn, top2))
    cold = sequence.sample(logits, 6, temperature=1e-3)
    assert np.array_equal(cold, logits.argmax(axis=1))
    with pytest.raises(ValueError, match="temperature"):
        sequence.sample(logits, 0, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        sequence.sample(logits, 0, top_k=0)


@pytest.mark.parametrize("sequences", [True, False])
def test_generate_carries_the_state_instead_of_recomputing(sequences):
    model = L.serial(
        L.Embedding(9, 4),
        L.GRU(6, return_sequences=True),
        L.LSTM(5, return_sequences=sequences),
        L.Dense(9),
    )
    params = model.init(0, (3,), dtype=np.float64)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    text = sequence.generate(model, params, prompt, 6, rng=1)
    assert text.shape == (2, 9) and np.array_equal(text[:, :3], prompt)
    assert np.array_equal(text, sequence.generate(model, params, prompt, 6, rng=1))
    greedy = sequence.generate(model, params, prompt, 6, rng=2, top_k=1)
    ids = prompt
    for _ in range(6):  # the whole prefix, each time
        logits = model.apply(params, ids)
        logits = logits[:, -1] if logits.ndim == 3 else logits
        ids = np.concatenate([ids, logits.argmax(axis=1)[:, None]], axis=1)
    assert np.array_equal(greedy, ids)
    with pytest.raises(ValueError, match="reads backwards"):
        sequence.generate(L.GRU(2, reverse=True), (), prompt, 1, rng=0)
    with pytest.raises(ValueError, match="inside another layer"):
        sequence.generate(L.serial(L.Bidirectional(L.GRU(2))), ((),), prompt, 1, rng=0)


def test_fan_out_of_a_masked_pair_adds_gradients_entry_by_entry():
    """FanOut's backward sums its branches' gradients; for a (values, mask) pair it adds
    them entry by entry, not by joining the tuples."""
    fan = L.FanOut(2)
    values, mask = np.ones((2, 3, 4)), np.ones((2, 3), bool)
    _, cache = fan.forward((), (values, mask))
    _, dx = fan.backward((), cache, ((values, np.zeros((2, 3))), (2 * values, np.zeros((2, 3)))))
    assert isinstance(dx, tuple) and len(dx) == 2
    np.testing.assert_array_equal(dx[0], 3 * values)


def test_masked_average_pool_sums_float16_in_float32():
    x = np.full((1, 1000, 2), 100, np.float16)
    for given in ((x, np.ones((1, 1000), bool)), x):
        y, cache = L.MaskedGlobalAvgPool1D.forward((), given)
        assert y.dtype == np.float16 and np.array_equal(y, np.full((1, 2), 100, np.float16))
        _, dx = L.MaskedGlobalAvgPool1D.backward((), cache, np.ones_like(y))
        dx = dx[0] if isinstance(dx, tuple) else dx
        assert dx.dtype == np.float16 and np.allclose(dx, 1e-3, rtol=1e-2)
