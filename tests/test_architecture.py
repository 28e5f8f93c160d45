"""Dependencies point one way: space -> leaderboard -> fsanet, inside fsanet from cli down to errors, and
inside leaderboard from the roof (cli) down its floors: display -> service -> protocol -> storage -> the
basement (settings, errors); no import cycle between the leaderboard's modules.

Every ``import`` in the source tree is read with :mod:`ast` (also those inside functions: a lazy import
is still a dependency); only imports under ``if TYPE_CHECKING:`` are exempt, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Higher layers may import lower ones, never the reverse; modules of one folder import each other freely.
FSANET_LAYERS = {
    "errors": 0,
    "utils": 1,
    "data": 2,
    "models": 3,  # a family declares its pre-processing recipe (fsanet.data.recipes)
    "runtime": 4,
    "detect": 5,
    "pipeline": 6,
    "training": 6,
    "cli": 7,
    "__init__": 8,  # the public API re-exports every layer
    "__main__": 8,
}
# The leaderboard's floors (README, "Where things live"): each imports only those below it.
LEADERBOARD_LAYERS = {
    "settings": 0,
    "errors": 0,
    "storage": 1,  # backends, typed rows and requests, the results and request stores
    "protocol": 2,  # benchmarks, data, importers, metrics, the runner (stores nothing), reported numbers
    "service": 3,  # validation, limits, submissions, evaluations, the worker, seeding
    "display": 4,  # columns, views, plots, downloads
    "cli": 5,
    "__init__": 6,  # the public API re-exports every floor
    "__main__": 6,
}
PROJECT_LAYERS = {"fsanet": 0, "leaderboard": 1, "space": 2, "app": 3}
PACKAGE_LAYERS = {"fsanet": FSANET_LAYERS, "leaderboard": LEADERBOARD_LAYERS}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def imported_modules(path: Path, package: str, members: bool = False) -> set[str]:
    """Absolute names of every project module ``path`` imports (relative imports resolved); ``members``:
    ``from a import b`` also names ``a.b`` (a submodule, or a name defined in ``a``)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base])
            base = base.strip(".")
            names.add(base)
            if members:
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PROJECT_LAYERS}


def _part(module: str) -> str:
    """The layer of a module inside its package: its first sub-package or module name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules(root: Path) -> dict[str, Path]:
    """Every project module under ``root``: its dotted name and its file."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] not in PROJECT_LAYERS and relative.name != "app.py":
            continue
        found[".".join(relative.with_suffix("").parts)] = path
    return found


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def upward_imports(root: Path) -> list[str]:
    """``importer -> imported`` for every import that points from a lower layer to a higher one (or, inside
    fsanet and leaderboard, to another part of the same layer)."""
    problems = []
    for module, path in _modules(root).items():
        top = module.split(".")[0]
        for imported in sorted(imported_modules(path, _package_of(module, path))):
            target = imported.split(".")[0]
            if PROJECT_LAYERS[target] > PROJECT_LAYERS[top]:
                problems.append(f"{module} -> {imported}")
            elif top == target and top in PACKAGE_LAYERS:
                layers, mine, theirs = PACKAGE_LAYERS[top], _part(module), _part(imported)
                if mine != theirs and layers[theirs] >= layers[mine]:
                    problems.append(f"{module} -> {imported}")
    return problems


def test_every_folder_has_a_layer():
    for package, layers in PACKAGE_LAYERS.items():
        folders = {p.name for p in (ROOT / package).iterdir() if (p / "__init__.py").exists()}
        modules = {p.stem for p in (ROOT / package).glob("*.py")}
        assert folders | modules == set(layers), package


def test_every_subpackage_says_its_job_in_one_line():
    for package in PACKAGE_LAYERS:
        for init in (ROOT / package).glob("*/__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and "\n" not in doc.strip(), f"{init} needs a one-line docstring"


def test_no_layer_imports_a_higher_one():
    assert upward_imports(ROOT) == []


def test_no_import_cycle_between_the_leaderboards_modules():
    assert import_cycles(ROOT, "leaderboard") == []


def test_the_readme_shows_the_leaderboards_floors():
    where = (ROOT / "README.md").read_text().split("## Where things live", 1)[1].split("\n## ", 1)[0]
    tree = where.split("\nleaderboard/", 1)[1].split("\nspace/", 1)[0]
    floors = [
        line.split()[0]
        for line in tree.splitlines()
        if line.startswith("  ") and line.split()[0].endswith("/")
    ]
    assert floors == [f"{floor}/" for floor in sorted(LEADERBOARD_LAYERS, key=LEADERBOARD_LAYERS.get)][2:6]


def test_a_planted_upward_import_is_caught(tmp_path):
    for folder, source in {
        "fsanet/models": "from fsanet.pipeline.estimate import estimate\n",
        "fsanet/pipeline": "from fsanet.models import base\n",
        "leaderboard": "def f():\n    import space.ui\n",
        "leaderboard/storage": "def f():\n    from ..service import worker\n",
    }.items():
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
        (tmp_path / folder / "planted.py").write_text(source)
    (tmp_path / "fsanet" / "models" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fsanet.cli.main import main\n"
    )
    assert upward_imports(tmp_path) == [
        "fsanet.models.planted -> fsanet.pipeline.estimate",
        "leaderboard.planted -> space.ui",
        "leaderboard.storage.planted -> leaderboard.service",
    ]


def test_a_planted_cycle_is_caught_even_inside_a_function(tmp_path):
    (tmp_path / "leaderboard" / "protocol").mkdir(parents=True)
    for init in ("leaderboard/__init__.py", "leaderboard/protocol/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "leaderboard/protocol/data.py").write_text("def load():\n    from .importers import x\n")
    (tmp_path / "leaderboard/protocol/importers.py").write_text("from .data import write\n")
    (tmp_path / "leaderboard/protocol/metrics.py").write_text("from . import data\n")
    assert import_cycles(tmp_path, "leaderboard") == [
        ["leaderboard.protocol.data", "leaderboard.protocol.importers"]
    ]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a folder under ``root``) by its dotted name (a package by its own)."""
    modules = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_cycles(root: Path, package: str) -> list[list[str]]:
    """The import cycles among the modules of ``package``, counting imports inside functions (each cycle once,
    as the modules it runs through). A module that finds plug-ins by name (``importlib.import_module``)
    imports nothing by that: only import statements are edges."""
    modules = module_names(root, package)
    graph = {}
    for name, path in modules.items():
        imported = imported_modules(path, _package_of(name, path), members=True)
        graph[name] = {module for module in imported if module in modules and module != name}
    cycles, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                start = path.index(successor) if successor in path else len(path)
                cycles.append([*path[start:], node] if successor in path else [successor, node])
            elif successor not in state:
                visit(successor, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_import_cycle_in_models():
    """``fsanet.models`` is a house in floors: weights, family -> catalogue -> identity, hub -> pretrained ->
    specs -> base -> the families; no module reaches back, not even from inside a function."""
    assert import_cycles(ROOT, "fsanet.models") == []


def test_a_planted_import_cycle_is_caught(tmp_path):
    package = tmp_path / "fsanet" / "models"
    (package / "families").mkdir(parents=True)
    for init in (tmp_path / "fsanet", package, package / "families"):
        (init / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from fsanet.models import high\n")
    (package / "high.py").write_text("from fsanet.models.families import member\n")
    (package / "families" / "member.py").write_text("from fsanet.models.low import f\n")
    (package / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fsanet.models import high\n"
    )
    assert import_cycles(tmp_path, "fsanet.models") == [
        ["fsanet.models.families.member", "fsanet.models.low", "fsanet.models.high"]
    ]


SETTINGS_MODULES = {"fsanet/utils/settings.py", "leaderboard/settings.py", "space/settings.py"}


def _readme_variables() -> set[str]:
    """The environment variables of the README's table (``| `NAME` | default | meaning |`` rows)."""
    import re

    table = (ROOT / "README.md").read_text().split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    names = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, flags=re.MULTILINE):
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cell))
    return names


def _environment_reads(path: Path) -> tuple[set[str], set[str]]:
    """Variables read with ``os.environ.get``, ``os.getenv`` or ``os.environ[...]``: the literal names, and
    the expressions of names computed at run time (a family's mirror variable, a module constant)."""
    literal, computed = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            target = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            target = node.slice
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            literal.add(target.value)
        elif target is not None:
            computed.add(ast.unparse(target))
    return literal, computed


def test_every_setting_is_read_in_its_packages_settings_module_and_named_in_the_readme():
    """One settings module per package reads the environment; what it reads is in the README's table."""
    documented = _readme_variables()
    elsewhere = {}
    for package in ("fsanet", "leaderboard", "space"):
        for path in (ROOT / package).rglob("*.py"):
            relative = str(path.relative_to(ROOT))
            if relative not in SETTINGS_MODULES:
                literal, computed = _environment_reads(path)
                reads = (literal & documented) | computed
                if reads:
                    elsewhere[relative] = reads
    assert elsewhere == {}
    read = set().union(*(_environment_reads(ROOT / module)[0] for module in SETTINGS_MODULES))
    assert read - documented == set()
