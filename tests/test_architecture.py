"""The layout rules the README states, checked by reading the source (`ast`, nothing imported):
no module imports another's private name (`from m import _x`, `m._x`), and the modules of
handlers/, bot/, cli/ and config/ import each other without a cycle: not at run time (imports
inside functions included), and not even through annotation-only `if TYPE_CHECKING:` imports.
The checker itself is tested on a small tree that breaks both rules, so it cannot pass by
finding nothing."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("handlers", "bot", "cli", "config")  # no cycles among these
CHECKED = (*LAYERS, "tests", "bench")  # no private names across any of these


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module
    name: str | None  # attribute taken from it (`from target import name`), if not a module
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(root: Path, tops: tuple[str, ...]) -> dict[str, Path]:
    return {
        module_name(path, root): path
        for top in tops
        for path in sorted((root / top).rglob("*.py"))
        if ".venv" not in path.parts
    }


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, annotations: bool) -> Iterator[ast.AST]:
    """Every node, or (`annotations` False) every node that runs: `if TYPE_CHECKING:` skipped."""
    for child in ast.iter_child_nodes(node):
        if not annotations and isinstance(child, ast.If) and _type_checking(child):
            for other in child.orelse:
                yield other
                yield from _walk(other, annotations)
            continue
        yield child
        yield from _walk(child, annotations)


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join([*parts[:keep], *([node.module] if node.module else [])])


def edges(
    module: str, path: Path, known: set[str], annotations: bool = True
) -> tuple[list[Edge], list[str]]:
    """The module's imports of known modules, and its uses of their private names."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[Edge] = []
    aliases: dict[str, str] = {}  # local name -> known module it is bound to
    for node in _walk(tree, annotations):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in {k.split(".")[0] for k in known}:
                    continue
                found.append(Edge(module, alias.name, None, node.lineno))
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, is_package, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.append(Edge(module, f"{base}.{alias.name}", None, node.lineno))
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif base in known:
                    found.append(Edge(module, base, alias.name, node.lineno))
    private = [
        f"{module}:{e.line} imports {e.name} from {e.target}"
        for e in found
        if e.name is not None and _private(e.name) and e.target != module
    ]
    private += _private_attributes(module, tree, aliases, known)
    return found, private


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_attributes(
    module: str, tree: ast.AST, aliases: dict[str, str], known: set[str]
) -> list[str]:
    """`m._x` where `m` names a known module (an import of it, or a dotted path through it)."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        chain = []
        value: ast.expr = node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in aliases:
            continue
        dotted = ".".join([aliases[value.id], *reversed(chain)])
        if dotted in known and dotted != module:
            out.append(f"{module}:{node.lineno} uses {dotted}.{node.attr}")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (or one importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def check(root: Path, annotations: bool = True) -> tuple[list[str], list[list[str]]]:
    """(private-name violations across CHECKED, import cycles among LAYERS) of a tree;
    `annotations` False: `if TYPE_CHECKING:` imports do not count."""
    files = source_files(root, tuple(t for t in CHECKED if (root / t).is_dir()))
    known = set(files)
    private: list[str] = []
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        found, bad = edges(module, path, known, annotations)
        private += bad
        if module.split(".")[0] in LAYERS:
            graph[module] = {
                e.target for e in found if e.target.split(".")[0] in LAYERS and e.target != module
            }
    return private, cycles(graph)


def test_no_private_name_is_used_across_modules() -> None:
    private, _ = check(ROOT)
    assert private == []


def test_no_import_cycle_among_handlers_bot_cli_config() -> None:
    _, found = check(ROOT)
    assert found == []


@pytest.fixture
def broken_tree(tmp_path: Path) -> Path:
    """handlers.a <-> handlers.b (one import inside a function), bot.c takes a private name
    in both ways, and bot.c <-> bot.d through a TYPE_CHECKING-only import."""
    for folder in ("handlers", "bot", "tests"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "handlers" / "a.py").write_text("from handlers.b import helper\n_secret = 1\n")
    (tmp_path / "handlers" / "b.py").write_text(
        "def helper():\n    from handlers import a\n    return a\n"
    )
    (tmp_path / "bot" / "c.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from handlers.a import _secret\n"
        "import handlers.b as hb\n"
        "from handlers import a\n"
        "if TYPE_CHECKING:\n"
        "    from bot import d\n"
        "x = hb._hidden + a._secret + a.__name__.upper()\n"
    )
    (tmp_path / "bot" / "d.py").write_text("from bot.c import x\n")
    return tmp_path


def test_the_checker_finds_private_names_and_cycles(broken_tree: Path) -> None:
    private, found = check(broken_tree)
    assert private == [
        "bot.c:2 imports _secret from handlers.a",
        "bot.c:7 uses handlers.b._hidden",
        "bot.c:7 uses handlers.a._secret",
    ]
    assert found == [["bot.c", "bot.d"], ["handlers.a", "handlers.b"]]
    _, running = check(broken_tree, annotations=False)
    assert running == [["handlers.a", "handlers.b"]]  # bot.c -> bot.d is annotation-only
