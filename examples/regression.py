"""Regression with a linear output and mean squared error; reports R^2 on held-out data.

Run: python examples/regression.py [output_dir (default: outputs)]
Data: y = sin(2 x0) + x1^2 - 0.5 x0 x2 + noise, generated from a fixed seed.
Saves regression.png (predicted vs true).
"""

import argparse
from pathlib import Path

import numpy as np

from funcnn import allocator, datasets, fit, losses, metrics, optim, plot, predict
from funcnn import layers as L


def make_data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, (n, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 - 0.5 * x[:, 0] * x[:, 2] + 0.1 * rng.standard_normal(n)
    return x.astype(np.float32), y[:, None].astype(np.float32)


def main(output_dir: str = "outputs", verbose: int = 0) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = make_data()
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.25, rng=0)
    model = L.serial(L.Dense(64), L.Tanh, L.Dense(64), L.Tanh, L.Dense(1))  # linear output
    params = model.init(0, (3,))
    params, _ = fit(
        model, params, losses.mean_squared_error, optim.adam(3e-3), x_train, y_train,
        epochs=60, batch_size=32, rng=0, validation_split=0.1, metrics=["mae", "r2"],
        verbose=verbose,
    )  # fmt: skip
    pred = predict(model, params, x_test)
    r2, mse = metrics.r2_score(pred, y_test), metrics.mean_squared_error(pred, y_test)
    print(f"test R^2 {r2:.4f}, MSE {mse:.4f} (noise variance 0.01)")

    fig = plot._figure(5, 5)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(y_test[:, 0], pred[:, 0], s=6, alpha=0.6)
    lo, hi = float(y_test.min()), float(y_test.max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=1)
    ax.set(xlabel="true", ylabel="predicted", title=f"Held-out predictions (R^2 = {r2:.3f})")
    fig.tight_layout()
    fig.savefig(out / "regression.png", dpi=100)
    print(f"plot saved in {out.resolve()}")
    return {"r2": r2, "mse": mse}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir)
