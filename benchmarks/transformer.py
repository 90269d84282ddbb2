"""funcnn's transformer training step against the same model in PyTorch eager on the CPU.

Usage:  python benchmarks/transformer.py [--quick] [--busy-too] [--output benchmarks/TRANSFORMER.md]

Workload (float32): examples/char_transformer.py's model, a decoder-only transformer
(vocabulary 65, context 64, width 64, 4 heads, 2 pre-norm blocks, a Gelu MLP of 256),
a batch of 32 windows of 64 ids, softmax cross-entropy over every step, Adam (1e-3):
one training step. PyTorch runs the same network (``torch.nn.MultiheadAttention``,
``LayerNorm``, ``GELU(approximate="tanh")``) from funcnn's weights
(:func:`torch_transformer`), and its losses must agree with funcnn's over 3 steps
before anything is timed.

Competitors: funcnn (the NumPy tier), funcnn's compiled tier (the numba extra: Adam's
update compiled and funcnn.kernels) and PyTorch eager. Timing is benchmarks/run.py's
method: each competitor in its own fresh process, processes alternating over rounds, the median of
repetitions after a warm-up; the ratio is PyTorch's time / funcnn's (above 1: funcnn is
faster), idle and, with ``--busy-too``, with one spinning process per core.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import layers as L
from funcnn import losses, optim, train_step


def _load_run() -> Any:
    # by path: putting benchmarks/ on sys.path would let its distributed.py hide Dask's
    path = Path(__file__).with_name("run.py")
    spec = importlib.util.spec_from_file_location("funcnn_benchmarks_run", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


run = _load_run()  # its timing helpers, machine facts and busy cores

VOCAB, CONTEXT, DIM, HEADS, BLOCKS, BATCH = 65, 64, 64, 4, 2, 32
WORKLOAD = "transformer train step"
DESCRIPTION = (
    f"layers.DecoderOnlyTransformer(vocabulary {VOCAB}, context {CONTEXT}, width {DIM}, "
    f"{HEADS} heads, {BLOCKS} blocks), a batch of {BATCH} windows of {CONTEXT} ids, softmax "
    "cross-entropy over every step, Adam (1e-3), float32."
)
INNER = 3  # calls per repetition
COMPETITORS = ["funcnn", run.NUMBA, "PyTorch"]


def funcnn_model() -> L.Serial:
    return L.DecoderOnlyTransformer(VOCAB, CONTEXT, DIM, HEADS, BLOCKS)


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, (BATCH, CONTEXT)), rng.integers(0, VOCAB, (BATCH, CONTEXT))


# ---------------------------------------------------------------- the same model in PyTorch


def torch_transformer(params: Any, heads: int, eps: float = 1e-5) -> Any:
    """``layers.DecoderOnlyTransformer``'s network in PyTorch, from its params: token and
    learned position embeddings, pre-norm causal blocks, a final LayerNorm, a Linear.
    Returns a module mapping ids ``(batch, time)`` to logits ``(batch, time, vocab)``."""
    import torch

    emb, pos, *blocks, final, head = params
    vocab, dim = emb.embeddings.shape
    t = torch.from_numpy

    def copy(param: Any, value: Any) -> None:
        param.data.copy_(t(np.array(value, dtype=np.float32)))

    class Block(torch.nn.Module):
        def __init__(self, p: Any) -> None:
            super().__init__()
            (ln1, att), (ln2, fc1, _, fc2) = p
            mlp = fc1.w.shape[1]
            self.ln1 = torch.nn.LayerNorm(dim, eps=eps)
            self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
            self.ln2 = torch.nn.LayerNorm(dim, eps=eps)
            self.fc1, self.fc2 = torch.nn.Linear(dim, mlp), torch.nn.Linear(mlp, dim)
            for module, norm in ((self.ln1, ln1), (self.ln2, ln2)):
                copy(module.weight, norm.gamma)
                copy(module.bias, norm.beta)
            kernels = [np.asarray(k).reshape(dim, -1).T for k in att[0:6:2]]
            copy(self.attn.in_proj_weight, np.concatenate(kernels))
            copy(self.attn.in_proj_bias, np.concatenate([b.reshape(-1) for b in att[1:6:2]]))
            copy(self.attn.out_proj.weight, np.asarray(att.output_kernel).reshape(-1, dim).T)
            copy(self.attn.out_proj.bias, att.output_bias)
            for linear, dense in ((self.fc1, fc1), (self.fc2, fc2)):
                copy(linear.weight, np.asarray(dense.w).T)
                copy(linear.bias, dense.b)

        def forward(self, x: Any) -> Any:
            steps = x.shape[1]
            causal = torch.ones(steps, steps, dtype=torch.bool).triu(1)
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=causal, need_weights=False)[0]
            gelu = torch.nn.functional.gelu(self.fc1(self.ln2(x)), approximate="tanh")
            return x + self.fc2(gelu)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, dim)
            self.positions = torch.nn.Parameter(torch.zeros(pos.positions.shape))
            self.blocks = torch.nn.ModuleList([Block(b) for b in blocks])
            self.norm = torch.nn.LayerNorm(dim, eps=eps)
            self.head = torch.nn.Linear(dim, vocab)
            copy(self.embedding.weight, emb.embeddings)
            copy(self.positions, pos.positions)
            copy(self.norm.weight, final.gamma)
            copy(self.norm.bias, final.beta)
            copy(self.head.weight, np.asarray(head.w).T)
            copy(self.head.bias, head.b)

        def forward(self, ids: Any) -> Any:
            x = self.embedding(ids) + self.positions[: ids.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    return Model()


def decayed(net: Any) -> tuple[list[Any], list[Any]]:
    """PyTorch's params split as funcnn's ``tree.kernel_mask`` splits them: (decayed, not).
    funcnn's q/k/v biases are (heads, key_dim), rank 2, so in_proj_bias is decayed too."""
    yes, no = [], []
    for name, p in net.named_parameters():
        (yes if p.dim() >= 2 or name.endswith("in_proj_bias") else no).append(p)
    return yes, no


# ---------------------------------------------------------------- the step


def setup(competitor: str) -> Callable[[], float]:
    """One training step of ``competitor``, from the same weights."""
    x, y = data()
    model = funcnn_model()
    params = model.init(0, (CONTEXT,))
    if competitor == "PyTorch":
        run.load_torch()
        torch = run.torch
        net = torch_transformer(params, HEADS)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)

        def torch_step() -> float:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx).reshape(-1, VOCAB), ty)
            loss.backward()
            opt.step()
            return float(loss.detach())

        return torch_step
    if competitor == run.NUMBA:
        from funcnn.optim import compiled

        adam = compiled.scale_by_adam()
    else:
        adam = optim.scale_by_adam()
    opt = optim.chain(adam, optim.scale_by_learning_rate(1e-3))
    state = {"params": params, "opt": opt.init(params)}
    step_fn = train_step(model, losses.softmax_cross_entropy, opt)

    def step() -> float:
        state["params"], state["opt"], loss = step_fn(state["params"], state["opt"], x, y)
        return loss

    return run.tiered(step, competitor)


def agreement() -> list[str]:
    notes = [run.check_agreement(f"{WORKLOAD} (PyTorch)", setup("funcnn"), setup("PyTorch"))]
    ours, compiled = setup("funcnn"), setup(run.NUMBA)
    la, lb = [ours() for _ in range(3)], [compiled() for _ in range(3)]
    if la != lb:
        raise SystemExit(f"the compiled tier's losses {lb} differ from funcnn's {la}")
    notes.append(f"{WORKLOAD}: compiled tier losses identical to the NumPy path's over 3 steps")
    return notes


def worker(competitor: str, repeats: str) -> list[float]:
    fn = setup(competitor)
    return run.interleaved({competitor: fn}, int(repeats), INNER)[competitor]


def isolated(rounds: int, repeats: int) -> dict[str, tuple[float, list[float]]]:
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


def where_it_goes(calls: int = 5) -> tuple[float, list[tuple[str, float]]]:
    """(seconds per funcnn step, [(funcnn module, its own seconds per step)]), largest
    first: cProfile's exclusive times summed by the file that spends them (NumPy's calls
    count for the funcnn function that makes them). cProfile sees the main thread only:
    work on funcnn's threads shows as the main thread's wait for it (in linalg.py)."""
    import cProfile
    import pstats
    import time

    step = setup("funcnn")
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(calls):
        step()
    total = (time.perf_counter() - start) / calls
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [step() for _ in range(calls)])
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_file: dict[str, float] = {}

    def charge(func: tuple, seconds: float, depth: int = 0) -> None:
        file, callers = func[0], stats[func][4] if func in stats else {}
        if "/funcnn/" in file or not callers or depth > 8:
            name = "funcnn/" + file.split("/funcnn/", 1)[1] if "/funcnn/" in file else "other"
            by_file[name] = by_file.get(name, 0.0) + seconds / calls
            return
        # NumPy's and the standard library's time goes to their callers, in proportion
        # to the time each caller spent in them, up to the first funcnn file
        total = sum(edge[3] for edge in callers.values()) or 1.0
        for caller, edge in callers.items():
            charge(caller, seconds * edge[3] / total, depth + 1)

    for func, (_, _, own, _, _) in stats.items():
        charge(func, own)
    profiled = sum(by_file.values())
    shares = sorted(((n, t * total / profiled) for n, t in by_file.items()), key=lambda p: -p[1])
    return total, shares


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| conditions | funcnn | compiled tier | PyTorch eager | "
        "funcnn vs PyTorch (target >= 0.8x idle) | compiled vs PyTorch |",
        "| --- " * 6 + "|",
    ]
    for name, r in rows.items():
        cells = [name] + [run.cell(r, c) for c in COMPETITORS]
        cells += [run.ratio_cell(run.speed(r, c, "PyTorch")) for c in COMPETITORS[:2]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 repetitions")
    parser.add_argument("--busy-too", action="store_true", help="again with every core busy")
    parser.add_argument("--output", default=None, help="write the report here (markdown)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    load = os.getloadavg()[0]  # before this script adds its own
    run.load_torch()
    rounds, repeats = (2, 3) if args.quick else (5, 5)
    notes = agreement()
    for note in notes:
        print(note, flush=True)
    rows = {"idle": isolated(rounds, repeats)}
    if args.busy_too:
        spinners = run.busy_cores()
        try:
            rows["both cores busy"] = isolated(rounds, repeats)
        finally:
            for p in spinners:
                p.kill()
    total, shares = where_it_goes()
    report = "\n".join(
        [
            "# funcnn's transformer training step vs PyTorch eager",
            "",
            f"Generated by `python benchmarks/transformer.py{' --quick' if args.quick else ''}"
            f"{' --busy-too' if args.busy_too else ''}` on "
            f"{datetime.date.today().isoformat()}; {rounds} rounds of {repeats} repetitions "
            f"of {INNER} steps, each competitor in its own process.",
            "",
            *run.machine(run.gemm_peak()),
            "",
            f"Workload: {WORKLOAD}: {DESCRIPTION}",
            "",
            table(rows),
            "",
            f"The load average before the run was {load:.1f} on {os.cpu_count()} cores: "
            + (
                "other programs were running, so every time is inflated, PyTorch's two threads "
                "most (they wait for each other); regenerate on a quiet machine."
                if load > 1.0
                else "the machine was quiet."
            ),
            "",
            "Agreement before timing:",
            "",
            *[f"- {n}" for n in notes],
            "",
            f"Where funcnn's step goes ({run.fmt(total)} per step; cProfile's exclusive times "
            "by the file that spends them, NumPy's calls charged to their caller, scaled to "
            "the unprofiled step):",
            "",
            *[
                f"- {name}: {run.fmt(t)} ({t / total:.0%})"
                for name, t in shares
                if t > 0.01 * total
            ],
        ]
    )
    print(report)
    if args.output:
        Path(args.output).write_text(report + "\n")


if __name__ == "__main__":
    main()
