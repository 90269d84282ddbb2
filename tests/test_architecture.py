"""The import rules of docs/architecture.md, and the one-protocol rule for layers."""

import ast
from pathlib import Path

import pytest

import funcnn

ROOT = Path(funcnn.__file__).parent
LEVEL = {
    **dict.fromkeys(["types", "validate", "random", "tree", "nn", "allocator", "linalg"], 0),
    **dict.fromkeys(["version", "batching", "progress"], 0),
    "kernels": 1,
    **dict.fromkeys(["initializers", "losses", "metrics", "optim"], 2),
    "layers": 3,
    **dict.fromkeys(["gradients", "testing", "plan", "distributed", "sequence"], 4),
    "train": 5,
    "io": 6,
    **dict.fromkeys(["callbacks", "datasets", "plot"], 7),
    **dict.fromkeys(["keras", "sklearn"], 8),
    "schedules": 3,  # the old name of optim.schedules
    "__init__": 9,
}


def funcnn_imports(path: Path, *, module_level: bool = False) -> set[str]:
    """The top-level funcnn modules a file imports (``funcnn.layers.base`` -> ``layers``):
    anywhere in it, or with ``module_level`` only those its module body runs on import."""
    found = set()
    body = ast.parse(path.read_text())
    nodes = ast.walk(body) if not module_level else _module_level(body.body)
    for node in nodes:
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


def _module_level(statements: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run on import: the body's, and those inside its ifs and trys."""
    found: list[ast.stmt] = []
    for node in statements:
        found.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            for block in ("body", "orelse", "finalbody"):
                found += _module_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                found += _module_level(handler.body)
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


# Modules that a module of a higher level must not import when it is imported: what it
# needs of them only in one case, it imports in that case (``fit(comm=...)`` builds
# ``distributed.Plan`` in the call, so one process never loads the MPI plan).
NOT_ON_IMPORT = {"train": {"distributed"}}


def test_modules_import_what_they_need_only_in_one_case_only_then():
    breaches = []
    for path in sorted(ROOT.rglob("*.py")):
        banned = NOT_ON_IMPORT.get(owner(path), set())
        for other in funcnn_imports(path, module_level=True) & banned:
            breaches.append(f"{path.relative_to(ROOT)} imports {other} on import")
    assert not breaches, "\n".join(breaches)


def module_name(path: Path) -> str:
    """``funcnn/keras/engine.py`` -> ``funcnn.keras.engine``; a package is its ``__init__``."""
    parts = ("funcnn", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each funcnn module and the funcnn modules it imports anywhere in it, on import or in
    a function: ``from funcnn.keras import layers`` is the module ``funcnn.keras.layers``,
    ``from funcnn.keras import Model`` the package ``funcnn.keras`` (its ``__init__``)."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for me, path in paths.items():
        package = me if path.name == "__init__.py" else me.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:  # relative: from the package, up level - 1 packages
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*up, *([source] if source else [])])
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    imported.add(sub if sub in paths else source)
        graph[me] = (imported & set(paths)) - {me}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle a depth-first walk meets, as the path ``[a, b, ..., a]``: every
    import of a module still on the walk's path closes one, so each group of modules that
    import each other is named at least once."""
    found: list[list[str]] = []
    done: set[str] = set()
    path: list[str] = []

    def walk(node: str) -> None:
        path.append(node)
        for other in sorted(graph[node]):
            if other in path:
                found.append([*path[path.index(other) :], other])
            elif other not in done:
                walk(other)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            walk(node)
    return found


def test_the_cycle_finder_names_each_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


PACKAGES = sorted(module_name(p.parent / "__init__.py") for p in ROOT.rglob("__init__.py"))

# Import cycles that cannot be undone, each with its reason (none today).
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    """No funcnn module imports, on import or in a function, a module that imports it back
    (through any others): in each package, and across funcnn (the package ``funcnn``)."""
    graph = import_graph()
    inside = {m for m in graph if m == package or m.startswith(package + ".")}
    found = [
        " -> ".join(cycle)
        for cycle in cycles({m: graph[m] & inside for m in inside})
        if tuple(cycle) not in KNOWN_CYCLES
    ]
    assert not found, "import cycles:\n" + "\n".join(found)


def assigned_attributes(node: ast.AST) -> list[ast.Attribute]:
    """The ``a.b`` that ``node`` assigns, deletes or passes to ``setattr``/``delattr``."""
    targets: list[ast.expr] = []
    if isinstance(node, (ast.Assign, ast.Delete)):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("setattr", "delattr"):
        targets = [ast.Attribute(value=node.args[0], attr="?")] if node.args else []
    return [t for target in targets for t in ast.walk(target) if isinstance(t, ast.Attribute)]


def test_no_module_sets_another_modules_globals():
    """A module hands linalg (or any other) a function or a context value; it never assigns
    ``linalg.<name>`` (or ``setattr(linalg, ...)``) to change what linalg does."""
    breaches = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            for target in assigned_attributes(node):
                module = getattr(target.value, "id", None)
                if module in LEVEL and module != owner(path):
                    breaches.append(f"{path.relative_to(ROOT)}:{target.lineno} sets {module}")
    assert not breaches, "\n".join(breaches)


def test_linalg_takes_the_cross_process_sums_from_a_context_value():
    """The one value another module sets for linalg is a ContextVar (thread-safe), and
    linalg calls no communicator itself."""
    import contextvars

    from funcnn import linalg

    assert isinstance(linalg._across, contextvars.ContextVar)
    code = ast.parse((ROOT / "linalg.py").read_text())
    called = {
        n.func.attr
        for n in ast.walk(code)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }
    assert not called & {"allgather", "Allreduce", "bcast", "Get_rank", "Get_size"}
    declared = {n for node in ast.walk(code) if isinstance(node, ast.Global) for n in node.names}
    assert "_across" not in declared


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
