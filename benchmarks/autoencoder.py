"""funcnn's convolutional autoencoder training step against PyTorch eager on the CPU.

Usage:  python benchmarks/autoencoder.py [--quick] [--busy-too] [--noisy]
        [--output benchmarks/AUTOENCODER.md]

Workload (float32): a batch of 64 MNIST-sized images (28x28x1), the model of
``examples/conv_autoencoder.py``: Conv2D(16, 3, stride 2) and Conv2D(16, 3, stride 2) down
to 7x7x16, Conv2DTranspose(16, 3, stride 2) and Conv2DTranspose(8, 3, stride 2) back up
to 28x28x8 (ReLU after each), a 3x3 Conv2D to one channel of logits, the sigmoid
cross-entropy of each pixel against the input, Adam (1e-3): one training step
(forward, backward, update). PyTorch runs the same layers (``Conv2d`` and
``ConvTranspose2d``, with TensorFlow's "same" as explicit pads and crops, see
``torch_model``) from the same weights, and its losses must agree with funcnn's over 3
steps before anything is timed.

Timing is benchmarks/run.py's method, with its helpers: each competitor in its own fresh
process, processes alternating over rounds, the median of repetitions after a warm-up;
the speed ratio is PyTorch's time / funcnn's time (above 1: funcnn is faster); idle, and
with ``--busy-too`` again with one spinning process per core. The profile splits a
funcnn step into its products and batch sums (funcnn.linalg), the windows' gathering and
scattering (im2col and col2im, copies), and the rest.
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
from funcnn import linalg, losses, optim, train_step
from funcnn.layers import conv, conv_transpose


def _load_run() -> Any:
    # by path: putting benchmarks/ on sys.path would let its distributed.py hide Dask's
    path = Path(__file__).with_name("run.py")
    spec = importlib.util.spec_from_file_location("funcnn_benchmarks_run", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


run = _load_run()  # its timing, machine facts and busy cores; it tunes the allocator

BATCH, CALLS = 64, 5
WORKLOAD = "autoencoder train step"
COMPETITORS = ["funcnn", "PyTorch"]


def data(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((BATCH, 28, 28, 1)).astype(np.float32)


def funcnn_model() -> L.Serial:
    return L.serial(
        L.Conv2D(16, 3, strides=2, padding="same"), L.Relu,
        L.Conv2D(16, 3, strides=2, padding="same"), L.Relu,
        L.Conv2DTranspose(16, 3, strides=2, padding="same"), L.Relu,
        L.Conv2DTranspose(8, 3, strides=2, padding="same"), L.Relu,
        L.Conv2D(1, 3, padding="same"),
    )  # fmt: skip


def torch_model(params: Any) -> Any:
    """The same network in PyTorch (NCHW), from funcnn's params. TensorFlow's "same" for
    a 3x3 stride-2 convolution of an even input pads (0, 1); PyTorch pads both sides, so
    the strided convolutions pad explicitly; Keras' "same" transposed convolution (3x3,
    stride 2) crops nothing before and one position after, PyTorch's padding=1,
    output_padding=1 crops one before: the transposed layers crop explicitly too."""
    torch = run.torch
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.ModuleList([nn.Conv2d(1, 16, 3, stride=2), nn.Conv2d(16, 16, 3, 2)])
            self.up = nn.ModuleList(
                [nn.ConvTranspose2d(16, 16, 3, 2), nn.ConvTranspose2d(16, 8, 3, 2)]
            )
            self.out = nn.Conv2d(8, 1, 3, padding=1)

        def forward(self, x: Any) -> Any:
            for layer in self.down:
                x = torch.relu(layer(torch.nn.functional.pad(x, (0, 1, 0, 1))))
            for layer in self.up:
                h = x.shape[-1] * 2
                x = torch.relu(layer(x)[:, :, :h, :h])
            return self.out(x)

    net = Net()
    convs = [net.down[0], net.down[1], net.up[0], net.up[1], net.out]
    with torch.no_grad():
        for module, p in zip(convs, params[::2]):
            w = np.asarray(p.w).transpose(
                3, 2, 0, 1
            )  # (out, in, kh, kw); transposed: (in, out, ..)
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            module.bias.copy_(torch.from_numpy(np.array(p.b)))
    return net


class FuncnnTrainer:
    def __init__(self, x: np.ndarray) -> None:
        model = funcnn_model()
        self.params = model.init(0, x.shape[1:])
        self.opt = optim.adam(1e-3)
        self.opt_state = self.opt.init(self.params)
        self.step_fn = train_step(model, losses.sigmoid_binary_cross_entropy, self.opt)
        self.x = x

    def step(self) -> float:
        self.params, self.opt_state, loss = self.step_fn(
            self.params, self.opt_state, self.x, self.x
        )
        return float(loss)


class TorchTrainer:
    def __init__(self, x: np.ndarray) -> None:
        torch = run.torch
        self.net = torch_model(funcnn_model().init(0, x.shape[1:]))
        self.x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss = torch.nn.BCEWithLogitsLoss()

    def step(self) -> float:
        self.opt.zero_grad()
        loss = self.loss(self.net(self.x), self.x)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def setup(competitor: str) -> Callable[[], float]:
    if competitor == "PyTorch":
        run.load_torch()
        return TorchTrainer(data()).step
    return FuncnnTrainer(data()).step


def worker(competitor: str, repeats: str) -> list[float]:
    return run.interleaved({competitor: setup(competitor)}, int(repeats), CALLS)[competitor]


def isolated(rounds: int, repeats: int) -> dict[str, tuple[float, list[float]]]:
    """run.isolated's method: each competitor in a fresh process, processes alternating;
    name -> (median seconds per call, each round's median)."""
    per_round: dict[str, list[float]] = {c: [] for c in COMPETITORS}
    samples: dict[str, list[float]] = {c: [] for c in COMPETITORS}
    for _ in range(rounds):
        for competitor in COMPETITORS:
            command = [sys.executable, __file__, "--worker", competitor, str(repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            times = json.loads(done.stdout.strip().splitlines()[-1])
            samples[competitor] += times
            per_round[competitor].append(statistics.median(times))
    return {c: (statistics.median(samples[c]), per_round[c]) for c in COMPETITORS}


def profile(calls: int = 10) -> dict[str, float]:
    """Seconds per funcnn step in: products and batch sums (linalg's), gathering and
    scattering windows (im2col, col2im, without their products), and the rest."""
    spent = {"products": 0.0, "windows": 0.0}
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

    products = {name: getattr(linalg, name) for name in ("matmul", "matmul_tn", "sum_rows")}
    windows = {
        (module, name): getattr(module, name)
        for module in (conv, conv_transpose)
        for name in ("gather_windows", "scatter_windows")
    }
    trainer = FuncnnTrainer(data())
    try:
        for name, fn in products.items():
            setattr(linalg, name, timed("products", fn))
        for (module, name), fn in windows.items():
            setattr(module, name, timed("windows", fn))
        for _ in range(2):
            trainer.step()
        spent.update(dict.fromkeys(spent, 0.0))
        start = time.perf_counter()
        for _ in range(calls):
            trainer.step()
        total = (time.perf_counter() - start) / calls
    finally:
        for name, fn in products.items():
            setattr(linalg, name, fn)
        for (module, name), fn in windows.items():
            setattr(module, name, fn)
    parts = {part: value / calls for part, value in spent.items()}
    parts["rest"] = total - sum(parts.values())
    parts["total"] = total
    return parts


def speed_table(result: dict) -> str:
    return "\n".join(
        [
            "| workload | funcnn | PyTorch eager | speed vs PyTorch |",
            "| --- | --- | --- | --- |",
            f"| {WORKLOAD} (batch {BATCH}) | {run.cell(result, 'funcnn')} | "
            f"{run.cell(result, 'PyTorch')} | "
            f"{run.ratio_cell(run.speed(result, 'funcnn', 'PyTorch'))} |",
        ]
    )


def profile_table(p: dict[str, float]) -> str:
    cells = [
        run.fmt(p[k]) + (f" ({p[k] / p['total']:.0%})" if k != "total" else "")
        for k in ("total", "products", "windows", "rest")
    ]
    return "\n".join(
        [
            "| funcnn step | products and batch sums | im2col / col2im copies | the rest "
            "(ReLU, loss, Adam, padding, bias) |",
            "| --- | --- | --- | --- |",
            "| " + " | ".join(cells) + " |",
        ]
    )


QUIET = (
    "**These figures must be regenerated on a quiet machine**: they were taken while other "
    "engineers ran test suites on the same 2 cores, so every time is inflated by an unknown, "
    "varying amount and the ratio is rough."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    parser.add_argument("--busy-too", action="store_true", help="also with every core busy")
    parser.add_argument("--output", type=Path, help="write the report (markdown) here")
    parser.add_argument("--noisy", action="store_true", help="say the machine was not quiet")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one competitor's timings, for isolated()
        print(json.dumps(worker(*args.worker)))
        return

    rounds, repeats = (1, 3) if args.quick else (4, 5)
    profiled = profile(3 if args.quick else 10)  # before PyTorch is loaded here
    if not run.load_torch():
        raise SystemExit("PyTorch is not installed: pip install torch==2.13.0")
    note = run.check_agreement(f"{WORKLOAD} (PyTorch)", setup("funcnn"), setup("PyTorch"))
    rows = isolated(rounds, repeats)
    busy = None
    if args.busy_too:
        spinners = run.busy_cores()
        try:
            busy = isolated(rounds, repeats)
        finally:
            for spinner in spinners:
                spinner.kill()
    facts = run.machine(run.gemm_peak())
    tables = [speed_table(rows), *([speed_table(busy)] if busy else []), profile_table(profiled)]
    print(*tables, *facts, note, sep="\n\n")
    if not args.output:
        return
    command = "python benchmarks/autoencoder.py" + " --quick" * args.quick
    command += " --busy-too" * args.busy_too
    sections = {
        "Idle": tables[0],
        "With both cores busy (one spinning process per core)": tables[1] if busy else "",
        "Where funcnn's time goes": tables[-1],
        "Machine": "\n".join(f"- {f}" for f in facts),
        "Agreement before timing (same initial weights)": f"- {note}",
    }
    args.output.write_text(
        "# Convolutional autoencoder: funcnn against PyTorch eager\n\n"
        f"Produced by `{command}` on {datetime.date.today().isoformat()}, on "
        f"{run.cpu_model()} ({linalg.blas_description()}).\n\n"
        + (QUIET + "\n\n" if args.noisy else "")
        + (__doc__ or "").split("\n\n", 2)[2].strip()
        + "".join(f"\n\n## {title}\n\n{text}" for title, text in sections.items() if text)
        + "\n"
    )


if __name__ == "__main__":
    main()
