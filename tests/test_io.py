"""Save/load: exact round trips, rejected files, atomic writes, no code execution."""

import json
import zipfile
from typing import NamedTuple

import attrs
import numpy as np
import pytest

from funcnn import initializers as I
from funcnn import io, linalg, optim, tree
from funcnn import layers as L
from funcnn.io import saving

EVERY_LAYER = L.serial(
    L.Dense(6, w_init=I.he_normal, b_init=I.constant(0.1)),
    L.Relu,
    L.Dropout(0.25),
    L.FanOut(2),
    L.parallel(
        L.serial(L.Dense(4, use_bias=False, w_init=I.orthogonal), L.Tanh),
        L.serial(L.Dense(4, w_init=I.normal(0.3)), L.LeakyRelu(0.2)),
    ),
    L.FanInSum,
    L.FanOut(2),
    L.parallel(L.Sigmoid, L.Identity),
    L.FanInConcat(),
    L.Reshape((2, 4)),
    L.Dense(3, w_init=I.uniform(0.2)),
    L.Flatten,
    *[L.Softplus, L.Elu, L.Selu, L.Gelu, L.Linear, L.Softmax, L.LogSoftmax],
)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_identical_for_every_layer(tmp_path, suffix, dtype):
    params = EVERY_LAYER.init(0, (5,), dtype=dtype)
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adamw(0.01))
    opt_state = opt.init(params)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(dtype)
    grads = tree.map(np.ones_like, params)
    _, opt_state = opt.update(grads, opt_state, params)
    history = {"epoch": [0], "loss": [0.5]}
    path = io.save(
        tmp_path / f"m{suffix}",
        EVERY_LAYER,
        params,
        opt_state=opt_state,
        history=history,
        epoch=1,
        input_shape=(5,),
    )
    c = io.load(path)
    assert c.model == EVERY_LAYER and repr(c.model) == repr(EVERY_LAYER)
    assert tree.structure_difference(c.params, params) is None
    for a, b in zip(tree.leaves(params), tree.leaves(c.params)):
        assert a.dtype == b.dtype and np.array_equal(a, b) and not b.flags.writeable
    for a, b in zip(tree.leaves(opt_state), tree.leaves(c.opt_state)):
        assert type(a) is type(b) and np.array_equal(a, b)
    assert type(c.opt_state) is type(opt_state)
    assert tree.structure_difference(c.opt_state, opt_state) is None
    assert c.history == history and c.epoch == 1 and c.input_shape == (5,)
    assert np.array_equal(c.model.apply(c.params, x), EVERY_LAYER.apply(params, x))


CNN = L.serial(
    L.Conv2D(4, (3, 2), strides=(1, 2), padding="same", dilation=1),
    L.BatchNorm(momentum=0.9),
    L.Relu,
    L.MaxPool2D(2, padding="same"),
    L.ZeroPadding2D(((1, 0), (0, 1))),
    L.AvgPool2D(2, strides=1),
    L.Conv2D(3, 2, padding=((1, 1), (0, 0)), use_bias=False),
    L.LayerNorm(),
    L.GlobalMaxPool2D,
    L.Reshape((3, 1)),
    L.Conv1D(2, 1),
    L.MaxPool1D(1),
    L.AvgPool1D(1),
    L.GlobalAvgPool1D,
)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip_cnn_with_batchnorm_state(tmp_path, suffix):
    params, state = CNN.init(0, (8, 6, 2)), CNN.init_state((8, 6, 2))
    x = np.random.default_rng(0).standard_normal((3, 8, 6, 2)).astype(np.float32)
    _, state = CNN.apply_with_state(params, state, x, train=True)
    path = io.save(tmp_path / f"cnn{suffix}", CNN, params, state=state, input_shape=(8, 6, 2))
    c = io.load(path)
    assert c.model == CNN
    for a, b in zip(tree.leaves((params, state)), tree.leaves((c.params, c.state))):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    y1, _ = CNN.apply_with_state(params, state, x)
    y2, _ = c.model.apply_with_state(c.params, c.state, x)
    assert np.array_equal(y1, y2)


def test_json_export_is_human_readable(tmp_path):
    model = L.serial(L.Dense(2), L.Sigmoid)
    params = model.init(0, (3,))
    path = io.save(tmp_path / "m.json", model, params)
    doc = json.loads(path.read_text())
    assert doc["format"] == "funcnn" and doc["version"] == io.FORMAT_VERSION
    arrays = doc["arrays"]
    w = next(v for v in arrays.values() if v["shape"] == [3, 2])
    assert np.array_equal(np.array(w["data"], dtype=np.float32), params[0].w)


def test_provenance_records_the_settings_linalg_names():
    blocks = io.provenance()["blocks"]
    assert blocks == linalg.settings()
    names = ["ROWS", "BLOCK_FLOPS", "CHUNK", "TRAIN_BLOCK_FLOPS", "COLS", "MIN_TASKS"]
    assert list(blocks) == names  # the order the files have always had
    assert blocks["ROWS"] == linalg.ROWS and blocks["MIN_TASKS"] == linalg.MIN_TASKS


def save_one(tmp_path, name="m.npz"):
    model = L.serial(L.Dense(3), L.Relu, L.Dense(2))
    return io.save(tmp_path / name, model, model.init(0, (4,)), input_shape=(4,))


def test_save_checks_its_keywords(tmp_path):
    model = L.serial(L.Dense(3), L.Relu, L.Dense(2))
    params = model.init(0, (4,))
    for kwargs, error, message in (
        ({"metadata": "notes"}, TypeError, "metadata must be a dict"),
        ({"history": 3}, TypeError, "history must be a History or a dict of lists"),
        ({"history": {"loss": 0.5}}, TypeError, "history must be a History or a dict of lists"),
        ({"epoch": -1}, ValueError, "epoch must be an int >= 0"),
        ({"epoch": 2.5}, TypeError, "epoch must be an int >= 0"),
    ):
        with pytest.raises(error, match=message):
            io.save(tmp_path / "m.npz", model, params, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing was written


def test_truncated_file_rejected(tmp_path):
    path = save_one(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        io.load(path)
    jpath = save_one(tmp_path, "m.json")
    jpath.write_text(jpath.read_text()[:100])
    with pytest.raises(ValueError, match="truncated"):
        io.load(jpath)


def test_tampered_arrays_rejected(tmp_path):
    path = save_one(tmp_path)
    with np.load(path) as data:
        entries = {k: data[k] for k in data.files}
    key = next(k for k in entries if k != "__funcnn__")
    entries[key] = entries[key] + 1
    np.savez(path, **entries)
    with pytest.raises(ValueError, match="SHA-256"):
        io.load(path)
    jpath = save_one(tmp_path, "m.json")
    doc = json.loads(jpath.read_text())
    first = next(iter(doc["arrays"].values()))
    first["data"][0][0] += 1.0
    jpath.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="SHA-256"):
        io.load(jpath)


def test_wrong_version_and_foreign_files_rejected(tmp_path):
    jpath = save_one(tmp_path, "m.json")
    doc = json.loads(jpath.read_text())
    doc["version"] = 99
    jpath.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="version 99"):
        io.load(jpath)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(ValueError, match="not a funcnn file"):
        io.load(other)


def test_params_that_do_not_fit_the_architecture_rejected(tmp_path):
    model = L.serial(L.Dense(3), L.Relu, L.Dense(2))
    wrong = L.serial(L.Dense(5), L.Relu, L.Dense(2)).init(0, (4,))
    good = io.save(tmp_path / "m.npz", model, model.init(0, (4,)), input_shape=(4,))
    before = good.read_bytes()
    with pytest.raises(ValueError, match=r"cannot save .* do not fit the architecture"):
        io.save(good, model, wrong, input_shape=(4,))
    assert good.read_bytes() == before  # the good file is untouched
    with pytest.raises(ValueError, match="params must be float arrays, got a str"):
        io.save(good, model, ("w", "b"), input_shape=(4,))
    # a file written by something that did not check (here: save without running the layers)
    path = io.save(tmp_path / "wrong.npz", model, wrong, input_shape=(4,), check_layers=False)
    with pytest.raises(ValueError, match="do not fit the architecture"):
        io.load(path)


def test_loading_never_unpickles(tmp_path):
    path = save_one(tmp_path)
    with np.load(path) as data:
        entries = {k: data[k] for k in data.files}
    entries["evil"] = np.array([object()], dtype=object)  # needs pickle to load
    np.savez(path, **entries)
    with pytest.raises(ValueError, match=r"truncated or corrupted|pickle"):
        io.load(path)


def test_unknown_class_names_are_not_imported(tmp_path):
    jpath = save_one(tmp_path, "m.json")
    doc = json.loads(jpath.read_text())
    doc["model"] = {"class": "os.system", "fields": {}}
    # re-sign the file so that only the registry stands between it and the class name
    arrays = {
        k: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
        for k, v in doc["arrays"].items()
    }
    meta = {k: v for k, v in doc.items() if k not in ("arrays", "sha256")}
    doc["sha256"] = saving._digest(meta, arrays)
    jpath.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"unknown class 'os\.system'"):
        io.load(jpath)


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_one(tmp_path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    model = L.serial(L.Dense(3))
    with pytest.raises(OSError, match="disk full"):
        io.save(path, model, model.init(1, (4,)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left
    monkeypatch.undo()
    assert io.load(path).model == L.serial(L.Dense(3), L.Relu, L.Dense(2))


def test_layers_of_ones_own_register_themselves(tmp_path):
    custom = L.elementwise("Cube", lambda x: x**3, lambda x, y, dy: 3 * x * x * dy)

    @attrs.frozen
    class Scale(L.Layer):
        factor: float = 2.0

        def forward_with_state(self, params, state, x, *, train=False, rng=None):
            return x * self.factor, state, None

        def backward(self, params, cache, dy, *, need_dx=True):
            return (), dy * self.factor

    model = L.serial(L.Dense(2), custom, Scale(3.0))
    path = io.save(tmp_path / "m.npz", model, model.init(0, (2,)))
    loaded = io.load(path).model
    assert loaded.layers[1] is custom and loaded.layers[2] == Scale(3.0)


def test_unregistered_values_name_the_fix(tmp_path):
    class Record(NamedTuple):
        a: np.ndarray

    with pytest.raises(ValueError, match="register"):
        io.save(tmp_path / "m.npz", L.Dense(2), L.Dense(2).init(0, (2,)), state=Record(np.ones(2)))
    io.register(Record)
    path = io.save(
        tmp_path / "m.npz", L.Dense(2), L.Dense(2).init(0, (2,)), state=Record(np.ones(2))
    )
    assert isinstance(io.load(path).state, Record)


def test_zip_is_a_plain_npz(tmp_path):
    path = save_one(tmp_path)
    with zipfile.ZipFile(path) as z:
        assert "__funcnn__.npy" in z.namelist()
