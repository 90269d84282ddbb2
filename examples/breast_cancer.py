"""Binary classification of scikit-learn's breast cancer set with the functional API.

Run: python examples/breast_cancer.py [output_dir (default: outputs)]
Needs the datasets extra. Features are standardized with statistics of the
training split only; the model outputs a logit, trained with the stable
sigmoid binary cross-entropy. Saves breast_cancer_history.png.
"""

import argparse
from pathlib import Path

from funcnn import allocator, callbacks, datasets, evaluate, fit, losses, optim, plot, tree
from funcnn import layers as L


def main(output_dir: str = "outputs", verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_breast_cancer()
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=0.25, rng=1)
    scaler = datasets.Standardizer.fit(x_train)  # never look at the test set
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    y_train, y_test = y_train[:, None], y_test[:, None]

    model = L.serial(L.Dense(16), L.Relu, L.Dropout(0.3), L.Dense(1))
    params = model.init(0, (30,))
    params, history = fit(
        model, params, losses.sigmoid_binary_cross_entropy, optim.adam(1e-3), x_train, y_train,
        epochs=100, batch_size=32, rng=0, validation_split=0.2, metrics=["accuracy"],
        penalty=losses.l2_penalty(1e-4, mask=tree.kernel_mask),
        callbacks=[callbacks.EarlyStopping("val_loss", patience=10, restore_best=True)],
        verbose=verbose,
    )  # fmt: skip
    scores = evaluate(
        model, params, losses.sigmoid_binary_cross_entropy, x_test, y_test,
        metrics=["accuracy", "precision", "recall"],
    )  # fmt: skip
    print(
        f"\ntest: accuracy {scores['accuracy']:.2%}, precision {scores['precision']:.3f}, "
        f"recall {scores['recall']:.3f}, loss {scores['loss']:.4f} "
        f"(after {len(history.epochs)} epochs)"
    )
    plot.plot_history(history, out / "breast_cancer_history.png")
    print(f"plot saved in {out.resolve()}")
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir)
