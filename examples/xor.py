"""Learn XOR with a 2-4-1 network and plain gradient descent, then print the truth table.

Run: python examples/xor.py [output_dir (default: outputs)]
Saves xor_decision_boundary.png: the plane the network learned to split.
"""

import argparse
from pathlib import Path

import numpy as np

from funcnn import layers as L
from funcnn import losses, plot, tree, value_and_grad


def main(
    output_dir: str | None = None, steps: int = 2000, learning_rate: float = 0.5, seed: int = 0
) -> float:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)

    model = L.serial(L.Dense(4), L.Tanh, L.Dense(1), L.Sigmoid)
    params = model.init(seed, (2,))
    loss_and_grads = value_and_grad(model, losses.binary_cross_entropy)

    for step in range(steps + 1):
        loss, grads = loss_and_grads(params, x, y)
        # Gradient DEscent: step against the gradient. Params are immutable: build new ones.
        params = tree.map(lambda p, g: p - learning_rate * g, params, grads)
        if step % 500 == 0:
            print(f"step {step:5d}  loss {loss:.4f}")

    probabilities = model.apply(params, x)[:, 0]
    print("\n x1 x2 | p(1)   predicted  target")
    for (a, b), p, t in zip(x.astype(int), probabilities, y[:, 0].astype(int)):
        print(f"  {a}  {b} | {p:.3f}  {int(p > 0.5):9d}  {t:6d}")
    accuracy = float(np.mean((probabilities > 0.5) == y[:, 0]))
    print(f"\naccuracy {accuracy:.0%}")
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        path = Path(output_dir) / "xor_decision_boundary.png"
        plot.plot_decision_boundary(lambda points: model.apply(params, points), x, y[:, 0], path)
        print(f"saved {path}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the plot goes")
    main(parser.parse_args().output_dir)
