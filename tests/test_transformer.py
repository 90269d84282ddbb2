"""Transformers as composition: residual's masks and gradients, the block and stack
builders, generation by recomputation, training with AdamW, warm-up and cosine and
clipping, save and load, and the transformer's bits across processes (simulated)."""

import numpy as np
import pytest

from funcnn import io, linalg, optim, schedules, sequence, tree
from funcnn import layers as L
from funcnn.testing import check_grads

pytestmark = pytest.mark.usefixtures("empty_memory")


def test_residual_adds_its_input_and_passes_the_mask_on():
    inner = L.serial(L.per_step(L.LayerNorm()), L.MultiHeadAttention(2, 2))
    layer = L.residual(*inner.layers)
    assert repr(layer) == "residual(per_step(LayerNorm()), MultiHeadAttention(2, 2))"
    params = layer.init(0, ((5, 4), (5,)))
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], bool)
    y, passed = layer.apply(params, (x, mask))
    inner_y, _ = inner.apply(params, (x, mask))
    np.testing.assert_array_equal(y, x + inner_y)
    assert passed is mask
    assert L.residual(L.Dense(4)).output_shape((5, 4)) == (5, 4)


def test_residual_gradients_add_both_paths():
    layer = L.residual(L.Dense(3), L.Tanh)
    x = np.random.default_rng(1).standard_normal((2, 4, 3))
    check_grads(layer, layer.init(0, (4, 3), dtype=np.float64), x)


def test_the_builders_give_pre_norm_stacks():
    block = L.TransformerBlock(8, 2, dropout=0.1)
    attention, mlp = block.layers
    assert isinstance(attention, L.Residual) and isinstance(mlp, L.Residual)
    assert attention.layer.layers[0] == L.per_step(L.LayerNorm())
    assert attention.layer.layers[1] == L.MultiHeadAttention(2, 4)
    assert mlp.layer.layers[1] == L.per_step(L.Dense(32))  # 4 * dim by default
    lm = L.DecoderOnlyTransformer(11, 16, 8, 2, 3)
    assert [type(c).__name__ for c in lm.layers] == [
        "Embedding", "PositionalEmbedding", "Serial", "Serial", "Serial", "PerStep", "Dense",
    ]  # fmt: skip
    assert lm.output_shape((16,)) == (16, 11)
    assert all(c.layers[0].layer.layers[1].causal for c in lm.layers[2:5])


def test_a_graph_with_a_layer_of_two_inputs_trains_without_their_gradients():
    """A layer whose parents are all inputs (mha(x, x) on the model's input) and whose dx
    no one asks for (the model's first layer in training)."""
    graph = L.Graph((L.MultiHeadAttention(2, 2), L.Dense(2)), ((0, 0), (1,)))
    params = graph.init(0, (4, 3))
    _, cache = graph.forward(params, np.ones((2, 4, 3), np.float32))
    grads, dx = graph.backward(params, cache, np.ones((2, 4, 2), np.float32), need_dx=False)
    assert dx is None and grads[0].query_kernel.shape == (3, 2, 2)


# ---------------------------------------------------------------- generation


def test_generate_recomputes_the_prefix_of_a_transformer():
    model = L.DecoderOnlyTransformer(7, 6, 8, 2, 1)
    params = model.init(0, (6,))
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    ids = sequence.generate(model, params, prompt, 5, rng=0, top_k=1)
    assert ids.shape == (2, 8) and np.array_equal(ids[:, :3], prompt)
    expected = prompt
    for _ in range(5):  # greedy, by hand: the last six ids (the context) through the model
        logits = model.apply(params, expected[:, -6:])[:, -1]
        expected = np.concatenate([expected, logits.argmax(-1)[:, None]], axis=1)
    np.testing.assert_array_equal(ids, expected)
    a = sequence.generate(model, params, prompt, 8, rng=3, temperature=0.7, top_k=4)
    b = sequence.generate(model, params, prompt, 8, rng=3, temperature=0.7, top_k=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sequence.generate(model, params, prompt, 8, rng=4))


def test_generate_still_carries_recurrent_state():
    model = L.serial(L.Embedding(5, 4), L.GRU(6, return_sequences=True), L.Dense(5))
    params = model.init(0, (3,))
    ids = sequence.generate(model, params, np.array([[1, 2]]), 4, rng=0, top_k=1)
    by_hand = np.array([[1, 2]])
    for _ in range(4):
        logits = model.apply(params, by_hand)[:, -1]
        by_hand = np.concatenate([by_hand, logits.argmax(-1)[:, None]], axis=1)
    np.testing.assert_array_equal(ids, by_hand)


# ---------------------------------------------------------------- training, files, bits


def recipe(steps):
    """AdamW (no decay on biases and scales) under warm-up and cosine, after clipping."""
    schedule = schedules.warmup_cosine_decay(0.0, 1e-2, 5, steps)
    return optim.chain(
        optim.clip_by_global_norm(1.0),
        optim.adamw(schedule, weight_decay=0.1, mask=tree.kernel_mask),
    )


def test_a_small_transformer_learns_to_copy_with_the_recipe(quick_fit):
    """The sequence 0..5 repeated: each next id follows from the one before."""
    model = L.DecoderOnlyTransformer(6, 8, 16, 2, 1)
    x = np.array([np.roll(np.arange(8) % 6, -s) for s in range(48)])
    y = (x + 1) % 6
    result = quick_fit(model, x, y, epochs=12, optimizer=recipe(12 * 3), batch_size=16)
    assert result.history.history["loss"][-1] < 0.2 * result.history.history["loss"][0]


def test_a_transformer_saves_and_loads(tmp_path):
    model = L.serial(
        L.Embedding(9, 8, mask_zero=True),
        L.SinusoidalEncoding(),
        L.TransformerEncoder(8, 2, 1, rotary=True),
        L.AttentionPool1D(),
        L.Dense(2),
    )
    params = model.init(0, (5,))
    ids = np.random.default_rng(2).integers(0, 9, (4, 5))
    path = io.save(tmp_path / "t.npz", model, params, input_shape=(5,))
    loaded = io.load(path)
    assert loaded.model == model
    np.testing.assert_array_equal(loaded.model.apply(loaded.params, ids), model.apply(params, ids))


def test_a_transformers_gradients_have_the_same_bits_across_processes():
    """Two processes (simulated through linalg.across_processes, as an MPI job's steps
    run): the first holds chunk 0, the second chunks 1 and 2; every batch sum adds
    every process's chunks in the one-process tree."""
    model = L.serial(L.Embedding(9, 8), L.PositionalEmbedding(5, 8), L.TransformerBlock(8, 2))
    params = model.init(0, (5,))
    n = 2 * linalg.CHUNK + 30
    gen = np.random.default_rng(3)
    ids = gen.integers(0, 9, (n, 5))
    dy = gen.standard_normal((n, 5, 8)).astype(np.float32)
    _, cache = model.forward(params, ids, train=True)
    whole = tree.leaves(model.backward(params, cache, dy)[0])
    ranks = (slice(0, linalg.CHUNK), slice(linalg.CHUNK, n))

    def grads(rows, gather):
        with linalg.across_processes(gather, n):
            _, c = model.forward(params, ids[rows], train=True)
            return tree.leaves(model.backward(params, c, dy[rows])[0])

    calls = []  # per process: the chunk results it hands each batch sum, in call order
    for rows in ranks:
        recorded = []

        def record(mine, recorded=recorded):
            recorded.append([a.copy() for a in mine])
            return mine

        grads(rows, record)
        calls.append(recorded)
    assert len(calls[0]) == len(calls[1]) > 10
    for rows in ranks:  # each process, given every process's chunk results (fresh copies)
        order = iter(range(len(calls[0])))

        def everyone(mine, order=order):
            i = next(order)
            return [a.copy() for a in calls[0][i] + calls[1][i]]

        for a, b in zip(grads(rows, everyone), whole):
            assert np.array_equal(a, b)
