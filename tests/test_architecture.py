"""The package's shape: imports only point down the layers, no file imports itself back through others (inside a
subpackage too, imports made only for type checking included), and ARCHITECTURE.md names every module there is.

Layers, bottom up (a module may import its own subpackage and any lower layer, never a higher one):

    text_table, runtime -> limits, models -> io -> data -> evaluation -> analysis, engine -> notebook -> cli
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "isanet"
LAYER = {"text_table": -1, "runtime": -1, "limits": 0, "models": 0, "io": 1, "data": 2, "evaluation": 3,
         "analysis": 4, "engine": 4, "notebook": 5, "cli": 6}


def part_of(module: str) -> str | None:
    """``isanet.models.zoo`` -> ``models``; the top-level ``isanet`` (the public API) -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imported_isanet_modules(path: Path) -> set[str]:
    """Every ``isanet...`` module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("isanet"):
            found |= {f"{node.module}.{alias.name}" if node.module == "isanet" else node.module
                      for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("isanet")}
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_layer():
    unknown = {part_of(module_name(path)) for path in package_files()} - set(LAYER) - {None, "__main__"}
    assert not unknown, f"subpackages without a layer in this test and ARCHITECTURE.md: {sorted(unknown)}"


def test_imports_only_point_down():
    upward = []
    for path in package_files():
        source = part_of(module_name(path))
        if source is None:
            continue  # isanet/__init__.py: the public API may gather from every layer
        for target in imported_isanet_modules(path):
            target_part = part_of(target)
            if target_part is None:
                target_part = "runtime"  # `from isanet import __version__`: package metadata only
                if not target.endswith("__version__"):
                    upward.append(f"{path.relative_to(REPO)} imports the public API {target}")
                continue
            if target_part in LAYER and target_part != source and LAYER[target_part] >= LAYER[source]:
                upward.append(f"{path.relative_to(REPO)} ({source}) imports {target} ({target_part})")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def imported_files(path: Path) -> set[Path]:
    """The package files ``path`` imports, wherever the import stands (``if TYPE_CHECKING:`` blocks and function
    bodies included): ``from isanet.a import b`` is ``isanet/a/b.py`` when that file exists, else ``isanet/a``'s
    own file (``a.py`` or ``a/__init__.py``)."""
    files = set()
    for module in imported_isanet_modules(path):
        for candidate in (module, module.rpartition(".")[0]):
            as_path = REPO / candidate.replace(".", "/")
            found = [f for f in (as_path.with_suffix(".py"), as_path / "__init__.py") if f.is_file()]
            if found:
                files.add(found[0])
                break
    return files - {path}


def import_cycle(graph: dict[Path, set[Path]]) -> list[Path] | None:
    """One cycle of ``graph`` (file -> the files it imports) as the list of files around it, or None."""
    state: dict[Path, str] = {}
    stack: list[Path] = []

    def visit(node: Path) -> list[Path] | None:
        state[node], _ = "open", stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = "done", stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_import_cycle_finder_finds_a_circle_and_only_a_circle():
    a, b, c = Path("a.py"), Path("b.py"), Path("c.py")
    assert import_cycle({a: {b}, b: {c}, c: set()}) is None
    assert import_cycle({a: {b}, b: {c}, c: {b}}) == [b, c, b]


def test_no_file_imports_itself_back():
    """The package's ``__init__`` files gather from their subpackage (the public face), so they are left out; every
    other import, type-checking ones included, must not close a circle."""
    files = [path for path in package_files() if path.name != "__init__.py"]
    graph = {path: {f for f in imported_files(path) if f.name != "__init__.py"} for path in files}
    cycle = import_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(str(path.relative_to(REPO)) for path in cycle)


def modules_in_tree(text: str) -> set[str]:
    """The files the tree block of ARCHITECTURE.md lists: ``isanet/x.py`` lines, and under an ``isanet/pkg/``
    line the indented names (the first column, before the description)."""
    tree = text.split("```")[1]
    named, folder = set(), ""
    for line in tree.splitlines():
        column = re.split(r"\s{2,}", line.strip())[0]
        if not line.startswith(" "):
            folder = column if column.endswith("/") else ""
            named |= set(re.findall(r"isanet/[\w/]+\.py", column))
        elif folder:
            named |= {folder + name for name in re.findall(r"\w+\.py", column)}
    return named


def test_architecture_md_names_every_module_and_nothing_else():
    named = modules_in_tree((REPO / "ARCHITECTURE.md").read_text())
    actual = {str(path.relative_to(REPO)) for path in package_files()}
    assert not actual - named, f"modules missing from ARCHITECTURE.md's tree: {sorted(actual - named)}"
    assert not named - actual, f"ARCHITECTURE.md's tree names files that do not exist: {sorted(named - actual)}"
