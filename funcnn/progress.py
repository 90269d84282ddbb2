"""``fit``'s progress bar (steps, rate, running loss) and its Keras-style epoch lines."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A one-line progress bar (steps, rate, running loss) and Keras-style epoch lines."""

    def __init__(self, verbose: int, epochs: int, steps: int, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        if verbose == 1 and not getattr(self.stream, "isatty", lambda: False)():
            verbose = 2  # a log file or CI: carriage returns would run together (as Keras)
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.last_draw = 0.0
        self.drawn = 0

    def epoch_begin(self, epoch: int) -> None:
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs}\n")
        self.start = time.perf_counter()

    def batch(self, step: int, running_loss: float) -> None:
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if step < self.steps and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 30
        done = int(width * step / self.steps)
        rate = step / max(now - self.start, 1e-9)
        bar = "=" * max(done - 1, 0) + (">" if done < width else "=") + "." * (width - done)
        line = f"{step}/{self.steps} [{bar}] {rate:.0f} steps/s - loss: {running_loss:.4f}"
        self.stream.write("\r" + line)
        self.stream.flush()
        self.drawn = len(line)

    def epoch_end(self, logs: dict[str, float]) -> None:
        if not self.verbose:
            return
        parts = [f"{logs['time']:.2f}s"]
        parts += [f"{k}: {v:.4g}" for k, v in logs.items() if k != "time"]
        line = f"{self.steps}/{self.steps} - " + " - ".join(parts)
        if self.verbose == 1:  # overwrite the bar, blanking what the line does not cover
            line = "\r" + line.ljust(self.drawn)
        self.stream.write(line + "\n")
        self.stream.flush()
