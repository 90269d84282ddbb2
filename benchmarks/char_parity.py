"""The char_rnn example's model and recipe trained by funcnn and by PyTorch side by side.

Usage:  python benchmarks/char_parity.py [--epochs N] [--quick]

The model of examples/char_rnn.py (Embedding, GRU returning every step, Dense over the
characters) is built in PyTorch from funcnn's initial weights (PyTorch's GRU gate order,
see funcnn.layers.cells); both train on the same batches in the same order (a seeded
permutation of the training windows per epoch) with the example's recipe: global-norm
clipping at 1, then Adam with a cosine decay of the learning rate per step. Both are
evaluated on the example's validation windows (the text's last 10%) after every epoch;
the target is final validation losses within 2% of each other.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import allocator, datasets, evaluate, losses, optim, schedules, train_step


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


HERE = Path(__file__).resolve().parent
example = _load(HERE.parent / "examples" / "char_rnn.py", "funcnn_example_char_rnn")
recurrent = _load(HERE / "recurrent.py", "funcnn_benchmarks_recurrent")  # copy_cell, copy_dense

BATCH, LEARNING_RATE, CLIP = 32, 4e-3, 1.0  # the example's recipe


def torch_char_model(params: Any, vocab_size: int, units: int) -> Any:
    """Embedding, GRU (every step's output), Linear: from funcnn's params."""
    import torch

    class CharModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, params[0].embeddings.shape[1])
            self.rnn = torch.nn.GRU(params[0].embeddings.shape[1], units, batch_first=True)
            self.dense = torch.nn.Linear(units, vocab_size)

        def forward(self, ids: Any) -> Any:
            return self.dense(self.rnn(self.embedding(ids))[0])

    net = CharModel()
    with torch.no_grad():
        net.embedding.weight.copy_(torch.from_numpy(np.array(params[0].embeddings)))
    recurrent.copy_cell(net.rnn, "GRU", params[1])
    recurrent.copy_dense(net.dense, params[2])
    return net


def batch_orders(n: int, epochs: int) -> list[list[np.ndarray]]:
    """Each epoch's batches of window indices: a permutation seeded by the epoch."""
    orders = [np.random.default_rng(epoch).permutation(n) for epoch in range(epochs)]
    return [[order[i : i + BATCH] for i in range(0, n, BATCH)] for order in orders]


def main(epochs: int = 10, units: int = 192) -> dict:
    import torch
    import torch.nn.functional as F

    recurrent.run.load_torch()  # copy_cell and copy_dense reach torch through run
    text = datasets.load_text("hamlet")
    vocab = datasets.CharVocabulary.of(text)
    train_ids, val_ids = example.split_text(vocab.encode(text))
    (x_train, y_train), (x_val, y_val) = example.windows(train_ids), example.windows(val_ids)
    batches = batch_orders(len(x_train), epochs)
    steps = sum(len(b) for b in batches)

    model = example.build(len(vocab), units)
    params = model.init(0, (example.WINDOW,))
    net = torch_char_model(params, len(vocab), units)

    opt = optim.chain(
        optim.clip_by_global_norm(CLIP), optim.adam(schedules.cosine_decay(LEARNING_RATE, steps))
    )
    opt_state = opt.init(params)
    step = train_step(model, losses.softmax_cross_entropy, opt)
    torch_opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    cosine = torch.optim.lr_scheduler.LambdaLR(
        torch_opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps))
    )
    tx_val, ty_val = torch.from_numpy(x_val), torch.from_numpy(y_val)

    def torch_loss(x: Any, y: Any) -> Any:
        return F.cross_entropy(net(x).reshape(-1, len(vocab)), y.reshape(-1))

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
            torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            torch_opt.step()
            cosine.step()
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
    ours, theirs = curves["funcnn"][-1], curves["PyTorch"][-1]
    gap = abs(ours - theirs) / theirs
    print(
        f"\nfinal validation loss (nats per character): funcnn {ours:.6f}, PyTorch {theirs:.6f}; "
        f"relative gap {gap:.4%} (target < 2%: {'met' if gap < 0.02 else 'NOT met'})\n"
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
