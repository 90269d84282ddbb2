"""funcnn against PyTorch eager and JAX jit on the CPU, side by side.

Usage:  python benchmarks/run.py [--quick] [--output benchmarks/RESULTS.md]

Workloads (float32, every core): an MLP 784-512-256-10 training step (ReLU, softmax
cross-entropy, Adam) at batch 32, 128 and 512; the same MLP's inference throughput;
a CNN (conv32-pool-conv64-pool-dense128-dense10 on 28x28x1) training step at batch
64; the tutorials' tiny 2-4-1 XOR network's training step (tanh, sigmoid
cross-entropy, SGD) against the same math written as a plain NumPy loop; one ``fit``
epoch over 5,000 MNIST-shaped samples against the sum of its steps; ``import funcnn``
time; the peak NumPy memory of one training step.

Each workload also gets its share of the machine's float32 GEMM peak (its products'
FLOPs per second over the peak, both measured in this run), and, for funcnn, a
profile of where its time goes (products, optimizer, loss, everything else) set
against the time its products would take at that peak. Everything is measured on
an idle machine and again with one spinning process per core (``--busy-too``).

Every competitor starts from the same weights, and its losses (outputs, for
inference) must agree with funcnn's over a few steps before anything is timed.
Then each competitor runs in its own fresh process, processes alternating
(A B C A B C ...) over several rounds, each timing several repetitions after a
warm-up; the table gives medians and the median over rounds of the speed ratio
(competitor time / funcnn time: above 1 means funcnn is faster). Separate
processes, because in one process each library's idle worker threads take the
cores from the others. funcnn runs with ``funcnn.allocator.tune_allocator()``
called, as a training script would; it also runs with Adam's compiled update
(``funcnn.optim.compiled``, the optional ``numba`` extra; skipped with a note when
missing) and with ``FUNCNN_MALLOC_TUNING=0`` (glibc's malloc defaults) to show what
the malloc settings buy.
PyTorch (``pip install torch==2.13.0``) and JAX (``pip install jax jaxlib optax``)
are optional: a missing one is skipped with a note.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

import funcnn
from funcnn import fit, losses, optim, train_step, tree
from funcnn import layers as L

funcnn.allocator.tune_allocator()  # a no-op under FUNCNN_MALLOC_TUNING=0

torch = None  # imported by load_torch(), only where PyTorch runs
F = None
jax = jnp = optax = None  # imported by load_jax(), only where JAX runs


def load_jax() -> bool:
    """Import JAX and optax if installed; False (and the suite skips JAX) otherwise."""
    global jax, jnp, optax
    try:
        import jax as _jax
        import jax.numpy as _jnp
        import optax as _optax
    except ImportError:
        return False
    jax, jnp, optax = _jax, _jnp, _optax
    return True


def load_torch() -> bool:
    """Import PyTorch if it is installed; False (and the suite skips it) otherwise."""
    global torch, F
    try:
        import torch as _torch
        import torch.nn.functional as _functional
    except ImportError:
        return False
    torch, F = _torch, _functional
    return True


# ---------------------------------------------------------------- timing


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, inner: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in turns: A B A B ..."""
    for fn in fns.values():  # warm-up
        for _ in range(max(2, inner // 4)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - start) / inner)
    return times


# ---------------------------------------------------------------- models


def mlp() -> L.Serial:
    return L.serial(L.Dense(512), L.Relu, L.Dense(256), L.Relu, L.Dense(10))


def cnn() -> L.Serial:
    return L.serial(
        L.Conv2D(32, 3), L.Relu, L.MaxPool2D(2), L.Conv2D(64, 3), L.Relu, L.MaxPool2D(2),
        L.Flatten, L.Dense(128), L.Relu, L.Dense(10),
    )  # fmt: skip


def torch_mlp(params):
    layers = []
    for i, (w, b) in enumerate(p for p in params if p != ()):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(w.T)))
            lin.bias.copy_(torch.from_numpy(np.array(b)))
        layers += [lin, torch.nn.ReLU()] if i < 2 else [lin]
    return torch.nn.Sequential(*layers)


def torch_cnn(params):
    c1, c2, d1, d2 = params[0], params[3], params[7], params[9]
    conv1, conv2 = torch.nn.Conv2d(1, 32, 3), torch.nn.Conv2d(32, 64, 3)
    dense1, dense2 = torch.nn.Linear(1600, 128), torch.nn.Linear(128, 10)
    with torch.no_grad():
        for conv, p in ((conv1, c1), (conv2, c2)):
            conv.weight.copy_(torch.from_numpy(np.array(p.w).transpose(3, 2, 0, 1)))
            conv.bias.copy_(torch.from_numpy(np.array(p.b)))
        # funcnn flattens (h, w, c); PyTorch flattens (c, h, w)
        w1 = np.array(d1.w).reshape(5, 5, 64, 128).transpose(2, 0, 1, 3).reshape(1600, 128)
        dense1.weight.copy_(torch.from_numpy(np.ascontiguousarray(w1.T)))
        dense1.bias.copy_(torch.from_numpy(np.array(d1.b)))
        dense2.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.array(d2.w).T)))
        dense2.bias.copy_(torch.from_numpy(np.array(d2.b)))
    return torch.nn.Sequential(
        conv1, torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        conv2, torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), dense1, torch.nn.ReLU(), dense2,
    )  # fmt: skip


class FuncnnTrainer:
    def __init__(self, model, input_shape, x, y, kernel="numpy"):
        self.params = model.init(0, input_shape)
        if kernel == "numba":
            from funcnn.optim import compiled

            adam = compiled.scale_by_adam()
        else:
            adam = optim.scale_by_adam()
        self.opt = optim.chain(adam, optim.scale_by_learning_rate(1e-3))
        self.opt_state = self.opt.init(self.params)
        self.step_fn = train_step(model, losses.softmax_cross_entropy, self.opt)
        self.x, self.y = x, y

    def step(self) -> float:
        self.params, self.opt_state, loss = self.step_fn(
            self.params, self.opt_state, self.x, self.y
        )
        return loss


class TorchTrainer:
    def __init__(self, net, x, y):
        self.net, self.x, self.y = net, torch.from_numpy(x), torch.from_numpy(y)
        self.opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(self) -> float:
        self.opt.zero_grad()
        loss = F.cross_entropy(self.net(self.x), self.y)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def check_agreement(
    name: str, a: Callable[[], float], b: Callable[[], float], steps: int = 3
) -> str:
    la = [a() for _ in range(steps)]
    lb = [b() for _ in range(steps)]
    ok = np.allclose(la, lb, rtol=2e-3)
    note = f"{name}: losses funcnn {[f'{v:.5f}' for v in la]} vs {[f'{v:.5f}' for v in lb]}"
    if not ok:
        raise SystemExit(f"losses disagree, refusing to time: {note}")
    return note


class JaxTrainer:
    """The same model in JAX, its whole training step (loss, grads, optax.adam) under jit."""

    def __init__(self, kind, params, x, y):
        self.params = jax_params(kind, params)
        self.forward = jax_forward(kind)
        self.opt = optax.adam(1e-3)
        self.state = self.opt.init(self.params)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

        def loss_fn(p, xb, yb):
            logits = self.forward(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        def step(p, state, xb, yb):
            loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
            updates, state = self.opt.update(grads, state, p)
            return optax.apply_updates(p, updates), state, loss

        self._step = jax.jit(step)

    def step(self) -> float:
        self.params, self.state, loss = self._step(self.params, self.state, self.x, self.y)
        return float(loss)  # waits for the result


def jax_params(kind, params):
    """(w, b) pairs of every Dense/Conv2D layer; the layouts (HWIO kernels) are funcnn's."""
    del kind
    return [(jnp.asarray(p.w), jnp.asarray(p.b)) for p in params if p != ()]


def jax_forward(kind):
    def mlp_forward(p, x):
        for i, (w, b) in enumerate(p):
            x = x @ w + b
            if i < len(p) - 1:
                x = jax.nn.relu(x)
        return x

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def conv(x, w, b):
        dims = ("NHWC", "HWIO", "NHWC")
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dims) + b

    def cnn_forward(p, x):
        (w1, b1), (w2, b2), (w3, b3), (w4, b4) = p
        x = pool(jax.nn.relu(conv(x, w1, b1)))
        x = pool(jax.nn.relu(conv(x, w2, b2)))
        x = jax.nn.relu(x.reshape(x.shape[0], -1) @ w3 + b3)
        return x @ w4 + b4

    return mlp_forward if kind == "mlp" else cnn_forward


class NumpyXor:
    """The tutorials' 2-4-1 XOR network, its training step written out in plain NumPy:
    tanh hidden layer, sigmoid cross-entropy on the logit, SGD (the reference funcnn's
    per-call overhead is judged against)."""

    def __init__(self, params, x, y):
        self.w1, self.b1 = np.array(params[0].w), np.array(params[0].b)
        self.w2, self.b2 = np.array(params[2].w), np.array(params[2].b)
        self.x, self.y = x, y

    def step(self) -> float:
        x, y = self.x, self.y
        h = np.tanh(x @ self.w1 + self.b1)
        z = h @ self.w2 + self.b2
        loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
        dz = (1 / (1 + np.exp(-z)) - y) / z.size
        dh = (dz @ self.w2.T) * (1 - h * h)
        self.w2 = self.w2 - 0.5 * (h.T @ dz)
        self.b2 = self.b2 - 0.5 * dz.sum(axis=0)
        self.w1 = self.w1 - 0.5 * (x.T @ dh)
        self.b1 = self.b1 - 0.5 * dh.sum(axis=0)
        return float(loss)


def xor_setup():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    model = L.serial(L.Dense(4), L.Tanh, L.Dense(1))
    params = model.init(0, (2,))
    opt = optim.sgd(0.5)
    step = train_step(model, losses.sigmoid_binary_cross_entropy, opt)
    state = {"params": params, "opt": opt.init(params)}

    def ours() -> float:
        state["params"], state["opt"], value = step(state["params"], state["opt"], x, y)
        return value

    return ours, NumpyXor(params, x, y).step


# ---------------------------------------------------------------- workloads

# name -> calls per timed repetition
WORKLOADS = {
    "MLP train step, batch 32": 50,
    "MLP train step, batch 128": 20,
    "MLP train step, batch 512": 6,
    "MLP inference, 4096 samples": 3,
    "CNN train step, batch 64": 4,
    "XOR 2-4-1 train step": 2000,
}
LOOP = "NumPy loop"  # the hand-written reference of the tiny workload


NUMBA = "funcnn, compiled"  # the numba extra: optim.compiled Adam and funcnn.kernels
UNTUNED = "funcnn, glibc malloc defaults"  # FUNCNN_MALLOC_TUNING=0
KERNEL = {"funcnn": "numpy", NUMBA: "numba"}  # Adam's kernel in each funcnn variant


def tiered(step: Callable[[], float], competitor: str) -> Callable[[], float]:
    """``step`` run in the compiled tier (funcnn.kernels) for the compiled competitor."""
    if KERNEL[competitor] == "numpy":
        return step
    from funcnn import kernels

    def compiled_step() -> float:
        with kernels.using("numba"):
            return step()

    return compiled_step


def setup(workload: str, competitor: str) -> Callable[[], object]:
    """The function to time: one training step, or one inference pass over 4096 samples."""
    rng = np.random.default_rng(0)
    if workload.startswith("XOR"):
        ours, loop = xor_setup()
        return loop if competitor == LOOP else ours
    if workload.startswith("MLP train"):
        batch = int(workload.rsplit(" ", 1)[1])
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        ours = FuncnnTrainer(mlp(), (784,), x, y, KERNEL.get(competitor, "numpy"))
        if competitor in KERNEL:
            return tiered(ours.step, competitor)
        if competitor == "JAX":
            return JaxTrainer("mlp", ours.params, x, y).step
        return TorchTrainer(torch_mlp(ours.params), x, y).step
    if workload.startswith("CNN train"):
        x = rng.standard_normal((64, 28, 28, 1)).astype(np.float32)
        y = rng.integers(0, 10, 64)
        ours = FuncnnTrainer(cnn(), (28, 28, 1), x, y, KERNEL.get(competitor, "numpy"))
        if competitor in KERNEL:
            return tiered(ours.step, competitor)
        if competitor == "JAX":
            return JaxTrainer("cnn", ours.params, x, y).step
        nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return TorchTrainer(torch_cnn(ours.params), nchw, y).step
    model = mlp()
    params = model.init(0, (784,))
    x = rng.standard_normal((4096, 784)).astype(np.float32)
    if competitor == "funcnn":
        return lambda: funcnn.predict(model, params, x, batch_size=512)
    if competitor == "JAX":
        forward = jax.jit(jax_forward("mlp"))
        p, xj = jax_params("mlp", params), jnp.asarray(x)
        return lambda: np.concatenate(
            [np.asarray(forward(p, xj[i : i + 512])) for i in range(0, len(x), 512)]
        )
    net, xt = torch_mlp(params), torch.from_numpy(x)

    def torch_predict():
        with torch.no_grad():
            return torch.cat([net(xt[i : i + 512]) for i in range(0, len(xt), 512)])

    return torch_predict


def agreement(workload: str, competitor: str) -> str:
    """Both competitors from the same weights: losses (or outputs) must agree before timing."""
    ours, theirs = setup(workload, "funcnn"), setup(workload, competitor)
    if competitor == LOOP:
        return check_agreement(f"{workload} ({LOOP})", ours, theirs)
    if competitor == NUMBA:
        la, lb = [ours() for _ in range(3)], [theirs() for _ in range(3)]
        if la != lb:
            raise SystemExit(f"{workload}: compiled tier losses {lb} differ from NumPy's {la}")
        return f"{workload}: compiled tier losses identical to the NumPy path's over 3 steps"
    if workload.startswith("MLP inference"):
        diff = float(np.abs(np.asarray(theirs()) - ours()).max())
        if diff > 1e-3:
            raise SystemExit(f"{workload}: {competitor} outputs differ by {diff}, refusing to time")
        return f"{workload}: {competitor} outputs agree to {diff:.1e}"
    return check_agreement(f"{workload} ({competitor})", ours, theirs)


def worker(workload: str, competitor: str, repeats: int) -> list[float]:
    """Seconds per call, one number per repetition, after a warm-up."""
    if competitor == "PyTorch":
        load_torch()
    elif competitor == "JAX":
        load_jax()
    fn = setup(workload, competitor)
    inner = WORKLOADS[workload]
    return interleaved({competitor: fn}, repeats, inner)[competitor]


def isolated(
    workload: str, competitors: list[str], rounds: int, repeats: int
) -> dict[str, tuple[float, list[float]]]:
    """Each competitor timed in its own fresh process, processes alternating A B A B ...

    Returns name -> (median seconds per call, the median of each round).
    """
    per_round: dict[str, list[float]] = {c: [] for c in competitors}
    samples: dict[str, list[float]] = {c: [] for c in competitors}
    for _ in range(rounds):
        for competitor in competitors:
            env = dict(os.environ)
            runs = competitor
            if competitor == UNTUNED:  # funcnn without its malloc settings
                env["FUNCNN_MALLOC_TUNING"], runs = "0", "funcnn"
            command = [sys.executable, __file__, "--worker", workload, runs, str(repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            times = json.loads(done.stdout.strip().splitlines()[-1])
            samples[competitor] += times
            per_round[competitor].append(statistics.median(times))
    return {c: (statistics.median(samples[c]), per_round[c]) for c in competitors}


def speed(result: dict, ours: str, theirs: str) -> float | None:
    """Median over rounds of their time / our time (above 1: ours is faster); None if
    either was not measured."""
    if ours not in result or theirs not in result:
        return None
    return statistics.median(t / o for t, o in zip(result[theirs][1], result[ours][1]))


def bench_fit_overhead(repeats: int) -> tuple[float, float, float]:
    """(seconds of one fit epoch, of the same steps in a bare loop, median overhead)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5000, 784)).astype(np.float32)
    y = rng.integers(0, 10, 5000)
    model, opt = mlp(), optim.adam(1e-3)
    params = model.init(0, (784,))
    step = train_step(model, losses.softmax_cross_entropy, opt)
    order = np.random.default_rng(0).permutation(5000)

    def bare():
        p, s = params, opt.init(params)
        for i in range(0, 5000, 128):
            idx = order[i : i + 128]
            p, s, _ = step(p, s, x[idx], y[idx])

    def through_fit():
        fit(
            model,
            params,
            losses.softmax_cross_entropy,
            opt,
            x,
            y,
            epochs=1,
            batch_size=128,
            verbose=0,
        )

    times = interleaved({"fit": through_fit, "steps": bare}, repeats, 1)
    overhead = statistics.median(f / b - 1 for f, b in zip(times["fit"], times["steps"]))
    return statistics.median(times["fit"]), statistics.median(times["steps"]), overhead


def bench_import() -> tuple[float, bool]:
    code = (
        "import time, sys; t = time.perf_counter(); import funcnn; "
        "print(time.perf_counter() - t, 'matplotlib' in sys.modules)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(5)
    ]
    return min(float(r[0]) for r in runs), any(r[1] == "True" for r in runs)


def bench_memory() -> tuple[int, int]:
    """(peak bytes NumPy allocated during one MLP step at batch 128, bytes of params)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128)
    trainer = FuncnnTrainer(mlp(), (784,), x, y)
    trainer.step()
    tracemalloc.start()
    trainer.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, sum(a.nbytes for a in tree.leaves(trainer.params))


# ---------------------------------------------------------------- the GEMM peak and profiles


def gemm_peak() -> float:
    """The machine's float32 GEMM rate in FLOP/s: a 2048^3 NumPy product with the BLAS at its
    own thread count (every core), in a fresh process (this one holds the BLAS to one
    thread once funcnn has run), best of 5."""
    code = (
        "import time, numpy as np; a = np.ones((2048, 2048), np.float32); a @ a; best = 1e9\n"
        "for _ in range(5):\n    t = time.perf_counter(); a @ a; "
        "best = min(best, time.perf_counter() - t)\nprint(2 * 2048**3 / best)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def product_flops(workload: str) -> float:
    """FLOPs of one call's products (forward, weight gradients, input gradients but the
    first layer's), the work a GEMM peak bounds; 0 for the tiny workload."""
    dense = [(784, 512), (512, 256), (256, 10)]
    if workload.startswith("MLP"):
        batch = 4096 if "inference" in workload else int(workload.rsplit(" ", 1)[1])
        forward = sum(2 * batch * k * n for k, n in dense)
        if "inference" in workload:
            return forward
        return 2 * forward + sum(2 * batch * k * n for k, n in dense[1:])
    if workload.startswith("CNN"):
        batch = 64
        conv = [2 * batch * 26 * 26 * 32 * 9, 2 * batch * 11 * 11 * 64 * 288]
        fc = [2 * batch * 1600 * 128, 2 * batch * 128 * 10]
        return 2 * (sum(conv) + sum(fc)) + conv[1] + sum(fc)
    return 0.0


def profile(workload: str, calls: int = 0) -> dict[str, float]:
    """Seconds per call of a funcnn training step in each part: products (funcnn.linalg's
    products and batch sums), the optimizer update, the loss, and the rest (layers'
    elementwise work, im2col and pooling copies, applying the updates, Python).
    Exclusive times: a part's time leaves out the parts it calls. The rest is also
    split by what spends it: ``"layer: Conv2D backward"`` (a layer kind's own work,
    its products left out), ``"layer: Serial forward"`` (the combinator's loop),
    ``"layer: apply_updates"``; what no part claims is the step's own Python."""
    from funcnn import linalg

    spent = {"products": 0.0, "optimizer": 0.0, "loss": 0.0}
    stack: list[list[float]] = []

    def timed(part: str | Callable[..., str], fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            stack.append([time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                start, inner = stack.pop()
                total = time.perf_counter() - start
                name = part if isinstance(part, str) else part(*args)
                spent[name] = spent.get(name, 0.0) + total - inner
                if stack:
                    stack[-1][1] += total

        return wrapper

    def layer_name(what: str) -> Callable[..., str]:
        def name(layer, *args) -> str:
            return f"layer: {getattr(layer, 'name', None) or type(layer).__name__} {what}"

        return name

    rng = np.random.default_rng(0)
    loss, opt = losses.softmax_cross_entropy, optim.adam(1e-3)
    if workload.startswith("XOR"):
        model, shape, batch = L.serial(L.Dense(4), L.Tanh, L.Dense(1)), (2,), 4
        loss, opt = losses.sigmoid_binary_cross_entropy, optim.sgd(0.5)
    elif workload.startswith("CNN"):
        model, shape, batch = cnn(), (28, 28, 1), 64
    elif workload.startswith("MLP inference"):
        model, shape, batch = mlp(), (784,), 4096
    else:
        model, shape, batch = mlp(), (784,), int(workload.rsplit(" ", 1)[1])
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    y = rng.integers(
        0, 2 if workload.startswith("XOR") else 10, (batch, 1) if batch == 4 else batch
    )
    y = y.astype(np.float32) if workload.startswith("XOR") else y
    params = model.init(0, shape)
    opt_state = opt.init(params)
    if workload.startswith("MLP inference"):

        def step(params, opt_state, x, y):
            return params, opt_state, funcnn.predict(model, params, x, batch_size=512)

    else:
        step = train_step(
            model,
            losses.FunctionLoss("timed", timed("loss", loss.value_and_grad)),
            optim.GradientTransformation(opt.init, timed("optimizer", opt.update)),
        )
    saved = {name: getattr(linalg, name) for name in ("matmul", "matmul_tn", "sum_rows")}
    for name, fn in saved.items():
        setattr(linalg, name, timed("products", fn))
    kinds = {type(layer) for layer in [model, *getattr(model, "layers", ())]}
    methods = {(k, m): k.__dict__.get(m) for k in kinds for m in ("forward_with_state", "backward")}
    for kind, method in methods:
        setattr(kind, method, timed(layer_name(method.split("_")[0]), getattr(kind, method)))
    saved_apply = optim.apply_updates
    optim.apply_updates = timed("layer: apply_updates", saved_apply)
    try:
        calls = calls or (2000 if workload.startswith("XOR") else 20)
        for _ in range(3):
            params, opt_state, _ = step(params, opt_state, x, y)
        for part in spent:
            spent[part] = 0.0
        start = time.perf_counter()
        for _ in range(calls):
            params, opt_state, _ = step(params, opt_state, x, y)
        total = (time.perf_counter() - start) / calls
    finally:
        for name, original in saved.items():
            setattr(linalg, name, original)
        for (kind, method), fn in methods.items():
            if fn is None:  # inherited: the base class's method shows through again
                delattr(kind, method)
            else:
                setattr(kind, method, fn)
        optim.apply_updates = saved_apply
    parts = {part: value / calls for part, value in spent.items()}
    layers = sum(v for k, v in parts.items() if k.startswith("layer: "))
    parts["layer: the step's own Python"] = total - sum(parts.values())
    parts["rest"] = layers + parts["layer: the step's own Python"]
    parts["total"] = total
    return parts


def busy_cores() -> list[subprocess.Popen]:
    """One spinning process per core (``while True: pass``): a machine doing other work."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
    ]


# ---------------------------------------------------------------- report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(peak: float) -> list[str]:
    facts = [
        f"date: {datetime.date.today().isoformat()}",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores ({platform.machine()}); "
        f"float32 GEMM peak measured in this run: {peak / 1e9:.0f} GFLOP/s "
        "(a 2048^3 NumPy product, the BLAS on every core)",
        f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}",
        f"funcnn's malloc settings: {funcnn.allocator.status()}",
        f"funcnn: {funcnn.linalg.blas_description()}",
    ]
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            facts.append(
                f"thread pool {pool.get('prefix')} ({pool.get('internal_api')} "
                f"{pool.get('version') or ''}): kernel {pool.get('architecture') or '-'}, "
                f"{pool.get('num_threads')} threads"
            )
    except ImportError:
        facts.append("BLAS: (install threadpoolctl to record it)")
    facts.append(
        f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
        if torch
        else "PyTorch: not installed, skipped"
    )
    if jax is not None:
        facts.append(
            f"JAX {jax.__version__} ({jax.devices()[0].platform}), optax {optax.__version__}"
        )
    else:
        facts.append("JAX: not installed, skipped")
    return facts


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


def competitors_for(workload: str, competitors: list[str]) -> list[str]:
    if workload.startswith("XOR"):
        return ["funcnn", LOOP]
    return [c for c in competitors if c != NUMBA or "train" in workload]


def ratio_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cell(result: dict, name: str) -> str:
    return fmt(result[name][0]) if name in result else "-"


def share(workload: str, result: dict, name: str, peak: float) -> str:
    flops = product_flops(workload)
    if not flops or name not in result:
        return "-"
    return f"{flops / result[name][0] / peak:.0%}"


def speed_table(rows: dict, peak: float) -> str:
    lines = [
        "| workload | funcnn | share of GEMM peak | PyTorch eager | its share | speed vs PyTorch "
        "| JAX jit | speed vs JAX | funcnn, compiled tier | its speed vs PyTorch "
        "| funcnn, glibc malloc defaults | speed of tuned vs defaults |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in rows.items():
        if name.startswith("XOR"):
            loop = speed(result, "funcnn", LOOP)
            cells = [name, cell(result, "funcnn"), "-", f"NumPy loop {cell(result, LOOP)}", "-",
                     f"{1 / loop:.2f}x the loop's time" if loop else "-", *["-"] * 6]  # fmt: skip
        else:
            cells = [
                name, cell(result, "funcnn"), share(name, result, "funcnn", peak),
                cell(result, "PyTorch"), share(name, result, "PyTorch", peak),
                ratio_cell(speed(result, "funcnn", "PyTorch")),
                cell(result, "JAX"), ratio_cell(speed(result, "funcnn", "JAX")),
                cell(result, NUMBA), ratio_cell(speed(result, NUMBA, "PyTorch")),
                cell(result, UNTUNED), ratio_cell(speed(result, "funcnn", UNTUNED)),
            ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TARGETS = [  # (target, workload, competitor, NumPy goal, compiled goal); for the loop, funcnn's
    # time / the loop's. Under load the goal is the NumPy one (no slower than before).
    ("MLP train step, batch 32", "MLP train step, batch 32", "PyTorch", 1.0, 1.3),
    ("MLP train step, batch 128", "MLP train step, batch 128", "PyTorch", 1.0, 1.3),
    ("MLP train step, batch 512", "MLP train step, batch 512", "PyTorch", 1.0, 1.1),
    ("MLP inference", "MLP inference, 4096 samples", "PyTorch", 0.9, 1.0),
    ("CNN train step", "CNN train step, batch 64", "PyTorch", 0.7, 1.0),
    ("XOR step, time over the NumPy loop's", "XOR 2-4-1 train step", LOOP, 1.5, None),
]


def targets_table(rows: dict, busy: dict | None, overhead: float) -> str:
    lines = [
        "| target | idle (NumPy default) | met | both cores busy | met "
        "| idle, compiled tier (numba extra) | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def judged(result: dict | None, ours: str, competitor: str, goal: float) -> tuple[str, str]:
        if result is None:
            return "-", "-"
        value = speed(result, ours, competitor)
        if value is None:
            return "-", "-"
        if competitor == LOOP:  # lower is better: funcnn's time over the loop's
            return f"{1 / value:.2f}x", "yes" if 1 / value <= goal else "no"
        return f"{value:.2f}x", "yes" if value >= goal else "no"

    for text, workload, competitor, goal, compiled_goal in TARGETS:
        sign = "<=" if competitor == LOOP else ">="
        idle = judged(rows[workload], "funcnn", competitor, goal)
        loaded = judged(busy.get(workload) if busy else None, "funcnn", competitor, goal)
        fast = ("-", "-")
        if compiled_goal is not None:
            fast = judged(rows[workload], NUMBA, competitor, compiled_goal)
        goals = f"{sign} {goal}x" + (f"; compiled {sign} {compiled_goal}x" if compiled_goal else "")
        lines.append(f"| {text} ({goals}) | {' | '.join((*idle, *loaded, *fast))} |")
    lines.append(
        f"| `fit` overhead < 3% above its steps | {overhead:+.1%} | "
        f"{'yes' if overhead < 0.03 else 'no'} | | | | |"
    )
    return "\n".join(lines)


def profile_table(profiles: dict[str, dict[str, float]], peak: float) -> str:
    lines = [
        "| workload (funcnn, idle) | step | products | at GEMM peak they would take "
        "| optimizer | loss | the rest | the rest by what spends it (over 1% of the step) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in profiles.items():
        ideal = product_flops(name) / peak
        spenders = sorted(
            ((k.removeprefix("layer: "), v) for k, v in p.items() if k.startswith("layer: ")),
            key=lambda kv: -kv[1],
        )
        shown = "; ".join(f"{k} {fmt(v)}" for k, v in spenders if v > 0.01 * p["total"])
        lines.append(
            f"| {name} | {fmt(p['total'])} | {fmt(p['products'])} | {fmt(ideal)} "
            f"| {fmt(p['optimizer'])} | {fmt(p['loss'])} | {fmt(p['rest'])} | {shown} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    parser.add_argument(
        "--busy-too", action="store_true", help="time it all again with every core busy"
    )
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--worker", nargs=3, metavar=("WORKLOAD", "COMPETITOR", "REPEATS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--profile-worker", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        workload, competitor, repeats = args.worker
        print(json.dumps(worker(workload, competitor, int(repeats))))
        return
    if args.profile_worker:
        print(json.dumps(profile(args.profile_worker)))
        return

    rounds, repeats = (2, 3) if args.quick else (4, 5)
    peak = gemm_peak()
    # funcnn-only measurements first, before PyTorch is loaded into this process
    fit_time, steps_time, overhead = bench_fit_overhead(5 if args.quick else 21)
    import_time, pulled_matplotlib = bench_import()
    peak_memory, param_bytes = bench_memory()
    profiles = {  # each in a fresh process, as the timings
        w: json.loads(
            subprocess.run(
                [sys.executable, __file__, "--profile-worker", w],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
        )
        for w in WORKLOADS
    }  # fmt: skip

    competitors = ["funcnn"]
    notes: list[str] = []
    big = [w for w in WORKLOADS if not w.startswith("XOR")]
    notes += [agreement(w, LOOP) for w in WORKLOADS if w.startswith("XOR")]
    if importlib.util.find_spec("numba"):
        competitors.append(NUMBA)
        notes += [agreement(w, NUMBA) for w in big if "train" in w]
    else:
        notes.append("numba is not installed: the compiled tier column is skipped")
    if funcnn.allocator.status().startswith("tuned"):
        competitors.append(UNTUNED)
    for name, load in (("PyTorch", load_torch), ("JAX", load_jax)):
        if load():
            competitors.append(name)
            notes += [agreement(w, name) for w in big]
        else:
            notes.append(f"{name} is not installed: its column is skipped")
    rows = {w: isolated(w, competitors_for(w, competitors), rounds, repeats) for w in WORKLOADS}
    busy = None
    if args.busy_too:
        spinners = busy_cores()
        try:
            busy = {
                w: isolated(w, [c for c in competitors_for(w, competitors)
                                if c in ("funcnn", "PyTorch", LOOP)], rounds, repeats)
                for w in WORKLOADS
            }  # fmt: skip
        finally:
            for spinner in spinners:
                spinner.kill()

    blank = " | " * 10
    extra = [
        f"| `fit` epoch, 5,000 samples, batch 128 | {fmt(fit_time)} | - | "
        f"steps alone {fmt(steps_time)} | - | overhead {overhead:+.1%}{blank}",
        f"| `import funcnn` | {fmt(import_time)} | - | "
        f"matplotlib imported: {pulled_matplotlib} | - | -{blank}",
        f"| peak NumPy memory of one MLP step (batch 128) | {peak_memory / 2**20:.1f} MiB | - | "
        f"params {param_bytes / 2**20:.1f} MiB | - | -{blank}",
    ]
    table = speed_table(rows, peak) + "\n" + "\n".join(extra)
    busy_table = speed_table(busy, peak) if busy else None
    targets = targets_table(rows, busy, overhead)
    profile_text = profile_table(profiles, peak)
    facts = machine(peak)
    print(table, "", *([busy_table, ""] if busy_table else []), targets, "", profile_text, "",
          *facts, *notes, sep="\n")  # fmt: skip
    if args.output:
        command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
        command += " --busy-too" if args.busy_too else ""
        method = (
            f"Each competitor runs in its own fresh process ({rounds} rounds of alternating "
            f"processes, {repeats} timed repetitions each after a warm-up); the speed ratio is "
            "competitor time / funcnn time per round, then the median: above 1 means funcnn "
            "is faster. Separate processes because, in one process, each library's idle worker "
            "threads (OpenBLAS's and PyTorch's OpenMP pool) take the cores from the others, "
            "which slows whichever library runs next. A workload's share of the GEMM peak is "
            "the FLOPs of its products (forward, weight gradients, input gradients) per second "
            "over the float32 GEMM peak measured in the same run. funcnn also runs with "
            "optim.compiled.scale_by_adam (the optional numba extra; its losses must equal the "
            "NumPy path's bit for bit) and with FUNCNN_MALLOC_TUNING=0 (glibc's malloc "
            "defaults; see funcnn.allocator): the last ratio is what funcnn's malloc "
            "settings buy."
        )
        busy_part = (
            "\n\n## With both cores busy (one spinning process per core)\n\n" + busy_table
            if busy_table
            else ""
        )
        args.output.write_text(
            "# Benchmark results\n\n"
            f"Produced by `{command}` on {datetime.date.today().isoformat()}, on "
            f"{cpu_model()} ({funcnn.linalg.blas_description()}).\n\n{method}\n\n"
            "## Idle\n\n"
            + table
            + busy_part
            + "\n\n## Targets\n\n"
            + targets
            + "\n\n## Where funcnn's time goes\n\n"
            "Per call, exclusive times, each workload profiled in a fresh process: products are "
            "funcnn.linalg's matrix products and batch sums (threads included), set against "
            "the time the same FLOPs take at the measured GEMM peak; the optimizer is the "
            "update (Adam; SGD for XOR); the rest is everything else, split by what spends it: "
            "each layer kind's forward and backward without their products (activations, bias "
            "adds, the convolution's im2col copy and its input gradient's additions, the "
            "pooling), Serial's loop over its layers, apply_updates, and the step's own "
            "Python. Timing each call adds a little to the step (about 1 us per call), which "
            "shows most in the tiny model's figures.\n\n"
            + profile_text
            + "\n\n## Machine\n\n"
            + "\n".join(f"- {f}" for f in facts)
            + "\n\n## Agreement before timing (same initial weights)\n\n"
            + "\n".join(f"- {n}" for n in notes)
            + "\n"
        )


if __name__ == "__main__":
    main()
