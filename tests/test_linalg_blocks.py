"""The products' large blocks: the self-test that proves the BLAS row-split invariant for a
shape, and the rule that cuts a product into blocks (issue: products at BLAS efficiency)."""

import numpy as np
import pytest

from funcnn import linalg


@pytest.fixture
def workers():
    yield linalg.set_workers
    linalg.set_workers(None)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("k", "n"), [(784, 512), (256, 10), (3, 2), (288, 64)])
def test_each_row_has_the_same_bits_in_any_batch_and_block(k, n, dtype, layout, workers):
    rng = np.random.default_rng(k * n)
    b = rng.standard_normal((n, k) if layout == "F" else (k, n)).astype(dtype)
    b = b.T if layout == "F" else b
    if layout == "strided":
        b = np.repeat(b, 2, axis=1)[:, ::2]
    a = rng.standard_normal((600, k)).astype(dtype)
    whole = linalg.matmul(a, b, padded=True)
    np.testing.assert_allclose(whole, a @ b, rtol=1e-4 if dtype == np.float32 else 1e-10)
    for rows in (1, 3, 37, 300):  # batches of other sizes, on other worker counts
        workers(1 + rows % 3)
        for lo in range(0, 600, 250):
            part = linalg.matmul(a[lo : lo + rows], b, padded=True)
            assert np.array_equal(part, whole[lo : lo + rows]), (rows, lo)
    tested = linalg.least_rows(k, n, dtype, b)
    if tested is not None:  # a big training product takes the same blocks' bits too
        assert np.array_equal(linalg.matmul(a, b), whole)


def test_the_self_test_finds_kernels_that_move_the_bits():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((784, 512)).astype(np.float32)
    least, most = linalg.least_rows(784, 512, np.float32, b)
    assert 1 < least <= 16  # one row goes to GEMV, which adds in another order
    a = rng.standard_normal((most, 784)).astype(np.float32)
    assert not np.array_equal(a[:1] @ b, (a @ b)[:1])
    for size in (least, least + 1, 2 * least + 3, most):
        assert np.array_equal(a[:size] @ b, (a @ b)[:size])
    assert linalg.least_rows(784, 512, np.float32, b) is linalg.least_rows(784, 512, "f4", b)


def test_blocks_are_large_and_set_by_the_shapes_alone():
    blocks = linalg.row_blocks(4096, 784, 512, 4, 20)
    assert blocks[0] == (0, 320) and blocks[-1] == (3792, 4096) and len(blocks) == 13
    assert all((hi - lo) % linalg.QUANTUM == 0 for lo, hi in blocks[:-1])
    assert linalg.row_blocks(512, 784, 512, 4, 20) == [(0, 256), (256, 512)]  # MIN_TASKS
    assert linalg.row_blocks(32, 256, 10, 128, 820) == [(0, 32)]  # padded to 128 when run
    assert linalg.row_blocks(10**6, 2, 4, 1, 32768)[0] == (0, 32768)  # only tested sizes
    assert linalg.row_blocks(100, 2000, 2000, 2, 20) == [(0, 48), (48, 80), (80, 100)]


@pytest.mark.parametrize(
    ("p_dtype", "u_dtype"), [("f4", "f4"), ("f4", "f8"), ("f8", "f4"), ("f2", "f4")]
)
def test_apply_updates_in_spans_has_the_bits_of_one_add(p_dtype, u_dtype, workers):
    from funcnn import optim

    rng = np.random.default_rng(6)
    params = (rng.standard_normal((700, 300)).astype(p_dtype), np.float32(2.0), np.ones(3))
    updates = (rng.standard_normal((700, 300)).astype(u_dtype) * 1e-3, np.float32(1), np.ones(3))
    for n in (1, 2):
        workers(n)
        new = optim.apply_updates(params, updates)
        for got, p, u in zip(new, params, updates):
            want = np.asarray(np.add(p, u, dtype=np.asarray(p).dtype, casting="same_kind"))
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
            assert not got.flags.writeable
    assert params[0].flags.writeable  # the inputs are untouched


@pytest.mark.parametrize("factor", [-1e-3, np.float64(-1e-3), np.float32(0.5), 3])
def test_scaling_in_spans_has_the_bits_of_one_multiply(factor, workers):
    from funcnn.optim.leaves import scaled

    rng = np.random.default_rng(7)
    updates = {"w": rng.standard_normal((600, 400)).astype("f4"), "b": np.ones(3, "f8")}
    for n in (1, 2):
        workers(n)
        got = scaled(updates, factor)
        for key in updates:
            want = updates[key] * factor
            assert got[key].dtype == want.dtype and got[key].tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize(("k", "n"), [(64, 1), (288, 1), (3, 1), (64, 3)])
def test_narrow_products_give_a_row_the_same_bits_in_any_batch(k, n, dtype):
    """One output column goes to GEMV, whose bits move with a block's row count modulo its
    group: such products keep the fixed padded blocks (a Dense(1) head, Conv2D(1, ...))."""
    rng = np.random.default_rng(k)
    a = rng.standard_normal((300, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    whole = linalg.matmul(a, b, padded=True)
    for rows in range(1, 80):
        assert np.array_equal(linalg.matmul(a[:rows], b, padded=True), whole[:rows]), rows
