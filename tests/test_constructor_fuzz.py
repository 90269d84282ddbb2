"""Random constructor arguments either work or raise TypeError/ValueError: never another
exception (AttributeError, ZeroDivisionError, RecursionError...)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import callbacks as C
from funcnn import datasets, losses, metrics, optim, schedules
from funcnn import layers as L
from funcnn.keras import layers as K
from funcnn.keras import optimizers as KO

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.tuples(st.integers(-1, 3), st.integers(-1, 3)),
    st.just(np.float32(0.5)),
    st.just(np.int64(2)),
    st.lists(st.integers(-1, 3), max_size=3),
)

MAKERS = {
    "Dense": L.Dense,
    "Dropout": L.Dropout,
    "LeakyRelu": L.LeakyRelu,
    "Reshape": L.Reshape,
    "FanOut": L.FanOut,
    "FanInConcat": L.FanInConcat,
    "Conv2D filters": lambda v: L.Conv2D(v, 3),
    "Conv2D kernel": lambda v: L.Conv2D(2, v),
    "Conv2D padding": lambda v: L.Conv2D(2, 3, padding=v),
    "Conv1D": lambda v: L.Conv1D(2, v),
    "MaxPool2D": L.MaxPool2D,
    "AvgPool2D strides": lambda v: L.AvgPool2D(2, strides=v),
    "MaxPool1D": L.MaxPool1D,
    "ZeroPadding2D": L.ZeroPadding2D,
    "BatchNorm momentum": L.BatchNorm,
    "BatchNorm eps": lambda v: L.BatchNorm(eps=v),
    "LayerNorm": L.LayerNorm,
    "sgd": optim.sgd,
    "sgd momentum": lambda v: optim.sgd(0.1, momentum=v),
    "adam": optim.adam,
    "adam b1": lambda v: optim.adam(1e-3, b1=v),
    "rmsprop": optim.rmsprop,
    "adagrad": optim.adagrad,
    "lion": optim.lion,
    "clip": optim.clip,
    "clip_by_global_norm": optim.clip_by_global_norm,
    "multi_steps": lambda v: optim.multi_steps(optim.sgd(0.1), v),
    "apply_if_finite": lambda v: optim.apply_if_finite(optim.sgd(0.1), v),
    "exponential_decay": lambda v: schedules.exponential_decay(v, 10, 0.5),
    "cosine_decay": lambda v: schedules.cosine_decay(0.1, v),
    "piecewise_constant": lambda v: schedules.piecewise_constant(0.1, {v: 0.5}),
    "linear_schedule begin": lambda v: schedules.linear_schedule(1.0, 0.0, 10, v),
    "join_schedules": lambda v: schedules.join_schedules([schedules.constant(1.0)] * 2, [v]),
    "warmup_cosine_decay": lambda v: schedules.warmup_cosine_decay(0.0, 1.0, v, 10),
    "step_decay": lambda v: schedules.step_decay(0.1, 0.5, v),
    "EarlyStopping": lambda v: C.EarlyStopping(patience=v),
    "EarlyStopping min_delta": lambda v: C.EarlyStopping(min_delta=v),
    "EarlyStopping monitor": lambda v: C.EarlyStopping(monitor=v),
    "EarlyStopping mode": lambda v: C.EarlyStopping(mode=v),
    "EarlyStopping baseline": lambda v: C.EarlyStopping(baseline=v),
    "ModelCheckpoint": lambda v: C.ModelCheckpoint(v),
    "ModelCheckpoint threshold": lambda v: C.ModelCheckpoint("m.npz", initial_value_threshold=v),
    "CSVLogger": lambda v: C.CSVLogger(v),
    "LearningRateScheduler": C.LearningRateScheduler,
    "accuracy threshold": lambda v: metrics.accuracy(np.zeros(3), np.zeros(3), threshold=v),
    "top_k_accuracy": lambda v: metrics.top_k_accuracy(np.eye(3), np.arange(3), k=v),
    "confusion_matrix": lambda v: metrics.confusion_matrix(np.eye(3), np.arange(3), v),
    "metrics.get": metrics.get,
    "moons": lambda v: datasets.moons(v),
    "moons noise": lambda v: datasets.moons(10, noise=v),
    "blobs": lambda v: datasets.blobs(v),
    "one_hot": lambda v: datasets.one_hot([0, 1, 2], v),
    "keras Dense": K.Dense,
    "keras Dense activation": lambda v: K.Dense(2, activation=v),
    "keras Dense initializer": lambda v: K.Dense(2, kernel_initializer=v),
    "keras Conv2D": lambda v: K.Conv2D(2, v),
    "keras Conv2D strides": lambda v: K.Conv2D(2, 3, strides=v),
    "keras MaxPooling2D": K.MaxPooling2D,
    "keras Dropout": K.Dropout,
    "keras BatchNormalization": lambda v: K.BatchNormalization(momentum=v),
    "keras Reshape": K.Reshape,
    "keras LeakyReLU": K.LeakyReLU,
    "keras Input": K.Input,
    "keras Adam": KO.Adam,
    "keras SGD momentum": lambda v: KO.SGD(momentum=v),
    "keras RMSprop rho": lambda v: KO.RMSprop(rho=v),
    "keras clipnorm": lambda v: KO.Adam(clipnorm=v),
    "ReduceLROnPlateau": lambda v: C.ReduceLROnPlateau(factor=v),
    "huber": losses.huber,
    "l2_penalty": losses.l2_penalty,
}


@pytest.mark.parametrize("name", sorted(MAKERS))
@settings(max_examples=40, deadline=None, database=None)
@given(value=VALUES)
def test_constructors_work_or_raise_type_or_value_errors(name, value):
    try:
        MAKERS[name](value)
    except (TypeError, ValueError):
        pass
