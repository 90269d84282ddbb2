"""funcnn's own threads against the BLAS's, on an idle machine and on a busy one.

Usage:  python benchmarks/threads.py [--quick] [--output benchmarks/THREADS.md]

funcnn runs every product on its own thread pool with the BLAS held to one thread,
in fixed blocks (``funcnn.linalg``), so that results have the same bits on any
thread count. This measures what that costs and buys, side by side in one run:

- ``funcnn``: the default.
- ``BLAS threads``: the same funcnn step with funcnn.linalg's products replaced by
  plain NumPy products and the BLAS left to its own threads (what funcnn did before
  it owned its parallelism; its bits change with the thread count).
- ``1 BLAS thread``: the same, with the BLAS held to one thread.
- ``PyTorch eager`` (if installed), on the same weights.

Each workload runs idle, then with one spinning process per core keeping every
core busy (``while True: pass``), each competitor in its own fresh process,
processes alternating over several rounds. Ratios are medians over rounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import run as suite

import funcnn
from funcnn import linalg

WORKLOADS = {  # name -> calls per timed repetition
    "MLP train step, batch 32": 30,
    "MLP train step, batch 128": 12,
    "MLP train step, batch 512": 4,
    "CNN train step, batch 64": 3,
}
OURS, BLAS, ONE, TORCH = "funcnn", "BLAS threads", "1 BLAS thread", "PyTorch eager"


def use_plain_products() -> None:
    """funcnn.linalg's products as plain NumPy ones (the design before funcnn.linalg)."""
    linalg.matmul = lambda a, b, *, group=1, padded=False: a @ b
    linalg.matmul_tn = lambda a, b, *, group=1: a.T @ b
    linalg.sum_rows = lambda a, *, group=1: a.sum(axis=0)


def step_function(workload: str, competitor: str):
    rng = np.random.default_rng(0)
    if workload.startswith("MLP"):
        batch = int(workload.rsplit(" ", 1)[1])
        model, shape = suite.mlp(), (784,)
        x = rng.standard_normal((batch, 784)).astype(np.float32)
    else:
        batch, model, shape = 64, suite.cnn(), (28, 28, 1)
        x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    ours = suite.FuncnnTrainer(model, shape, x, y)
    if competitor != TORCH:
        return ours.step
    suite.load_torch()
    if workload.startswith("MLP"):
        return suite.TorchTrainer(suite.torch_mlp(ours.params), x, y).step
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return suite.TorchTrainer(suite.torch_cnn(ours.params), nchw, y).step


def worker(workload: str, competitor: str, repeats: int) -> list[float]:
    if competitor in (BLAS, ONE):
        use_plain_products()
    fn = step_function(workload, competitor)
    return suite.interleaved({"x": fn}, repeats, WORKLOADS[workload])["x"]


def spinners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def measure(workload: str, competitors: list[str], rounds: int, repeats: int) -> dict:
    """competitor -> per-round medians (seconds per step)."""
    per_round: dict[str, list[float]] = {c: [] for c in competitors}
    for _ in range(rounds):
        for competitor in competitors:
            env = dict(os.environ)
            if competitor == ONE:
                env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"
            command = [sys.executable, __file__, "--worker", workload, competitor, str(repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            per_round[competitor].append(
                statistics.median(json.loads(done.stdout.splitlines()[-1]))
            )
    return per_round


def ratio(result: dict, slow: str, fast: str) -> float | None:
    if slow not in result or fast not in result:
        return None
    return statistics.median(s / f for s, f in zip(result[slow], result[fast]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        workload, competitor, repeats = args.worker
        print(json.dumps(worker(workload, competitor, int(repeats))))
        return
    rounds, repeats = (2, 3) if args.quick else (3, 5)
    competitors = [OURS, BLAS, ONE] + ([TORCH] if suite.load_torch() else [])
    cores = linalg.available_cores()
    results: dict[str, dict[str, dict]] = {"idle": {}, "busy": {}}
    for mode in ("idle", "busy"):
        load = spinners(cores) if mode == "busy" else []
        try:
            time.sleep(0.5 if load else 0)
            for workload in WORKLOADS:
                results[mode][workload] = measure(workload, competitors, rounds, repeats)
        finally:
            for p in load:
                p.kill()

    def ms(values: list[float] | None) -> str:
        return "-" if not values else f"{statistics.median(values) * 1e3:.2f} ms"

    def x(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    lines = [
        "| workload | load | funcnn | BLAS threads | 1 BLAS thread | PyTorch eager "
        "| funcnn / BLAS threads (time) | funcnn speed vs PyTorch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workload in WORKLOADS:
        for mode in ("idle", "busy"):
            r = results[mode][workload]
            lines.append(
                f"| {workload} | {mode} | {ms(r.get(OURS))} | {ms(r.get(BLAS))} | "
                f"{ms(r.get(ONE))} | {ms(r.get(TORCH))} | {x(ratio(r, OURS, BLAS))} | "
                f"{x(ratio(r, TORCH, OURS))} |"
            )
    checks = []
    for workload in WORKLOADS:
        idle = ratio(results["idle"][workload], OURS, BLAS)
        checks.append((f"idle, {workload}: funcnn <= 1.3x the BLAS-threads time", idle, 1.3, "<="))
        busy_one = ratio(results["busy"][workload], OURS, ONE)
        checks.append((f"busy, {workload}: funcnn <= the 1-BLAS-thread time", busy_one, 1.0, "<="))
    gain = ratio(results["busy"]["MLP train step, batch 512"], BLAS, OURS)
    checks.append(("busy, MLP batch 512: funcnn >= 3x faster than BLAS threads", gain, 3.0, ">="))
    target_lines = ["| target | measured | met |", "| --- | --- | --- |"]
    for text, value, goal, how in checks:
        met = (
            "-"
            if value is None
            else ("yes" if (value <= goal if how == "<=" else value >= goal) else "no")
        )
        target_lines.append(f"| {text} | {x(value)} | {met} |")
    facts = [
        f"date: {datetime.date.today().isoformat()}",
        f"CPU: {suite.cpu_model()}, {os.cpu_count()} cores ({cores} usable), {platform.machine()}",
        f"BLAS: {linalg.blas_description()}",
        f"funcnn workers: {linalg.workers()}; NumPy {np.__version__}; "
        f"Python {platform.python_version()}",
        f"busy: {cores} processes running `while True: pass`",
    ]
    report = (
        "\n".join(lines)
        + "\n\n"
        + "\n".join(target_lines)
        + "\n\n"
        + "\n".join(f"- {f}" for f in facts)
    )
    print(report)
    if args.output:
        command = "python benchmarks/threads.py" + (" --quick" if args.quick else "")
        args.output.write_text(
            f"# funcnn's threads against the BLAS's\n\nProduced by `{command}`; "
            "see that script's docstring for what each column runs.\n\n" + report + "\n"
        )


if __name__ == "__main__":
    funcnn.allocator.tune_allocator()
    main()
