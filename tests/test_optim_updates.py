"""Each optimizer and building block: its first 3 updates against the documented formula.

The references below are written independently, in plain float64 NumPy on the
two leaves concatenated into one vector (every formula here is elementwise,
except the global norm, which is over all leaves anyway).
"""

import numpy as np
import pytest

from funcnn import optim, schedules, tree

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so an update that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")

P0 = (np.array([0.5, -1.5, 2.0]), np.array([[0.3, -0.7]]))
GRADS = [
    (np.array([0.2, -0.4, 1.0]), np.array([[0.05, -0.3]])),
    (np.array([-0.1, 0.3, 0.8]), np.array([[0.0, 0.6]])),
    (np.array([0.4, 0.1, -0.5]), np.array([[-0.2, 0.25]])),
]


def flat(t):
    return np.concatenate([np.ravel(leaf) for leaf in tree.leaves(t)])


def run_library(opt, params=P0, grads=GRADS):
    state = opt.init(params)
    out = []
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        out.append(flat(updates))
    return out


def run_reference(step, params=P0, grads=GRADS):
    """step(t, w, g, memory) -> (u, memory); the params move by u each step."""
    w, memory, out = flat(params), {}, []
    for t, g in enumerate(grads, start=1):
        u, memory = step(t, w, flat(g), memory)
        w = w + u
        out.append(u)
    return out


def zeros(memory, *names):
    return [memory.get(n, np.zeros(5)) for n in names]


def ref_sgd(lr):
    return lambda t, w, g, mem: (-lr * g, mem)


def ref_momentum(lr, b, nesterov=False):
    def step(t, w, g, mem):
        (m,) = zeros(mem, "m")
        m = g + b * m
        return -lr * (g + b * m if nesterov else m), {"m": m}

    return step


def ref_rmsprop(lr, decay, eps, centered=False, momentum=None):
    def step(t, w, g, mem):
        nu, mu, tr = zeros(mem, "nu", "mu", "tr")
        nu = decay * nu + (1 - decay) * g**2
        mu = decay * mu + (1 - decay) * g
        denom = np.sqrt(nu - mu**2 + eps) if centered else np.sqrt(nu + eps)
        u = -lr * g / denom
        if momentum is not None:
            tr = u + momentum * tr
            u = tr
        return u, {"nu": nu, "mu": mu, "tr": tr}

    return step


def ref_adagrad(lr, initial, eps):
    def step(t, w, g, mem):
        s = mem.get("s", np.full(5, initial)) + g**2
        return -lr * g / np.sqrt(s + eps), {"s": s}

    return step


def ref_adadelta(lr, rho, eps):
    def step(t, w, g, mem):
        eg, ex = zeros(mem, "eg", "ex")
        eg = rho * eg + (1 - rho) * g**2
        dx = np.sqrt(ex + eps) / np.sqrt(eg + eps) * g
        ex = rho * ex + (1 - rho) * dx**2
        return -lr * dx, {"eg": eg, "ex": ex}

    return step


def ref_adam(lr, b1, b2, eps, wd=0.0, nesterov=False, decay_mask=None):
    def step(t, w, g, mem):
        m, v = zeros(mem, "m", "v")
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        direction = m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        mask = np.ones(5) if decay_mask is None else decay_mask
        return -lr * (direction + wd * w * mask), {"m": m, "v": v}

    return step


def ref_adamax(lr, b1, b2, eps):
    def step(t, w, g, mem):
        m, v = zeros(mem, "m", "v")
        m = b1 * m + (1 - b1) * g
        v = np.maximum(b2 * v, np.abs(g) + eps)
        return -lr * m / (1 - b1**t) / v, {"m": m, "v": v}

    return step


def ref_amsgrad(lr, b1, b2, eps):
    def step(t, w, g, mem):
        m, v, v_max = zeros(mem, "m", "v", "v_max")
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        v_max = np.maximum(v_max, v)  # the raw moments' maximum, as PyTorch and Keras
        u = -lr * (m / (1 - b1**t)) / (np.sqrt(v_max / (1 - b2**t)) + eps)
        return u, {"m": m, "v": v, "v_max": v_max}

    return step


def ref_lion(lr, b1, b2, wd):
    def step(t, w, g, mem):
        (m,) = zeros(mem, "m")
        u = -lr * (np.sign((1 - b1) * g + b1 * m) + wd * w)
        return u, {"m": b2 * m + (1 - b2) * g}

    return step


KERNEL = np.array([0, 0, 0, 1, 1.0])  # kernel_mask on (vector, matrix)

CASES = [
    ("sgd", optim.sgd(0.1), ref_sgd(0.1)),
    ("sgd-momentum", optim.sgd(0.1, momentum=0.9), ref_momentum(0.1, 0.9)),
    ("momentum", optim.momentum(0.05, beta=0.8), ref_momentum(0.05, 0.8)),
    ("nesterov", optim.nesterov(0.1, beta=0.9), ref_momentum(0.1, 0.9, nesterov=True)),
    ("rmsprop", optim.rmsprop(0.01), ref_rmsprop(0.01, 0.9, 1e-8)),
    (
        "rmsprop-centered",
        optim.rmsprop(0.01, decay=0.8, centered=True),
        ref_rmsprop(0.01, 0.8, 1e-8, True),
    ),
    (
        "rmsprop-momentum",
        optim.rmsprop(0.01, momentum=0.5),
        ref_rmsprop(0.01, 0.9, 1e-8, momentum=0.5),
    ),
    ("adagrad", optim.adagrad(0.1), ref_adagrad(0.1, 0.1, 1e-7)),
    ("adadelta", optim.adadelta(), ref_adadelta(1.0, 0.9, 1e-6)),
    ("adadelta-lr", optim.adadelta(0.5, rho=0.95), ref_adadelta(0.5, 0.95, 1e-6)),
    ("adam", optim.adam(0.01), ref_adam(0.01, 0.9, 0.999, 1e-8)),
    ("adam-b", optim.adam(0.02, b1=0.5, b2=0.9, eps=1e-3), ref_adam(0.02, 0.5, 0.9, 1e-3)),
    ("adamw", optim.adamw(0.01, weight_decay=0.1), ref_adam(0.01, 0.9, 0.999, 1e-8, wd=0.1)),
    (
        "adamw-masked",
        optim.adamw(0.01, weight_decay=0.1, mask=tree.kernel_mask),
        ref_adam(0.01, 0.9, 0.999, 1e-8, wd=0.1, decay_mask=KERNEL),
    ),
    ("adamax", optim.adamax(0.01), ref_adamax(0.01, 0.9, 0.999, 1e-8)),
    ("amsgrad", optim.amsgrad(0.01), ref_amsgrad(0.01, 0.9, 0.999, 1e-8)),
    # b2 = 0.5: the second moment falls at step 3 (leaves 0 and 1), so the maximum engages
    (
        "amsgrad-b",
        optim.amsgrad(0.02, b1=0.5, b2=0.5, eps=1e-3),
        ref_amsgrad(0.02, 0.5, 0.5, 1e-3),
    ),
    ("nadam", optim.nadam(0.01), ref_adam(0.01, 0.9, 0.999, 1e-8, nesterov=True)),
    ("lion", optim.lion(0.01), ref_lion(0.01, 0.9, 0.99, 1e-3)),  # optax's default decay
    ("lion-no-wd", optim.lion(0.01, weight_decay=0.0), ref_lion(0.01, 0.9, 0.99, 0.0)),
    ("lion-wd", optim.lion(0.01, weight_decay=0.5), ref_lion(0.01, 0.9, 0.99, 0.5)),
]


@pytest.mark.parametrize("name, opt, ref", CASES, ids=[c[0] for c in CASES])
def test_first_three_updates_match_formula(name, opt, ref):
    got, expected = run_library(opt), run_reference(ref)
    for step, (a, b) in enumerate(zip(got, expected), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"{name} step {step}")


BLOCKS = [
    ("scale", optim.scale(-0.3), lambda t, w, g, m: (-0.3 * g, m)),
    (
        "lr-no-flip",
        optim.scale_by_learning_rate(0.2, flip_sign=False),
        lambda t, w, g, m: (0.2 * g, m),
    ),
    ("trace", optim.trace(0.5), lambda t, w, g, m: _trace(g, m, 0.5)),
    ("add_decayed_weights", optim.add_decayed_weights(0.1), lambda t, w, g, m: (g + 0.1 * w, m)),
    (
        "add_decayed_weights-mask",
        optim.add_decayed_weights(0.1, tree.kernel_mask),
        lambda t, w, g, m: (g + 0.1 * w * KERNEL, m),
    ),
    ("add_l1", optim.add_l1(0.05), lambda t, w, g, m: (g + 0.05 * np.sign(w), m)),
    (
        "add_l1-mask",
        optim.add_l1(0.05, mask=(False, True)),
        lambda t, w, g, m: (g + 0.05 * np.sign(w) * KERNEL, m),
    ),
    ("clip", optim.clip(0.25), lambda t, w, g, m: (np.clip(g, -0.25, 0.25), m)),
    (
        "clip_by_global_norm",
        optim.clip_by_global_norm(0.9),
        lambda t, w, g, m: (g * min(1.0, 0.9 / np.linalg.norm(g)), m),
    ),
    ("scale_by_rms", optim.scale_by_rms(0.7, 1e-4), lambda t, w, g, m: _rms(g, m, 0.7, 1e-4)),
]


def _trace(g, mem, decay):
    m = decay * mem.get("m", 0) + g
    return m, {"m": m}


def _rms(g, mem, decay, eps):
    nu = decay * mem.get("nu", 0) + (1 - decay) * g**2
    return g / np.sqrt(nu + eps), {"nu": nu}


@pytest.mark.parametrize("name, opt, ref", BLOCKS, ids=[c[0] for c in BLOCKS])
def test_building_blocks_match_formula(name, opt, ref):
    got, expected = run_library(opt), run_reference(ref)
    for step, (a, b) in enumerate(zip(got, expected), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"{name} step {step}")


def test_clip_by_global_norm_clips_the_first_step_and_not_a_small_one():
    (u,) = run_library(optim.clip_by_global_norm(0.9), grads=GRADS[:1])
    assert np.linalg.norm(u) == pytest.approx(0.9)
    small = (GRADS[0][0] * 0.01, GRADS[0][1] * 0.01)
    (u,) = run_library(optim.clip_by_global_norm(0.9), grads=[small])
    np.testing.assert_array_equal(u, flat(small))


def test_clip_by_leaf_norm_clips_each_leaf_alone():
    big, small = np.array([3.0, 4.0]), np.array([[0.3, 0.4]])  # norms 5 and 0.5
    u, _ = optim.clip_by_leaf_norm(1.0).update((big, small), optim.EmptyState())
    np.testing.assert_allclose(u[0], [0.6, 0.8], rtol=1e-15)  # scaled to norm 1
    np.testing.assert_array_equal(u[1], small)  # under the bound: untouched
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        optim.clip_by_leaf_norm(0.0)


def test_l2_through_chain_is_sgd_on_penalized_loss():
    opt = optim.chain(optim.add_decayed_weights(0.1), optim.sgd(0.5))
    ref = lambda t, w, g, m: (-0.5 * (g + 0.1 * w), m)  # noqa: E731
    for a, b in zip(run_library(opt), run_reference(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_apply_if_finite_skips_nan_then_gives_up():
    opt = optim.apply_if_finite(optim.sgd(0.1), max_consecutive_errors=2)
    params = P0
    state = opt.init(params)
    bad = (np.array([np.nan, 0.0, 0.0]), np.array([[0.0, 0.0]]))
    for expected_count in (1, 2):
        u, state = opt.update(bad, state, params)
        assert all(np.all(leaf == 0) for leaf in tree.leaves(u))
        assert state.notfinite_count == expected_count and not state.last_finite
    # optax's counters: the third in a row exceeds 2 and goes through; the count goes on
    u, state = opt.update(bad, state, params)
    assert np.isnan(u[0][0]) and state.notfinite_count == 3 and state.total_notfinite == 3
    u, state = opt.update(bad, state, params)  # and so does the fourth
    assert np.isnan(u[0][0]) and state.notfinite_count == 4 and state.total_notfinite == 4
    u, state = opt.update(GRADS[0], state, params)  # a finite one resets the count only
    np.testing.assert_allclose(flat(u), -0.1 * flat(GRADS[0]))
    assert state.last_finite and state.notfinite_count == 0 and state.total_notfinite == 4
    u, state = opt.update(bad, state, params)
    assert np.all(flat(u) == 0) and state.notfinite_count == 1 and state.total_notfinite == 5


def test_multi_steps_applies_the_mean_every_k():
    opt = optim.multi_steps(optim.sgd(1.0), every_k=2)
    out = run_library(opt)
    assert np.all(out[0] == 0)
    np.testing.assert_allclose(out[1], -(flat(GRADS[0]) + flat(GRADS[1])) / 2, rtol=1e-12)
    assert np.all(out[2] == 0)


def test_masked_passes_masked_out_leaves_through():
    opt = optim.masked(optim.scale(10.0), (True, False))
    (u,) = run_library(opt, grads=GRADS[:1])
    np.testing.assert_allclose(u, np.concatenate([10 * GRADS[0][0], GRADS[0][1].ravel()]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "fused, unfused",
    [
        (
            optim.adam(schedules.exponential_decay(0.01, 1, 0.5)),
            optim.chain(
                optim.scale_by_adam(),
                optim.scale_by_learning_rate(schedules.exponential_decay(0.01, 1, 0.5)),
            ),
        ),
        (
            optim.nadam(0.02, b1=0.8, eps_root=1e-6),
            optim.chain(
                optim.scale_by_adam(0.8, eps_root=1e-6, nesterov=True),
                optim.scale_by_learning_rate(0.02),
            ),
        ),
    ],
    ids=["adam-schedule", "nadam-eps_root"],
)
def test_adam_folds_the_rate_into_one_pass_and_equals_the_chain(fused, unfused, dtype):
    """adam/nadam fold the learning rate into Adam's last multiply: same state, same
    updates as the two-transform chain up to rounding, ReduceLROnPlateau's multiplier too."""
    params = tree.map(lambda a: a.astype(dtype), P0)
    states = [fused.init(params), unfused.init(params)]
    assert tree.flatten(states[0])[1] == tree.flatten(states[1])[1]
    for step, g in enumerate(GRADS):
        g = tree.map(lambda a: a.astype(dtype), g)
        if step == 2:
            states = [optim.scale_learning_rate(s, 0.1) for s in states]
        (u_fused, states[0]), (u_chain, states[1]) = (
            fused.update(g, states[0], params),
            unfused.update(g, states[1], params),
        )
        assert flat(u_fused).dtype == dtype
        rtol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(flat(u_fused), flat(u_chain), rtol=rtol, err_msg=f"{step}")
        for a, b in zip(tree.leaves(states[0]), tree.leaves(states[1])):
            np.testing.assert_array_equal(a, b)
            assert not isinstance(a, np.ndarray) or not a.flags.writeable
        assert optim.current_learning_rate(states[0]) == optim.current_learning_rate(states[1])
        params = optim.apply_updates(params, u_fused)


def test_adam_rejects_a_state_from_another_optimizer():
    sgd_state = optim.sgd(0.1).init(P0)
    with pytest.raises(
        TypeError, match=r"scale_by_adam\.update expected a ScaleByAdamState, got EmptyState"
    ):
        optim.adam(0.1).update(GRADS[0], sgd_state, P0)
    three = optim.ChainState((None, None, None))
    with pytest.raises(ValueError, match="chain of 2 transforms got a state of 3"):
        optim.adam(0.1).update(GRADS[0], three, P0)


@pytest.mark.parametrize("kwargs", [{}, {"nesterov": True}, {"eps_root": 1e-6}])
def test_adam_in_spans_on_threads_has_whole_leaf_bits(monkeypatch, kwargs):
    # Adam cuts each leaf into spans run on funcnn's threads: no cut may change a bit
    from funcnn import linalg
    from funcnn.optim import leaves

    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((40, 30)), "b": rng.standard_normal(7), "s": np.array(0.5)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    grads = {k: rng.standard_normal(np.shape(v)).astype(np.float32) for k, v in params.items()}
    adam = optim.scale_by_adam(**kwargs)

    def three_steps():
        state, out = adam.init(params), []
        for _ in range(3):
            updates, state = adam.update(grads, state, params)
            out += tree.leaves(updates) + tree.leaves(state.mu) + tree.leaves(state.nu)
        return out

    monkeypatch.setattr(leaves, "SPAN", 2**30)
    whole = three_steps()
    monkeypatch.setattr(leaves, "SPAN", 64)  # 19 spans for w, on two threads
    monkeypatch.setattr(linalg, "ELEMENTWISE_MIN", 1)
    monkeypatch.setattr(linalg, "_alone_until", 0.0)
    linalg.set_workers(2)
    try:
        cut = three_steps()
    finally:
        linalg.set_workers(None)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(whole, cut))
    assert np.shape(cut[-1]) == () and not cut[-1].flags.writeable  # 0-d leaves stay 0-d


def compiled_adam(learning_rate):
    from funcnn.optim import compiled

    return optim.chain(compiled.scale_by_adam(), optim.scale_by_learning_rate(learning_rate))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("make", [optim.adam, optim.nadam, compiled_adam])
def test_adam_stays_finite_on_gradients_whose_square_overflows(make):
    """Gradients of 1e30 in float32: g^2 is inf, so nu is inf and the update 0 (optax's
    numbers); the moments never compute inf - inf."""
    opt = make(0.1)
    params = (np.ones(4, np.float32),)
    state = opt.init(params)
    for _ in range(5):
        g = (np.array([1e30, -1e30, 1.0, 0.0], np.float32),)
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        assert all(np.isfinite(u).all() for u in tree.leaves(updates))
    assert params[0][0] == params[0][1] == 1.0  # nu = inf: those entries stay where they are
    assert params[0][2] < 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_moments_have_optax_bits(dtype):
    """mu = (1 - b1) g + b1 mu and nu = (1 - b2) g^2 + b2 nu, in optax's order of operations."""
    rng = np.random.default_rng(0)
    opt = optim.scale_by_adam(0.9, 0.999)
    params = (rng.standard_normal(1000).astype(dtype),)
    state = opt.init(params)
    mu = nu = np.zeros(1000, dtype)
    for _ in range(3):
        g = rng.standard_normal(1000).astype(dtype)
        _, state = opt.update((g,), state, params)
        mu = dtype(1 - 0.9) * g + dtype(0.9) * mu
        nu = dtype(1 - 0.999) * (g**2) + dtype(0.999) * nu
        assert np.array_equal(state.mu[0], mu) and np.array_equal(state.nu[0], nu)


def adam_by_definition(grads, b1, b2, eps, eps_root=0.0, nesterov=False):
    """Adam's updates (optax's definitions, before any folding), step after step, in float64."""
    mu = nu = np.zeros(np.shape(grads[0]))
    out = []
    for t, g in enumerate(np.asarray(grads, np.float64), start=1):
        mu, nu = (1 - b1) * g + b1 * mu, (1 - b2) * g**2 + b2 * nu
        if nesterov:
            mu_hat = b1 * mu / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            mu_hat = mu / (1 - b1**t)
        nu_hat = nu / (1 - b2**t)
        out.append(mu_hat / (np.sqrt(nu_hat + eps_root) + eps))
    return out


def numpy_adam(**kwargs):
    return optim.scale_by_adam(**kwargs)


def numba_adam(**kwargs):
    pytest.importorskip("numba")
    from funcnn.optim import compiled

    return compiled.scale_by_adam(**kwargs)


@pytest.mark.parametrize("make", [numpy_adam, numba_adam])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"nesterov": True}, {"eps_root": 1e-4}, {"eps_root": 1e-4, "nesterov": True}],
    ids=["plain", "nesterov", "eps_root", "nesterov-eps_root"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_folded_constants_give_the_update_of_the_definition(make, kwargs, dtype):
    """scale_by_adam folds the bias corrections into scalars (adam_scalars); its updates are
    those of mu_hat / (sqrt(nu_hat + eps_root) + eps) to a few ulps in float64."""
    rng = np.random.default_rng(3)
    hyper = {"b1": 0.8, "b2": 0.95, "eps": 1e-3, **kwargs}  # eps that matters for small g
    # Each element keeps its sign over the steps, so mu_hat's two nesterov terms never cancel
    # (cancellation would magnify the one-ulp differences of any two orders of operations).
    sign = rng.choice([-1.0, 1.0], 500)
    grads = [(sign * 10.0 ** rng.uniform(-5, 1, 500)).astype(dtype) for _ in range(6)]
    opt = make(**hyper)
    state = opt.init((grads[0],))
    for g, expected in zip(grads, adam_by_definition(grads, **hyper)):
        (u,), state = opt.update((g,), state)
        assert u.dtype == dtype
        if dtype == np.float64:
            ulps = np.abs(u - expected) / np.spacing(np.abs(expected))
            assert ulps.max() <= 8, ulps.max()
        else:
            np.testing.assert_allclose(u, expected, rtol=4e-6)
