"""Forecasting a noisy seasonal series with an LSTM, against the naive seasonal forecast.

Run: python examples/timeseries.py [output_dir (default: outputs)]
No extra needed. The series is generated (seeded): a daily cycle of period 24
(two harmonics) plus autocorrelated noise (AR(1)), 4,000 hourly steps. The first
80% trains (its last eighth validates), the last 20% tests, split by position. From
the last 72 values the model forecasts the next 24 at once (an LSTM, then a Dense
of 24). The naive seasonal forecast repeats the last 24 values; the model must
beat its test MSE. Saves timeseries_forecast.png (forecast, naive forecast and
truth over the test period) and timeseries_history.png.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from funcnn import allocator, fit, losses, optim, plot, predict, schedules
from funcnn import layers as L
from funcnn.random import RngLike, as_generator

PERIOD, LOOKBACK, HORIZON = 24, 72, 24


def seasonal_series(n: int = 4000, rng: RngLike = 0) -> np.ndarray:
    """``(n,)`` float32: ``10 + 2 sin(2 pi t / 24) + 0.8 sin(4 pi t / 24 + 1)`` plus AR(1)
    noise (coefficient 0.7, innovations of standard deviation 0.4)."""
    gen = as_generator(rng)
    t = np.arange(n)
    season = 10 + 2 * np.sin(2 * np.pi * t / PERIOD) + 0.8 * np.sin(4 * np.pi * t / PERIOD + 1)
    noise = np.zeros(n)
    shocks = 0.4 * gen.standard_normal(n)
    for i in range(1, n):
        noise[i] = 0.7 * noise[i - 1] + shocks[i]
    return (season + noise).astype(np.float32)


def windows(series: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, LOOKBACK, 1)`` and the next ``HORIZON`` values ``(n, HORIZON)``."""
    starts = np.arange(0, len(series) - LOOKBACK - HORIZON + 1, stride)
    x = np.stack([series[s : s + LOOKBACK] for s in starts])[..., None]
    y = np.stack([series[s + LOOKBACK : s + LOOKBACK + HORIZON] for s in starts])
    return x, y


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def main(output_dir: str = "outputs", epochs: int = 15, verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    series = seasonal_series()
    cut = int(len(series) * 0.8)
    mean, std = series[:cut].mean(), series[:cut].std()  # the training part's only
    scaled = (series - mean) / std
    x_train, y_train = windows(scaled[:cut])
    # the test windows start LOOKBACK before the cut, so every forecast lands in the test part
    x_test, y_test = windows(scaled[cut - LOOKBACK :], stride=HORIZON)
    print(f"train {x_train.shape}, test {x_test.shape} (forecasts of {HORIZON} steps)")

    model = L.serial(L.LSTM(48), L.Dense(HORIZON))
    params = model.init(0, (LOOKBACK, 1))
    steps = epochs * -(-int(len(x_train) * 0.875) // 64)
    started = time.perf_counter()
    params, history = fit(
        model, params, losses.mean_squared_error, optim.adam(schedules.cosine_decay(5e-3, steps)),
        x_train, y_train, epochs=epochs, batch_size=64, rng=0, validation_split=0.125,
        verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started

    forecast = predict(model, params, x_test) * std + mean
    truth = y_test * std + mean
    naive = x_test[:, -PERIOD:, 0] * std + mean  # the last season, repeated
    model_mse, naive_mse = mse(forecast, truth), mse(naive, truth)
    print(
        f"\ntraining took {seconds:.1f}s; test MSE {model_mse:.4f} (LSTM) vs {naive_mse:.4f} "
        f"(naive seasonal): {naive_mse / model_mse:.2f}x lower"
    )
    plot_forecast(truth, forecast, naive, out / "timeseries_forecast.png")
    plot.plot_history(history, out / "timeseries_history.png")
    print(f"plots saved in {out.resolve()}")
    return {"test_mse": model_mse, "naive_mse": naive_mse, "seconds": seconds}


def plot_forecast(truth: np.ndarray, forecast: np.ndarray, naive: np.ndarray, path: Path) -> None:
    """The first 10 forecasts of the test part, one after the other, against the truth."""
    from matplotlib.figure import Figure  # no pyplot: nothing global changes

    shown = slice(0, 10)
    t = np.arange(truth[shown].size)
    fig = Figure(figsize=(11, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(t, truth[shown].ravel(), color="black", lw=1.2, label="truth")
    ax.plot(t, forecast[shown].ravel(), lw=1.5, label="LSTM forecast")
    ax.plot(t, naive[shown].ravel(), lw=1, ls="--", label="naive seasonal")
    for start in range(0, t.size, HORIZON):
        ax.axvline(start, color="grey", lw=0.5, alpha=0.5)
    ax.set(xlabel="hours into the test part (a forecast of 24 per block)", ylabel="value")
    ax.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=15, help="passes over the windows")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs)
