"""Files saved by an earlier funcnn still load and mean what they meant.

``tests/golden/`` holds checkpoints written by format version 1 (an MLP holding
every dense-path layer with an AdamW chain state, and a CNN with BatchNorm state
and an Adam state), with the digests of their trees and the outputs their models
gave. A change that breaks the file format, the layer specs or what a layer
computes from the same params fails here. Never regenerate these files to make
this test pass: a format change needs a new version and a reader for the old one.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from funcnn import io, tree

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def _digest(t):
    h = hashlib.sha256()
    for a in tree.leaves(t):
        a = np.ascontiguousarray(a)
        h.update(a.dtype.str.encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("suffix", [".npz", ".json"])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_golden_checkpoint_loads_with_the_same_meaning(name, suffix):
    c = io.load(GOLDEN / f"{name}_v1{suffix}")
    expected = EXPECTED[name]
    assert _digest(c.params) == expected["params"]
    assert _digest(c.opt_state) == expected["opt_state"]
    if "state" in expected:
        assert _digest(c.state) == expected["state"]
    data = np.load(GOLDEN / "expected_outputs.npz")
    x = data[f"x_{name}"]
    if name == "cnn":
        y, _ = c.model.apply_with_state(c.params, c.state, x.astype(np.float64))
    else:
        y = c.model.apply(c.params, x)
    assert y.dtype == data[f"y_{name}"].dtype
    assert np.array_equal(y, data[f"y_{name}"])
    assert c.epoch == (1 if name == "mlp" else 2)
