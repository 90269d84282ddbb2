"""Attention: MultiHeadAttention's masks and backward (float64 finite differences, PyTorch's
scaled_dot_product_attention and nn.MultiheadAttention as oracles), dropout's keys, the
positions and attention pooling, and a sample's bits against its batch."""

import attrs
import numpy as np
import pytest

from funcnn import layers as L
from funcnn import linalg
from funcnn.layers.attention import masked_softmax, rotary_tables, rotate
from funcnn.layers.positional import sinusoids
from funcnn.random import Key
from funcnn.testing import check_grads

pytestmark = pytest.mark.usefixtures("empty_memory")


@attrs.frozen(repr=False)
class WithMasks(L.Layer):
    """``layer`` given its input with fixed masks put in: the checked input holds the
    float arrays only, so finite differences never perturb a mask. ``build(x, masks)``
    makes the layer's input; the masks' gradients must be zeros."""

    layer: L.Layer
    build: object = attrs.field(eq=False)
    strip: object = attrs.field(eq=False)

    def forward_with_state(self, params, state, x, *, train=False, rng=None):
        return self.layer.forward_with_state(params, state, self.build(x), train=train, rng=rng)

    def backward(self, params, cache, dy, *, need_dx=True):
        grads, dx = self.layer.backward(params, cache, dy, need_dx=need_dx)
        return grads, self.strip(dx)


def init64(layer, shape, seed=0):
    params = layer.init(np.random.default_rng(seed), shape, dtype=np.float64)
    gen = np.random.default_rng(seed + 1)  # biases away from zero, so their grads count
    return type(params)(
        *(None if a is None else a + 0.1 * gen.standard_normal(a.shape) for a in params)
    )


MASK = np.array(
    [
        [True, True, False, True, False],  # a hole and a padded tail
        [False, False, True, True, True],  # padded head
        [False, False, False, False, False],  # nothing real: zero weights everywhere
    ]
)


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("causal", [False, True], ids=["all", "causal"])
def test_masked_self_attention_matches_finite_differences(causal, train):
    layer = L.MultiHeadAttention(2, 3, causal=causal, dropout=0.25)

    def strip(dx):
        assert dx[1].shape == MASK.shape and not dx[1].any()
        return dx[0]

    checked = WithMasks(layer, lambda x: (x, MASK), strip)
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    check_grads(checked, init64(layer, ((5, 4), (5,))), x, train=train)


def test_cross_attention_with_masks_everywhere_matches_finite_differences():
    layer = L.MultiHeadAttention(2, 2, value_dim=3, output_dim=4, attention_mask=True)
    gen = np.random.default_rng(1)
    q_mask = gen.random((3, 4)) < 0.7
    given = gen.random((3, 4, 5)) < 0.7

    def build(x):
        q, v, k = x
        return ((q, q_mask), (v, MASK), (k, MASK), given)

    def strip(dx):
        (dq, mq), (dv, mv), (dk, mk), dmask = dx
        assert not (mq.any() or mv.any() or mk.any() or dmask.any())
        assert dmask.shape == given.shape
        return dq, dv, dk

    checked = WithMasks(layer, build, strip)
    shapes = (((4, 3), (4,)), ((5, 2), (5,)), ((5, 6), (5,)), (4, 5))
    x = (
        gen.standard_normal((3, 4, 3)),
        gen.standard_normal((3, 5, 2)),
        gen.standard_normal((3, 5, 6)),
    )
    check_grads(checked, init64(layer, shapes), x)


def test_rotary_attention_matches_finite_differences():
    layer = L.MultiHeadAttention(2, 4, rotary=True, causal=True)
    x = np.random.default_rng(2).standard_normal((2, 6, 5))
    check_grads(layer, init64(layer, (6, 5)), x)


# ---------------------------------------------------------------- the masks


def test_masked_keys_get_exactly_zero_weight_and_a_row_with_none_gets_zeros():
    scores = np.random.default_rng(3).standard_normal((3, 1, 5, 5)) * 50
    weights = masked_softmax(scores, MASK[:, None, None, :])
    assert np.all(weights[~np.broadcast_to(MASK[:, None, None, :], weights.shape)] == 0)
    np.testing.assert_allclose(weights[:2].sum(-1), 1, rtol=1e-12)
    assert np.all(weights[2] == 0)
    big = masked_softmax(np.array([[1e4, 0.0, -1e4]]), None)  # shifted: no overflow
    np.testing.assert_array_equal(big, [[1.0, 0.0, 0.0]])


def test_a_query_with_no_real_key_outputs_the_bias():
    layer = L.MultiHeadAttention(2, 3)
    params = init64(layer, ((5, 4), (5,)))
    x = np.random.default_rng(4).standard_normal((3, 5, 4))
    y, mask = layer.apply(params, (x, MASK))
    assert mask is MASK or np.array_equal(mask, MASK)
    np.testing.assert_allclose(y[2], np.broadcast_to(params.output_bias, (5, 4)), rtol=1e-12)


def test_causal_attention_never_reads_a_later_step():
    layer = L.MultiHeadAttention(2, 3, causal=True)
    params = init64(layer, (6, 4))
    x = np.random.default_rng(5).standard_normal((2, 6, 4))
    changed = x.copy()
    changed[:, 4:] += 10  # later steps changed: earlier outputs must not move
    a, b = layer.apply(params, x), layer.apply(params, changed)
    np.testing.assert_array_equal(a[:, :4], b[:, :4])
    assert not np.allclose(a[:, 4:], b[:, 4:])


def test_padding_changes_no_real_steps_output():
    """A sequence padded with junk at masked steps gives its real steps the outputs of the
    sequence alone (what a key padding mask is for)."""
    layer = L.MultiHeadAttention(2, 3)
    params = init64(layer, ((6, 4), (6,)))
    gen = np.random.default_rng(6)
    short = gen.standard_normal((1, 4, 4))
    padded = np.concatenate([short, gen.standard_normal((1, 2, 4)) * 100], axis=1)
    mask = np.array([[True] * 4 + [False] * 2])
    alone = layer.apply(params, short)
    y, _ = layer.apply(params, (padded, mask))
    np.testing.assert_allclose(y[:, :4], alone, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- PyTorch as the oracle


def _torch_attention_case(torch, causal, padded):
    heads, key_dim, dim = 2, 3, 6
    layer = L.MultiHeadAttention(heads, key_dim, causal=causal)
    params = init64(layer, ((5, dim), (5,)) if padded else (5, dim))
    module = torch.nn.MultiheadAttention(dim, heads, batch_first=True).double()
    flat = [np.asarray(a).reshape(dim, -1).T for a in params[0:6:2]]  # (E, E) each, heads in order
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.tensor(np.concatenate(flat)))
        module.in_proj_bias.copy_(
            torch.tensor(np.concatenate([b.reshape(-1) for b in params[1:6:2]]))
        )
        module.out_proj.weight.copy_(torch.tensor(params.output_kernel.reshape(-1, dim).T))
        module.out_proj.bias.copy_(torch.tensor(params.output_bias))
    return layer, params, module


@pytest.mark.parametrize("causal", [False, True], ids=["all", "causal"])
@pytest.mark.parametrize("padded", [False, True], ids=["plain", "key_padding_mask"])
def test_multi_head_attention_matches_torch(causal, padded):
    torch = pytest.importorskip("torch")
    layer, params, module = _torch_attention_case(torch, causal, padded)
    gen = np.random.default_rng(7)
    x = gen.standard_normal((3, 5, 6))
    mask = np.array([[True, True, False, True, False], [True, False, True, True, True],
                     [True, True, True, True, False]]) if padded else None  # fmt: skip
    dy = gen.standard_normal((3, 5, 6))
    inputs = (x, mask) if padded else x
    y, cache = layer.forward(params, inputs)
    grads, dx = layer.backward(params, cache, (dy, np.zeros(mask.shape)) if padded else dy)
    tx = torch.tensor(x, requires_grad=True)
    kwargs = {"need_weights": False}
    if causal:
        kwargs["attn_mask"] = torch.ones(5, 5, dtype=torch.bool).triu(1)  # True: not allowed
    if padded:
        kwargs["key_padding_mask"] = torch.tensor(~mask)
    ty, _ = module(tx, tx, tx, **kwargs)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y[0] if padded else y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx[0] if padded else dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    in_grad = module.in_proj_weight.grad.numpy()
    for i, name in enumerate(("query_kernel", "key_kernel", "value_kernel")):
        ours = getattr(grads, name).reshape(6, -1).T
        np.testing.assert_allclose(ours, in_grad[6 * i : 6 * (i + 1)], rtol=1e-9, atol=1e-12)
    in_bias = module.in_proj_bias.grad.numpy()
    for i, name in enumerate(("query_bias", "key_bias", "value_bias")):
        np.testing.assert_allclose(
            getattr(grads, name).reshape(-1), in_bias[6 * i : 6 * (i + 1)], rtol=1e-9, atol=1e-12
        )
    np.testing.assert_allclose(
        grads.output_kernel.reshape(-1, 6).T, module.out_proj.weight.grad.numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(grads.output_bias, module.out_proj.bias.grad.numpy(), rtol=1e-9)


def test_cross_attention_core_matches_scaled_dot_product_attention():
    """Without projections (identity kernels, zero biases, one head) the layer is PyTorch's
    scaled_dot_product_attention of its query, key and value, causal included."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    d = 4
    layer = L.MultiHeadAttention(1, d, causal=True, use_bias=False)
    eye = np.eye(d)[:, None, :]
    params = L.AttentionParams(eye, None, eye, None, eye, None, np.eye(d)[None], None)
    gen = np.random.default_rng(8)
    q, k, v = (gen.standard_normal((2, n, d)) for n in (3, 5, 5))
    dy = gen.standard_normal((2, 3, d))
    y, cache = layer.forward(params, (q, v, k))
    _, (dq, dv, dk) = layer.backward(params, cache, dy)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    ty = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10)
    for ours, theirs in ((dq, tq), (dk, tk), (dv, tv)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- keys, bits, positions


def test_attention_dropout_draws_from_the_key_row_by_row():
    layer = L.MultiHeadAttention(2, 3, dropout=0.5)
    params = layer.init(0, (5, 4))
    x = np.random.default_rng(9).standard_normal((6, 5, 4)).astype(np.float32)
    whole = layer.apply(params, x, train=True, rng=3)
    part = layer.apply(params, x[2:], train=True, rng=Key((3,)).at_row(2))  # rows 2.. alone
    np.testing.assert_array_equal(part, whole[2:])
    assert not np.array_equal(layer.apply(params, x, train=True, rng=4), whole)
    np.testing.assert_array_equal(layer.apply(params, x, train=True, rng=3), whole)
    with pytest.raises(ValueError, match="random key"):
        layer.apply(params, x, train=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_samples_output_does_not_depend_on_its_batch_or_the_workers(dtype, workers):
    model = L.serial(
        L.Embedding(11, 16, mask_zero=True),
        L.PositionalEmbedding(12, 16),
        L.TransformerEncoder(16, 4, 2, causal=True),
        L.AttentionPool1D(),
        L.Dense(3),
    )
    params = model.init(0, (12,), dtype=dtype)
    ids = np.random.default_rng(10).integers(0, 11, (45, 12))
    whole = model.apply(params, ids)
    assert whole.dtype == dtype
    for size in (1, 7, 32):
        parts = [model.apply(params, ids[i : i + size]) for i in range(0, len(ids), size)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    workers(1)
    np.testing.assert_array_equal(model.apply(params, ids), whole)


def test_rotary_scores_depend_only_on_the_offset():
    cos, sin = rotary_tables(9, 6, np.float64)
    gen = np.random.default_rng(11)
    q, k = gen.standard_normal(6), gen.standard_normal(6)
    rq = rotate(np.tile(q, (9, 1)), cos, sin)
    rk = rotate(np.tile(k, (9, 1)), cos, sin)
    scores = rq @ rk.T
    for offset in range(-3, 4):
        diagonal = np.diagonal(scores, offset)
        np.testing.assert_allclose(diagonal, diagonal[0], rtol=1e-10)
    np.testing.assert_allclose(scores[0, 0], q @ k, rtol=1e-12)


def test_positions_add_their_tables():
    x = np.random.default_rng(12).standard_normal((2, 5, 4))
    table = sinusoids(5, 4)
    np.testing.assert_allclose(table[3, 0], np.sin(3.0))
    np.testing.assert_allclose(table[3, 3], np.cos(3 / 10000 ** (2 / 4)))
    np.testing.assert_array_equal(L.SinusoidalEncoding().apply((), x), x + table)
    layer = L.PositionalEmbedding(8, 4)
    params = layer.init(0, (5, 4))
    np.testing.assert_array_equal(layer.apply(params, x), x + params.positions[:5])
    _, cache = layer.forward(params, x)
    grads, _ = layer.backward(params, cache, np.ones_like(x))
    assert np.all(grads.positions[:5] == 2) and np.all(grads.positions[5:] == 0)
    with pytest.raises(ValueError, match="at most 8 steps"):
        layer.apply(params, np.zeros((1, 9, 4)))


def test_attention_pooling_is_a_weighted_mean_over_the_real_steps():
    layer = L.AttentionPool1D()
    params = layer.init(0, (5, 3))
    x = np.random.default_rng(13).standard_normal((3, 5, 3))
    y = layer.apply(params, (x, MASK))
    for row in range(2):
        real = x[row][MASK[row]]
        w = np.exp(real @ params.w - (real @ params.w).max())
        np.testing.assert_allclose(y[row], (w / w.sum()) @ real, rtol=1e-6)
    np.testing.assert_array_equal(y[2], 0)


def test_bad_inputs_say_what_was_expected():
    layer = L.MultiHeadAttention(2, 3)
    params = layer.init(0, (5, 4))
    with pytest.raises(ValueError, match="query_kernel of shape"):
        layer.apply(params, np.zeros((1, 5, 6)))
    with pytest.raises(ValueError, match=r"\(batch, steps, features\)"):
        layer.apply(params, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="as many steps"):
        layer.output_shape(((4, 3), (5, 2), (6, 2)))
    with pytest.raises(ValueError, match="attention mask"):
        L.MultiHeadAttention(2, 3, attention_mask=True).output_shape(((4, 3), (4, 6)))
    with pytest.raises(ValueError, match="key_dim must be even"):
        L.MultiHeadAttention(2, 3, rotary=True)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        L.MultiHeadAttention(2, 3, dropout=1.0)
    with pytest.raises(ValueError, match="divide"):
        L.TransformerBlock(10, 4)
    with pytest.raises(ValueError, match="input's shape"):
        L.residual(L.Dense(3)).output_shape((5, 4))


@pytest.fixture
def workers():
    yield linalg.set_workers
    linalg.set_workers(None)
