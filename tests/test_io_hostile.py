"""load is safe on any file; save never replaces a good file with one load refuses.

The hostile files are written by the tests: each must raise funcnn.io.LoadError (a
ValueError) naming the file, or an OS error, within bounded time and memory.
"""

import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from funcnn import io, optim, tree
from funcnn import layers as L
from funcnn.io import files, saving

MODEL = L.serial(L.Dense(3), L.Relu, L.Dense(2))
FIXTURE = [HealthCheck.function_scoped_fixture]


def good(path, **kwargs):
    params = MODEL.init(0, (4,))
    opt_state = optim.adam(1e-3).init(params)
    return io.save(path, MODEL, params, opt_state=opt_state, input_shape=(4,), **kwargs)


def refused(path, match=None):
    with pytest.raises(io.LoadError, match=match) as info:
        io.load(path)
    assert str(path) in str(info.value)
    return info.value


def rewrite_json(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    meta.pop("sha256", None)
    arrays = meta.pop("arrays", None)
    meta["sha256"] = saving._digest(
        meta,
        {
            k: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
            for k, v in (arrays or {}).items()
        },
    )
    if arrays is not None:
        meta["arrays"] = arrays
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "text, match",
    [
        ("null", "not a JSON object"),
        ('"a string"', "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('{"format": "funcnn", "version": 1, "arrays": [1]}', "arrays must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"format": "funcnn", "version": 1}', "lacks sha256, model, params"),
        ('{"x": NaN}', "non-number NaN"),
        ("{", "not valid JSON"),
        ('{"format": "funcnn", "version": "1"}', "format version '1'"),
    ],
)
def test_hostile_json_files(tmp_path, text, match):
    path = tmp_path / "m.json"
    path.write_text(text)
    refused(path, match)


def test_dev_zero_behind_a_json_name(tmp_path):
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    refused(link, "not a regular file")


def test_os_errors_stay_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError):
        io.load(tmp_path)


def test_values_of_the_wrong_type_are_refused(tmp_path):
    path = good(tmp_path / "m.json")
    for change, match in [
        (lambda m: m.update(epoch="3"), "epoch is '3'"),
        (lambda m: m.update(history=[1, 2]), "history is not"),
        (lambda m: m["params"].update({"tuple": 5}), "expected a JSON list"),
        (lambda m: m.update(model={"class": 7}), "class name must be a string"),
        (lambda m: m.update(model={"class": "Dense", "fields": {"units": 10**6}}), "do not fit"),
        (lambda m: m.update(input_shape={"tuple": [{"int": 10**9}]}), "larger than such"),
        (lambda m: m.update(model={"class": "Dense", "fields": []}), "must be a JSON object"),
    ]:
        broken = tmp_path / "broken.json"
        broken.write_text(path.read_text())
        rewrite_json(broken, change)
        refused(broken, match)


def test_missing_keys_are_named(tmp_path):
    path = good(tmp_path / "m.json")
    for key in ("model", "params", "input_shape", "history"):
        broken = tmp_path / f"no-{key}.json"
        broken.write_text(path.read_text())
        rewrite_json(broken, lambda m, key=key: m.pop(key))
        refused(broken, f"lacks {key}")


def test_an_npz_member_that_declares_more_than_it_holds(tmp_path):
    path = tmp_path / "big.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (10**12,)
    with zipfile.ZipFile(path, "w") as z:
        with z.open("a0.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
        meta = np.array('{"format": "funcnn"}')
        with z.open(f"{files.META_KEY}.npy", "w") as f:
            np.lib.format.write_array(f, meta)
    refused(path, r"declares \(1000000000000,\)")


def test_object_and_foreign_npz_members_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, a0=np.array([1 + 2j]))
    refused(path, "only bool, int and float arrays")
    path = tmp_path / "foreign.npz"
    np.savez(path, x=np.ones(3))
    refused(path, "no __funcnn__ entry")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_random_corruptions_raise_only_allowed_errors(tmp_path, suffix, data):
    path = good(tmp_path / f"m{suffix}")
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del raw[at : at + data.draw(st.integers(1, 64))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(bytes(raw))
    try:
        io.load(broken)
    except io.LoadError as e:
        assert str(broken) in str(e)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    leaves=st.lists(
        st.tuples(
            st.sampled_from(["float32", "float64", "int32", "int64", "bool", "uint8"]),
            st.lists(st.integers(0, 3), max_size=3),
        ),
        max_size=5,
    ),
    as_list=st.booleans(),
)
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_random_trees_round_trip(tmp_path, suffix, leaves, as_list):
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal(shape) * 100).astype(dtype) for dtype, shape in leaves]
    state = {"leaves": list(arrays) if as_list else tuple(arrays), "n": 3, "x": 0.1}
    path = io.save(tmp_path / f"m{suffix}", L.Dense(2), L.Dense(2).init(0, (2,)), state=state)
    loaded = io.load(path).state
    assert loaded["n"] == 3 and loaded["x"] == 0.1
    assert type(loaded["leaves"]) is type(state["leaves"])
    for a, b in zip(arrays, loaded["leaves"]):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


# ---------------------------------------------------------------- save


def test_save_refuses_arrays_load_would_refuse_before_writing(tmp_path):
    path = good(tmp_path / "m.npz")
    before = path.read_bytes()
    for bad in (np.array([1 + 1j]), np.array(["a"]), np.array([object()], dtype=object)):
        with pytest.raises(ValueError, match="only bool, int and float arrays"):
            io.save(path, MODEL, MODEL.init(0, (4,)), state=bad)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_modes_read_only_files_symlinks_and_long_names(tmp_path):
    old = os.umask(0o027)
    try:
        path = good(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.chmod(0o604)
    good(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o604
    if os.geteuid() != 0:  # root may write anything
        path.chmod(0o444)
        with pytest.raises(PermissionError):
            good(path)
        path.chmod(0o644)
    target = tmp_path / "real.npz"
    good(target)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    good(link, epoch=7)
    assert link.is_symlink() and io.load(target).epoch == 7
    long = tmp_path / ("x" * 241 + ".npz")
    assert io.load(good(long)).epoch is None
    upper = good(tmp_path / "m.JSON")
    assert upper.read_text().lstrip().startswith("{")


SAVER = """
import sys
from funcnn import io, layers as L
model = L.serial(L.Dense(64), L.Dense(64))
params = model.init(0, (256,))
print("ready", flush=True)
while True:
    io.save(sys.argv[1], model, params, input_shape=(256,))
"""


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_kill_during_save_never_loses_the_file(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    good(path)
    for round_ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.03 * round_)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        io.load(path)  # the previous file, or the new one: never a broken one
    good(path)  # the next save removes what the killed processes left behind
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- save writes only what loads

NON_FINITE = [math.nan, math.inf, -math.inf]


def same(saved, loaded):
    """``loaded`` is what ``saved`` was: the same types (a NumPy scalar comes back as the
    Python number it equals), nan for nan, -0.0 for -0.0."""
    if isinstance(saved, np.generic):
        saved = saved.item()
    if type(saved) is not type(loaded):
        return False
    if isinstance(saved, float):
        return repr(saved) == repr(loaded)
    if isinstance(saved, list):
        return len(saved) == len(loaded) and all(map(same, saved, loaded))
    if isinstance(saved, dict):
        return list(saved) == list(loaded) and all(same(saved[k], loaded[k]) for k in saved)
    return saved == loaded


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_non_finite_history_and_metadata_round_trip(tmp_path, suffix):
    path = good(tmp_path / f"m{suffix}")
    history = {"epoch": [0, 1, 2, 3], "loss": [0.5, *NON_FINITE], "val_loss": [-0.0, 1e308, 0, 1]}
    metadata = {
        "best": -math.inf,
        "runs": [{"score": math.nan}, [math.inf]],
        # what the encoding of non-finite floats uses, as a user's own keys and values
        "$float": "nan",
        "tagged": {"$float": "inf"},
        "escaped": {"$dict": {"$float": "nan"}},
        "empty": {"$dict": {}},
    }
    good(path, history=history, metadata=metadata)
    c = io.load(path)
    assert same(history, c.history) and same(metadata, c.metadata)
    if suffix == ".json":  # strict JSON: no NaN or Infinity tokens that other readers refuse
        json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_checkpoint_of_a_diverging_run_loads(tmp_path, suffix):
    from funcnn import callbacks, losses, train

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)).astype(np.float32), rng.standard_normal((32, 2))
    checkpoint = callbacks.ModelCheckpoint(tmp_path / f"e{{epoch}}{suffix}")
    with np.errstate(over="ignore", invalid="ignore"):
        _, history = train.fit(
            MODEL, MODEL.init(0, (4,)), losses.mean_squared_error, optim.sgd(1e12), x,
            y.astype(np.float32), epochs=3, callbacks=[checkpoint], verbose=0,
        )  # fmt: skip
    assert not all(math.isfinite(v) for v in history["loss"])
    c = io.load(tmp_path / f"e3{suffix}")
    assert same(history.to_dict(), c.history)


@pytest.mark.parametrize(
    "metadata, error, message",
    [
        ({"a": {"b": (1, 2)}}, TypeError, r"metadata\['a'\]\['b'\] is a tuple"),
        ({"a": [1, {2, 3}]}, TypeError, r"metadata\['a'\]\[1\] has type set"),
        ({"a": object()}, TypeError, r"metadata\['a'\] has type object"),
        ({"a": b"bytes"}, TypeError, r"metadata\['a'\] has type bytes"),
        ({"a": np.ones(2)}, TypeError, r"metadata\['a'\] has type ndarray"),
        ({"a": np.longdouble(1) / 3}, ValueError, r"metadata\['a'\] .*not exactly a float"),
        ({1: "x"}, TypeError, r"metadata has the key 1 \(int\)"),
        ({"a": {None: 1}}, TypeError, r"metadata\['a'\] has the key None"),
        ({"a": [[[[[[[[[[]]]]]]]]]] * 1}, None, None),  # fine: ten levels
    ],
)
def test_save_refuses_metadata_load_would_not_give_back(tmp_path, metadata, error, message):
    path = good(tmp_path / "m.npz")
    before = path.read_bytes()
    if error is None:
        assert same(metadata, io.load(good(path, metadata=metadata)).metadata)
        return
    with pytest.raises(error, match=message):
        good(path, metadata=metadata)
    assert path.read_bytes() == before


def test_numpy_scalars_in_history_and_metadata_are_saved_as_the_numbers_they_are(tmp_path):
    history = {"loss": [np.float32(0.1), np.float64(0.2), np.float16(np.nan)]}
    metadata = {"n": np.int64(3), "ok": np.bool_(True), "lr": np.float32(1e-3)}
    c = io.load(good(tmp_path / "m.json", history=history, metadata=metadata))
    assert same(history, c.history) and same(metadata, c.metadata)
    assert c.history["loss"][0] == float(np.float32(0.1))


def test_save_refuses_tuples_and_deep_nesting_in_history(tmp_path):
    path = good(tmp_path / "m.json")
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"history\['loss'\] is a tuple.*list"):
        good(path, history={"loss": (0.5, 0.4)})
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"metadata\['x'\]\[0\]\[0\].* nested deeper than"):
        good(path, metadata={"x": deep})
    assert path.read_bytes() == before


def test_non_finite_floats_in_layer_fields_round_trip(tmp_path):
    from funcnn import initializers as I

    model = L.serial(
        L.Dense(2, b_init=I.constant(math.nan)), L.Dense(1, b_init=I.constant(-math.inf))
    )
    for suffix in (".npz", ".json"):
        c = io.load(io.save(tmp_path / f"m{suffix}", model, model.init(0, (3,))))
        assert repr(c.model) == repr(model)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_arrays_round_trip_bit_for_bit_in_json(tmp_path, dtype):
    # what a diverging run leaves in its params: inf, -inf, and NaNs of either sign
    values = np.array([1.5, np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0], dtype)
    all_ones = np.array([-1], np.int64).astype(f"u{values.itemsize}").view(dtype)  # a NaN
    values = np.concatenate([values, all_ones])
    params = L.Dense(2).init(0, (3,), dtype=dtype)._replace(b=values[1:3])
    state = {"v": values.reshape(2, 4), "scalar": np.array(np.nan, dtype), "empty": values[:0]}
    c = io.load(io.save(tmp_path / "m.json", L.Dense(2), params, state=state, input_shape=(3,)))
    for a, b in zip(tree.leaves((params, state)), tree.leaves((c.params, c.state))):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_save_refuses_arrays_a_json_file_cannot_hold_exactly(tmp_path):
    path = good(tmp_path / "m.json")
    before = path.read_bytes()
    thirds = np.array([1, 2], np.longdouble) / 3  # more digits than a Python float holds
    with pytest.raises(ValueError, match=r"cannot save a float(96|128) array in a \.json file"):
        io.save(path, MODEL, MODEL.init(0, (4,)), state=thirds)
    assert path.read_bytes() == before
    c = io.load(io.save(tmp_path / "m.npz", MODEL, MODEL.init(0, (4,)), state=thirds))
    assert c.state.tobytes() == thirds.tobytes()  # .npz holds them exactly


def json_values(keys):
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.sampled_from(NON_FINITE)
        | st.text(max_size=6)
        | st.sampled_from(["nan", "inf", "-inf", "$float", "$dict"])
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )


KEYS = st.text(max_size=6) | st.sampled_from(["$float", "$dict", "float", "dict"])
ODD = (
    st.builds(np.float32, st.floats(width=32))
    | st.builds(np.int64, st.integers(-(2**63), 2**63 - 1))
    | st.builds(np.bool_, st.booleans())
    | st.builds(tuple, st.lists(st.integers(), max_size=2))
    | st.frozensets(st.integers(), max_size=2)
    | st.just(object())
)
ANYTHING = st.recursive(
    json_values(KEYS) | ODD,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(KEYS | st.integers() | st.none(), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE)
@given(
    history=st.none() | st.dictionaries(st.text(max_size=6), st.lists(ANYTHING, max_size=4)),
    metadata=st.none() | st.dictionaries(KEYS, ANYTHING, max_size=4),
)
@example(history={"loss": [0.5, math.nan]}, metadata=None)  # written, then refused by load
@example(history=None, metadata={"shape": (28, 28)})  # given back as a list
@example(history=None, metadata={"n": np.int64(3), 1: "one"})  # refused by json.dumps
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_what_save_accepts_load_gives_back(tmp_path, suffix, history, metadata):
    path = good(tmp_path / f"m{suffix}")
    before = path.read_bytes()
    try:
        good(path, history=history, metadata=metadata)
    except (TypeError, ValueError):
        assert path.read_bytes() == before  # refused before a byte was written
        return
    c = io.load(path)
    assert same(history, c.history) and same(metadata or {}, c.metadata)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(history=st.dictionaries(st.text(max_size=6), st.lists(json_values(KEYS), max_size=4)),
       metadata=st.dictionaries(KEYS, json_values(KEYS), max_size=4))  # fmt: skip
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_every_json_value_round_trips(tmp_path, suffix, history, metadata):
    path = good(tmp_path / f"m{suffix}", history=history, metadata=metadata)
    c = io.load(path)
    assert same(history, c.history) and same(metadata, c.metadata)


# ---------------------------------------------------------------- state


def test_save_refuses_a_model_with_state_without_its_state(tmp_path):
    model = L.serial(L.Dense(3), L.BatchNorm(), L.Dense(2))
    params, state = model.init(0, (4,)), model.init_state((4,))
    for kwargs in ({}, {"input_shape": (4,)}, {"state": ()}, {"state": None, "input_shape": (4,)}):
        with pytest.raises(
            ValueError,
            match=r"keeps state \(BatchNorm\(\)\).*save\(path, model, params, state=state",
        ):
            io.save(tmp_path / "m.npz", model, params, **kwargs)
    assert not list(tmp_path.iterdir())
    for kwargs in ({}, {"input_shape": (4,)}):
        c = io.load(io.save(tmp_path / "m.npz", model, params, state=state, **kwargs))
        x = np.ones((2, 4), np.float32)
        assert np.array_equal(
            c.model.apply_with_state(c.params, c.state, x)[0],
            model.apply_with_state(params, state, x)[0],
        )
    stateless = L.serial(L.Dense(3), L.LayerNorm(), L.Dense(2))
    io.save(tmp_path / "s.npz", stateless, stateless.init(0, (4,)))  # no state: none needed
