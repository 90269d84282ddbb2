"""load is safe on any file; save never replaces a good file with one load refuses.

The hostile files are written by the tests: each must raise funcnn.io.LoadError (a
ValueError) naming the file, or an OS error, within bounded time and memory.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funcnn import io, optim
from funcnn import layers as L

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
    meta["sha256"] = io._digest(meta, {k: io._json_array(k, v) for k, v in (arrays or {}).items()})
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
        with z.open(f"{io._META_KEY}.npy", "w") as f:
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
