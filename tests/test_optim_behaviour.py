"""Optimizers: convergence table, swapping, purity, dtypes, schedules and bad input."""

import math

import numpy as np
import pytest

from funcnn import layers as L
from funcnn import losses, optim, schedules, tree, value_and_grad


def parabola(x):
    c, target = np.array([1.0, 4.0]), np.array([1.0, -2.0])
    return 0.5 * np.sum(c * (x - target) ** 2), c * (x - target)


def rosenbrock(x):
    a, b = x
    value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    return value, np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


def minimize(opt, f, x0, steps):
    params = (np.array(x0, dtype=np.float64),)
    state = opt.init(params)
    for _ in range(steps):
        _, g = f(params[0])
        updates, state = opt.update((g,), state, params)
        params = optim.apply_updates(params, updates)
    return f(params[0])[0]


# (name, optimizer, steps) on the parabola from (-3, 3): f below 1e-8.
PARABOLA = [
    ("sgd", optim.sgd(0.1), 200),
    ("momentum", optim.momentum(0.05), 1000),
    ("nesterov", optim.nesterov(0.05), 1000),
    ("rmsprop", optim.rmsprop(0.01), 1000),
    ("rmsprop-centered", optim.rmsprop(0.01, centered=True), 1000),
    ("adagrad", optim.adagrad(0.5), 1000),
    ("adadelta", optim.adadelta(), 3000),
    ("adam", optim.adam(0.05), 1000),
    ("adamw", optim.adamw(0.05, weight_decay=0.0), 1000),
    ("adamax", optim.adamax(0.05), 1000),
    ("nadam", optim.nadam(0.05), 1000),
    ("lion", optim.lion(0.01, weight_decay=0.0), 1000),
]

# (name, optimizer, steps) on Rosenbrock from (-1.2, 1), f = 24.2 there: f below 1e-3.
ROSENBROCK = [
    ("sgd", optim.sgd(2e-3), 5000),
    ("momentum", optim.momentum(2e-4), 5000),
    ("nesterov", optim.nesterov(2e-4), 5000),
    ("rmsprop", optim.rmsprop(1e-3), 5000),
    ("rmsprop-centered", optim.rmsprop(1e-3, centered=True), 5000),
    ("adagrad", optim.adagrad(0.3), 5000),
    ("adadelta", optim.adadelta(0.1, eps=1e-8), 20000),
    ("adam", optim.adam(0.02), 5000),
    ("adamw", optim.adamw(0.02, weight_decay=0.0), 5000),
    ("adamax", optim.adamax(0.02), 5000),
    ("nadam", optim.nadam(0.02), 5000),
    ("lion", optim.lion(0.002, weight_decay=0.0), 5000),
]


@pytest.mark.parametrize("name, opt, steps", PARABOLA, ids=[c[0] for c in PARABOLA])
def test_minimizes_parabola(name, opt, steps):
    assert minimize(opt, parabola, [-3.0, 3.0], steps) < 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("name, opt, steps", ROSENBROCK, ids=[c[0] for c in ROSENBROCK])
def test_minimizes_rosenbrock(name, opt, steps):
    assert minimize(opt, rosenbrock, [-1.2, 1.0], steps) < 1e-3


def train_xor(optimizer, steps=1500, seed=0):
    """One training function for every optimizer: swapping is passing another object."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = L.serial(L.Dense(4), L.Tanh, L.Dense(1))
    params = model.init(seed, (2,))
    opt_state = optimizer.init(params)
    loss_and_grads = value_and_grad(model, losses.sigmoid_binary_cross_entropy)
    for _ in range(steps):
        loss, grads = loss_and_grads(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
    accuracy = np.mean((model.apply(params, x) > 0) == (y > 0.5))
    return accuracy, loss


XOR_OPTIMIZERS = [
    ("sgd", optim.sgd(0.5)),
    ("momentum", optim.momentum(0.1)),
    ("nesterov", optim.nesterov(0.1)),
    ("rmsprop", optim.rmsprop(0.01)),
    ("rmsprop-centered-momentum", optim.rmsprop(0.01, centered=True, momentum=0.5)),
    ("adagrad", optim.adagrad(0.1)),
    ("adadelta", optim.adadelta()),
    ("adam", optim.adam(0.05)),
    ("adamw", optim.adamw(0.05)),
    ("adamax", optim.adamax(0.05)),
    ("nadam", optim.nadam(0.05)),
    ("lion", optim.lion(0.01)),
    (
        "sgd-l2-clip",
        optim.chain(
            optim.clip_by_global_norm(1.0), optim.add_decayed_weights(1e-4), optim.sgd(0.5)
        ),
    ),
    ("adam-schedule", optim.adam(schedules.exponential_decay(0.05, 1000, 0.5))),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, opt", XOR_OPTIMIZERS, ids=[c[0] for c in XOR_OPTIMIZERS])
def test_every_optimizer_trains_xor(name, opt):
    accuracy, loss = train_xor(opt)
    assert accuracy == 1.0, (name, loss)


ALL = [c[1] for c in XOR_OPTIMIZERS] + [
    optim.multi_steps(optim.adam(0.1), 2),
    optim.apply_if_finite(optim.sgd(0.1), 3),
    optim.chain(optim.add_l1(0.01), optim.clip(1.0), optim.sgd(0.1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ALL)
def test_state_structure_dtypes_and_purity(opt, dtype):
    rng = np.random.default_rng(0)
    params = tree.freeze(
        (rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal(2).astype(dtype))
    )
    grads = (rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal(2).astype(dtype))
    state = opt.init(params)
    before = tree.map(np.copy, (params, grads))
    state_leaves_before = [np.copy(a) for a in tree.leaves(state) if isinstance(a, np.ndarray)]
    updates, new_state = opt.update(grads, state, params)
    new_params = optim.apply_updates(params, updates)
    # nothing mutated
    for a, b in zip(tree.leaves(before), tree.leaves((params, grads))):
        assert np.array_equal(a, b)
    for a, b in zip(
        state_leaves_before, [a for a in tree.leaves(state) if isinstance(a, np.ndarray)]
    ):
        assert np.array_equal(a, b)
    # same structure, shapes and dtypes
    assert tree.structure_difference(state, new_state) is None
    for a, b in zip(tree.leaves(state), tree.leaves(new_state)):
        assert type(a) is type(b) and np.asarray(a).dtype == np.asarray(b).dtype
    for u, q in zip(tree.leaves(updates), tree.leaves(new_params)):
        assert u.dtype == dtype and q.dtype == dtype and not q.flags.writeable
    for a in tree.leaves(new_state):
        if isinstance(a, np.ndarray):
            assert not a.flags.writeable


@pytest.mark.parametrize("opt", ALL)
def test_scalar_parameters_update_like_one_element_vectors(opt):
    """A 0-d parameter (a learnable temperature, say) takes the same steps as the same
    number held in a 1-element vector, and its new value is a read-only 0-d array."""
    scalar = (np.ones((2, 2)), np.asarray(0.5))
    vector = (np.ones((2, 2)), np.array([0.5]))
    grads = [(np.full((2, 2), 0.3), np.asarray(g)) for g in (0.2, -0.7, 0.4)]
    s_state, v_state = opt.init(scalar), opt.init(vector)
    for g in grads:
        s_updates, s_state = opt.update(g, s_state, scalar)
        v_updates, v_state = opt.update((g[0], g[1].reshape(1)), v_state, vector)
        scalar = optim.apply_updates(scalar, s_updates)
        vector = optim.apply_updates(vector, v_updates)
        assert scalar[1].shape == () and not scalar[1].flags.writeable
        assert scalar[1] == vector[1][0]


def test_schedules_closed_forms():
    assert schedules.constant(0.3)(100) == 0.3
    ed = schedules.exponential_decay(0.1, 10, 0.5)
    assert ed(0) == 0.1 and ed(10) == pytest.approx(0.05) and ed(5) == pytest.approx(0.1 * 0.5**0.5)
    eds = schedules.exponential_decay(0.1, 10, 0.5, staircase=True, end_value=0.02)
    assert eds(9) == 0.1 and eds(10) == pytest.approx(0.05) and eds(100) == 0.02
    itd = schedules.inverse_time_decay(1.0, 1, 0.5)
    assert itd(4) == pytest.approx(1 / 3)
    assert schedules.inverse_time_decay(1.0, 10, 1.0, staircase=True)(19) == pytest.approx(0.5)
    pc = schedules.piecewise_constant(0.1, {100: 0.1, 200: 0.5})
    assert (pc(99), pc(100), pc(250)) == (0.1, pytest.approx(0.01), pytest.approx(0.005))
    sd = schedules.step_decay(0.1, 0.5, 10)
    assert sd(9) == 0.1 and sd(25) == pytest.approx(0.025)
    pd = schedules.polynomial_decay(1.0, 0.1, 2.0, 10)
    assert pd(5) == pytest.approx(0.9 * 0.25 + 0.1) and pd(50) == pytest.approx(0.1)
    cd = schedules.cosine_decay(1.0, 100, alpha=0.1)
    assert (
        cd(0) == 1.0 and cd(50) == pytest.approx(0.9 * 0.5 + 0.1) and cd(200) == pytest.approx(0.1)
    )
    lw = schedules.linear_warmup(1.0, 10)
    assert lw(0) == 0 and lw(5) == pytest.approx(0.5) and lw(20) == 1.0
    wc = schedules.warmup_cosine_decay(0.0, 1.0, 10, 110, end_value=0.0)
    assert wc(5) == pytest.approx(0.5) and wc(10) == pytest.approx(1.0)
    assert wc(60) == pytest.approx(0.5) and wc(110) == pytest.approx(0.0, abs=1e-12)
    js = schedules.join_schedules([schedules.constant(1.0), lambda s: 2.0 + s], [5])
    assert js(4) == 1.0 and js(7) == 4.0
    assert math.isclose(schedules.linear_schedule(0.0, 1.0, 4, transition_begin=2)(4), 0.5)


def test_schedule_drives_learning_rate_in_state():
    sched = schedules.step_decay(0.1, 0.5, 2)
    opt = optim.adam(sched)
    params = (np.ones(3),)
    state = opt.init(params)
    seen = [optim.current_learning_rate(state)]
    for _ in range(4):
        _, state = opt.update((np.ones(3),), state, params)
        seen.append(optim.current_learning_rate(state))
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    halved = optim.scale_learning_rate(state, 0.5)
    assert optim.current_learning_rate(halved) == pytest.approx(0.0125)
    assert optim.current_learning_rate(state) == pytest.approx(0.025)  # untouched
    u_sgd, _ = optim.sgd(0.1).update(
        (np.ones(2),), optim.scale_learning_rate(optim.sgd(0.1).init((np.ones(2),)), 0.5)
    )
    np.testing.assert_allclose(u_sgd[0], [-0.05, -0.05])


def test_mismatched_grads_name_the_place():
    params = (np.ones((2, 3)), np.ones(3))
    opt = optim.adam(0.1)
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"at \[1\].*\(3,\).*\(4,\)"):
        opt.update((np.ones((2, 3)), np.ones(4)), state, params)
    with pytest.raises(ValueError, match="do not match"):
        opt.update((np.ones((2, 3)),), state, params)
    sgd = optim.sgd(0.1)
    updates, _ = sgd.update((np.ones((2, 3)), np.ones(4)), sgd.init(params))
    with pytest.raises(ValueError, match="updates do not match params"):
        optim.apply_updates(params, updates)


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf")])
def test_bad_learning_rates(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        optim.adam(lr)
    with pytest.raises(ValueError, match="learning rate at step 0"):
        optim.sgd(lambda step: lr).init((np.ones(1),))


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.adam(0.1, b1=1.0),
        lambda: optim.adam(0.1, b2=-0.1),
        lambda: optim.rmsprop(0.1, decay=1.5),
        lambda: optim.sgd(0.1, momentum=1.0),
        lambda: optim.adadelta(rho=1.0),
        lambda: optim.lion(0.1, b2=float("nan")),
    ],
)
def test_decays_outside_unit_interval(make):
    with pytest.raises(ValueError, match=r"must be|decay rate"):
        make()


def test_update_before_init_and_foreign_state():
    params = (np.ones(2),)
    with pytest.raises(TypeError, match=r"optimizer.init\(params\)"):
        optim.adam(0.1).update((np.ones(2),), None, params)
    with pytest.raises(ValueError, match="another optimizer"):
        optim.adam(0.1).update(
            (np.ones(2),), optim.sgd(0.1, momentum=0.9).init(params)._replace(inner=(1,)), params
        )
    with pytest.raises(TypeError, match="ScaleByAdamState"):
        optim.adam(0.1).update((np.ones(2),), optim.adamax(0.1).init(params), params)


def test_params_required_where_needed():
    opt = optim.adamw(0.1)
    state = opt.init((np.ones(2),))
    with pytest.raises(ValueError, match="needs the current params"):
        opt.update((np.ones(2),), state)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="positive int"):
        schedules.exponential_decay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="one more schedule"):
        schedules.join_schedules([schedules.constant(1.0)], [3])
    with pytest.raises(ValueError, match="exceed"):
        schedules.warmup_cosine_decay(0.0, 1.0, 10, 10)
    with pytest.raises(TypeError, match="boundary must be an int >= 0, got float inf"):
        schedules.piecewise_constant(0.1, {float("inf"): 0.5})
    with pytest.raises(TypeError, match=r"boundary must be an int >= 0, got float 1\.5"):
        schedules.piecewise_constant(0.1, {1.5: 0.5})
    with pytest.raises(TypeError, match="must be a dict"):
        schedules.piecewise_constant(0.1, [(10, 0.5)])
    with pytest.raises(ValueError, match="transition_begin"):
        schedules.linear_schedule(0.1, 0.0, 10, transition_begin=-1)
    with pytest.raises(TypeError, match="callables"):
        schedules.join_schedules([0.1, 0.2], [3])
    with pytest.raises(TypeError, match="warmup_steps must be an int"):
        schedules.warmup_cosine_decay(0.0, 1.0, None, 10)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.exponential_decay(0.1, 1, 2.0, end_value=1.0),
        schedules.exponential_decay(0.1, 1, 2.0, staircase=True, end_value=1.0),
    ],
)
def test_a_growing_schedule_is_capped_where_its_power_overflows(schedule):
    assert schedule(2000) == 1.0 and schedule(10**9) == 1.0


def test_an_overflowing_schedule_without_a_cap_is_refused_by_the_optimizer():
    assert schedules.exponential_decay(0.1, 1, 2.0)(2000) == math.inf
    assert schedules.step_decay(0.1, 2.0, 1)(5000) == math.inf
    assert schedules.exponential_decay(0.0, 1, 2.0)(2000) == 0.0  # 0 stays 0
    assert schedules.exponential_decay(0.1, 1, 0.5)(10**6) == 0.0  # underflow is fine
    opt = optim.scale_by_learning_rate(schedules.exponential_decay(0.1, 1, 2.0))
    state = opt.init((np.ones(2),))
    state = state._replace(step=2000)
    with pytest.raises(ValueError, match="learning rate at step 2000"):
        opt.update((np.ones(2),), state)


@pytest.mark.parametrize("wrapper", [optim.multi_steps, optim.apply_if_finite])
@pytest.mark.parametrize("given", ["sgd", optim.sgd, None])
def test_wrappers_refuse_what_is_not_a_transformation(wrapper, given):
    with pytest.raises(TypeError, match="must be a GradientTransformation such as"):
        wrapper(given, 2)
    with pytest.raises(TypeError, match="must be a GradientTransformation such as"):
        optim.masked(given, (True,))


def test_a_rate_set_after_the_rate_was_scaled_to_zero_takes_effect():
    # A LearningRateScheduler that returns 0 for one epoch and then a rate again: the
    # multiplier left at 0 by the scaling must not keep every later update at 0.
    p, g = {"w": np.ones(3)}, {"w": np.ones(3)}
    opt = optim.sgd(0.1)
    state = optim.scale_learning_rate(opt.init(p), 0.0)
    u, state = opt.update(g, state, p)
    assert np.all(u["w"] == 0)
    state = optim.set_learning_rate(state, 0.05)
    for _ in range(2):
        u, state = opt.update(g, state, p)
        np.testing.assert_array_equal(u["w"], -0.05)
    # a schedule goes on from the set rate, scaled
    sched = optim.schedules.exponential_decay(0.1, 1, 0.5)
    opt = optim.sgd(sched)
    state = optim.scale_learning_rate(opt.init(p), 0.0)
    _, state = opt.update(g, state, p)
    state = optim.set_learning_rate(state, 0.2)  # the schedule is 0.05 at step 1
    u, state = opt.update(g, state, p)
    np.testing.assert_allclose(u["w"], -0.2)
    u, state = opt.update(g, state, p)
    np.testing.assert_allclose(u["w"], -0.1)  # 0.025 * 4
