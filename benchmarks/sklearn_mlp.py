"""funcnn.sklearn's MLPClassifier and MLPRegressor against scikit-learn's, drop-in.

Usage:  python benchmarks/sklearn_mlp.py [--rounds 3] [--output benchmarks/SKLEARN.md]

On digits, breast cancer and wine (classifiers, accuracy) and diabetes (regressor, R^2),
each estimator runs as ``Pipeline(StandardScaler(), MLP...(random_state=0))`` with its
defaults under ``cross_val_score(..., cv=5)``: the mean score over the five folds and
the wall time of the whole cross-validation. The bars: funcnn's score within 1 point
(0.01) of scikit-learn's, and its time at or below scikit-learn's.

Each measurement runs in its own fresh process (scikit-learn's and funcnn's alternating,
``--rounds`` times; the table gives the median time), so neither library's threads or
caches help the other. The load average before and after is recorded: other work on the
machine slows both, scikit-learn's multithreaded BLAS more.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

DATASETS = ("digits", "breast_cancer", "wine", "diabetes")
LIBRARIES = ("sklearn", "funcnn")


def measure(library: str, dataset: str) -> dict[str, float]:
    """Score and time one 5-fold cross-validation, in this process."""
    from sklearn import datasets
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if library == "sklearn":
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    else:
        from funcnn.sklearn import MLPClassifier, MLPRegressor
    X, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    estimator = MLPRegressor if dataset == "diabetes" else MLPClassifier
    pipe = make_pipeline(StandardScaler(), estimator(random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn alike where 200 epochs do not converge
        start = time.perf_counter()
        scores = cross_val_score(pipe, X, y, cv=5)
        seconds = time.perf_counter() - start
    return {"score": float(scores.mean()), "seconds": seconds}


def run_worker(library: str, dataset: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", library, dataset],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results: dict, rounds: int, load: tuple[float, float]) -> str:
    lines = [
        "# funcnn.sklearn's MLPs against scikit-learn's",
        "",
        f"Produced by `python benchmarks/sklearn_mlp.py --rounds {rounds}` on "
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "Each row: `cross_val_score(Pipeline(StandardScaler(), MLP...(random_state=0)), X, y, "
        "cv=5)` with every other parameter at its default; score = the mean over the folds "
        "(accuracy; R^2 for diabetes), time = the whole cross-validation's wall time, the "
        f"median of {rounds} fresh processes per library, alternating; the time ratio is the "
        "median over the rounds of funcnn's time over scikit-learn's in the same round (so a "
        "load that comes and goes weighs on both alike).",
        "",
        f"Load average (1 min) before: {load[0]:.2f}, after: {load[1]:.2f}, on "
        f"{os.cpu_count()} cores"
        + (
            " -- the machine was busy with other work; both libraries ran slower."
            if max(load) > 0.5 * (os.cpu_count() or 1)
            else " (a quiet machine)."
        ),
        "",
        "| data set | scikit-learn score | funcnn score | difference (points) | "
        "scikit-learn time | funcnn time | time ratio (funcnn / sklearn) | both bars met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset in results:
        sk, fn = results[dataset]["sklearn"], results[dataset]["funcnn"]
        sk_t = statistics.median(r["seconds"] for r in sk)
        fn_t = statistics.median(r["seconds"] for r in fn)
        ratio = statistics.median(f["seconds"] / k["seconds"] for f, k in zip(fn, sk))
        diff = 100 * (fn[0]["score"] - sk[0]["score"])
        met = abs(diff) <= 1 and ratio <= 1
        lines.append(
            f"| {dataset} | {sk[0]['score']:.4f} | {fn[0]['score']:.4f} | {diff:+.2f} | "
            f"{sk_t:.2f} s | {fn_t:.2f} s | {ratio:.2f} | {'yes' if met else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per library")
    parser.add_argument("--output", type=Path, help="write the Markdown table here")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--worker", nargs=2, metavar=("LIBRARY", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker)))
        return
    before = os.getloadavg()[0]
    results: dict = {d: {lib: [] for lib in LIBRARIES} for d in args.datasets}
    for _ in range(args.rounds):
        for dataset in args.datasets:
            for library in LIBRARIES:
                results[dataset][library].append(run_worker(library, dataset))
    text = report(results, args.rounds, (before, os.getloadavg()[0]))
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
