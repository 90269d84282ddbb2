"""A character-level language model (a GRU) on Shakespeare's Hamlet, which funcnn ships.

Run: python examples/char_rnn.py [output_dir (default: outputs)]
No extra needed. The text's first 90% trains, its last 10% validates (split by
position, so no validation line is ever seen in training). The model reads
windows of 64 characters and predicts each next one: Embedding, a GRU
returning every step's output, a Dense over the 65 characters. Prints the
validation loss (nats per character) and perplexity, and a seeded sample of
generated text (funcnn.sequence.generate, temperature and top-k). Saves
char_rnn_history.png (the training and validation curves).
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np

from funcnn import allocator, datasets, evaluate, fit, losses, optim, plot, schedules, sequence
from funcnn import layers as L

WINDOW = 64  # characters a training example reads


def windows(ids: np.ndarray, length: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of ``length`` ids and, for each, the ids one step later."""
    n = (len(ids) - 1) // length
    x = ids[: n * length].reshape(n, length)
    y = ids[1 : n * length + 1].reshape(n, length)
    return x, y


def build(vocab_size: int, units: int = 192) -> L.Serial:
    return L.serial(
        L.Embedding(vocab_size, 32), L.GRU(units, return_sequences=True), L.Dense(vocab_size)
    )


def split_text(ids: np.ndarray, validation: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first ``1 - validation`` of the text, and the rest (by position)."""
    cut = round(len(ids) * (1 - validation))
    return ids[:cut], ids[cut:]


def main(output_dir: str = "outputs", epochs: int = 10, units: int = 192, verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = datasets.load_text("hamlet")
    vocab = datasets.CharVocabulary.of(text)
    train_ids, val_ids = split_text(vocab.encode(text))
    (x_train, y_train), (x_val, y_val) = windows(train_ids), windows(val_ids)
    print(
        f"{len(text)} characters, {len(vocab)} distinct; train {x_train.shape}, val {x_val.shape}"
    )

    model = build(len(vocab), units)
    params = model.init(0, (WINDOW,))
    batch_size = 32
    steps = epochs * -(-len(x_train) // batch_size)
    optimizer = optim.chain(
        optim.clip_by_global_norm(1.0), optim.adam(schedules.cosine_decay(4e-3, steps))
    )
    started = time.perf_counter()
    params, history = fit(
        model, params, losses.softmax_cross_entropy, optimizer, x_train, y_train,
        epochs=epochs, batch_size=batch_size, rng=0, validation_data=(x_val, y_val),
        verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    val_loss = evaluate(model, params, losses.softmax_cross_entropy, x_val, y_val)["loss"]
    print(
        f"\ntraining took {seconds:.1f}s; validation loss {val_loss:.4f} nats per character, "
        f"perplexity {math.exp(val_loss):.2f}"
    )

    prompt = vocab.encode("HAMLET.\n")[None, :]
    ids = sequence.generate(model, params, prompt, 300, rng=0, temperature=0.8, top_k=10)
    sample = vocab.decode(ids[0])
    print("\nsampled (seed 0, temperature 0.8, top_k 10):\n" + sample)

    plot.plot_history(history, out / "char_rnn_history.png")
    print(f"\nplot saved in {out.resolve()}")
    return {"val_loss": val_loss, "perplexity": math.exp(val_loss), "sample": sample,
            "seconds": seconds, "history": history}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the text")
    parser.add_argument("--units", type=int, default=192, help="the GRU's size")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs, units=args.units)
