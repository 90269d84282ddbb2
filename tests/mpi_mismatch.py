"""Run by tests/test_distributed.py under mpirun: ranks that call fit with different things.

python tests/mpi_mismatch.py same|check|samples|data|settings

Every rank but the last calls ``fit(..., comm=MPI.COMM_WORLD)`` on the same tiny data
set; the last rank differs as the case says:

- ``same``: it does not (the run ends, each rank prints its rank and params digest);
- ``check``: it passes ``batch_size=0``, which fit's argument checks refuse;
- ``samples``: it has 8 samples instead of 12 (its batches of 4 still line up);
- ``data``: one number of its x differs;
- ``settings``: its batch size, epochs, validation split, activation and x's dtype differ.
"""

import argparse
import hashlib

import numpy as np
from mpi4py import MPI

from funcnn import fit, losses, optim, tree
from funcnn import layers as L


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["same", "check", "samples", "data", "settings"])
    case = parser.parse_args().case
    comm = MPI.COMM_WORLD
    differs = case if comm.Get_rank() == comm.Get_size() - 1 else "same"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3)).astype(np.float32)
    y = rng.integers(0, 2, 12)
    model = L.serial(L.Dense(4), L.Relu, L.Dense(2))
    kwargs = dict(epochs=1, batch_size=4, rng=0, verbose=0)
    if differs == "check":
        kwargs["batch_size"] = 0
    elif differs == "samples":
        x, y = x[:8], y[:8]
    elif differs == "data":
        x[5, 1] += 1
    elif differs == "settings":
        x = x.astype(np.float64)
        model = L.serial(L.Dense(4), L.Tanh, L.Dense(2))
        kwargs.update(batch_size=6, epochs=2, validation_split=0.25)
    params, _ = fit(
        model, model.init(0, (3,)), losses.softmax_cross_entropy, optim.sgd(0.1), x, y,
        comm=comm, **kwargs,
    )  # fmt: skip
    digest = hashlib.sha256(b"".join(a.tobytes() for a in tree.leaves(params))).hexdigest()
    print(f"{comm.Get_rank()} {digest}", flush=True)


if __name__ == "__main__":
    main()
