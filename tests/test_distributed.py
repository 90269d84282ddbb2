"""fit(..., comm=MPI.COMM_WORLD) under mpirun: any number of processes, the bits of one.

Each check runs ``tests/fit_digest.py`` under ``mpirun -n N --oversubscribe`` (the
``distributed`` extra brings mpi4py and Open MPI's wheel, with its ``mpirun``) and
compares every rank's SHA-256 digests with a plain single-process run's. The checks
of ranks that disagree run ``tests/mpi_mismatch.py``: the job must end, non-zero, with
a message that names the ranks and what differs, never hang nor finish.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from funcnn import distributed, linalg, tree
from funcnn import layers as L
from funcnn.plan import LOCAL, Plan

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


def run(
    *args: str, ranks: int | None = None, timeout: float = 240, script: Path = SCRIPT
) -> subprocess.CompletedProcess:
    command = [sys.executable, str(script), *args]
    if ranks is not None:
        command = [mpirun(), "-n", str(ranks), "--oversubscribe", *command]
        command += ["--mpi"] if script == SCRIPT else []
    # A session of its own, so that a job that hangs is ended whole (its ranks spin in
    # their collectives, taking the cores of whoever runs tests next).
    with subprocess.Popen(
        command, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    ) as process:  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"{' '.join(command)} still ran after {timeout} s: it hangs")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


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
    assert "fails on purpose after batch 1" in done.stderr  # the error, with its traceback
    assert "in on_batch_end" in done.stderr


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


MISMATCH = Path(__file__).with_name("mpi_mismatch.py")


def mismatch(case: str, ranks: int) -> str:
    """The stderr of ``mpi_mismatch.py case`` on ``ranks`` processes, which must fail."""
    done = run(case, ranks=ranks, timeout=60, script=MISMATCH)
    assert done.returncode != 0, f"the job finished:\n{done.stdout}{done.stderr[-3000:]}"
    assert "funcnn.distributed: aborting every process of the job" in done.stderr
    return done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_that_agree_finish_with_the_same_params(ranks):
    done = run("same", ranks=ranks, timeout=60, script=MISMATCH)
    assert done.returncode == 0, done.stderr[-3000:]
    by_rank = dict(line.split() for line in done.stdout.splitlines())
    assert sorted(by_rank) == [str(r) for r in range(ranks)], done.stdout
    assert len(set(by_rank.values())) == 1, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [2, 3])
def test_a_rank_that_fails_the_argument_checks_ends_the_job(ranks):
    stderr = mismatch("check", ranks)
    assert f"rank {ranks - 1} of {ranks} raised ValueError: batch_size must be" in stderr


# What each case's job must say, with {others} the ranks that agree ("rank 0 has") and
# {last} the last rank ("rank 2 has"); <sha> stands for a fingerprint.
DIFFERENCES = {
    "samples": ["samples: {others} 12, {last} 8"],
    "data": ["x's SHA-256: {others} <sha>, {last} <sha>"],
    "settings": [
        "x's dtype: {others} float32, {last} float64",
        "batch_size: {others} 4, {last} 6",
        "epochs: {others} 1, {last} 2",
        "validation: {others} none, {last} validation_split=0.25",
        "model: {others} serial(Dense(4), Relu, Dense(2)), {last} serial(Dense(4), Tanh, Dense(2))",
    ],
}
ONLY_WHAT_DIFFERS = {"data": ["y's SHA-256", "samples:"]}


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("case", sorted(DIFFERENCES))
def test_ranks_given_different_things_end_the_job_naming_them(case, ranks):
    stderr = re.sub(r"\b[0-9a-f]{16}\b", "<sha>", mismatch(case, ranks))
    others = "rank 0 has" if ranks == 2 else "ranks 0 and 1 have"
    for difference in DIFFERENCES[case]:
        assert difference.format(others=others, last=f"rank {ranks - 1} has") in stderr
    for absent in ONLY_WHAT_DIFFERS.get(case, []):
        assert absent not in stderr


class FakeComm:
    """Rank 0 of a job whose other ranks' summaries (or errors) are given."""

    def __init__(self, *others: dict[str, str]) -> None:
        self.others, self.aborted = others, None

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1 + len(self.others)

    def allgather(self, mine):
        return [mine, *self.others]

    def bcast(self, value, root=0):
        return value

    def Abort(self, code):
        self.aborted = code


def test_agree_names_each_difference_with_the_ranks_that_have_it():
    model = L.serial(L.Dense(4), L.Relu, L.Dense(2))
    x, y = np.arange(36, dtype=np.float32).reshape(12, 3), np.arange(12) % 2
    settings = dict(model=model, batch_size=4)

    def summary(x, y, validation=None, split=0.0, **changed):
        return distributed.summary(x, y, validation, split, {**settings, **changed})

    same = summary(x, y)
    distributed.agree(FakeComm(same, same), x, y, None, validation_split=0.0, **settings)
    other = summary(x[:8], y[:8], batch_size=5)
    with pytest.raises(ValueError) as raised:
        distributed.agree(
            FakeComm(same, other, same, other), x, y, None, validation_split=0.0, **settings
        )
    message = str(raised.value)
    assert "samples: ranks 0, 1 and 3 have 12, ranks 2 and 4 have 8\n" in message
    assert "batch_size: ranks 0, 1 and 3 have 4, ranks 2 and 4 have 5\n" in message
    assert "y's SHA-256: " in message and "model" not in message
    assert message.endswith("and the same arguments")
    # a split describes the data as given: the same as the whole data, unsplit
    split = summary(x[:9], y[:9], (x[9:], y[9:]), 0.25)
    assert split["samples"] == "12" and split["x's SHA-256"] == same["x's SHA-256"]
    assert split["validation"] == "validation_split=0.25"
    given = summary(x, y, (x[:3], y[:3]))
    assert given["validation"] == "validation_data: x_val (3, 3) float32, y_val (3,) int64"
    assert "validation_data's SHA-256" in given
    assert distributed._ranks([0, 1, 2, 3, 5, 7, 8]) == "0-3, 5, 7 and 8"


def test_the_fingerprint_reads_every_byte_in_blocks():
    a = np.random.default_rng(0).standard_normal((50, 6))
    whole = distributed.sha256(a)
    assert distributed.sha256(a, block=100) == whole  # 2 rows a block
    assert distributed.sha256(a[:20], a[20:], block=1) == whole
    assert distributed.sha256(np.asfortranarray(a), block=100) == whole  # C order
    b = a.copy()
    b[49, 5] = np.nextafter(b[49, 5], 1)
    assert distributed.sha256(b) != whole


def test_an_error_aborts_the_job_only_where_others_wait():
    with pytest.raises(KeyError) as raised, distributed.abort_on_error(None):
        raise KeyError("alone")
    assert raised.traceback[-1].name.startswith("test_")  # its traceback as it was
    for lone in (FakeComm(), "not a communicator"):
        with pytest.raises(KeyError), distributed.abort_on_error(lone):
            raise KeyError("alone")
    comm = FakeComm({})
    with pytest.raises(KeyError), distributed.abort_on_error(comm):  # (a real Abort ends it)
        raise KeyError("one of two")
    assert comm.aborted == 1


# ---------------------------------------------------------------- the plan fit is given


def test_the_plan_of_processes_answers_what_fit_asks():
    assert isinstance(LOCAL, Plan) and isinstance(distributed.Plan(FakeComm()), Plan)
    with pytest.raises(TypeError, match="mpi4py communicator"):
        distributed.Plan("COMM_WORLD")
    two = distributed.Plan(FakeComm({}))  # rank 0 of 2
    assert two.is_main_process and two.share(3 * linalg.CHUNK + 5) == slice(0, 2 * linalg.CHUNK)
    assert isinstance(two.wrap(L.Dense(2)), distributed.DataParallel)
    values = ((np.zeros(3),), 7)
    (started,), seed = two.start(values)
    assert seed == 7 and not started[0].flags.writeable  # rank 0's values, read-only
    with pytest.raises(ValueError, match="one array x and one array y, not tuples"):
        two.check((np.zeros((4, 1)),), np.zeros(4), None, validation_split=0.0)


def test_one_process_of_a_communicator_has_the_bits_of_the_local_plan(quick_fit):
    """One code path: a communicator of one process runs DataParallel, its batch sums
    through linalg.across_processes, and ends with the local plan's bits."""
    model = L.serial(L.Dense(16), L.BatchNorm(), L.Relu, L.Dropout(0.2), L.Dense(3))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((600, 5)).astype(np.float32), rng.integers(0, 3, 600)
    kwargs = dict(epochs=2, batch_size=300, validation_split=0.2, metrics=["accuracy"])
    alone = quick_fit(model, x, y, **kwargs)
    through = quick_fit(model, x, y, comm=FakeComm(), **kwargs)
    final = [tree.leaves((r.params, r.state, r.opt_state)) for r in (alone, through)]
    for a, b in zip(*final, strict=True):
        assert np.array_equal(a, b)
    assert alone.history.to_dict().keys() == through.history.to_dict().keys()
    with pytest.raises(ValueError, match="give plan or comm, not both"):
        quick_fit(model, x, y, plan=distributed.Plan(FakeComm()), comm=FakeComm())
    with pytest.raises(TypeError, match=r"plan must be a funcnn\.plan\.Plan"):
        quick_fit(model, x, y, plan="local")


def test_each_thread_sees_only_the_cross_process_sums_its_caller_set():
    gathered = []

    def gather(parts):
        gathered.append(len(parts))
        return parts + parts  # as if a second process had the same chunks

    seen = {}
    a = np.ones((10, 2))
    with linalg.across_processes(gather, 20):
        other = threading.Thread(target=lambda: seen.update(other=linalg.sum_rows(a)))
        other.start()
        other.join()
        assert linalg.batch_samples(10) == 20 and np.array_equal(linalg.sum_rows(a), [20, 20])
    assert np.array_equal(seen["other"], [10, 10]) and gathered == [1]
    assert linalg.batch_samples(10) == 10
