"""What data-parallel training over MPI costs and buys on this machine.

Usage:  python benchmarks/distributed.py [--quick] [--output benchmarks/DISTRIBUTED.md]

For each model and batch size it times one training step of ``fit(..., comm=...)``
(the DataParallel step) under ``mpirun -n 1`` and ``-n 2``, and counts what the
processes exchange: bytes sent by each process per step (the pickled payloads of
``allgather``) and the share of the step spent in communication calls. With two
processes on two cores, each process runs one funcnn worker (``FUNCNN_WORKERS=1``);
the one-process rows show both one and two workers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import run as suite

from funcnn import distributed, linalg, losses, optim, train_step_with_state
from funcnn.random import Key

CASES = [("MLP", 512), ("MLP", 2048), ("CNN", 512)]


class CountingComm:
    """An mpi4py communicator that counts the bytes it sends and the time its calls take."""

    def __init__(self, comm):
        self.comm, self.sent, self.seconds = comm, 0, 0.0

    def Get_rank(self):
        return self.comm.Get_rank()

    def Get_size(self):
        return self.comm.Get_size()

    def Abort(self, code=1):
        self.comm.Abort(code)

    def allgather(self, obj):
        started = time.perf_counter()
        self.sent += len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        out = self.comm.allgather(obj)
        self.seconds += time.perf_counter() - started
        return out

    def bcast(self, obj, root=0):
        return self.comm.bcast(obj, root=root)


def worker(kind: str, batch: int, repeats: int) -> None:
    from mpi4py import MPI

    plain = os.environ.get("BENCH_PLAIN") == "1"  # fit without comm: no DataParallel
    comm = CountingComm(MPI.COMM_WORLD)
    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(0)
    if kind == "MLP":
        model, shape = suite.mlp(), (784,)
    else:
        model, shape = suite.cnn(), (28, 28, 1)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    mine = distributed.share(batch, rank, size)
    opt = optim.adam(1e-3)
    step = train_step_with_state(
        model if plain else distributed.DataParallel(model, comm),
        losses.softmax_cross_entropy,
        opt,
    )
    params = model.init(0, shape)
    values = [params, model.init_state(shape), opt.init(params)]

    def one(s: int) -> None:
        p, st, o, _, _ = step(*values, x[mine], y, Key((0, 0, s)))
        values[:] = [p, st, o]

    for s in range(3):
        one(s)
    times, sent, comm_seconds = [], [], []
    for s in range(repeats):
        comm.sent, comm.seconds = 0, 0.0
        MPI.COMM_WORLD.Barrier()
        started = time.perf_counter()
        one(100 + s)
        times.append(time.perf_counter() - started)
        sent.append(comm.sent)
        comm_seconds.append(comm.seconds)
    results = MPI.COMM_WORLD.gather((times, sent, comm_seconds), root=0)
    if rank == 0:
        step_time = statistics.median(max(r[0][i] for r in results) for i in range(repeats))
        print(
            json.dumps(
                {
                    "step": step_time,
                    "sent": statistics.median(statistics.mean(r[1]) for r in results),
                    "comm": statistics.median(
                        statistics.mean(r[2]) / statistics.mean(r[0]) for r in results
                    ),
                }
            )
        )


def mpirun() -> str:
    found = Path(sys.executable).with_name("mpirun")
    return str(found) if found.exists() else "mpirun"


def measure(kind: str, batch: int, ranks: int, workers: int, repeats: int) -> dict:
    """``ranks=0``: one process running the plain step (``fit`` without ``comm``)."""
    env = {
        **os.environ,
        "BENCH_PLAIN": "1" if ranks == 0 else "0",
        "FUNCNN_WORKERS": str(workers),
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    }
    command = [mpirun(), "-n", str(max(ranks, 1)), "--oversubscribe", sys.executable, __file__]
    command += ["--worker", kind, str(batch), str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, batch, repeats = args.worker
        worker(kind, int(batch), int(repeats))
        return
    repeats = 5 if args.quick else 15
    configs = [(0, 2), (1, 2), (2, 1)]  # (processes, workers per process); 0: no MPI
    lines = [
        "| model, batch | processes x workers | step | samples/s | sent per process per step "
        "| share of the step in communication | speed vs no MPI |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, batch in CASES:
        rows = {c: measure(kind, batch, *c, repeats) for c in configs}
        base = rows[(0, 2)]["step"]
        for (ranks, workers), r in rows.items():
            who = "no MPI (`fit` without `comm`)" if ranks == 0 else f"{ranks} x {workers}"
            sent = "-" if ranks <= 1 else f"{r['sent'] / 2**20:.2f} MiB"
            share = "-" if ranks == 0 else f"{r['comm']:.0%}"
            lines.append(
                f"| {kind}, {batch} | {who} | {r['step'] * 1e3:.1f} ms | "
                f"{batch / r['step']:,.0f} | {sent} | {share} | {base / r['step']:.2f}x |"
            )
    params = sum(a.size for a in __import__("funcnn").tree.leaves(suite.mlp().init(0, (784,))))
    facts = [
        f"date: {datetime.date.today().isoformat()}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores; BLAS {linalg.blas_description()}",
        f"MLP 784-512-256-10: {params:,} parameters ({params * 4 / 2**20:.2f} MiB in float32); "
        f"chunks of {linalg.CHUNK} samples",
    ]
    report = "\n".join(lines) + "\n\n" + "\n".join(f"- {f}" for f in facts)
    print(report)
    if args.output:
        command = "python benchmarks/distributed.py" + (" --quick" if args.quick else "")
        args.output.write_text(
            f"# Data-parallel training over MPI\n\nProduced by `{command}`.\n\n{report}\n"
        )


if __name__ == "__main__":
    main()
