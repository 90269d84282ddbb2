"""Same seed, same bits: on any BLAS thread count, funcnn worker count and batch split.

The subprocess checks run ``tests/fit_digest.py`` in fresh interpreters, because a
BLAS reads its thread count when it loads.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import funcnn
from funcnn import layers as L
from funcnn import linalg

SCRIPT = Path(__file__).with_name("fit_digest.py")


def digests(kind: str, *args: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    clean.pop("FUNCNN_WORKERS", None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), kind, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


SETTINGS = [
    {"OPENBLAS_NUM_THREADS": "1"},
    {"OPENBLAS_NUM_THREADS": "2"},
    {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3"},
    {"FUNCNN_WORKERS": "1"},
    {"FUNCNN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "2"},
    {"FUNCNN_WORKERS": "4"},
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_fit_predict_evaluate_same_bits_for_any_thread_and_worker_count(kind):
    results = [digests(kind, **env) for env in SETTINGS]
    for env, result in zip(SETTINGS[1:], results[1:]):
        assert result == results[0], f"{env} gave other bits than {SETTINGS[0]}"


@pytest.mark.slow
def test_resumed_run_has_the_uninterrupted_runs_bits(tmp_path):
    whole = digests("cnn", "--epochs", "4", OPENBLAS_NUM_THREADS="2")
    path = str(tmp_path / "ckpt-{epoch}.npz")
    digests("cnn", "--epochs", "2", "--save", path, FUNCNN_WORKERS="1")
    resumed = digests(
        "cnn", "--epochs", "4", "--resume", str(tmp_path / "ckpt-2.npz"), OPENBLAS_NUM_THREADS="3"
    )
    assert resumed["params"] == whole["params"] and resumed["predict"] == whole["predict"]


# ---------------------------------------------------------------- in one process

MODELS = {
    "mlp": (L.serial(L.Dense(300), L.Relu, L.Dense(70), L.Softmax), (200,)),
    "cnn": (
        L.serial(L.Conv2D(6, 3), L.BatchNorm(), L.Relu, L.MaxPool2D(2), L.Flatten, L.Dense(5)),
        (9, 9, 2),
    ),
    "conv_family": (  # an autoencoder of the convolution family (issue 26)
        L.serial(
            L.Conv2D(4, 3, strides=2, padding="same"),
            L.Relu,
            L.SeparableConv2D(4, 3, 2, padding="same"),
            L.DepthwiseConv2D(3, 2, padding="same"),
            L.Conv2D(4, 1, groups=2),
            L.Conv2DTranspose(3, 3, strides=2, padding="same"),
            L.UpSampling2D(2, interpolation="bilinear"),
            L.Cropping2D(((1, 1), (2, 0))),
            L.Conv2D(2, 3, strides=2),
        ),
        (10, 10, 2),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_samples_prediction_does_not_depend_on_its_batch(name, dtype):
    model, shape = MODELS[name]
    params, state = model.init(0, shape, dtype=dtype), model.init_state(shape, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((150, *shape)).astype(dtype)
    whole = funcnn.predict(model, params, x, state=state, batch_size=256)
    for size in (1, 7, 64, 100):
        chunks = funcnn.predict(model, params, x, state=state, batch_size=size)
        assert np.array_equal(chunks, whole), f"batch_size={size}"
    order = np.random.default_rng(2).permutation(len(x))
    shuffled = funcnn.predict(model, params, x[order], state=state)
    assert np.array_equal(shuffled, whole[order])


@pytest.fixture
def workers():
    yield linalg.set_workers
    linalg.set_workers(None)


def test_products_have_the_same_bits_with_any_worker_count(workers):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((700, 300)), rng.standard_normal((300, 530))
    dy = rng.standard_normal((700, 530))
    results = []
    for n in (1, 2, 5):
        workers(n)
        results.append(
            (
                linalg.matmul(a, b),
                linalg.matmul(a, b, padded=True),
                linalg.matmul_tn(a, dy),
                linalg.sum_rows(dy),
            )
        )
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert np.array_equal(x, y)
    np.testing.assert_allclose(results[0][0], a @ b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[0][1], a @ b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[0][2], a.T @ dy, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[0][3], dy.sum(axis=0), rtol=1e-10, atol=1e-12)


def test_batch_sums_add_fixed_chunks_in_a_fixed_tree():
    rng = np.random.default_rng(3)
    n = 3 * linalg.CHUNK + 5  # four chunks
    a = rng.standard_normal((n, 17)).astype(np.float32)
    b = rng.standard_normal((n, 9)).astype(np.float32)
    c = [slice(i * linalg.CHUNK, (i + 1) * linalg.CHUNK) for i in range(4)]
    sums = [a[s].sum(axis=0) for s in c]
    assert np.array_equal(linalg.sum_rows(a), (sums[0] + sums[1]) + (sums[2] + sums[3]))
    parts = [a[s].T @ b[s] for s in c]
    expected = (parts[0] + parts[1]) + (parts[2] + parts[3])
    np.testing.assert_allclose(linalg.matmul_tn(a, b), expected, rtol=1e-6)
    assert np.array_equal(linalg.tree_sum([np.float64(x) for x in (1e16, 1.0, -1e16)]), 0.0)
    assert linalg.tree_sum([np.array(1e16), np.array(-1e16), np.array(1.0)]) == 1.0


def test_padded_blocks_give_each_row_one_fixed_product():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 40)), rng.standard_normal((40, 20))
    alone = [linalg.matmul(a[i : i + 1], b, padded=True) for i in range(3)]
    assert np.array_equal(np.concatenate(alone), linalg.matmul(a, b, padded=True))


def test_empty_batches_and_bad_worker_counts():
    assert linalg.matmul(np.zeros((0, 3)), np.ones((3, 2))).shape == (0, 2)
    assert np.array_equal(linalg.matmul_tn(np.zeros((0, 3)), np.zeros((0, 2))), np.zeros((3, 2)))
    assert linalg.matmul_tn(np.zeros((5, 0)), np.ones((5, 3))).shape == (0, 3)  # no features
    with pytest.raises(ValueError, match="positive int or None, got 0"):
        linalg.set_workers(0)


def test_the_blas_is_named():
    assert "openblas" in linalg.blas_description().lower()  # NumPy's wheels link OpenBLAS


def test_checkpoints_record_what_made_their_bits(tmp_path):
    model = L.serial(L.Dense(3))
    c = funcnn.load(funcnn.save(tmp_path / "m.npz", model, model.init(0, (2,))))
    assert c.provenance["blas"] == linalg.blas_description()
    assert c.provenance["numpy"] == np.__version__
    assert c.provenance["blocks"]["CHUNK"] == linalg.CHUNK


def test_the_default_worker_count_honours_omp_num_threads():
    """joblib's and Dask's workers set OMP_NUM_THREADS to their share of the cores;
    funcnn's pool stays within it (FUNCNN_WORKERS, set explicitly, wins)."""
    code = "from funcnn import linalg; print(linalg.workers(), linalg.available_cores())"

    def counts(**env):
        base = {
            k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FUNCNN_WORKERS")
        }
        out = subprocess.run(
            [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
            check=True,
        ).stdout.split()  # fmt: skip
        return int(out[0]), int(out[1])

    workers, cores = counts()
    assert workers == cores
    assert counts(OMP_NUM_THREADS="1")[0] == 1
    assert counts(OMP_NUM_THREADS="1", FUNCNN_WORKERS="3")[0] == 3
    assert counts(OMP_NUM_THREADS="64")[0] == cores


class _Helpers:
    """An executor whose helpers never get a core (``start=False``: each submitted drain is
    cancelled), or start at once and find the work done."""

    def __init__(self, start: bool):
        self.start = start

    def submit(self, fn):
        start = self.start

        class Future:
            def cancel(self):
                return not start

            def result(self):
                return fn()

        return Future()


def test_products_run_alone_only_after_several_find_the_cores_busy(monkeypatch):
    monkeypatch.setattr(linalg, "_alone_until", 0.0)
    monkeypatch.setattr(linalg, "_late_in_a_row", 0)
    monkeypatch.setattr(linalg, "workers", lambda: 2)
    ran = []
    tasks = [lambda: ran.append(1), lambda: ran.append(2)]
    monkeypatch.setattr(linalg, "_executor", lambda: _Helpers(start=False))
    for _ in range(linalg.BUSY_EVIDENCE - 1):
        linalg._run(tasks, True)
    assert linalg._alone_until == 0.0  # one or two late helpers: keep using them
    monkeypatch.setattr(linalg, "_executor", lambda: _Helpers(start=True))
    linalg._run(tasks, True)  # a helper that starts resets the count
    monkeypatch.setattr(linalg, "_executor", lambda: _Helpers(start=False))
    for _ in range(linalg.BUSY_EVIDENCE - 1):
        linalg._run(tasks, True)
    assert linalg._alone_until == 0.0
    linalg._run(tasks, True)
    assert time.perf_counter() < linalg._alone_until <= time.perf_counter() + linalg.BUSY_PAUSE
    assert len(ran) == 2 * (2 * linalg.BUSY_EVIDENCE)  # every task ran, on this thread


# ---------------------------------------------------------------- a recurrent model

RECURRENT_FIT = """
import json, sys
import numpy as np
import funcnn
from funcnn import fit, losses, optim
from funcnn import layers as L
sys.path.insert(0, sys.argv[1])
from fit_digest import digest

rng = np.random.default_rng(0)
ids = rng.integers(0, 12, (96, 8))
y = rng.integers(0, 12, 96)
model = L.serial(L.Embedding(12, 8), L.LSTM(16), L.Dense(12))
params = model.init(0, (8,))
result = fit(model, params, losses.softmax_cross_entropy, optim.adam(1e-2), ids, y,
             epochs=2, batch_size=32, rng=7, verbose=0)
pred = funcnn.predict(model, result.params, ids)
print(json.dumps({"params": digest(result.params), "predict": digest(pred)}))
"""


def recurrent_digests(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    clean.pop("FUNCNN_WORKERS", None)
    done = subprocess.run(
        [sys.executable, "-c", RECURRENT_FIT, str(SCRIPT.parent)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_recurrent_model_trains_to_the_same_bits_for_any_thread_and_worker_count():
    settings = [
        {"FUNCNN_WORKERS": "1", "OPENBLAS_NUM_THREADS": "1"},
        {"FUNCNN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "2"},
        {"FUNCNN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "1"},
    ]
    results = [recurrent_digests(**env) for env in settings]
    for env, result in zip(settings[1:], results[1:]):
        assert result == results[0], f"{env} gave other bits than {settings[0]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_sequences_prediction_does_not_depend_on_its_batch(dtype):
    model = L.serial(
        L.Embedding(12, 8, mask_zero=True),
        L.Bidirectional(L.GRU(8, return_sequences=True)),
        L.LSTM(16),
        L.Dense(12),
    )
    params = model.init(0, (9,), dtype=dtype)
    ids = np.random.default_rng(1).integers(0, 12, (70, 9))
    whole = funcnn.predict(model, params, ids, batch_size=256)
    for size in (1, 7, 64):
        assert np.array_equal(funcnn.predict(model, params, ids, batch_size=size), whole)
    order = np.random.default_rng(2).permutation(len(ids))
    assert np.array_equal(funcnn.predict(model, params, ids[order]), whole[order])


# ---------------------------------------------------------------- the convolution family

CONV_FAMILY_FIT = """
import json, sys
import numpy as np
import funcnn
from funcnn import fit, losses, optim
from funcnn import layers as L
sys.path.insert(0, sys.argv[1])
from fit_digest import digest

rng = np.random.default_rng(0)
x = rng.random((80, 8, 8, 3)).astype(np.float32)
model = L.serial(
    L.Conv2D(6, 3, padding="same", groups=3), L.Relu, L.MaxPool2D(2),
    L.SeparableConv2D(8, 3, padding="same"), L.DepthwiseConv2D(3, 2, padding="same"), L.Relu,
    L.Conv2DTranspose(6, 3, strides=2, padding="same", output_padding=1),
    L.UpSampling2D(2, interpolation="bilinear"), L.Cropping2D(4), L.ZeroPadding2D(((1, 0), (0, 1))),
    L.Conv2D(3, 2), L.Sigmoid,
)
params = model.init(0, (8, 8, 3))
result = fit(model, params, losses.mean_squared_error, optim.adam(1e-2), x, x,
             epochs=2, batch_size=32, rng=7, verbose=0)
pred = funcnn.predict(model, result.params, x)
print(json.dumps({"params": digest(result.params), "predict": digest(pred)}))
"""


@pytest.mark.slow
def test_a_conv_family_autoencoder_trains_to_the_same_bits_for_any_thread_and_worker_count():
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    clean.pop("FUNCNN_WORKERS", None)
    settings = [
        {"FUNCNN_WORKERS": "1", "OPENBLAS_NUM_THREADS": "1"},
        {"FUNCNN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "2"},
        {"FUNCNN_WORKERS": "3", "OPENBLAS_NUM_THREADS": "1"},
    ]
    results = []
    for env in settings:
        done = subprocess.run(
            [sys.executable, "-c", CONV_FAMILY_FIT, str(SCRIPT.parent)],
            env={**clean, **env}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for env, result in zip(settings[1:], results[1:]):
        assert result == results[0], f"{env} gave other bits than {settings[0]}"


# ---------------------------------------------------------------- a transformer

TRANSFORMER_FIT = """
import json, sys
import numpy as np
import funcnn
from funcnn import fit, losses, optim, schedules, tree
from funcnn import layers as L
sys.path.insert(0, sys.argv[1])
from fit_digest import digest

comm = None
if len(sys.argv) > 2:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
rng = np.random.default_rng(0)
ids = rng.integers(0, 12, (300, 10))
y = (ids + 1) % 12
model = L.DecoderOnlyTransformer(12, 10, 16, 2, 2, dropout=0.1)
params = model.init(0, (10,))
optimizer = optim.chain(
    optim.clip_by_global_norm(1.0),
    optim.adamw(schedules.warmup_cosine_decay(0.0, 1e-2, 3, 20), mask=tree.kernel_mask),
)
result = fit(model, params, losses.softmax_cross_entropy, optimizer, ids, y,
             epochs=2, batch_size=32, rng=7, verbose=0, comm=comm)
pred = funcnn.predict(model, result.params, ids)
rank = "" if comm is None else f"{comm.Get_rank()} "
print(rank + json.dumps({"params": digest(result.params), "predict": digest(pred)}))
"""
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


def transformer_digests(ranks: int | None = None, **env: str) -> list[dict]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    clean.pop("FUNCNN_WORKERS", None)
    command = [sys.executable, "-c", TRANSFORMER_FIT, str(SCRIPT.parent)]
    if ranks is not None:
        mpirun = Path(sys.executable).with_name("mpirun")
        if not mpirun.exists():
            pytest.skip("mpirun is not installed (the distributed extra)")
        command = [str(mpirun), "-n", str(ranks), "--oversubscribe", *command, "--mpi"]
        clean.update(MPI_ENV)
    done = subprocess.run(
        command, env={**clean, **env}, capture_output=True, text=True, check=True, timeout=240
    )
    lines = [line for line in done.stdout.splitlines() if "{" in line]
    return [json.loads(line[line.index("{") :]) for line in lines]


@pytest.mark.slow
def test_a_transformer_trains_to_the_same_bits_for_any_thread_and_worker_count():
    settings = [
        {"FUNCNN_WORKERS": "1", "OPENBLAS_NUM_THREADS": "1"},
        {"FUNCNN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "2"},
        {"FUNCNN_WORKERS": "2", "OPENBLAS_NUM_THREADS": "1"},
    ]
    results = [transformer_digests(**env) for env in settings]
    for env, result in zip(settings[1:], results[1:]):
        assert result == results[0], f"{env} gave other bits than {settings[0]}"


@pytest.mark.slow
def test_a_transformer_trains_to_the_same_bits_on_two_processes():
    (alone,) = transformer_digests()
    both = transformer_digests(ranks=2)
    assert len(both) == 2 and all(r == alone for r in both)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_transformers_prediction_does_not_depend_on_its_batch(dtype):
    model = L.serial(
        L.Embedding(12, 8, mask_zero=True),
        L.PositionalEmbedding(9, 8),
        L.TransformerEncoder(8, 2, 2, rotary=True),
        L.AttentionPool1D(),
        L.Dense(12),
    )
    params = model.init(0, (9,), dtype=dtype)
    ids = np.random.default_rng(1).integers(0, 12, (70, 9))
    whole = funcnn.predict(model, params, ids, batch_size=256)
    for size in (1, 7, 64):
        assert np.array_equal(funcnn.predict(model, params, ids, batch_size=size), whole)
    order = np.random.default_rng(2).permutation(len(ids))
    assert np.array_equal(funcnn.predict(model, params, ids[order]), whole[order])
