"""A character-level decoder-only transformer on Shakespeare's Hamlet, which funcnn ships.

Run: python examples/char_transformer.py [output_dir (default: outputs)] [--epochs N]
No extra needed. The same text, split and windows as examples/char_rnn.py (the first
90% trains, the last 10% validates, windows of 64 characters): a GPT-style model of 2
pre-norm blocks, 4 heads, width 64 (layers.DecoderOnlyTransformer: token and learned
position embeddings, causal self-attention, a Gelu MLP), trained with AdamW (no decay
on biases and scales) under a linear warm-up and cosine decay, gradients clipped to a
global norm of 1. Prints the validation loss and perplexity next to part 1's GRU, and a
seeded sample (funcnn.sequence.generate, temperature and top-k). Saves
char_transformer_history.png. Its 770 steps took 240 s of training on a busy 2-core
machine (validation loss 1.81, the GRU's 1.75); --steps N makes a short run; --rnn also
trains char_rnn's GRU here (35 s more) instead of quoting its number.
"""

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

from funcnn import (
    allocator,
    datasets,
    evaluate,
    fit,
    losses,
    optim,
    plot,
    schedules,
    sequence,
    tree,
)
from funcnn import layers as L

WINDOW = 64  # characters a training example reads (the model's context)
GRU_VAL_LOSS = 1.7537  # examples/char_rnn.py's validation loss (10 epochs), as it prints it


def _char_rnn():
    path = Path(__file__).with_name("char_rnn.py")
    spec = importlib.util.spec_from_file_location("funcnn_example_char_rnn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


char_rnn = _char_rnn()  # its windows and split: the same data for both models


def build(vocab_size: int, dim: int = 64, heads: int = 4, blocks: int = 2) -> L.Serial:
    return L.DecoderOnlyTransformer(vocab_size, WINDOW, dim, heads, blocks)


PEAK = 3e-3  # the learning rate after the warm-up


def schedule(steps: int, warmup: int = 100) -> schedules.Schedule:
    """A linear warm-up from 0 to PEAK over ``warmup`` steps, then a cosine decay to 0."""
    warmup = min(warmup, max(steps - 1, 0))
    return schedules.warmup_cosine_decay(0.0, PEAK, warmup, max(steps, warmup + 1))


def recipe(steps: int) -> optim.GradientTransformation:
    """Clip to a global norm of 1, then AdamW (weight decay 0.1 on the params of rank 2 and
    more: tree.kernel_mask) under :func:`schedule`."""
    return optim.chain(
        optim.clip_by_global_norm(1.0),
        optim.adamw(schedule(steps), b2=0.99, weight_decay=0.1, mask=tree.kernel_mask),
    )


def main(
    output_dir: str = "outputs",
    epochs: int = 10,
    max_steps: int | None = None,
    rnn: bool = False,
    verbose: int = 2,
) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = datasets.load_text("hamlet")
    vocab = datasets.CharVocabulary.of(text)
    train_ids, val_ids = char_rnn.split_text(vocab.encode(text))
    (x_train, y_train), (x_val, y_val) = char_rnn.windows(train_ids), char_rnn.windows(val_ids)
    batch_size = 32
    if max_steps is not None:  # a short run: the first batches of one epoch
        x_train, y_train = x_train[: max_steps * batch_size], y_train[: max_steps * batch_size]
        epochs = 1
    print(
        f"{len(text)} characters, {len(vocab)} distinct; train {x_train.shape}, val {x_val.shape}"
    )

    model = build(len(vocab))
    params = model.init(0, (WINDOW,))
    steps = epochs * -(-len(x_train) // batch_size)
    started = time.perf_counter()
    params, history = fit(
        model, params, losses.softmax_cross_entropy, recipe(steps), x_train, y_train,
        epochs=epochs, batch_size=batch_size, rng=0, validation_data=(x_val, y_val),
        verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    val_loss = evaluate(model, params, losses.softmax_cross_entropy, x_val, y_val)["loss"]
    gru_loss = GRU_VAL_LOSS
    if rnn:
        gru_loss = char_rnn.main(str(out), verbose=0)["val_loss"]
    print(
        f"\ntraining took {seconds:.1f}s ({steps} steps)\n"
        f"validation loss, nats per character (perplexity):\n"
        f"  transformer (2 blocks, 4 heads, width 64): {val_loss:.4f} ({math.exp(val_loss):.2f})\n"
        f"  GRU(192) of examples/char_rnn.py{' (trained here)' if rnn else ''}:"
        f"        {gru_loss:.4f} ({math.exp(gru_loss):.2f})"
    )

    prompt = vocab.encode("HAMLET.\n")[None, :]
    ids = sequence.generate(model, params, prompt, 300, rng=0, temperature=0.8, top_k=10)
    sample = vocab.decode(ids[0])
    print("\nsampled (seed 0, temperature 0.8, top_k 10):\n" + sample)

    plot.plot_history(history, out / "char_transformer_history.png")
    print(f"\nplot saved in {out.resolve()}")
    return {"val_loss": val_loss, "perplexity": math.exp(val_loss), "sample": sample,
            "seconds": seconds, "history": history, "gru_val_loss": gru_loss}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the text")
    parser.add_argument("--steps", type=int, default=None, help="a short run of this many steps")
    parser.add_argument("--rnn", action="store_true", help="train char_rnn's GRU here too")
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs, max_steps=args.steps, rnn=args.rnn)
