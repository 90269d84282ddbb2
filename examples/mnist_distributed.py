"""The MNIST MLP trained by several processes at once, with the bits of one process.

Run on a laptop (two processes; add --oversubscribe where there are fewer cores):

    mpirun -n 2 python examples/mnist_distributed.py

On a Slurm cluster, in a batch script: ``srun python examples/mnist_distributed.py``.
Run without mpirun it trains in one process; every run prints the same final
digest of the params, whatever the number of processes. Needs the distributed
and datasets extras: pip install -e ".[examples,distributed]".
"""

import argparse
import hashlib
import time

import numpy as np
from mpi4py import MPI

from funcnn import allocator, callbacks, datasets, fit, losses, metrics, optim, predict, tree
from funcnn import layers as L


def main(epochs: int = 10, batch_size: int = 512, checkpoint: str | None = None) -> dict:
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    x, y = datasets.load_mnist_sample()  # every process holds the data, reads its share
    x = x / np.float32(255.0)
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.2, rng=0)
    model = L.serial(L.Dense(512), L.Relu, L.Dropout(0.3), L.Dense(256), L.Relu, L.Dense(10))
    saves = [callbacks.ModelCheckpoint(checkpoint)] if checkpoint else []  # rank 0 writes
    started = time.perf_counter()
    params, history = fit(
        model, model.init(0, (784,)), losses.softmax_cross_entropy, optim.adam(2e-3),
        x_train, y_train, epochs=epochs, batch_size=batch_size, rng=0,
        validation_split=0.1, metrics=["accuracy"], callbacks=saves, verbose=2, comm=comm,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    accuracy = metrics.accuracy(predict(model, params, x_test), y_test)
    digest = hashlib.sha256(b"".join(a.tobytes() for a in tree.leaves(params))).hexdigest()
    if rank == 0:
        print(f"{size} process(es): {seconds:.1f}s, test accuracy {accuracy:.2%}")
        print(f"params digest {digest[:16]} (the same for any number of processes)")
    return {"test_accuracy": accuracy, "digest": digest, "history": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--checkpoint", help="save each epoch here, e.g. ckpt-{epoch}.npz")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.epochs, args.batch_size, args.checkpoint)
