"""The performance levers tried on funcnn's NumPy path, each form measured side by side.

Usage:  python benchmarks/levers.py [--quick] [--output benchmarks/LEVERS.md]

A lever is another way to compute the same numbers: every form here is first
checked to give funcnn's bits, then all forms of one lever are timed in one
process, interleaved (A B C, then C B A, ...), and the table gives each one's
median. The form funcnn ships is marked; docs/performance.md and RESULTS.md say why each
other form was left (it was slower, or no faster, here).

Levers: the convolution's input gradient (9 narrow products, 3 wider ones, or one
product and a col2im), the size under which products stay on the calling thread,
the im2col copy (one strided copy of a window view, or a copy per kernel offset),
max-pool's backward (maxima found in the forward pass or in the backward, per-offset
slices or one reshaped window view, with or without a zero fill), ReLU's backward and
what it keeps for it, Adam's update (whole-leaf passes, or the same passes in
cache-sized blocks, on one thread or on funcnn's pool; cold and warm caches),
apply_updates (leaf by leaf, or in spans on funcnn's threads), a loss's mean, the
sigmoid cross-entropy's shared exponential, and tree.map (one walk over all trees,
or flatten + unflatten).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import funcnn
from funcnn import layers as L
from funcnn import linalg, nn, optim, tree
from funcnn.optim.leaves import ema_into, ema_sq_into
from funcnn.optim.transforms import adam_scalars


def _load_run() -> Any:
    """benchmarks/run.py as a module, loaded by its path (putting benchmarks/ on sys.path
    would let its distributed.py hide Dask's ``distributed`` package)."""
    spec = importlib.util.spec_from_file_location(
        "funcnn_benchmarks_run", Path(__file__).with_name("run.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cpu_model = _load_run().cpu_model

Forms = dict[str, Callable[[], object]]


def interleaved(forms: Forms, repeats: int, before: Callable[[], None] | None = None) -> dict:
    """Median seconds of each form, the forms' order reversed every repetition."""
    for fn in forms.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in forms}
    items = list(forms.items())
    for r in range(repeats):
        for name, fn in items if r % 2 == 0 else items[::-1]:
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def same_bits(forms: dict[str, Callable[[], object]]) -> None:
    """Every form's result equals the first's, bit for bit (or raise)."""
    results = {name: fn() for name, fn in forms.items()}
    first_name, first = next(iter(results.items()))
    for name, result in results.items():
        pairs = [
            (np.asarray(a), np.asarray(b)) for a, b in zip(tree.leaves(first), tree.leaves(result))
        ]
        if not all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in pairs):
            raise AssertionError(f"{name} does not give the bits of {first_name}")


# ---------------------------------------------------------------- the convolution's dx

N, OH, OW, C, F = 64, 11, 11, 32, 64  # the benchmark CNN's second convolution


def conv_dx_forms(rng: np.random.Generator) -> Forms:
    dy = rng.standard_normal((N * OH * OW, F)).astype(np.float32)
    w = rng.standard_normal((3, 3, C, F)).astype(np.float32)

    def nine_products() -> np.ndarray:  # funcnn's
        dxp = np.zeros((N, OH + 2, OW + 2, C), np.float32)
        for a in range(3):
            for b in range(3):
                part = linalg.matmul(dy, w[a, b].T, group=OH * OW).reshape(N, OH, OW, C)
                dxp[:, a : a + OH, b : b + OW] += part
        return dxp

    def three_products() -> np.ndarray:
        dxp = np.zeros((N, OH + 2, OW + 2, C), np.float32)
        for a in range(3):
            part = linalg.matmul(dy, w[a].reshape(3 * C, F).T, group=OH * OW)
            part = part.reshape(N, OH, OW, 3, C)
            for b in range(3):
                dxp[:, a : a + OH, b : b + OW] += part[..., b, :]
        return dxp

    def one_product() -> np.ndarray:
        cols = linalg.matmul(dy, w.reshape(9 * C, F).T, group=OH * OW)
        cols = cols.reshape(N, OH, OW, 3, 3, C)
        dxp = np.zeros((N, OH + 2, OW + 2, C), np.float32)
        for a in range(3):
            for b in range(3):
                dxp[:, a : a + OH, b : b + OW] += cols[:, :, :, a, b]
        return dxp

    def nine_on_two_threads() -> np.ndarray:
        saved, linalg.INLINE_FLOPS = linalg.INLINE_FLOPS, 2**24
        try:
            return nine_products()
        finally:
            linalg.INLINE_FLOPS = saved

    return {
        "9 products of 32 columns, 9 contiguous adds (funcnn)": nine_products,
        "3 products of 96 columns, 9 strided adds": three_products,
        "1 product of 288 columns, col2im": one_product,
        "9 products, each on two threads (INLINE_FLOPS 2^24)": nine_on_two_threads,
    }


def im2col_forms(rng: np.random.Generator, channels: int) -> Forms:
    """The convolution's im2col copy: (N, 26, 26, 3, 3, C) from (N, 28, 28, C)."""
    from numpy.lib.stride_tricks import sliding_window_view

    from funcnn.layers.conv import offset_slices

    x = rng.standard_normal((N, 28, 28, channels)).astype(np.float32)
    conv = L.Conv2D(8, 3)

    def window_view() -> np.ndarray:
        views = sliding_window_view(x, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
        return np.ascontiguousarray(views).reshape(-1, 9 * channels)

    def per_offset() -> np.ndarray:
        cols = np.empty((N, 26, 26, 3, 3, channels), x.dtype)
        for a in range(3):
            for b in range(3):
                cols[:, :, :, a, b] = x[offset_slices((a, b), (1, 1), (1, 1), (26, 26))]
        return cols.reshape(-1, 9 * channels)

    ours = lambda: conv._cols(x)[0]  # noqa: E731
    if channels == 1:
        return {
            "a copy per kernel offset (funcnn, one channel)": ours,
            "window-view copy": window_view,
        }
    return {"window-view copy (funcnn)": ours, "a copy per kernel offset": per_offset}


# ---------------------------------------------------------------- max-pool backward


def pool_forms(rng: np.random.Generator) -> Forms:
    """A training-mode forward and backward of max-pool (each form returns dx)."""
    x = np.maximum(rng.standard_normal((N, 26, 26, C)), 0).astype(np.float32)  # ReLU'd: ties
    pool = L.MaxPool2D(2)
    y = pool.apply((), x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    slices = pool._slices(y.shape[1:3])

    def funcnn_pool() -> np.ndarray:
        _, cache = pool.forward((), x, train=True)
        return pool.backward((), cache, dy)[1]

    def in_backward() -> np.ndarray:
        _, cache = pool.forward((), x, train=False)  # keeps the input, not the maxima
        return pool.backward((), cache, dy)[1]

    def zero_filled() -> np.ndarray:
        y, _ = pool.forward((), x, train=False)
        dxp = np.zeros(x.shape, dtype=dy.dtype)
        free, hit = np.ones(y.shape, bool), np.empty(y.shape, bool)
        for s in slices:
            np.equal(x[s], y, out=hit)
            hit &= free
            np.multiply(dy, hit, out=dxp[s])
            free ^= hit
        return dxp

    def window_view() -> np.ndarray:
        y, _ = pool.forward((), x, train=False)
        n, oh, ow, c = y.shape
        first = np.equal(x.reshape(n, oh, 2, ow, 2, c), y[:, :, None, :, None, :])
        free = np.ones(y.shape, bool)
        for a in range(2):
            for b in range(2):
                hit = first[:, :, a, :, b, :]
                hit &= free
                free ^= hit
        dxp = np.empty(x.shape, dy.dtype)
        np.multiply(first, dy[:, :, None, :, None, :], out=dxp.reshape(first.shape))
        return dxp

    return {
        "maxima found in forward, while the input is in cache (funcnn)": funcnn_pool,
        "maxima found in backward, from the input": in_backward,
        "the same, with a zero fill of dx first": zero_filled,
        "one reshaped window view, broadcast, in backward": window_view,
    }


class _MaxPoolMaximaInBackward(L.MaxPool2D):
    """funcnn's MaxPool2D keeping its input for backward, as an inference-mode forward does."""

    def forward_with_state(self, params, state, x, *, train=False, rng=None):  # type: ignore[no-untyped-def]
        return super().forward_with_state(params, state, x, train=False, rng=rng)


def cnn_step_forms(rng: np.random.Generator) -> Forms:
    """The benchmark's whole CNN training step with each max-pool and ReLU form: in a
    step, a layer's input has left the cache by the time its backward runs."""
    from funcnn import losses, train_step
    from funcnn.layers.activations import Activation

    relu_keeping_x_and_y = Activation("Relu", nn.relu, nn.relu_backward)  # the plain form
    x = rng.standard_normal((N, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, N)
    forms: Forms = {}
    for name, pool, relu in (
        ("max-pool finds its maxima, ReLU its mask, in forward (funcnn)", L.MaxPool2D, L.Relu),
        ("max-pool finds its maxima in backward", _MaxPoolMaximaInBackward, L.Relu),
        ("ReLU keeps x and y for backward", L.MaxPool2D, relu_keeping_x_and_y),
    ):
        model = L.serial(
            L.Conv2D(32, 3), relu, pool(2), L.Conv2D(64, 3), relu, pool(2),
            L.Flatten, L.Dense(128), relu, L.Dense(10),
        )  # fmt: skip
        params, opt = model.init(0, (28, 28, 1)), optim.adam(1e-3)
        step = train_step(model, losses.softmax_cross_entropy, opt)
        forms[name] = functools.partial(step, params, opt.init(params), x, y)
    return forms


def relu_backward_forms(rng: np.random.Generator) -> Forms:
    """ReLU's backward over the benchmark CNN's first activation (64x26x26x32)."""
    y = np.maximum(rng.standard_normal((N, 26, 26, C)), 0).astype(np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return {
        "dy * (y > 0), one multiply with a bool mask (funcnn)": lambda: nn.relu_backward(
            None, y, dy
        ),
        "dy * sign(y)": lambda: dy * np.sign(y),
        "dy * heaviside(y, 0)": lambda: dy * np.heaviside(y, 0),
    }


def sigmoid_loss_forms(rng: np.random.Generator) -> Forms:
    """Sigmoid cross-entropy's value and gradient on the XOR batch (4 logits)."""
    z = rng.standard_normal((4, 1)).astype(np.float32)
    t = np.float32([[0], [1], [1], [0]])
    loss = funcnn.losses.sigmoid_binary_cross_entropy

    def separate() -> tuple:  # before: exp(-|z|) twice, NaN and range checked apart
        if np.isnan(t).any() or t.min() < 0 or t.max() > 1:
            raise ValueError("targets")
        value = float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))
        grad = nn.sigmoid(z) - t
        grad *= 1 / z.size
        return np.float64(value), grad

    def ours() -> tuple:
        value, grad = loss.value_and_grad(z, t)
        return np.float64(value), grad

    return {"exp(-|z|) once, one range-and-NaN check (funcnn)": ours, "as before": separate}


# ---------------------------------------------------------------- Adam


def mlp_params() -> tuple:
    model = L.serial(L.Dense(512), L.Relu, L.Dense(256), L.Relu, L.Dense(10))
    return model.init(0, (784,))


def adam_whole_leaf() -> optim.GradientTransformation:
    """Adam as funcnn computed it before its spans: each leaf's passes whole, one leaf after
    another on the calling thread (the same operations, so the same bits)."""
    from funcnn.optim.base import expect_state
    from funcnn.optim.leaves import ema, ema_sq, leafwise
    from funcnn.optim.transforms import ScaleByAdamState, adam_init

    def update(updates, state, params=None):  # type: ignore[no-untyped-def]
        s = expect_state(state, ScaleByAdamState, "adam_whole_leaf")
        _, eps_add, _, _, out_scale = adam_scalars(0.9, 0.999, 1e-8, 0.0, False, s.step + 1)

        def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, ...]:
            new_mu, new_nu = ema(mu, g, 0.9), ema_sq(nu, g, 0.999)
            u = np.sqrt(new_nu)
            u += eps_add
            np.divide(new_mu, u, out=u)
            u *= out_scale
            return u, new_mu, new_nu

        out, mu, nu = leafwise("adam_whole_leaf", step, updates, s.mu, s.nu)
        return out, ScaleByAdamState(s.step + 1, mu, nu)

    return optim.GradientTransformation(adam_init, update)


def mlp_step_adam_forms(rng: np.random.Generator, batch: int) -> Forms:
    """The benchmark MLP's training step with each Adam form."""
    from funcnn import losses, train_step

    model = L.serial(L.Dense(512), L.Relu, L.Dense(256), L.Relu, L.Dense(10))
    params = model.init(0, (784,))
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    forms: Forms = {}
    for name, adam in (
        ("Adam in spans on funcnn's threads (funcnn)", optim.scale_by_adam()),
        ("Adam's whole-leaf passes on the calling thread", adam_whole_leaf()),
    ):
        opt = optim.chain(adam, optim.scale_by_learning_rate(1e-3))
        step = train_step(model, losses.softmax_cross_entropy, opt)
        forms[name] = functools.partial(step, params, opt.init(params), x, y)
    return forms


def apply_updates_in_spans(params: object, updates: object) -> object:
    """optim.apply_updates cut into spans on funcnn's threads (Adam's mechanism)."""
    p_leaves, treedef = tree.flatten(params)
    u_leaves = tree.leaves_matching(treedef, p_leaves, updates)
    if u_leaves is None:
        raise ValueError("updates do not match params")
    outs, tasks = [], []
    for p, u in zip(p_leaves, u_leaves):
        out = np.empty(p.shape, p.dtype)
        flat = [np.asarray(a).reshape(-1) for a in (p, u, out)]
        for lo in range(0, p.size, optim.leaves.SPAN):
            part = [a[lo : lo + optim.leaves.SPAN] for a in flat]
            tasks.append(functools.partial(np.add, part[0], part[1], out=part[2],
                                           dtype=p.dtype, casting="same_kind"))  # fmt: skip
        outs.append(out)
    linalg.run_elementwise(tasks, sum(p.size for p in p_leaves))
    return tree.unflatten(treedef, [optim.leaves.frozen(out) for out in outs])


def step_apply_forms(rng: np.random.Generator, workload: str) -> Forms:
    """A whole training step with funcnn's apply_updates and with it cut into spans."""
    from funcnn import losses, train_step

    if workload == "XOR":
        model, shape, batch = L.serial(L.Dense(4), L.Tanh, L.Dense(1)), (2,), 4
        loss, opt = losses.sigmoid_binary_cross_entropy, optim.sgd(0.5)
        y = rng.integers(0, 2, (batch, 1)).astype(np.float32)
    else:
        model, shape, batch = (
            L.serial(L.Dense(512), L.Relu, L.Dense(256), L.Relu, L.Dense(10)),
            (784,),
            int(workload),
        )
        loss, opt = losses.softmax_cross_entropy, optim.adam(1e-3)
        y = rng.integers(0, 10, batch)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    params = model.init(0, shape)
    step = functools.partial(train_step(model, loss, opt), params, opt.init(params), x, y)

    def in_spans() -> object:
        saved, optim.apply_updates = optim.apply_updates, apply_updates_in_spans
        try:
            return step()
        finally:
            optim.apply_updates = saved

    return {
        "apply_updates leaf by leaf (funcnn)": step,
        "apply_updates in spans on funcnn's threads": in_spans,
    }


def adam_forms(rng: np.random.Generator) -> Forms:
    params = mlp_params()
    grads = tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params)
    adam = optim.scale_by_adam()
    _, state = adam.update(grads, adam.init(params), params)  # state that is not zero
    b1, b2 = 0.9, 0.999
    _, eps_add, _, _, out_scale = adam_scalars(b1, b2, 1e-8, 0.0, False, state.step + 1)
    leaves = list(zip(tree.leaves(grads), tree.leaves(state.mu), tree.leaves(state.nu)))

    def block(flat: list, new: list, lo: int, hi: int) -> None:
        gb, mub, nub = (a[lo:hi] for a in flat)
        ub, mb, vb = (a[lo:hi] for a in new)
        ema_into(mb, mub, gb, b1, scratch=ub)
        ema_sq_into(vb, nub, gb, b2, scratch=ub)
        np.sqrt(vb, out=ub)
        ub += eps_add
        np.divide(mb, ub, out=ub)
        ub *= out_scale

    def blocked(size: int, threads: bool) -> list:
        out = []
        for g, mu, nu in leaves:
            flat = [a.reshape(-1) for a in (g, mu, nu)]
            new = [np.empty(g.size, g.dtype) for _ in range(3)]
            spans = [(lo, min(lo + size, g.size)) for lo in range(0, g.size, size)]
            tasks = [functools.partial(block, flat, new, lo, hi) for lo, hi in spans]
            if threads:
                linalg._run(tasks, True)
            else:
                for task in tasks:
                    task()
            out.append([a.reshape(g.shape) for a in new])
        return out

    def funcnn_adam() -> list:
        u, s = adam.update(grads, state, params)
        return [list(t) for t in zip(tree.leaves(u), tree.leaves(s.mu), tree.leaves(s.nu))]

    whole = adam_whole_leaf()

    def whole_leaf() -> list:
        u, s = whole.update(grads, state, params)
        return [list(t) for t in zip(tree.leaves(u), tree.leaves(s.mu), tree.leaves(s.nu))]

    forms: Forms = {
        f"spans of {optim.leaves.SPAN:,} on funcnn's threads (funcnn)": funcnn_adam,
        "whole-leaf passes on the calling thread": whole_leaf,
    }
    for size in (8192, 32768, 65536, 131072, 262144):
        forms[f"blocks of {size}"] = lambda size=size: blocked(size, False)
        forms[f"blocks of {size} on funcnn's pool"] = lambda size=size: blocked(size, True)
    return forms


# ---------------------------------------------------------------- per-call Python


def small_forms(rng: np.random.Generator) -> tuple[Forms, Forms]:
    terms = rng.standard_normal((4, 1)).astype(np.float32)
    means: Forms = {
        "np.add.reduce / size (funcnn)": lambda: funcnn.losses._mean(terms),
        "np.mean": lambda: float(np.mean(terms)),
    }
    params = L.serial(L.Dense(4), L.Tanh, L.Dense(1)).init(0, (2,))
    other = tree.map(np.zeros_like, params)

    def flatten_map() -> object:  # the walk before: flatten both, check, unflatten
        first, treedef = tree.flatten(params)
        second = tree.leaves_matching(treedef, first, other)
        return tree.unflatten(treedef, [np.add(a, b) for a, b in zip(first, second)])

    maps: Forms = {
        "one walk over both trees (funcnn)": lambda: tree.map(np.add, params, other),
        "flatten both, unflatten": flatten_map,
    }
    return means, maps


# ---------------------------------------------------------------- report


def table(title: str, medians: dict[str, float], calls: int = 1) -> str:
    base = next(iter(medians.values()))
    lines = [f"### {title}", "", "| form | median | time vs funcnn's |", "| --- | --- | --- |"]
    for name, seconds in medians.items():
        each = seconds / calls
        shown = f"{each * 1e3:.3f} ms" if each >= 1e-4 else f"{each * 1e6:.2f} us"
        lines.append(f"| {name} | {shown} | {seconds / base:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    args = parser.parse_args()
    funcnn.allocator.tune_allocator()
    repeats = 20 if args.quick else 100
    rng = np.random.default_rng(0)
    sections = []

    forms = conv_dx_forms(rng)
    same_bits(forms)
    title = "Conv2D input gradient (64x11x11x64 -> 64x13x13x32, 3x3)"
    sections.append(table(title, interleaved(forms, repeats)))
    for channels in (1, 32):
        forms = im2col_forms(rng, channels)
        same_bits(forms)
        title = f"Conv2D im2col copy, 3x3 windows of 64x28x28x{channels}"
        sections.append(table(title, interleaved(forms, repeats)))
    forms = pool_forms(rng)
    same_bits(forms)
    title = "MaxPool2D training forward and backward (64x26x26x32, 2x2)"
    sections.append(table(title, interleaved(forms, repeats)))

    forms = cnn_step_forms(rng)
    same_bits(forms)
    sections.append(
        table(
            "The CNN's training step (batch 64), each max-pool and ReLU form",
            interleaved(forms, repeats),
        )
    )
    forms = relu_backward_forms(rng)
    same_bits(forms)
    sections.append(table("ReLU backward (64x26x26x32)", interleaved(forms, repeats)))

    forms = adam_forms(rng)
    same_bits(forms)
    evict = np.ones(3 * 2**24 // 4, np.float32)  # 48 MiB: more than the last-level cache
    cold = interleaved(forms, repeats // 2, before=lambda: evict.sum())
    sections.append(table("Adam update, 535,818 parameters, caches evicted first", cold))
    sections.append(table("Adam update, warm caches", interleaved(forms, repeats // 2)))
    for batch in (32, 128):
        forms = mlp_step_adam_forms(rng, batch)
        same_bits(forms)
        title = f"The MLP's training step (batch {batch}), each Adam form"
        sections.append(table(title, interleaved(forms, repeats)))

    for workload in ("32", "128", "XOR"):
        forms = step_apply_forms(rng, workload)
        same_bits(forms)
        name = "the XOR step" if workload == "XOR" else f"the MLP's step (batch {workload})"
        sections.append(table(f"apply_updates, in {name}", interleaved(forms, repeats)))

    means, maps = small_forms(rng)
    same_bits(maps)
    losses_ = sigmoid_loss_forms(rng)
    same_bits(losses_)
    calls = 1000

    def many(forms: Forms) -> Forms:
        return {k: (lambda fn=fn: [fn() for _ in range(calls)]) for k, fn in forms.items()}

    sections.append(table("A loss's mean of 4 terms", interleaved(many(means), repeats), calls))
    title = "Sigmoid cross-entropy, value and gradient of 4 logits"
    sections.append(table(title, interleaved(many(losses_), repeats), calls))
    sections.append(
        table("tree.map over a 2-4-1 model's params", interleaved(many(maps), repeats), calls)
    )

    facts = (
        f"{cpu_model()}, {os.cpu_count()} cores; {linalg.blas_description()}; "
        f"numpy {np.__version__}, CPython {platform.python_version()}; "
        f"funcnn {linalg.workers()} workers"
    )
    text = "\n\n".join(sections)
    print(facts, "", text, sep="\n")
    if args.output:
        command = "python benchmarks/levers.py" + (" --quick" if args.quick else "")
        args.output.write_text(
            "# Levers, measured\n\n"
            f"Produced by `{command}` on {datetime.date.today().isoformat()}: {facts}.\n\n"
            "Each lever's forms give the same bits (checked before timing) and run in one "
            f"process, interleaved, {repeats} repetitions each (Adam: {repeats // 2}); the "
            "tables give medians. The first row of each table is what funcnn ships.\n\n"
            + text
            + "\n"
        )


if __name__ == "__main__":
    main()
