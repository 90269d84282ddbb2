"""Train one model with every optimizer and plot their loss curves in one figure.

Swapping optimizers is passing a different object to the same training function.
Run: python examples/swap_optimizers.py [output.png (default: outputs/swap_optimizers.png)]
"""

import argparse
from pathlib import Path

import numpy as np

from funcnn import layers as L
from funcnn import losses, optim, value_and_grad

OPTIMIZERS = {
    "sgd": optim.sgd(0.5),
    "momentum": optim.momentum(0.1),
    "nesterov": optim.nesterov(0.1),
    "rmsprop": optim.rmsprop(0.01),
    "adagrad": optim.adagrad(0.1),
    "adadelta": optim.adadelta(),
    "adam": optim.adam(0.01),
    "adamw": optim.adamw(0.01),
    "adamax": optim.adamax(0.02),
    "nadam": optim.nadam(0.01),
    "lion": optim.lion(0.002),
}


def two_circles(rng, n=512):
    """Points on two noisy concentric circles: label 1 for the inner one."""
    labels = rng.integers(0, 2, n)
    radius = np.where(labels == 1, 0.5, 1.0) + 0.1 * rng.standard_normal(n)
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return x.astype(np.float32), labels.astype(np.float32)[:, None]


def train(optimizer, x, y, *, epochs=40, batch_size=32, seed=0):
    """Mini-batch training; returns the mean training loss of each epoch."""
    model = L.serial(L.Dense(16), L.Tanh, L.Dense(16), L.Tanh, L.Dense(1))
    params = model.init(seed, (2,))
    opt_state = optimizer.init(params)
    loss_and_grads = value_and_grad(model, losses.sigmoid_binary_cross_entropy)
    rng = np.random.default_rng(seed)
    curve = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        epoch_losses = []
        for start in range(0, len(x), batch_size):  # the last partial batch too
            batch = order[start : start + batch_size]
            loss, grads = loss_and_grads(params, x[batch], y[batch])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optim.apply_updates(params, updates)
            epoch_losses.append(loss * len(batch))
        curve.append(sum(epoch_losses) / len(x))
    accuracy = float(np.mean((model.apply(params, x) > 0) == (y > 0.5)))
    return curve, accuracy


def main(output="outputs/swap_optimizers.png"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = two_circles(np.random.default_rng(42))
    fig, ax = plt.subplots(figsize=(8, 5))
    results = {}
    colors = plt.get_cmap("tab20").colors
    styles = ["-", "--", ":", "-."]  # curves that coincide still show: each its own dashes
    markers = "osD^v<>pXh*"
    for i, (name, optimizer) in enumerate(OPTIMIZERS.items()):
        curve, accuracy = train(optimizer, x, y)
        results[name] = (curve[-1], accuracy)
        label = f"{name} ({accuracy:.0%})"
        ax.plot(
            range(1, len(curve) + 1), curve, label=label, color=colors[i % len(colors)],
            linestyle=styles[i % len(styles)], marker=markers[i % len(markers)],
            markevery=max(1, len(curve) // 6), markersize=4, alpha=0.85,
        )  # fmt: skip
        print(f"{name:10s} final loss {curve[-1]:.4f}  training accuracy {accuracy:.1%}")
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="One model, every optimizer")
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    print(f"plot saved in {Path(output).resolve()}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output", nargs="?", default="outputs/swap_optimizers.png", help="the plot's path"
    )
    main(parser.parse_args().output)
