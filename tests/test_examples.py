"""Every example runs and reaches its stated result (slow; CI runs them)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_xor_example_prints_truth_table(capsys):
    accuracy = load("xor").main()
    out = capsys.readouterr().out
    assert accuracy == 1.0
    assert "x1 x2 | p(1)" in out and "accuracy 100%" in out


@pytest.mark.slow
def test_swap_optimizers_example_trains_every_optimizer_and_plots(tmp_path, capsys):
    output = tmp_path / "curves.png"
    results = load("swap_optimizers").main(str(output))
    assert set(results) == set(load("swap_optimizers").OPTIMIZERS)
    for name, (final_loss, accuracy) in results.items():
        assert accuracy > 0.95, name
        assert final_loss < 0.2, name
    assert output.stat().st_size > 10_000
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
