"""The benchmark scripts stay runnable, and their claims of "the same bits" stay true.

No timing is judged here (a benchmark is where speed is judged): these run each
lever's forms once and check that they agree bit for bit, and that the profiler puts
back every method it wraps.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from funcnn import layers as L
from funcnn import optim


def _load(name: str):
    # by path: putting benchmarks/ on sys.path would let its distributed.py hide Dask's
    path = Path(__file__).parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"funcnn_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


levers, run = _load("levers"), _load("run")


def test_loading_the_benchmarks_hides_no_package():
    assert not any(p.endswith("benchmarks") for p in sys.path)


@pytest.mark.parametrize(
    "make",
    [
        levers.conv_dx_forms,
        levers.pool_forms,
        levers.cnn_step_forms,
        levers.adam_forms,
        lambda rng: levers.mlp_step_adam_forms(rng, 32),
        lambda rng: levers.step_apply_forms(rng, "32"),
        lambda rng: levers.step_apply_forms(rng, "XOR"),
        lambda rng: levers.im2col_forms(rng, 1),
        lambda rng: levers.im2col_forms(rng, 32),
        lambda rng: levers.small_forms(rng)[1],
        levers.relu_backward_forms,
        levers.sigmoid_loss_forms,
    ],
)
def test_every_lever_form_gives_funcnns_bits(make):
    forms = make(np.random.default_rng(0))
    assert len(forms) >= 2 and "funcnn" in next(iter(forms))
    levers.same_bits(forms)


def test_same_bits_catches_a_form_that_differs():
    forms = {"funcnn": lambda: np.float32([1.0, 2.0]), "other": lambda: np.float32([1.0, 2.5])}
    with pytest.raises(AssertionError, match="other"):
        levers.same_bits(forms)


def test_profile_accounts_for_the_step_and_restores_what_it_wraps():
    before = (L.Dense.__dict__["backward"], L.Serial.__dict__["forward_with_state"])
    apply_updates = optim.apply_updates
    parts = run.profile("XOR 2-4-1 train step", calls=20)
    assert (L.Dense.__dict__["backward"], L.Serial.__dict__["forward_with_state"]) == before
    assert optim.apply_updates is apply_updates
    named = sum(v for k, v in parts.items() if k.startswith("layer: "))
    assert parts["rest"] == pytest.approx(named)
    main = parts["products"] + parts["optimizer"] + parts["loss"] + parts["rest"]
    assert main == pytest.approx(parts["total"])
    assert {"layer: Dense forward", "layer: Tanh backward", "layer: apply_updates"} <= set(parts)
