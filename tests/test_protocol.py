"""One protocol test over every layer funcnn exports: exporting a layer is what tests it.

``EXAMPLES`` must name an instance of every layer in ``funcnn.layers.__all__`` (a
new export without an entry fails ``test_every_exported_layer_has_an_example``).
Each example runs ``check_layer`` (shape inference, apply == forward bit for bit,
read-only params, purity, float64 finite differences of grads and dx) in
inference and training mode, and a save/load round trip.
"""

import numpy as np
import pytest

from funcnn import io, tree
from funcnn import layers as L
from funcnn.testing import check_layer

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so a path that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")

EXAMPLES = {
    "Activation": (L.elementwise("Square", np.square, lambda x, y, dy: 2 * x * dy), (4,)),
    "AvgPool1D": (L.AvgPool1D(2), (6, 2)),
    "AvgPool2D": (L.AvgPool2D(2, strides=1, padding="same"), (4, 3, 2)),
    "BatchNorm": (L.BatchNorm(), (5,)),
    "Conv1D": (L.Conv1D(2, 3, padding="same"), (5, 2)),
    "Conv2D": (L.Conv2D(2, (2, 3), strides=(1, 2)), (4, 5, 2)),
    "Dense": (L.Dense(3), (4,)),
    "Dropout": (L.Dropout(0.4), (6,)),
    "Elu": (L.Elu, (4,)),
    "FanInConcat": (L.FanInConcat(), ((2,), (3,))),
    "FanInSum": (L.FanInSum, ((3,), (3,))),
    "FanOut": (L.FanOut(2), (3,)),
    "Flatten": (L.Flatten, (2, 3)),
    "Gelu": (L.Gelu, (4,)),
    "GlobalAvgPool1D": (L.GlobalAvgPool1D, (5, 2)),
    "GlobalAvgPool2D": (L.GlobalAvgPool2D, (3, 4, 2)),
    "GlobalMaxPool1D": (L.GlobalMaxPool1D, (5, 2)),
    "GlobalMaxPool2D": (L.GlobalMaxPool2D, (3, 4, 2)),
    "Graph": (  # a residual block with an unused branch, and a Dropout inside
        L.Graph(
            (L.Dense(3), L.Tanh, L.Dense(3), L.FanInSum, L.Dropout(0.5), L.Dense(2)),
            ((0,), (1,), (2,), (1, 3), (4,), (1,)),
            outputs=(5,),
        ),
        (4,),
    ),
    "Graph two inputs, two outputs": (
        L.Graph(
            (L.Dense(3), L.Dense(3), L.FanInConcat(), L.BatchNorm(), L.Dense(1)),
            ((0,), (1,), (2, 3), (4,), (5,)),
            inputs=2,
            outputs=(6, 2),
        ),
        ((2,), (4,)),
    ),
    "Identity": (L.Identity, (3,)),
    "LayerNorm": (L.LayerNorm(), (2, 5)),
    "LeakyRelu": (L.LeakyRelu(0.2), (4,)),
    "Linear": (L.Linear, (4,)),
    "LogSoftmax": (L.LogSoftmax, (4,)),
    "MaxPool1D": (L.MaxPool1D(2, strides=1), (5, 2)),
    "MaxPool2D": (L.MaxPool2D(2), (4, 4, 1)),
    "MaxPool2D gaps": (L.MaxPool2D((1, 2), strides=(2, 3)), (4, 6, 2)),  # unread positions
    "Parallel": (L.parallel(L.Dense(2), L.serial(L.BatchNorm(), L.Dropout(0.5))), ((3,), (2,))),
    "Relu": (L.Relu, (4,)),
    "Reshape": (L.Reshape((2, -1)), (6,)),
    "Selu": (L.Selu, (4,)),
    "Serial": (L.serial(L.Dense(3), L.BatchNorm(), L.Dropout(0.3), L.Tanh), (4,)),
    "Sigmoid": (L.Sigmoid, (4,)),
    "Softmax": (L.Softmax, (4,)),
    "Softplus": (L.Softplus, (4,)),
    "Tanh": (L.Tanh, (4,)),
    # merges, moves, noise, preprocessing
    "GaussianDropout": (L.GaussianDropout(0.3), (2, 3)),
    "GaussianNoise": (L.GaussianNoise(0.5), (4,)),
    "Merge": (L.Merge("multiply"), ((3,), (3,), (3,))),
    "Merge subtract": (L.Merge("subtract"), ((2, 3), (2, 3))),
    "Merge average": (L.Merge("average"), ((3,), (3,), (3,))),
    "Merge maximum": (L.Merge("maximum"), ((4,), (4,))),
    "Merge minimum": (L.Merge("minimum"), ((4,), (4,), (4,))),
    "Merge multiply broadcast": (L.Merge("multiply"), ((2, 3), (1, 3), (3,))),
    "Merge maximum broadcast": (L.Merge("maximum"), ((2, 3), (3,))),
    "Merge subtract broadcast": (L.Merge("subtract"), ((2, 1, 3), (2, 4, 1))),
    "Merge average broadcast": (L.Merge("average"), ((3,), (2, 3))),
    "Normalization": (L.Normalization(mean=[0.5, -1.0], variance=[4.0, 0.25]), (3, 2)),
    "Normalization axis 1, default stats": (L.Normalization(axis=1), (3, 2)),
    "Normalization axis None": (L.Normalization(mean=[1.0], variance=[2.0], axis=None), (3, 2)),
    "Normalization constant": (
        L.Normalization(mean=[0.5, 1.0], variance=[4.0, 9.0], constant=True),
        (3, 2),
    ),
    "Permute": (L.Permute((3, 1, 2)), (2, 3, 4)),
    "RandomFlip": (L.RandomFlip(), (3, 4, 2)),
    "RandomFlip horizontal": (L.RandomFlip("horizontal"), (3, 4, 2)),
    "RandomRotation": (L.RandomRotation(0.2), (4, 5, 2)),
    "RandomRotation constant, nearest": (
        L.RandomRotation((0.1, 0.3), fill_mode="constant", interpolation="nearest", fill_value=0.5),
        (5, 4, 1),
    ),
    "RandomRotation wrap": (L.RandomRotation(0.4, fill_mode="wrap"), (4, 4, 1)),
    "RandomZoom": (L.RandomZoom(0.3), (4, 5, 2)),
    "RandomZoom width, constant": (
        L.RandomZoom((-0.3, -0.1), (0.1, 0.4), fill_mode="constant"),
        (5, 4, 1),
    ),
    "RandomTranslation": (L.RandomTranslation(0.2, (-0.3, 0.1)), (4, 5, 2)),
    "RandomRotation nearest fill": (L.RandomRotation(0.4, fill_mode="nearest"), (3, 4, 1)),
    "RepeatVector": (L.RepeatVector(3), (4,)),
    "Rescaling": (L.Rescaling(1 / 255, offset=-0.5), (2, 3)),
    "SpatialDropout": (L.SpatialDropout(0.4), (3, 4, 2)),
    # sequences
    "Bidirectional": (L.Bidirectional(L.LSTM(3, return_sequences=True)), (4, 2)),
    "Bidirectional sum, states": (
        L.Bidirectional(L.GRU(2, return_state=True), merge_mode="sum"),
        (3, 2),
    ),
    "Discretization": (L.Discretization([-0.5, 0.0, 0.5]), (5,)),
    "Embedding": (L.serial(L.Discretization([-1.0, 0.0, 1.0]), L.Embedding(4, 3)), (5,)),
    "Embedding masks an LSTM": (  # ids 0 (x < -0.3) are padding: masks through the stack
        L.serial(
            L.Discretization([-0.3, 0.5]),
            L.Embedding(3, 2, mask_zero=True),
            L.LSTM(3, return_sequences=True),
            L.per_step(L.Dense(2)),
            L.MaskedGlobalAvgPool1D,
        ),
        (5,),
    ),
    "RNN GRU reversed": (L.GRU(3, return_sequences=True, reverse=True), (4, 2)),
    "GRUCell": (L.GRUCell(3), ((2,), (3,))),
    "RNN LSTM with state": (L.LSTM(3, return_state=True), (4, 2)),
    "LSTMCell": (L.LSTMCell(2), ((3,), (2,), (2,))),
    "MaskedGlobalAvgPool1D": (L.MaskedGlobalAvgPool1D, (4, 3)),
    "MaskedGlobalMaxPool1D": (L.MaskedGlobalMaxPool1D, (4, 3)),
    "PerStep": (L.per_step(L.Dense(2)), (3, 4)),
    "RNN": (L.RNN(L.SimpleRNNCell(3, activation=L.Relu)), (4, 2)),
    "RNN SimpleRNN sequences and state": (
        L.SimpleRNN(3, return_sequences=True, return_state=True),
        (4, 2),
    ),
    "SimpleRNNCell": (L.SimpleRNNCell(3), ((2,), (3,))),
    "SimpleRNNCell dropouts, no bias": (
        L.SimpleRNNCell(3, use_bias=False, dropout=0.3, recurrent_dropout=0.2),
        ((2,), (3,)),
    ),
    "GRUCell reset before": (L.GRUCell(3, reset_after=False), ((2,), (3,))),
    "RNN GRU reset before, dropouts, no bias": (
        L.GRU(3, reset_after=False, use_bias=False, dropout=0.2, recurrent_dropout=0.3),
        (4, 2),
    ),
    "RNN LSTM dropouts, sequences": (
        L.LSTM(3, dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
        (4, 2),
    ),
    "Bidirectional GRU dropouts": (
        L.Bidirectional(L.GRU(2, recurrent_dropout=0.4, return_sequences=True)),
        (3, 2),
    ),
    "ZeroPadding2D": (L.ZeroPadding2D(((1, 0), (0, 2))), (2, 3, 1)),
    # attention and transformers
    "AttentionPool1D": (L.AttentionPool1D(), (4, 3)),
    "MultiHeadAttention": (L.MultiHeadAttention(2, 3, dropout=0.3), (4, 5)),
    "MultiHeadAttention causal, rotary, no bias": (
        L.MultiHeadAttention(
            2, 2, value_dim=3, output_dim=2, causal=True, rotary=True, use_bias=False
        ),
        (4, 5),
    ),
    "MultiHeadAttention cross, own keys": (L.MultiHeadAttention(2, 3), ((3, 4), (5, 2), (5, 3))),
    "MultiHeadAttention masked": (  # ids 0 are padding: a key padding mask, passed on
        L.serial(
            L.Discretization([-0.3, 0.5]),
            L.Embedding(3, 4, mask_zero=True),
            L.MultiHeadAttention(2, 2, causal=True),
            L.AttentionPool1D(),
        ),
        (5,),
    ),
    "PositionalEmbedding": (L.PositionalEmbedding(6, 3), (4, 3)),
    "SinusoidalEncoding": (L.SinusoidalEncoding(), (4, 3)),
    "Residual masked transformer encoder": (
        L.serial(
            L.Discretization([-0.3, 0.5]),
            L.Embedding(3, 4, mask_zero=True),
            L.PositionalEmbedding(6, 4),
            L.TransformerEncoder(4, 2, 1, 6, dropout=0.2, attention_dropout=0.1),
            L.MaskedGlobalAvgPool1D,
        ),
        (5,),
    ),
    "Residual decoder-only transformer": (
        L.serial(L.Discretization([-0.5, 0.5]), L.DecoderOnlyTransformer(3, 6, 4, 2, 1, 6)),
        (5,),
    ),
    # the convolution family
    "Conv1D groups": (L.Conv1D(4, 2, groups=2, strides=2), (5, 4)),
    "Conv1DTranspose": (L.Conv1DTranspose(2, 3, strides=2, padding="same"), (4, 2)),
    "Conv2D groups": (L.Conv2D(4, 2, groups=2, padding="same"), (3, 4, 6)),
    "Conv2DTranspose": (L.Conv2DTranspose(2, 3, strides=2, output_padding=1), (3, 2, 2)),
    "Conv2DTranspose same": (
        L.Conv2DTranspose(3, (2, 3), strides=(2, 1), padding="same"),
        (2, 3, 2),
    ),
    "Cropping1D": (L.Cropping1D((1, 2)), (5, 2)),
    "Cropping2D": (L.Cropping2D(((1, 0), (0, 2))), (3, 4, 2)),
    "DepthwiseConv2D": (L.DepthwiseConv2D(2, 2, strides=2, padding="same"), (3, 4, 2)),
    "SeparableConv2D": (L.SeparableConv2D(3, 2, 2), (3, 3, 2)),
    "UpSampling1D": (L.UpSampling1D(3), (3, 2)),
    "UpSampling2D": (L.UpSampling2D((2, 3)), (2, 2, 2)),
    "UpSampling2D bilinear": (L.UpSampling2D(2, interpolation="bilinear"), (3, 2, 2)),
    "ZeroPadding1D": (L.ZeroPadding1D((2, 1)), (3, 2)),
}


def exported_layers() -> set[str]:
    def is_layer(obj):
        return isinstance(obj, L.Layer) or (isinstance(obj, type) and issubclass(obj, L.Layer))

    return {name for name in L.__all__ if is_layer(getattr(L, name)) and name != "Layer"}


def test_every_exported_layer_has_an_example():
    named = {name.split()[0] for name in EXAMPLES}
    missing = exported_layers() - named
    assert not missing, f"add an example of each to EXAMPLES: {sorted(missing)}"
    assert named <= exported_layers()


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_protocol(name, train):
    layer, input_shape = EXAMPLES[name]
    check_layer(layer, input_shape, batch_sizes=(1, 3) if not train else (3,), train=train)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_save_load_round_trip(name, tmp_path):
    layer, input_shape = EXAMPLES[name]
    params = layer.init(0, input_shape)
    state = layer.init_state(input_shape)
    c = io.load(io.save(tmp_path / "m.npz", layer, params, state=state, input_shape=input_shape))
    assert c.model == layer and repr(c.model) == repr(layer)
    for a, b in zip(tree.leaves((params, state)), tree.leaves((c.params, c.state))):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_empty_batch_gives_an_empty_output(name):
    """Inference on zero examples (an empty test split, a filter that kept nothing) gives
    zero outputs of the right shape: no error, no NaN warning."""
    layer, input_shape = EXAMPLES[name]
    params = layer.init(0, input_shape)
    state = layer.init_state(input_shape)
    shapes = input_shape if isinstance(input_shape[0], tuple) else (input_shape,)
    xs = tuple(np.zeros((0, *s), np.float32) for s in shapes)
    y, _ = layer.apply_with_state(params, state, xs if len(xs) > 1 else xs[0])
    expected = layer.output_shape(input_shape)
    ys = y if isinstance(y, tuple) else (y,)
    wants = expected if isinstance(expected[0], tuple) else (expected,)
    assert [a.shape for a in ys] == [(0, *s) for s in wants]
