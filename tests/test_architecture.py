"""The import rules of docs/architecture.md, and the one-protocol rule for layers."""

import ast
from pathlib import Path

import funcnn

ROOT = Path(funcnn.__file__).parent
LEVEL = {
    **dict.fromkeys(
        ["types", "validate", "random", "tree", "nn", "allocator", "linalg", "version"], 0
    ),
    **dict.fromkeys(["initializers", "losses", "metrics", "optim"], 1),
    "layers": 2,
    **dict.fromkeys(["gradients", "testing", "distributed"], 3),
    "train": 4,
    "io": 5,
    **dict.fromkeys(["callbacks", "datasets", "plot"], 6),
    **dict.fromkeys(["keras", "sklearn"], 7),
    "schedules": 2,  # the old name of optim.schedules
    "__init__": 8,
}


def funcnn_imports(path: Path) -> set[str]:
    """The top-level funcnn modules a file imports (``funcnn.layers.base`` -> ``layers``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "funcnn":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "funcnn" and len(parts) > 1:
                    found.add(parts[1])
    return found


def owner(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else path.stem


def test_every_module_has_a_level():
    owners = {owner(p) for p in ROOT.rglob("*.py")}
    assert owners == set(LEVEL), f"add {owners - set(LEVEL)} to docs/architecture.md and here"


def test_modules_import_only_from_lower_levels():
    breaches = []
    for path in sorted(ROOT.rglob("*.py")):
        me = owner(path)
        for other in funcnn_imports(path):
            if other != me and LEVEL[other] >= LEVEL[me]:
                breaches.append(f"{path.relative_to(ROOT)} (level {LEVEL[me]}) imports {other}")
    assert not breaches, "\n".join(breaches)


def test_matplotlib_only_in_plot():
    for path in ROOT.rglob("*.py"):
        if path.name != "plot.py":
            assert "matplotlib" not in path.read_text(), path


def test_layers_override_only_the_protocol_primitives():
    """No layer re-derives apply/forward/apply_with_state: base.py derives them once."""
    derived = {"apply", "forward", "apply_with_state"}
    for path in (ROOT / "layers").glob("*.py"):
        if path.name == "base.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                assert not names & derived, f"{path.name}: {node.name} overrides {names & derived}"
