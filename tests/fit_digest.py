"""Run by tests/test_reproducibility.py in fresh interpreters: a seeded fit, then digests.

python tests/fit_digest.py mlp|cnn [--epochs N] [--batch B] [--samples N] [--save PATH]
    [--resume PATH] [--mpi] [--fail-on-rank R (that rank raises after its second batch)]
Prints one JSON line: SHA-256 of the final params and state, of predict's output and
of evaluate's scores. The environment (OPENBLAS_NUM_THREADS, FUNCNN_WORKERS...) is
what the test varies; with ``--mpi`` (under mpirun) every rank trains its share with
``fit(..., comm=MPI.COMM_WORLD)`` and prints its line, prefixed by its rank.
"""

import argparse
import hashlib
import json

import numpy as np

import funcnn
from funcnn import callbacks, fit, losses, optim, tree
from funcnn import layers as L


def digest(t) -> str:
    h = hashlib.sha256()
    for a in tree.leaves(t):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()


def setup(kind, samples):
    rng = np.random.default_rng(0)
    if kind == "mlp":
        # 784 inputs, batch 128: big enough that OpenBLAS splits its products over
        # threads (whose bits then depend on the thread count) when left to itself.
        x = rng.standard_normal((samples, 784)).astype(np.float32)
        model = L.serial(L.Dense(256), L.Relu, L.Dropout(0.2), L.Dense(64), L.Tanh, L.Dense(10))
    else:
        x = rng.standard_normal((samples // 2, 12, 12, 3)).astype(np.float32)
        model = L.serial(
            L.Conv2D(8, 3), L.BatchNorm(), L.Relu, L.MaxPool2D(2), L.Conv2D(16, 2),
            L.Relu, L.Flatten, L.Dropout(0.3), L.Dense(10),
        )  # fmt: skip
    y = rng.integers(0, 10, len(x))
    return model, x, y


class FailInBatch(callbacks.Callback):
    """Raises in the middle of training, as a rank whose own computation fails."""

    def __init__(self, batch):
        self.batch = batch

    def on_batch_end(self, batch, loss, ctx):
        if batch == self.batch:
            raise TypeError(f"this rank fails on purpose after batch {batch}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--save")
    parser.add_argument("--resume")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--mpi", action="store_true")
    parser.add_argument("--fail-on-rank", type=int)
    args = parser.parse_args()
    model, x, y = setup(args.kind, args.samples)
    loss, opt = losses.softmax_cross_entropy, optim.adam(1e-3)
    kwargs = dict(epochs=args.epochs, batch_size=args.batch, rng=7, verbose=0, validation_split=0.2)
    prefix, failing = "", []
    if args.mpi:
        from mpi4py import MPI

        kwargs["comm"] = MPI.COMM_WORLD
        prefix = f"{MPI.COMM_WORLD.Get_rank()} "
        if args.fail_on_rank == MPI.COMM_WORLD.Get_rank():
            failing = [FailInBatch(1)]  # the other ranks go on to the next batch
    if args.resume:
        c = funcnn.load(args.resume)
        result = fit(
            model, c.params, loss, opt, x, y, state=c.state, opt_state=c.opt_state,
            initial_epoch=c.epoch, **kwargs,
        )  # fmt: skip
    else:
        cbs = [callbacks.ModelCheckpoint(args.save)] if args.save else []
        result = fit(
            model, model.init(0, x.shape[1:]), loss, opt, x, y, callbacks=cbs + failing, **kwargs
        )
    params, state = result.params, result.state
    pred = funcnn.predict(model, params, x, state=state)
    scores = funcnn.evaluate(model, params, loss, x, y, metrics=["accuracy"], state=state)
    print(prefix + json.dumps({
        "params": digest((params, state, result.opt_state)),
        "predict": digest(pred),
        "evaluate": repr(sorted(scores.items())),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
