"""The Keras-style facade end to end on iris: add, compile, fit, summary, evaluate, save, load.

Run: python examples/keras_style.py [output_dir (default: outputs)]
Needs the datasets extra. Saves iris_model.json (weights as lists) and iris_history.png.
"""

import argparse
from pathlib import Path

import numpy as np

from funcnn import allocator, datasets, plot
from funcnn.keras import Dense, Sequential, load_model


def main(output_dir: str = "outputs", verbose: int = 0) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_iris()
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.3, rng=0)
    scaler = datasets.Standardizer.fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    model = Sequential()
    model.add(Dense(12, input_dim=4, activation="relu"))
    model.add(Dense(8, activation="relu"))
    model.add(Dense(3, activation="softmax"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(
        x_train, y_train, epochs=150, batch_size=10, validation_split=0.2, verbose=verbose
    )
    model.summary()
    loss, accuracy = model.evaluate(x_test, y_test)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.2%}")

    path = model.save(out / "iris_model.json")
    restored = load_model(path)
    same = np.array_equal(restored.predict(x_test), model.predict(x_test))
    print(f"saved to {path.name} and loaded back: identical predictions: {same}")
    more = restored.fit(x_train, y_train, epochs=5, batch_size=10, verbose=0)  # resumes training
    print(f"training resumed after loading: loss {more['loss'][-1]:.4f}")
    plot.plot_history(history, out / "iris_history.png")
    print(f"model and plot saved in {out.resolve()}")
    return {"test_accuracy": accuracy, "identical_after_load": same}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir)
