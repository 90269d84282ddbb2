"""Keras' weight regularizers in the facade: ``keras.regularizers`` (L1, L2, L1L2 with
Keras 3's defaults and formulas, names and configs), the layers that take them (Dense,
the convolutions, Embedding, the recurrent layers), the penalty in the trained loss, the
logged loss, val_loss and evaluate, its exact gradient, and the regularizers kept by
save/load and JSON. Keras 3 (JAX backend) is the oracle where it is installed."""

import os

import numpy as np
import pytest

from funcnn import gradients, keras, losses, tree
from funcnn.keras import layers, regularizers
from funcnn.keras.regularizers import L1, L1L2, L2

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _data(n=32, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x @ rng.standard_normal((features, 1))).astype(np.float32)
    return x, y


# ---------------------------------------------------------------- the regularizers


def test_values_defaults_and_formulas_are_keras():
    x = np.array([[1.0, -2.0], [0.5, 0.0]], dtype=np.float32)
    assert L1().l1 == 0.01 and L2().l2 == 0.01
    assert (L1L2().l1, L1L2().l2) == (0.0, 0.0)  # Keras 3's class defaults
    assert regularizers.l1_l2 is L1L2  # Keras 3: the class, zeros by default
    assert regularizers.l1 is L1 and regularizers.l2 is L2
    assert L1(0.3)(x) == pytest.approx(0.3 * 3.5)
    assert L2(0.1)(x) == pytest.approx(0.1 * 5.25)  # l2 * sum(x**2): no 1/2
    assert L1L2(0.3, 0.1)(x) == pytest.approx(0.3 * 3.5 + 0.1 * 5.25)
    assert L2(2.0)(np.ones((5, 5))) == pytest.approx(50.0)  # Keras' docstring example
    _, grad = L1L2(0.3, 0.1).value_and_grad(x)
    np.testing.assert_allclose(grad, 0.3 * np.sign(x) + 0.2 * x, rtol=1e-6)
    assert grad.dtype == np.float32 and grad[1, 1] == 0.0  # sign(0) = 0, as JAX's


def test_names_configs_and_bad_values():
    assert regularizers.get(None) is None
    assert regularizers.get("l1") == L1(0.01) and regularizers.get("l2") == L2(0.01)
    with pytest.raises(ValueError, match=r"unknown regularizer 'l1_l2'.*Keras 3"):
        regularizers.get("l1_l2")  # Keras 3 refuses the name
    assert regularizers.get("L1L2") == L1L2(0.0, 0.0)
    assert regularizers.get(L2) == L2()
    reg = L1L2(l1=0.2, l2=0.5)
    config = regularizers.serialize(reg)
    assert config["class_name"] == "L1L2" and config["config"] == {"l1": 0.2, "l2": 0.5}
    assert regularizers.get(config) == reg and regularizers.deserialize(config) == reg
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.3}}) == L2(0.3)
    with pytest.raises(ValueError, match=r"unknown regularizer 'l3'.*'l1l2'"):
        regularizers.get("l3")
    with pytest.raises(TypeError, match=r"is a function.*exact gradient"):
        regularizers.get(lambda w: 0.01 * np.sum(w**2))
    with pytest.raises(ValueError, match="l2 must be a non-negative finite number"):
        L2(-0.1)
    with pytest.raises(TypeError, match="l1 must be a non-negative number"):
        L1("big")
    with pytest.raises(ValueError, match="class_name"):
        regularizers.deserialize({"class_name": "Orthogonal", "config": {}})


@pytest.mark.parametrize("reg", [L1(0.3), L2(0.2), L1L2(0.1, 0.05)])
def test_gradient_matches_finite_differences_in_float64(reg):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 0.05] = 0.5  # away from L1's kink
    _, grad = reg.value_and_grad(x)
    eps, fd = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        fd[i] = (reg(x + d) - reg(x - d)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- in a model


def _regularized_model(seed=0):
    return keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(3, activation="tanh", kernel_regularizer=L1L2(0.02, 0.03)),
            layers.Dense(1, kernel_regularizer="l2", bias_regularizer=L1(0.05)),
        ],
        seed=seed,
    )


def _by_hand(model):
    k1, _, k2, b2 = model.get_weights()
    k1, k2, b2 = (a.astype(np.float64) for a in (k1, k2, b2))
    return (
        0.02 * np.abs(k1).sum()
        + 0.03 * (k1**2).sum()
        + 0.01 * (k2**2).sum()
        + 0.05 * np.abs(b2).sum()
    )


def test_the_model_penalty_and_its_whole_gradient_are_exact_in_float64():
    model = _regularized_model()
    model.build()
    params = tree.map(lambda a: a.astype(np.float64), model.params)
    penalty = regularizers.penalty(model.layers, params)
    assert penalty(params) == pytest.approx(_by_hand(model), rel=1e-6)
    x, y = (a.astype(np.float64) for a in _data(8))
    plain = gradients.value_and_grad(model.model, losses.mean_squared_error)
    both = gradients.value_and_grad(model.model, losses.mean_squared_error, penalty=penalty)
    value, grads = both(params, x, y)
    assert value == pytest.approx(plain(params, x, y)[0] + penalty(params), rel=1e-12)
    leaves, treedef = tree.flatten(params)
    grad_leaves = tree.leaves(grads)
    rng, eps = np.random.default_rng(0), 1e-6
    for n, leaf in enumerate(leaves):
        for _ in range(4):
            index = tuple(int(rng.integers(0, s)) for s in leaf.shape)
            moved = []
            for sign in (1, -1):
                a = leaf.copy()
                a[index] += sign * eps
                changed = [a if m == n else b for m, b in enumerate(leaves)]
                moved.append(both(tree.unflatten(treedef, changed), x, y)[0])
            fd = (moved[0] - moved[1]) / (2 * eps)
            assert grad_leaves[n][index] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_logged_loss_val_loss_and_evaluate_include_the_penalty():
    x, y = _data()
    xv, yv = _data(16, seed=1)
    model = _regularized_model()
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")  # the weights stay
    model.build()
    plain = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    plain_val = float(np.mean((model.predict(xv, verbose=0) - yv) ** 2))
    extra = _by_hand(model)
    history = model.fit(x, y, validation_data=(xv, yv), epochs=1, batch_size=8, verbose=0)
    assert history["loss"][0] == pytest.approx(plain + extra, rel=1e-5)
    assert history["val_loss"][0] == pytest.approx(plain_val + extra, rel=1e-5)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain + extra, rel=1e-5)


def test_the_penalty_moves_the_weights_frozen_layers_excepted():
    x, y = _data()
    ours, plain = (
        _regularized_model(),
        keras.Sequential(
            [keras.Input((4,)), layers.Dense(3, activation="tanh"), layers.Dense(1)], seed=0
        ),
    )
    for model in (ours, plain):
        model.compile(keras.optimizers.SGD(0.1), "mse")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    assert not np.allclose(ours.get_weights()[0], plain.get_weights()[0])
    frozen = _regularized_model()
    frozen.layers[0].trainable = False
    frozen.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    frozen.build()
    k2, b2 = frozen.get_weights()[2:]
    extra = 0.01 * float((k2.astype(np.float64) ** 2).sum()) + 0.05 * float(np.abs(b2).sum())
    base = float(np.mean((frozen.predict(x, verbose=0) - y) ** 2))
    assert frozen.evaluate(x, y, verbose=0) == pytest.approx(base + extra, rel=1e-5)


def test_recurrent_embedding_and_bidirectional_regularizers_count_every_weight():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            layers.Embedding(10, 4, embeddings_regularizer=L2(0.1)),
            layers.Bidirectional(layers.LSTM(3, kernel_regularizer=L1(0.2), return_sequences=True)),
            layers.GRU(2, recurrent_regularizer=L2(0.3), bias_regularizer=L1(0.4)),
            layers.Dense(1),
        ]
    )
    model.build()
    emb, bi, gru, _ = (layer.get_weights() for layer in model.layers)
    expected = (
        0.1 * np.sum(emb[0].astype(np.float64) ** 2)
        + 0.2 * (np.abs(bi[0]).sum() + np.abs(bi[3]).sum())  # both directions' kernels
        + 0.3 * np.sum(gru[1].astype(np.float64) ** 2)
        + 0.4 * np.abs(gru[2]).sum()
    )
    penalty = regularizers.penalty(model.layers, model.params)
    assert penalty(model.params) == pytest.approx(expected, rel=1e-5)
    assert model.layers[2].recurrent_regularizer == L2(0.3)
    model.layers[3].kernel_regularizer = "l1"  # set after construction: counts at fit
    assert regularizers.penalty(model.layers, model.params)(model.params) == pytest.approx(
        expected + 0.01 * np.abs(model.layers[3].get_weights()[0]).sum(), rel=1e-5
    )


def test_conv_family_takes_its_regularizers():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            layers.Conv2D(2, 3, kernel_regularizer=L2(0.1), bias_regularizer="l1"),
            layers.SeparableConv2D(
                2, 2, depthwise_regularizer=L1(0.2), pointwise_regularizer=L2(0.3)
            ),
            layers.DepthwiseConv2D(2, depthwise_regularizer=L2(0.4)),
            layers.Conv2DTranspose(1, 2, kernel_regularizer=L1(0.5)),
        ]
    )
    model.build()
    conv, sep, dw, tr = (layer.get_weights() for layer in model.layers)
    sq = lambda a: float(np.sum(a.astype(np.float64) ** 2))  # noqa: E731
    expected = (
        0.1 * sq(conv[0]) + 0.01 * np.abs(conv[1]).sum() + 0.2 * np.abs(sep[0]).sum()
        + 0.3 * sq(sep[1]) + 0.4 * sq(dw[0]) + 0.5 * np.abs(tr[0]).sum()
    )  # fmt: skip
    penalty = regularizers.penalty(model.layers, model.params)
    assert penalty(model.params) == pytest.approx(expected, rel=1e-5)


def test_unsupported_regularizers_are_refused_where_written():
    with pytest.raises(ValueError, match=r"activity_regularizer=\.\.\.\) is not supported"):
        layers.Dense(3, activity_regularizer="l2")
    layers.Dense(3, activity_regularizer=None)  # Keras' default passes
    with pytest.raises(TypeError, match=r"Flatten got keyword.*'kernel_regularizer'"):
        layers.Flatten(kernel_regularizer="l2")
    with pytest.raises(TypeError, match=r"Dense got keyword.*'recurrent_regularizer'.*takes"):
        layers.Dense(3, recurrent_regularizer="l2")
    with pytest.raises(TypeError, match="is a function"):
        layers.Conv2D(2, 3, kernel_regularizer=lambda w: 0.0)
    with pytest.raises(ValueError, match="unknown regularizer"):
        layers.LSTM(2, kernel_regularizer="l3")


def test_save_load_and_json_keep_the_regularizers(tmp_path):
    x, y = _data()
    model = _regularized_model()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, epochs=1, verbose=0)
    config = model.layers[1].get_config()
    assert config["kernel_regularizer"]["class_name"] == "L2"
    assert config["bias_regularizer"]["config"] == {"l1": 0.05}
    for back in (
        keras.models.load_model(model.save(tmp_path / "m.keras")),
        keras.models.model_from_json(model.to_json()),
    ):
        assert back.layers[0].kernel_regularizer == L1L2(0.02, 0.03)
        assert back.layers[1].kernel_regularizer == L2(0.01)
        assert back.layers[1].bias_regularizer == L1(0.05)
    back = keras.models.load_model(tmp_path / "m.keras")
    assert back.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    wrapped = keras.Sequential(
        [keras.Input((3, 2)), layers.TimeDistributed(layers.Dense(2, kernel_regularizer="l2"))]
    )
    again = keras.models.model_from_json(wrapped.to_json())
    assert again.layers[0].layer.kernel_regularizer == L2(0.01)
    assert again.layers[0].weight_regularizers() == {"kernel": L2(0.01)}


def test_a_funcnn_penalty_from_compile_adds_to_the_layers():
    x, y = _data()
    model = _regularized_model()
    model.compile(keras.optimizers.SGD(0.0), "mse", penalty=losses.l2_penalty(0.5))
    model.build()
    base = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    extra = 0.5 * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in model.get_weights())
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert history["loss"][0] == pytest.approx(base + _by_hand(model) + extra, rel=1e-5)


# ---------------------------------------------------------------- Keras as the oracle


def _oracle_models(module, kind, conv):
    reg = module.regularizers
    make = {
        "l1": lambda: reg.L1(0.01),
        "l2": lambda: reg.L2(0.02),
        "l1_l2": lambda: reg.L1L2(l1=0.01, l2=0.02),
    }[kind]
    if conv:
        return module.Sequential([
            module.Input((6, 6, 2)),
            module.layers.Conv2D(3, 3, activation="relu", kernel_regularizer=make(),
                                 bias_regularizer=make()),
            module.layers.Flatten(),
            module.layers.Dense(1, kernel_regularizer=make()),
        ])  # fmt: skip
    return module.Sequential([
        module.Input((4,)),
        module.layers.Dense(5, activation="tanh", kernel_regularizer=make(),
                            bias_regularizer=make()),
        module.layers.Dense(1, kernel_regularizer=make()),
    ])  # fmt: skip


@pytest.mark.parametrize("conv", [False, True], ids=["dense", "conv2d"])
@pytest.mark.parametrize("kind", ["l1", "l2", "l1_l2"])
def test_training_matches_keras(kind, conv):
    k = keras_real()
    rng = np.random.default_rng(3)
    shape = (6, 6, 2) if conv else (4,)
    x = rng.standard_normal((48, *shape)).astype(np.float32)
    y = (x.reshape(48, -1).sum(axis=1, keepdims=True) * 0.1).astype(np.float32)
    xv, yv = x[:16] + 0.5, y[:16]
    theirs, ours = _oracle_models(k, kind, conv), _oracle_models(keras, kind, conv)
    ours.build()
    # no weight at exactly 0 (the zero biases): there L1's gradient is a choice (funcnn's
    # sign(0) = 0, TensorFlow's too; JAX's d|x|/dx at 0 is 1)
    start = [
        (np.asarray(w) + 0.1 * rng.standard_normal(np.shape(w))).astype(np.float32)
        for w in theirs.get_weights()
    ]
    theirs.set_weights(start)
    ours.set_weights(start)
    histories = []
    for model, module in ((theirs, k), (ours, keras)):
        model.compile(optimizer=module.optimizers.SGD(0.05), loss="mse")
        histories.append(
            model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
                      validation_data=(xv, yv)).history
        )  # fmt: skip
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4)
    np.testing.assert_allclose(
        ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-4
    )


def test_penalty_of_a_layer_with_no_regularizer_is_none():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    model.build()
    assert regularizers.penalty(model.layers, model.params) is None
    extra = losses.l1_penalty(0.1)
    assert regularizers.penalty(model.layers, model.params, extra) is extra
