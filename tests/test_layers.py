"""The layer protocol, applied the same way to every layer and combinator."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import initializers, tree
from funcnn import layers as L
from funcnn.random import Key
from funcnn.testing import check_grads, check_layer, poisoned_empty

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so a path that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")

ACTIVATIONS = [
    L.Relu,
    L.Sigmoid,
    L.Tanh,
    L.Softmax,
    L.LogSoftmax,
    L.Softplus,
    L.Elu,
    L.Selu,
    L.Gelu,
    L.Linear,
    L.LeakyRelu(),
    L.LeakyRelu(0.3),
    L.LeakyRelu(2.0),  # slopes outside (0, 1] take the np.where path
    L.LeakyRelu(-0.5),
]

CASES = [
    (L.Dense(4), (5,)),
    (L.Dense(3), (2, 5)),
    (L.Dense(3, use_bias=False), (4,)),
    (L.Dense(2, b_init=initializers.normal(0.5)), (3,)),
    *[(act, (6,)) for act in ACTIVATIONS],
    *[(act, (2, 3)) for act in ACTIVATIONS],
    (L.Flatten, (2, 3, 2)),
    (L.Reshape((3, 4)), (12,)),
    (L.Reshape((-1, 2)), (3, 4)),
    (L.Dropout(0.5), (7,)),
    (L.Identity, (4,)),
    (L.serial(L.Dense(4), L.Tanh, L.Dense(3)), (5,)),
    (L.serial(L.Dense(4), L.Relu, L.Dropout(0.3), L.Dense(2), L.LogSoftmax), (3,)),
    (L.serial(L.FanOut(2), L.parallel(L.Dense(3), L.serial(L.Dense(3), L.Relu)), L.FanInSum), (4,)),
    (L.serial(L.FanOut(3), L.parallel(L.Dense(2), L.Identity, L.Dense(1)), L.FanInConcat()), (4,)),
    (L.parallel(L.Dense(2), L.Tanh), ((3,), (4,))),
    (L.FanOut(3), (4,)),
    (L.FanInSum, ((3,), (3,), (3,))),
    (L.FanInConcat(), ((2,), (3,))),
    (L.FanInConcat(axis=1), ((2, 3), (4, 3))),
    (L.serial(L.Reshape((2, 3)), L.Dense(2), L.Flatten), (6,)),
]


@pytest.mark.parametrize("layer, input_shape", CASES, ids=[f"{c[0]!r}-{c[1]}" for c in CASES])
def test_protocol_eval(layer, input_shape):
    check_layer(layer, input_shape, batch_sizes=(1, 3))


TRAIN_CASES = [
    (L.Dropout(0.5), (7,)),
    (L.serial(L.Dense(6), L.Relu, L.Dropout(0.4), L.Dense(2)), (3,)),
    (L.serial(L.FanOut(2), L.parallel(L.Dropout(0.5), L.Dropout(0.2)), L.FanInSum), (5,)),
]


@pytest.mark.parametrize("layer, input_shape", TRAIN_CASES, ids=[repr(c[0]) for c in TRAIN_CASES])
def test_protocol_train(layer, input_shape):
    check_layer(layer, input_shape, batch_sizes=(1, 4), train=True)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    features=st.integers(1, 5),
    units=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_dense_grads_any_shape(batch, features, units, seed):
    layer = L.serial(L.Dense(units), L.Tanh, L.Dense(2))
    params = layer.init(seed, (features,), dtype=np.float64)
    x = np.random.default_rng(seed).standard_normal((batch, features))
    check_grads(layer, params, x, seed=seed)


def test_grad_check_catches_a_wrong_derivative():
    # The tutorials' ReLU derivative (x >= 1) must be caught.
    wrong = L.elementwise("BadRelu", lambda x: np.maximum(x, 0), lambda x, y, dy: dy * (x >= 1))
    params = wrong.init(0, (20,))
    x = np.random.default_rng(0).standard_normal((3, 20))
    report = check_grads(wrong, params, x, raise_on_failure=False)
    assert not report.ok
    assert report.where.startswith("x")
    with pytest.raises(AssertionError, match="FAILED"):
        check_grads(wrong, params, x)


def test_grad_check_catches_wrong_sigmoid_and_softmax():
    double_sigmoid = L.elementwise(
        "Bad",
        lambda x: 1 / (1 + np.exp(-x)),
        lambda x, y, dy: dy * (1 / (1 + np.exp(-y))) * (1 - 1 / (1 + np.exp(-y))),
    )
    diagonal_softmax = L.elementwise(
        "Bad2",
        lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
        lambda x, y, dy: dy * y * (1 - y),
    )
    x = np.random.default_rng(0).standard_normal((2, 5))
    for bad in (double_sigmoid, diagonal_softmax):
        assert not check_grads(bad, (), x, raise_on_failure=False).ok


def test_apply_matches_forward_bitwise_float32(rng):
    model = L.serial(L.Dense(8), L.Gelu, L.Dense(3), L.Softmax)
    params = model.init(rng, (5,))
    x = rng.standard_normal((4, 5)).astype(np.float32)
    y = model.apply(params, x)
    assert y.dtype == np.float32
    assert np.array_equal(y, model.forward(params, x)[0])


def test_params_are_read_only_and_named(rng):
    params = L.serial(L.Dense(3), L.Relu).init(rng, (2,))
    dense = params[0]
    assert isinstance(dense, L.DenseParams) and dense.w.shape == (2, 3) and dense.b.shape == (3,)
    assert params[1] == ()
    with pytest.raises(ValueError, match="read-only"):
        dense.w[0, 0] = 1.0


def test_determinism_same_seed_same_bits_different_seed_differs():
    model = L.serial(L.Dense(16), L.Relu, L.Dropout(0.5), L.Dense(4))
    x = np.random.default_rng(9).standard_normal((8, 10)).astype(np.float32)
    p1, p2 = model.init(7, (10,)), model.init(np.random.default_rng(7), (10,))
    p3 = model.init(8, (10,))
    for a, b in zip(tree.leaves(p1), tree.leaves(p2)):
        assert np.array_equal(a, b)
    assert not np.array_equal(p1[0].w, p3[0].w)
    y1 = model.apply(p1, x, train=True, rng=3)
    y2 = model.apply(p1, x, train=True, rng=Key((3,)))  # what the int seed means
    y3 = model.apply(p1, x, train=True, rng=4)
    assert np.array_equal(y1, y2) and not np.array_equal(y1, y3)
    g1 = model.apply(p1, x, train=True, rng=np.random.default_rng(3))
    g2 = model.apply(p1, x, train=True, rng=np.random.default_rng(3))
    assert np.array_equal(g1, g2)


def test_dropout_masks_do_not_depend_on_how_a_batch_is_split():
    # Elementwise layers only: a GEMM's bits may change with its number of rows.
    model = L.serial(L.Dropout(0.5), L.Tanh, L.FanOut(2), L.parallel(L.Dropout(0.3), L.Identity))
    model = L.serial(model, L.FanInSum)
    params = model.init(0, (5, 3))
    x = np.random.default_rng(1).standard_normal((10, 5, 3))
    key = Key((11, 2, 5))
    whole = model.apply(params, x, train=True, rng=key)
    for cut in (1, 4, 9):
        top = model.apply(params, x[:cut], train=True, rng=key)
        bottom = model.apply(params, x[cut:], train=True, rng=key.at_row(cut))
        assert np.array_equal(np.concatenate([top, bottom]), whole)
    other = model.apply(params, x, train=True, rng=Key((11, 2, 6)))
    assert not np.array_equal(other, whole)


def test_every_child_gets_its_own_key():
    # Two Dropouts in sequence under one key must not share a mask.
    x = np.ones((64, 32))
    y = L.serial(L.Dropout(0.5), L.Dropout(0.5)).apply(((), ()), x, train=True, rng=0)
    single = L.serial(L.Dropout(0.75)).apply(((),), x, train=True, rng=0)
    assert 0.15 < np.mean(y != 0) < 0.35 and 0.15 < np.mean(single != 0) < 0.35


def test_serial_children_get_independent_streams():
    params = L.serial(L.Dense(5), L.Dense(5)).init(0, (5,))
    assert not np.allclose(params[0].w, params[1].w)


def test_no_global_random_state_used():
    state = np.random.get_state()  # noqa: NPY002
    model = L.serial(L.Dense(4), L.Dropout(0.5))
    params = model.init(0, (3,))
    model.apply(params, np.ones((2, 3)), train=True, rng=1)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2] == after[2]


def test_dropout_rate_is_drop_probability_and_scales():
    x = np.ones((200, 500), dtype=np.float32)
    y = L.Dropout(0.8).apply((), x, train=True, rng=0)
    assert y.dtype == np.float32
    assert abs((y == 0).mean() - 0.8) < 0.01
    assert np.allclose(y[y != 0], 5.0)
    assert abs(y.mean() - 1.0) < 0.05
    assert L.Dropout(0.8).apply((), x) is x  # identity at inference


def test_dropout_without_rng_shows_the_right_call():
    with pytest.raises(ValueError, match=r"apply\(params, x, train=True, rng=seed\)"):
        L.Dropout(0.5).apply((), np.ones((2, 2)), train=True)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="probability of dropping"):
        L.Dropout(rate)


def test_layers_are_immutable():
    layer = L.Dense(3)
    with pytest.raises(AttributeError):
        layer.units = 4


def test_wrong_feature_count_names_expected_and_given(rng):
    model = L.serial(L.Dense(8), L.Relu, L.Dense(2))
    params = model.init(rng, (784,))
    with pytest.raises(ValueError, match=r"784 input features.*\(5, 783\)"):
        model.apply(params, np.zeros((5, 783)))


def test_wrong_rank_and_non_numeric_input(rng):
    model = L.serial(L.Dense(2))
    params = model.init(rng, (3,))
    with pytest.raises(ValueError, match=r"batch.*got shape \(3,\).*x\[None\]"):
        model.apply(params, np.zeros(3))
    with pytest.raises(TypeError, match="numeric"):
        model.apply(params, np.array([["a", "b", "c"]]))


def test_integer_input_becomes_float32(rng):
    model = L.serial(L.Dense(2))
    params = model.init(rng, (3,))
    assert model.apply(params, np.ones((1, 3), dtype=np.int64)).dtype == np.float32


def test_incompatible_layers_caught_at_init():
    with pytest.raises(ValueError, match=r"layer 1 \(Reshape\(\(3,\)\)\).*needs 3 values"):
        L.serial(L.Dense(4), L.Reshape((3,))).init(0, (2,))
    with pytest.raises(ValueError, match="FanInSum takes a tuple"):
        L.serial(L.Dense(4), L.FanInSum).init(0, (2,))
    with pytest.raises(ValueError, match="one shape"):
        L.serial(L.FanOut(2), L.parallel(L.Dense(2), L.Dense(3)), L.FanInSum).init(0, (2,))


def test_serial_rejects_classes_and_non_layers():
    with pytest.raises(TypeError, match=r"class Dense.*Dense\(\.\.\.\)"):
        L.serial(L.Dense)
    with pytest.raises(TypeError, match="must be a funcnn Layer"):
        L.serial(lambda x: x)
    with pytest.raises(TypeError, match="without parentheses"):
        L.Relu()


def test_params_of_wrong_model_rejected(rng):
    model = L.serial(L.Dense(2), L.Relu)
    with pytest.raises(ValueError, match="tuple of 2 entries"):
        model.apply((), np.zeros((1, 3)))
    branches = L.parallel(L.Dense(2), L.Dense(3))
    params = branches.init(0, ((2,), (2,)))
    with pytest.raises(ValueError, match="parallel of 2 layers"):
        branches.apply(params[:1], (np.zeros((1, 2)), np.zeros((1, 2))))
    with pytest.raises(ValueError, match="tuple of 2 input arrays"):
        branches.apply(params, np.zeros((1, 2)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="positive int"):
        L.Dense(0)
    with pytest.raises(ValueError, match="positive int"):
        L.FanOut(0)
    with pytest.raises(TypeError, match="Generator or an int seed"):
        L.Dense(2).init("seed", (3,))
    with pytest.raises(TypeError, match="tuple of ints"):
        L.Dense(2).init(0, "abc")


def test_graph_outputs_default_to_the_last_layer_and_counts_are_checked():
    assert L.Graph((L.Dense(3), L.Relu), ((0,), (1,))).outputs == (2,)
    two = L.Graph((L.FanInSum,), ((0, 1),), inputs=2)
    assert two.outputs == (2,) and "outputs=(2,)" in repr(two)
    with pytest.raises(ValueError, match="Graph inputs must be a positive int, got 0"):
        L.Graph((L.Relu,), ((0,),), inputs=0)
    with pytest.raises(TypeError, match=r"Graph inputs must be a positive int, got float 1\.5"):
        L.Graph((L.Relu,), ((0,),), inputs=1.5)
    with pytest.raises(TypeError, match="FanOut n must be a positive int, got bool True"):
        L.FanOut(True)


def test_float64_throughout():
    model = L.serial(L.Dense(4), L.Softplus, L.Dense(2), L.LogSoftmax)
    params = model.init(0, (3,), dtype=np.float64)
    assert all(leaf.dtype == np.float64 for leaf in tree.leaves(params))
    y, cache = model.forward(params, np.ones((2, 3)))
    grads, dx = model.backward(params, cache, np.ones_like(y))
    assert y.dtype == dx.dtype == np.float64
    assert all(g.dtype == np.float64 for g in tree.leaves(grads))


def test_need_dx_false_skips_input_gradient(rng):
    model = L.serial(L.Dense(3), L.Relu, L.Dense(2))
    params = model.init(rng, (4,))
    y, cache = model.forward(params, rng.standard_normal((2, 4)))
    grads_a, dx = model.backward(params, cache, np.ones_like(y), need_dx=False)
    grads_b, _ = model.backward(params, cache, np.ones_like(y))
    assert dx is None
    for a, b in zip(tree.leaves(grads_a), tree.leaves(grads_b)):
        assert np.array_equal(a, b)


def _half_written(x, y, dy):
    """A backward that writes only the first half of its gradient (the bug
    funcnn.testing.poisoned_empty exists to catch)."""
    dx = np.empty_like(dy)
    dx[:, : dx.shape[1] // 2] = dy[:, : dx.shape[1] // 2]
    return dx


def test_poisoned_empty_makes_a_read_of_unwritten_memory_fail():
    wrong = L.elementwise("HalfWritten", lambda x: x, _half_written)
    x = np.random.default_rng(0).standard_normal((3, 6))
    before, before_like = np.empty, np.empty_like
    with poisoned_empty(modules=(__name__,)):  # this module's np.empty calls are poisoned
        report = check_grads(wrong, (), x, raise_on_failure=False)
    assert not report.ok and report.where.startswith("x")
    ints = np.zeros(2, np.int8)
    with poisoned_empty():  # funcnn's callers only
        assert np.isnan(_allocate_in("funcnn.fake", "np.empty((2, 3))")).all()
        assert _allocate_in("funcnn.fake", "np.empty(4, bool)").all()
        assert (_allocate_in("funcnn.fake", "np.empty_like(ints)", ints=ints) == 127).all()
    assert np.empty is before and np.empty_like is before_like  # put back after the block


def _allocate_in(module: str, expression: str, **names):
    """Evaluate ``expression`` as code of ``module`` would (np.empty sees that caller)."""
    return eval(expression, {"__name__": module, "np": np, **names})


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (L.Dense(3), (4,)),
        (L.Conv2D(2, 3), (5, 5, 1)),
        (L.Conv1D(2, 3), (6, 2)),
        (L.LayerNorm(), (4,)),
        (L.BatchNorm(), (4,)),
    ],
)
@pytest.mark.parametrize("params", [None, (), {"w": 1}, (np.zeros(3),)])
def test_params_of_the_wrong_kind_are_a_type_error_that_shows_the_call(layer, shape, params):
    x = np.zeros((2, *shape), np.float32)
    with pytest.raises(TypeError, match=r"expects its params as the \w+Params that layer.init"):
        layer.apply_with_state(params, layer.init_state(shape), x)


@pytest.mark.parametrize(
    "make",
    [lambda: L.Dense(10**9).init(0, (784,)), lambda: L.Conv2D(10**6, 99).init(0, (128, 128, 3))],
)
def test_a_layer_too_large_for_memory_is_refused_before_allocating(make):
    with pytest.raises(ValueError, match=r"a weight of shape .* GiB, more than the .* free"):
        make()


def test_available_memory_takes_a_container_limit_into_account(monkeypatch):
    from funcnn import validate

    files = {
        "/proc/meminfo": "MemTotal: 100 kB\nMemAvailable: 8000000 kB\n",
        "/sys/fs/cgroup/memory.max": "2000000000\n",
        "/sys/fs/cgroup/memory.current": "500000000\n",
    }

    def fake_open(path, *args, **kwargs):
        if path not in files:
            raise FileNotFoundError(path)
        return io.StringIO(files[path])

    monkeypatch.setattr(validate, "open", fake_open, raising=False)
    assert validate.available_memory() == 1_500_000_000  # the cgroup's room, not the host's
    files["/sys/fs/cgroup/memory.max"] = "max\n"
    assert validate.available_memory() == 8_000_000 * 1024
