"""A small U-Net segments discs and bars hidden in noise: every pixel is background, disc or
bar, and only the shape around it tells a disc's pixel from a bar's.

Run: python examples/unet_segmentation.py [output_dir (default: outputs)] [--epochs N]
No extra needed. The images are generated (seeded): 32x32, Gaussian noise (standard
deviation 0.5) with one to three shapes of brightness +1 (discs of radius 4 to 8, bars
3 pixels wide and 11 to 19 long, horizontal or vertical; a later shape covers an
earlier one). The network is a U-Net wired as a Graph:
two stride-2 Conv2D down (32 -> 16 -> 8), back up through a Conv2DTranspose (8 -> 16)
and a bilinear UpSampling2D (16 -> 32), each joined to the encoder's output of its size
(the skip connections, FanInConcat), and a 1x1 Conv2D to three logits per pixel,
trained with the softmax cross-entropy of each pixel. Prints the test pixel accuracy,
the intersection over union (IoU) of discs and of bars and their mean, against
calling every pixel background; saves unet_segmentation.png (test images, true and
predicted masks) and unet_history.png.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from funcnn import allocator, fit, losses, optim, plot, predict
from funcnn import layers as L
from funcnn.random import RngLike, as_generator

SIZE, CLASSES = 32, ("background", "disc", "bar")


def shapes_in_noise(n: int, rng: RngLike = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, 32, 32, 1)`` float32 and their masks ``(n, 32, 32)`` int64
    (0 background, 1 disc, 2 bar)."""
    gen = as_generator(rng)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    masks = np.zeros((n, SIZE, SIZE), np.int64)
    for mask in masks:
        for _ in range(gen.integers(1, 4)):
            kind, radius = gen.integers(1, 3), gen.integers(4, 9)
            r, c = gen.integers(radius, SIZE - radius, 2)
            if kind == 1:
                inside = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
            else:  # a bar: half-length radius + 1, half-width 1, across or down
                across, down = (radius + 1, 1) if gen.integers(2) else (1, radius + 1)
                inside = (np.abs(rows - r) <= down) & (np.abs(cols - c) <= across)
            mask[inside] = kind
    images = (masks > 0) + 0.5 * gen.standard_normal(masks.shape)
    return images[..., None].astype(np.float32), masks


def build() -> L.Graph:
    """A U-Net: value 0 is the image, value i + 1 the output of layer i."""
    layers = (
        L.Conv2D(8, 3, padding="same"), L.Relu,  # 1, 2: 32x32x8 (skip)
        L.Conv2D(16, 3, strides=2, padding="same"), L.Relu,  # 3, 4: 16x16x16 (skip)
        L.Conv2D(32, 3, strides=2, padding="same"), L.Relu,  # 5, 6: 8x8x32
        L.Conv2DTranspose(16, 3, strides=2, padding="same"), L.Relu,  # 7, 8: 16x16x16
        L.FanInConcat(),  # 9: with the encoder's 16x16: 16x16x32
        L.Conv2D(16, 3, padding="same"), L.Relu,  # 10, 11
        L.UpSampling2D(2, interpolation="bilinear"),  # 12: 32x32x16
        L.FanInConcat(),  # 13: with the encoder's 32x32: 32x32x24
        L.Conv2D(8, 3, padding="same"), L.Relu,  # 14, 15
        L.Conv2D(len(CLASSES), 1),  # 16: the logits of each pixel
    )  # fmt: skip
    parents = (
        (0,), (1,), (2,), (3,), (4,), (5,), (6,), (7,), (8, 4),
        (9,), (10,), (11,), (12, 2), (13,), (14,), (15,),
    )  # fmt: skip
    return L.Graph(layers, parents)


def scores(predicted: np.ndarray, masks: np.ndarray) -> dict:
    """Pixel accuracy and the IoU of each shape class."""
    result = {"pixel_accuracy": float(np.mean(predicted == masks))}
    for k in (1, 2):
        union = np.sum((predicted == k) | (masks == k))
        result[f"iou_{CLASSES[k]}"] = float(np.sum((predicted == k) & (masks == k)) / union)
    result["mean_iou"] = (result["iou_disc"] + result["iou_bar"]) / 2
    return result


def plot_masks(images: np.ndarray, masks: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    n = len(images)
    fig = Figure(figsize=(1.5 * n, 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, n)
    colours = ListedColormap(["black", "tab:orange", "tab:cyan"])
    for i in range(n):
        axes[0, i].imshow(images[i, :, :, 0], cmap="gray")
        axes[1, i].imshow(masks[i], cmap=colours, vmin=0, vmax=2, interpolation="nearest")
        axes[2, i].imshow(predicted[i], cmap=colours, vmin=0, vmax=2, interpolation="nearest")
        for row in range(3):
            axes[row, i].axis("off")
    for row, title in enumerate(("image", "truth (disc, bar)", "U-Net")):
        axes[row, 0].set_title(title, loc="left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(output_dir: str = "outputs", epochs: int = 8, verbose: int = 2) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = shapes_in_noise(1200, rng=0)
    x_test, y_test = shapes_in_noise(300, rng=1)
    model = build()
    params = model.init(0, (SIZE, SIZE, 1))
    started = time.perf_counter()
    result = fit(
        model, params, losses.softmax_cross_entropy, optim.adam(3e-3), x_train, y_train,
        epochs=epochs, batch_size=32, rng=0, verbose=verbose,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    predicted = predict(model, result.params, x_test).argmax(axis=-1)
    found = scores(predicted, y_test)
    background = float(np.mean(y_test == 0))
    print(
        f"\ntraining took {seconds:.1f}s; on {len(x_test)} test images: pixel accuracy "
        f"{found['pixel_accuracy']:.2%} (all background: {background:.2%}), IoU disc "
        f"{found['iou_disc']:.3f}, bar {found['iou_bar']:.3f}, mean {found['mean_iou']:.3f}"
    )
    plot_masks(x_test[:8], y_test[:8], predicted[:8], out / "unet_segmentation.png")
    plot.plot_history(result.history, out / "unet_history.png")
    return {**found, "background_share": background, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="outputs", help="where the files go")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    allocator.tune_allocator()  # reuse memory between steps (see funcnn.allocator)
    main(args.output_dir, epochs=args.epochs)
