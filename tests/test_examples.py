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
