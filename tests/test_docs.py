"""Every code block of the README and of docs/ runs as written.

A file's ```python blocks run in order in one namespace (a later block may use what
an earlier one made), in a fresh folder, as a reader would paste them. A ```bash
block is checked, not run (it installs packages or starts MPI jobs): every script it
names exists, every extra it installs is in pyproject.toml, and every program it runs
is one the project provides or documents. ```text blocks are output, not code.
"""

import re
from pathlib import Path

import matplotlib
import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path, language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(path.read_text()) if lang == language]


PROGRAMS = {
    "python3", "python", "export", "srun", "mpirun", "#!/bin/bash", "#SBATCH", "bash",
    ".venv/bin/python", ".venv/bin/pip", ".venv/bin/mpirun",
}  # fmt: skip


def test_every_block_names_its_language():
    for path in DOCUMENTS:
        for language, code in BLOCK.findall(path.read_text()):
            assert language in ("python", "bash", "text"), (path.name, code[:80])


def test_the_readme_is_a_page_for_users():
    assert len((ROOT / "README.md").read_text().splitlines()) < 350


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [p for p in DOCUMENTS if blocks(p, "python")], ids=lambda p: p.name
)
def test_python_blocks_run_in_order(path, tmp_path, monkeypatch):
    code = blocks(path, "python")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(code):
        try:
            exec(compile(block, f"{path.name}, python block {i + 1}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{path.name}, python block {i + 1} fails: {e!r}") from e


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_bash_blocks_name_what_exists(path):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(extras["optional-dependencies"])
    for block in blocks(path, "bash"):
        for command in re.split(r"&&|\n", block):
            words = command.split("#", 1)[0].split() if not command.startswith("#") else []
            if command.strip().startswith(("#!", "#SBATCH")):
                continue
            if not words:
                continue
            assert words[0] in PROGRAMS, (path.name, command)
            for word in words:
                if word.endswith(".py"):
                    assert (ROOT / word).exists(), (path.name, word)
            for wanted in re.findall(r'"\.\[([\w,]+)\]"', command):
                assert set(wanted.split(",")) <= extras, (path.name, wanted)
