"""The char_transformer example's model and recipe trained by funcnn and by PyTorch side by
side.

Usage:  python benchmarks/transformer_parity.py [--epochs N] [--quick]

The model of examples/char_transformer.py (a decoder-only transformer: 2 pre-norm blocks,
4 heads, width 64, context 64) is built in PyTorch from funcnn's initial weights
(benchmarks/transformer.py's torch_transformer); both train on the same batches in the
same order (a seeded permutation of the training windows per epoch) with the example's
recipe: global-norm clipping at 1, then AdamW (b2 0.99, weight decay 0.1 on the params
funcnn's tree.kernel_mask picks) under a linear warm-up and cosine decay of the
learning rate per step. Both are evaluated on the example's validation windows (the
text's last 10%) after every epoch; the target is final validation losses within 2% of
each other. The first batch's losses must agree before training starts.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import allocator, datasets, evaluate, losses, train_step


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


HERE = Path(__file__).resolve().parent
example = _load(HERE.parent / "examples" / "char_transformer.py", "funcnn_example_char_transformer")
bench = _load(HERE / "transformer.py", "funcnn_benchmarks_transformer")

BATCH, HEADS = 32, 4  # the example's


def batch_orders(n: int, epochs: int) -> list[list[np.ndarray]]:
    """Each epoch's batches of window indices: a permutation seeded by the epoch."""
    orders = [np.random.default_rng(epoch).permutation(n) for epoch in range(epochs)]
    return [[order[i : i + BATCH] for i in range(0, n, BATCH)] for order in orders]


def main(epochs: int = 10) -> dict:
    import torch
    import torch.nn.functional as F

    text = datasets.load_text("hamlet")
    vocab = datasets.CharVocabulary.of(text)
    rnn = example.char_rnn
    train_ids, val_ids = rnn.split_text(vocab.encode(text))
    (x_train, y_train), (x_val, y_val) = rnn.windows(train_ids), rnn.windows(val_ids)
    batches = batch_orders(len(x_train), epochs)
    steps = sum(len(b) for b in batches)

    model = example.build(len(vocab))
    params = model.init(0, (example.WINDOW,))
    net = bench.torch_transformer(params, HEADS)
    opt = example.recipe(steps)
    opt_state = opt.init(params)
    step = train_step(model, losses.softmax_cross_entropy, opt)
    lr, peak = example.schedule(steps), example.PEAK
    decay, keep = bench.decayed(net)
    torch_opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": keep, "weight_decay": 0.0}],
        lr=peak,
        betas=(0.9, 0.99),
        eps=1e-8,
    )
    per_step = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda k: float(lr(k)) / peak)
    tx_val, ty_val = torch.from_numpy(x_val), torch.from_numpy(y_val)

    def torch_loss(x: Any, y: Any) -> Any:
        return F.cross_entropy(net(x).reshape(-1, len(vocab)), y.reshape(-1))

    first = batches[0][0]
    ours = evaluate(model, params, losses.softmax_cross_entropy, x_train[first], y_train[first])
    with torch.no_grad():
        theirs = float(
            torch_loss(torch.from_numpy(x_train[first]), torch.from_numpy(y_train[first]))
        )
    print(f"first batch's loss: funcnn {ours['loss']:.6f}, PyTorch {theirs:.6f}")
    if not np.isclose(ours["loss"], theirs, rtol=1e-5):
        raise SystemExit("the first losses disagree: the two models differ")

    seconds = {"funcnn": 0.0, "PyTorch": 0.0}
    curves: dict[str, list[float]] = {"funcnn": [], "PyTorch": []}
    for epoch, epoch_batches in enumerate(batches):
        started = time.perf_counter()
        for idx in epoch_batches:
            params, opt_state, _ = step(params, opt_state, x_train[idx], y_train[idx])
        seconds["funcnn"] += time.perf_counter() - started
        started = time.perf_counter()
        for idx in epoch_batches:
            torch_opt.zero_grad()
            torch_loss(torch.from_numpy(x_train[idx]), torch.from_numpy(y_train[idx])).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            torch_opt.step()
            per_step.step()
        seconds["PyTorch"] += time.perf_counter() - started
        curves["funcnn"].append(
            evaluate(model, params, losses.softmax_cross_entropy, x_val, y_val)["loss"]
        )
        with torch.no_grad():
            curves["PyTorch"].append(float(torch_loss(tx_val, ty_val)))
        print(
            f"epoch {epoch + 1}/{epochs}: validation loss funcnn {curves['funcnn'][-1]:.4f}, "
            f"PyTorch {curves['PyTorch'][-1]:.4f}",
            flush=True,
        )
    ours_final, theirs_final = curves["funcnn"][-1], curves["PyTorch"][-1]
    gap = abs(ours_final - theirs_final) / theirs_final
    print(
        f"\nfinal validation loss (nats per character): funcnn {ours_final:.6f}, "
        f"PyTorch {theirs_final:.6f}; relative gap {gap:.4%} "
        f"(target < 2%: {'met' if gap < 0.02 else 'NOT met'})\n"
        f"training time (information only, same process, machine not quiet): "
        f"funcnn {seconds['funcnn']:.1f}s, PyTorch {seconds['PyTorch']:.1f}s"
    )
    return {"funcnn": curves["funcnn"], "PyTorch": curves["PyTorch"], "gap": gap}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="the example's 10 by default")
    parser.add_argument("--quick", action="store_true", help="2 epochs")
    args = parser.parse_args()
    allocator.tune_allocator()
    main(2 if args.quick else args.epochs)
