"""fit(..., comm=MPI.COMM_WORLD) under mpirun: any number of processes, the bits of one.

Each check runs ``tests/fit_digest.py`` under ``mpirun -n N --oversubscribe`` (the
``distributed`` extra brings mpi4py and Open MPI's wheel, with its ``mpirun``) and
compares every rank's SHA-256 digests with a plain single-process run's.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from funcnn import distributed, linalg
from funcnn import layers as L

SCRIPT = Path(__file__).with_name("fit_digest.py")
# Batches of 600 are three chunks of 256, 256 and 88 samples; the last batch of each
# epoch is smaller, so with three processes some get nothing to compute.
DATA = ["--batch", "600", "--samples", "1300"]
ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


def mpirun() -> str:
    found = Path(sys.executable).with_name("mpirun")
    return str(found) if found.exists() else (shutil.which("mpirun") or "mpirun")


def run(*args: str, ranks: int | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), *args]
    if ranks is not None:
        command = [mpirun(), "-n", str(ranks), "--oversubscribe", *command, "--mpi"]
    return subprocess.run(
        command, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=timeout
    )


def digests(*args: str, ranks: int | None = None) -> list[dict]:
    done = run(*args, ranks=ranks)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if "{" in line]
    if ranks is None:
        return [json.loads(lines[-1])]
    by_rank = {int(line.split(" ", 1)[0]): json.loads(line.split(" ", 1)[1]) for line in lines}
    assert sorted(by_rank) == list(range(ranks)), done.stdout
    return [by_rank[r] for r in range(ranks)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_any_number_of_processes_gives_the_bits_of_one(kind):
    (alone,) = digests(kind, *DATA)
    for ranks in (1, 2, 3):
        for rank, result in enumerate(digests(kind, *DATA, ranks=ranks)):
            assert result == alone, f"rank {rank} of {ranks} differs from one process"


@pytest.mark.slow
def test_a_resumed_distributed_run_equals_an_uninterrupted_one(tmp_path):
    (whole,) = digests("cnn", *DATA, "--epochs", "4")
    path = tmp_path / "ckpt-{epoch}.npz"
    digests("cnn", *DATA, "--epochs", "2", "--save", str(path), ranks=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-1.npz", "ckpt-2.npz"]
    resumed = digests(
        "cnn", *DATA, "--epochs", "4", "--resume", str(tmp_path / "ckpt-2.npz"), ranks=3
    )
    assert all(r == whole for r in resumed)


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_job_with_its_error():
    done = run("mlp", *DATA, "--fail-on-rank", "1", ranks=3, timeout=120)
    assert done.returncode != 0
    assert "funcnn.distributed: rank 1 of 3 raised TypeError" in done.stderr
    assert "class labels must" in done.stderr  # the error itself, with its traceback


def test_each_process_gets_whole_chunks_in_rank_order():
    c = linalg.CHUNK
    assert [distributed.share(3 * c + 5, r, 2) for r in range(2)] == [  # four chunks
        slice(0, 2 * c),
        slice(2 * c, 3 * c + 5),
    ]
    assert [distributed.share(10, r, 3) for r in range(3)] == [
        slice(0, 0),
        slice(0, 0),
        slice(0, 10),
    ]
    for samples in (1, c, 5 * c + 3):
        for size in (1, 2, 3, 7):
            shares = [distributed.share(samples, r, size) for r in range(size)]
            covered = np.concatenate([np.arange(samples)[s] for s in shares])
            assert np.array_equal(covered, np.arange(samples))
            assert all(s.start % c == 0 or s.start == s.stop for s in shares)


def test_comm_must_be_a_communicator():
    with pytest.raises(TypeError, match="mpi4py communicator"):
        distributed.check_comm("COMM_WORLD")
    assert repr(distributed.DataParallel(L.Dense(2), None)) == "DataParallel(Dense(2))"


@pytest.mark.slow
def test_the_example_prints_one_digest_for_any_number_of_processes():
    example = Path(__file__).resolve().parent.parent / "examples" / "mnist_distributed.py"
    lines = []
    for ranks in (None, 2):
        command = [sys.executable, str(example), "--epochs", "2"]
        if ranks:
            command = [mpirun(), "-n", str(ranks), "--oversubscribe", *command]
        done = subprocess.run(
            command, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, done.stderr[-3000:]
        lines.append([line for line in done.stdout.splitlines() if "digest" in line])
    assert len(lines[0]) == len(lines[1]) == 1 and lines[0] == lines[1]
