"""load is bounded by the file: a hostile file never makes it allocate much more than its size.

Each hostile file is loaded in a fresh Python process, whose peak resident memory
(``VmHWM``, or ``ru_maxrss`` where there is no /proc) is read before and after the
load: the load must be refused with a LoadError and the peak may grow by less than
:data:`LIMIT`. Legit files, large ones included, still load; save refuses, before
writing, what load would refuse.
"""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from funcnn import io, optim
from funcnn import layers as L
from funcnn.io import codec, files, saving

LIMIT = 64 * 2**20
"""How much loading one of these files (1 MB at most) may raise a process's peak memory."""

PROBE = """
import json, resource, sys, time
from funcnn import io, layers as L

def peak():
    # VmHWM: this process's own peak. ru_maxrss would start at the peak of the process that
    # forked it (Linux carries it across exec), which hides what the load adds.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

model = L.serial(L.Dense(2))
io.load(io.save(sys.argv[2], model, model.init(0, (2,)), input_shape=(2,)))  # warm up
before = peak()
start = time.perf_counter()
try:
    io.load(sys.argv[1])
    outcome = "loaded"
except io.LoadError as e:
    outcome = "LoadError: " + str(e)
except Exception as e:
    outcome = f"{type(e).__name__}: {e}"
seconds = time.perf_counter() - start
after = peak()
print(json.dumps({"increase": (after - before) * 1024, "outcome": outcome, "seconds": seconds}))
"""


def probe(path, tmp_path):
    """(peak memory increase in bytes, outcome, seconds) of io.load(path) in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(tmp_path / "warm.npz")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["increase"], result["outcome"], result["seconds"]


def assert_refused_within_bounds(path, tmp_path, match, seconds=10.0, limit=LIMIT):
    increase, outcome, took = probe(path, tmp_path)
    assert outcome.startswith("LoadError") and match in outcome, outcome
    assert str(path) in outcome
    assert increase < limit, f"load raised the peak by {increase / 2**20:.0f} MiB"
    assert took < seconds, f"load took {took:.1f} s"


def forge(path, model, params, input_shape, state=None):
    """A file with a valid digest that describes ``model`` with ``params``, written without
    save's checks: what a hostile writer can make."""
    arrays = {}
    meta = {
        "format": io.FORMAT,
        "version": io.FORMAT_VERSION,
        "model": io.to_spec(model),
        "input_shape": codec.encode(input_shape, {}),
        "params": codec.encode(params, arrays),
        "state": codec.encode(state, arrays),
        "opt_state": None,
        "history": None,
        "epoch": None,
        "metadata": {},
    }
    meta["sha256"] = saving._digest(meta, arrays)
    if str(path).endswith(".json"):
        meta["arrays"] = {
            k: {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tolist()}
            for k, a in arrays.items()
        }
        path.write_text(json.dumps(meta))
    else:
        np.savez(path, **{files.META_KEY: np.array(json.dumps(meta))}, **arrays)
    return path


# ---------------------------------------------------------------- unpacking and parsing


def test_a_zip_of_compressed_members_is_refused_before_unpacking(tmp_path):
    # Six deflated members of zeros, each under the old per-member limit, and a stored
    # member of noise that makes the file about 1 MB: unpacked, 60 times the file.
    path = tmp_path / "bomb.npz"
    noise = np.random.default_rng(0).integers(0, 256, 2**20, dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as z:
        with z.open("noise.npy", "w") as f:
            np.lib.format.write_array(f, noise)
        zeros = np.zeros(60 * 2**20 // 4, np.float32)
        for i in range(6):
            info = zipfile.ZipInfo(f"a{i}.npy")
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, zeros)
        with z.open(f"{files.META_KEY}.npy", "w") as f:
            np.lib.format.write_array(f, np.array('{"format": "funcnn"}'))
    size = path.stat().st_size
    assert size < 2 * 2**20
    # the first member fits the file's budget (16 x its size + 64 MiB), the second does not
    assert_refused_within_bounds(path, tmp_path, "unpack", limit=io.load_budget(size))


@pytest.mark.parametrize("count", [4_000_000, 2_000_000])
def test_metadata_of_many_empty_objects_is_refused_before_parsing(tmp_path, count):
    # 4 million {} deflated, beside 900 KB of noise that keeps the metadata member under
    # the old per-member limit: 632 MB of Python dicts
    path = tmp_path / "nodes.npz"
    text = '{"format": "funcnn", "x": [' + "{}," * count + "{}]}"
    noise = np.random.default_rng(0).integers(0, 256, 900 * 2**10, dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as z:
        with z.open("noise.npy", "w") as f:
            np.lib.format.write_array(f, noise)
        info = zipfile.ZipInfo(f"{files.META_KEY}.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.array(text))
    assert path.stat().st_size < 2**20
    assert_refused_within_bounds(path, tmp_path, "bytes")


def test_a_json_file_of_empty_objects_is_refused_before_parsing(tmp_path):
    path = tmp_path / "nodes.json"
    path.write_text('{"format": "funcnn", "x": [' + "{}," * 2_000_000 + "{}]}")  # 6 MB
    assert_refused_within_bounds(path, tmp_path, "bytes")


# ---------------------------------------------------------------- the one-example check


@pytest.mark.parametrize(
    "model, input_shape, params",
    [
        # 16 references to a 16 MB input, concatenated: 272 MB
        (L.serial(L.FanOut(16), L.FanInConcat()), (2**22,), ((), ())),
        # a 1x1 image padded to 8001x8001: 244 MB
        (L.serial(L.ZeroPadding2D(4000)), (1, 1, 1), ((),)),
        # a 20x20 kernel over a padded 521x521 image: an im2col matrix of 400 MB
        (
            L.serial(L.Conv2D(1, 20, padding=260)),
            (1, 1, 1),
            (L.Conv2D(1, 20).init(0, (20, 20, 1)),),
        ),
        # a kernel of the wrong size: the im2col matrix is built before the product fails
        (
            L.serial(L.Conv2D(1, (200, 200), padding=150)),
            (1, 1, 3),
            (L.Conv2D(1, 1).init(0, (1, 1, 3)),),
        ),
        # a 2000x2000 pool window: four million strided slices (time), on a padded input
        (L.serial(L.MaxPool2D(2000, padding="same")), (1, 1, 1), ((),)),
    ],
    ids=["fanout-concat", "zero-padding", "conv-im2col", "conv-wrong-kernel", "pool-window"],
)
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_the_one_example_check_is_bounded_by_the_file(tmp_path, model, input_shape, params, suffix):
    path = forge(tmp_path / f"m{suffix}", model, params, input_shape)
    assert path.stat().st_size < 64 * 2**10
    assert_refused_within_bounds(path, tmp_path, "bytes", seconds=5.0)


def test_save_refuses_a_model_whose_check_load_would_refuse(tmp_path):
    path = io.save(tmp_path / "m.npz", L.serial(L.Dense(2)), L.serial(L.Dense(2)).init(0, (2,)))
    before = path.read_bytes()
    model = L.serial(L.ZeroPadding2D(4000))
    with pytest.raises(ValueError, match=r"cannot save .* bytes"):
        io.save(path, model, model.init(0, (1, 1, 1)), input_shape=(1, 1, 1))
    assert path.read_bytes() == before
    # a .json file of a million {}: 7 MB, which would parse into 170 MB of dicts
    path = io.save(tmp_path / "m.json", L.Dense(2), L.Dense(2).init(0, (2,)))
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"cannot save .* parsing the file needs about"):
        io.save(path, L.Dense(2), L.Dense(2).init(0, (2,)), metadata={"x": [{}] * 1_000_000})
    assert path.read_bytes() == before


# ---------------------------------------------------------------- legit files still load


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_large_legit_files_still_load(tmp_path, suffix):
    # 8M floats (32 MB) in .npz; 1M floats in the much larger .json
    units = 2048 if suffix == ".npz" else 256
    model = L.serial(L.Dense(units), L.Relu, L.Dense(units), L.BatchNorm(), L.Dense(10))
    shape = (units * 2,)
    params, state = model.init(0, shape), model.init_state(shape)
    opt_state = optim.adam(1e-3).init(params)
    history = {"loss": [float(i) for i in range(10_000)]}
    path = io.save(
        tmp_path / f"big{suffix}", model, params, state=state, opt_state=opt_state,
        history=history, input_shape=shape,
    )  # fmt: skip
    c = io.load(path)
    assert c.history == history and c.model == model


def test_a_small_model_on_large_images_still_loads(tmp_path):
    # a few hundred params, activations of about 20 MB for one 224x224 example
    model = L.serial(L.Conv2D(64, 3, padding="same"), L.Relu, L.GlobalAvgPool2D, L.Dense(2))
    shape = (224, 224, 3)
    path = io.save(tmp_path / "cnn.npz", model, model.init(0, shape), input_shape=shape)
    assert io.load(path).model == model
