"""funcnn's LSTM and GRU training steps against PyTorch eager on the CPU.

Usage:  python benchmarks/recurrent.py [--quick] [--busy-too] [--output benchmarks/RECURRENT.md]

Workloads (float32): a batch of 64 sequences of 50 steps of 100 features, an LSTM or a
GRU of 128 units, its last output through a Dense of 10, softmax cross-entropy, Adam
(1e-3): one training step (forward, backpropagation through time, update). PyTorch runs
``torch.nn.LSTM``/``torch.nn.GRU`` (batch_first) and a ``Linear`` from the same weights
(PyTorch's gate order and split biases, see :mod:`funcnn.layers.cells`), and its losses
must agree with funcnn's over 3 steps before anything is timed.

Timing is benchmarks/run.py's method, with its helpers: each competitor in its own fresh
process, processes alternating over rounds, the median of repetitions after a warm-up;
the speed ratio is PyTorch's time / funcnn's time (above 1: funcnn is faster); idle, and
with ``--busy-too`` again with one spinning process per core.

There is no compiled tier for the recurrent layers (``funcnn.optim.compiled`` compiles
Adam's update only): the only funcnn path is NumPy's. Besides it, the script times
levers that funcnn.layers could take, as cells written here (subclasses, same bits: the
script checks the losses are equal to funcnn's bit for bit), and profiles where a
funcnn step's time goes: the products (funcnn.linalg), the cells' elementwise gate
work, and the rest (the scan's Python per step, the Dense, the loss, Adam).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import layers as L
from funcnn import linalg, nn
from funcnn.layers.cells import CellParams, GRUCell, LSTMCell


def _load_run() -> Any:
    # by path: putting benchmarks/ on sys.path would let its distributed.py hide Dask's
    path = Path(__file__).with_name("run.py")
    spec = importlib.util.spec_from_file_location("funcnn_benchmarks_run", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


run = _load_run()  # its timing, machine facts and busy cores; it tunes the allocator

BATCH, TIME, FEATURES, UNITS, CLASSES = 64, 50, 100, 128, 10
WORKLOADS = {"LSTM train step": 5, "GRU train step": 5}  # name -> calls per repetition
FUSED = "funcnn, fused gates (lever)"
DIRECT = "funcnn, fused gates + BLAS per step (lever)"
COMPETITORS = ["funcnn", FUSED, DIRECT, "PyTorch"]


# ---------------------------------------------------------------- levers: cells written here


class FusedLSTMCell(LSTMCell):
    """LSTMCell's step with one sigmoid over all four gate blocks (the candidate's block
    is computed and unused) and a backward that writes dz's blocks in place instead of
    concatenating them. Same operations per element in the same order: the same bits."""

    def step(self, params, xp, state, *, train):
        h, c = state
        u = self.units
        z = xp + self._recurrent(params, h, train)
        s = nn.sigmoid(z)
        i, f, o = s[:, :u], s[:, u : 2 * u], s[:, 3 * u :]
        g = np.tanh(z[:, 2 * u : 3 * u])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        return (o * tanh_c, c_new), (c, i, f, g, o, tanh_c)

    def step_backward(self, params, cache, d_state):
        c, i, f, g, o, tanh_c = cache
        dh, dc = d_state
        u = self.units
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        dz = np.empty((dc.shape[0], 4 * u), dc.dtype)
        np.multiply(dc * g * i, 1 - i, out=dz[:, :u])
        np.multiply(dc * c * f, 1 - f, out=dz[:, u : 2 * u])
        np.multiply(dc * i, 1 - g * g, out=dz[:, 2 * u : 3 * u])
        np.multiply(dh * tanh_c * o, 1 - o, out=dz[:, 3 * u :])
        return dz, dz, (self._recurrent_back(params, dz), dc * f)


class FusedGRUCell(GRUCell):
    """GRUCell's step with one sigmoid over the update and reset gates together, and its
    backward writing d_xp's blocks in place. The same bits."""

    def step(self, params, xp, state, *, train):
        (h,) = state
        u = self.units
        hp = self._recurrent(params, h, train)
        hp += params.bias[1]
        zr = nn.sigmoid(xp[:, : 2 * u] + hp[:, : 2 * u])
        z, r = zr[:, :u], zr[:, u:]
        hh = hp[:, 2 * u :]
        n = np.tanh(xp[:, 2 * u :] + r * hh)
        return (z * h + (1 - z) * n,), (h, z, r, n, hh)

    def step_backward(self, params, cache, d_state):
        h, z, r, n, hh = cache
        (dh,) = d_state
        u = self.units
        d_xp = np.empty((dh.shape[0], 3 * u), dh.dtype)
        dn = np.multiply(dh * (1 - z), 1 - n * n, out=d_xp[:, 2 * u :])
        np.multiply(dh * (h - n) * z, 1 - z, out=d_xp[:, :u])
        np.multiply(dn * hh * r, 1 - r, out=d_xp[:, u : 2 * u])
        d_rec = d_xp.copy()
        d_rec[:, 2 * u :] *= r
        return d_xp, d_rec, (dh * z + self._recurrent_back(params, d_rec),)


class _Direct:
    """The per-step recurrent products as one BLAS call each (``h @ U``), skipping
    linalg.matmul's checks and block planning. What linalg already does for these small
    training products (one call, the BLAS held to one thread), so the same bits here;
    not for inference mode, whose padded blocks keep a row's bits independent of its batch."""

    def _recurrent(self, params, h, train):
        return h @ params.recurrent_kernel if train else super()._recurrent(params, h, train)

    def _recurrent_back(self, params, d_rec):
        return d_rec @ params.recurrent_kernel.T


class DirectLSTMCell(_Direct, FusedLSTMCell):
    pass


class DirectGRUCell(_Direct, FusedGRUCell):
    pass


CELLS = {
    "funcnn": {"LSTM": LSTMCell, "GRU": GRUCell},
    FUSED: {"LSTM": FusedLSTMCell, "GRU": FusedGRUCell},
    DIRECT: {"LSTM": DirectLSTMCell, "GRU": DirectGRUCell},
}


# ---------------------------------------------------------------- the models


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, TIME, FEATURES)).astype(np.float32)
    return x, rng.integers(0, CLASSES, BATCH)


def funcnn_model(kind: str, variant: str = "funcnn") -> L.Serial:
    return L.serial(L.RNN(CELLS[variant][kind](UNITS)), L.Dense(CLASSES))


def gates(a: np.ndarray, kind: str, units: int) -> np.ndarray:
    """Our gate blocks (last axis) in PyTorch's order: LSTM's are the same; GRU's z, r, h
    become r, z, n."""
    order = [1, 0, 2] if kind == "GRU" else [0, 1, 2, 3]
    return np.concatenate([a[..., i * units : (i + 1) * units] for i in order], axis=-1)


def copy_cell(module: Any, kind: str, params: CellParams, suffix: str = "_l0") -> None:
    """funcnn's cell params into a torch.nn.LSTM/GRU (its first layer by default)."""
    torch = run.torch
    u = params.recurrent_kernel.shape[0]
    bias_in = params.bias[0] if kind == "GRU" else params.bias
    bias_rec = params.bias[1] if kind == "GRU" else np.zeros_like(params.bias)
    with torch.no_grad():
        for name, value in (
            ("weight_ih", gates(np.asarray(params.kernel), kind, u).T),
            ("weight_hh", gates(np.asarray(params.recurrent_kernel), kind, u).T),
            ("bias_ih", gates(np.asarray(bias_in), kind, u)),
            ("bias_hh", gates(np.asarray(bias_rec), kind, u)),
        ):
            getattr(module, name + suffix).copy_(torch.from_numpy(np.ascontiguousarray(value)))


def copy_dense(linear: Any, params: Any) -> None:
    torch = run.torch
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(params.w).T)))
        linear.bias.copy_(torch.from_numpy(np.array(params.b)))


def torch_model(kind: str, params: Any) -> Any:
    """The same network in PyTorch, from funcnn's params: the RNN's last output, a Linear."""
    torch = run.torch

    class Last(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(FEATURES, UNITS, batch_first=True)
            self.dense = torch.nn.Linear(UNITS, CLASSES)

        def forward(self, x: Any) -> Any:
            return self.dense(self.rnn(x)[0][:, -1])

    net = Last()
    copy_cell(net.rnn, kind, params[0])
    copy_dense(net.dense, params[1])
    if kind == "LSTM":  # funcnn's LSTM has one bias: PyTorch's second stays at 0, untrained
        net.rnn.bias_hh_l0.requires_grad_(False)
    return net


def setup(workload: str, competitor: str) -> Callable[[], float]:
    """One training step of ``competitor`` on ``workload``, from the same weights."""
    kind = workload.split()[0]
    x, y = data()
    if competitor == "PyTorch":
        run.load_torch()
        params = funcnn_model(kind).init(0, (TIME, FEATURES))
        return run.TorchTrainer(torch_model(kind, params), x, y).step
    return run.FuncnnTrainer(funcnn_model(kind, competitor), (TIME, FEATURES), x, y).step


def agreement(workload: str, competitor: str) -> str:
    """Losses over 3 steps from the same weights: a lever's must equal funcnn's bit for bit,
    PyTorch's agree within run.check_agreement's tolerance; else no timing."""
    if competitor == "PyTorch":
        return run.check_agreement(f"{workload} (PyTorch)", setup(workload, "funcnn"),
                                   setup(workload, competitor))  # fmt: skip
    ours, lever = setup(workload, "funcnn"), setup(workload, competitor)
    la, lb = [ours() for _ in range(3)], [lever() for _ in range(3)]
    if la != lb:
        raise SystemExit(f"{workload}: {competitor}'s losses {lb} differ from funcnn's {la}")
    return f"{workload}: {competitor}: losses equal to funcnn's bit for bit over 3 steps"


# ---------------------------------------------------------------- timing and profile


def worker(workload: str, competitor: str, repeats: str) -> list[float]:
    fn = setup(workload, competitor)
    return run.interleaved({competitor: fn}, int(repeats), WORKLOADS[workload])[competitor]


def isolated(workload: str, rounds: int, repeats: int) -> dict[str, tuple[float, list[float]]]:
    """run.isolated's method for this file's workloads: each competitor in a fresh process,
    processes alternating; name -> (median seconds per call, each round's median)."""
    per_round: dict[str, list[float]] = {c: [] for c in COMPETITORS}
    samples: dict[str, list[float]] = {c: [] for c in COMPETITORS}
    for _ in range(rounds):
        for competitor in COMPETITORS:
            command = [sys.executable, __file__, "--worker", workload, competitor, str(repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            times = json.loads(done.stdout.strip().splitlines()[-1])
            samples[competitor] += times
            per_round[competitor].append(statistics.median(times))
    return {c: (statistics.median(samples[c]), per_round[c]) for c in COMPETITORS}


def profile(workload: str, calls: int = 10) -> dict[str, float]:
    """Seconds per funcnn step in: products (linalg's), the cells' gate work (step and
    step_backward without their products), and the rest (the scan's Python per step, the
    Dense, the loss, Adam). Exclusive times, by wrapping those functions for the run."""
    kind = workload.split()[0]
    cell = CELLS["funcnn"][kind]
    spent = {"products": 0.0, "gates forward": 0.0, "gates backward": 0.0}
    inner: list[float] = []

    def timed(part: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            inner.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total = time.perf_counter() - start
                spent[part] += total - inner.pop()
                if inner:
                    inner[-1] += total

        return wrapper

    originals = {name: getattr(linalg, name) for name in ("matmul", "matmul_tn", "sum_rows")}
    methods = {"step": cell.step, "step_backward": cell.step_backward}
    trainer = run.FuncnnTrainer(funcnn_model(kind), (TIME, FEATURES), *data())
    try:
        for name, fn in originals.items():
            setattr(linalg, name, timed("products", fn))
        cell.step = timed("gates forward", methods["step"])  # type: ignore[method-assign]
        cell.step_backward = timed("gates backward", methods["step_backward"])  # type: ignore[method-assign]
        for _ in range(2):
            trainer.step()
        spent.update(dict.fromkeys(spent, 0.0))
        start = time.perf_counter()
        for _ in range(calls):
            trainer.step()
        total = (time.perf_counter() - start) / calls
    finally:
        for name, fn in originals.items():
            setattr(linalg, name, fn)
        cell.step, cell.step_backward = methods["step"], methods["step_backward"]  # type: ignore[method-assign]
    parts = {part: value / calls for part, value in spent.items()}
    parts["rest"] = total - sum(parts.values())
    parts["total"] = total
    return parts


# ---------------------------------------------------------------- report


def speed_table(rows: dict[str, dict]) -> str:
    lines = [
        "| workload | funcnn | PyTorch eager | speed vs PyTorch (target >= 0.8x) | "
        + " | ".join(f"{c} | its speed vs PyTorch" for c in (FUSED, DIRECT))
        + " |",
        "| --- " * 8 + "|",
    ]
    for name, result in rows.items():
        cells = [name, run.cell(result, "funcnn"), run.cell(result, "PyTorch"),
                 run.ratio_cell(run.speed(result, "funcnn", "PyTorch"))]  # fmt: skip
        for lever in (FUSED, DIRECT):
            cells += [run.cell(result, lever), run.ratio_cell(run.speed(result, lever, "PyTorch"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_table(profiles: dict[str, dict[str, float]]) -> str:
    lines = [
        "| workload (funcnn, idle) | step | products | gates forward | gates backward | "
        "the rest (scan's Python per step, Dense, loss, Adam) |",
        "| --- " * 6 + "|",
    ]
    for name, p in profiles.items():
        parts = ("total", "products", "gates forward", "gates backward", "rest")
        cells = [run.fmt(p[k]) + (f" ({p[k] / p['total']:.0%})" if k != "total" else "")
                 for k in parts]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


QUIET = (
    "**These figures must be regenerated on a quiet machine**: they were taken while other "
    "engineers ran test suites on the same 2 cores, so every time is inflated by an unknown, "
    "varying amount and the ratios are rough."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    parser.add_argument("--busy-too", action="store_true", help="also with every core busy")
    parser.add_argument("--output", type=Path, help="write the report (markdown) here")
    parser.add_argument("--noisy", action="store_true", help="say the machine was not quiet")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one competitor's timings, for isolated()
        print(json.dumps(worker(*args.worker)))
        return

    rounds, repeats = (1, 3) if args.quick else (4, 5)
    profiles = {w: profile(w) for w in WORKLOADS}  # before PyTorch is loaded here
    if not run.load_torch():
        raise SystemExit("PyTorch is not installed: pip install torch==2.13.0")
    notes = [agreement(w, c) for w in WORKLOADS for c in COMPETITORS[1:]]
    rows = {w: isolated(w, rounds, repeats) for w in WORKLOADS}
    busy = None
    if args.busy_too:
        spinners = run.busy_cores()
        try:
            busy = {w: isolated(w, rounds, repeats) for w in WORKLOADS}
        finally:
            for spinner in spinners:
                spinner.kill()
    facts = run.machine(run.gemm_peak())
    tables = [speed_table(rows), *([speed_table(busy)] if busy else []), profile_table(profiles)]
    print(*tables, *facts, *notes, sep="\n\n")
    if not args.output:
        return
    command = "python benchmarks/recurrent.py" + " --quick" * args.quick
    command += " --busy-too" * args.busy_too
    sections = {
        "Idle": tables[0],
        "With both cores busy (one spinning process per core)": tables[1] if busy else "",
        "Where funcnn's time goes": tables[-1],
        "Machine": "\n".join(f"- {f}" for f in facts),
        "Agreement before timing (same initial weights)": "\n".join(f"- {n}" for n in notes),
    }
    args.output.write_text(
        "# Recurrent layers: funcnn against PyTorch eager\n\n"
        f"Produced by `{command}` on {datetime.date.today().isoformat()}, on "
        f"{run.cpu_model()} ({linalg.blas_description()}).\n\n"
        + (QUIET + "\n\n" if args.noisy else "")
        + (__doc__ or "").split("\n\n", 2)[2].strip()
        + "".join(f"\n\n## {title}\n\n{text}" for title, text in sections.items() if text)
        + "\n"
    )


if __name__ == "__main__":
    main()
