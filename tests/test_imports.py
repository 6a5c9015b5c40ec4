"""The import contract: imports point down only, and no module imports itself back through a cycle.

Every module under src/numcnn is parsed with ``ast`` (never imported) and every import is collected: module level,
inside functions and methods, under ``if``/``try``, relative ones resolved to absolute ``numcnn.x.y`` names, and
``importlib.import_module("...")`` with a constant name. ``from P import x`` counts as an import of the submodule
``P.x`` when there is one, else of ``P``.

Layers, lowest first (``LAYERS``). A module may import only from its own layer or lower ones; a package's
submodules are in the package's layer.

- ``numcnn.kernels`` (L0) imports nothing from numcnn outside itself, and nothing but NumPy, threadpoolctl and the
  standard library, and Numba for its compiled kernels (``KERNELS_MAY_IMPORT``).
- The package root ``numcnn`` (``numcnn/__init__.py``) may import anything, and is the public facade: it imports
  every layer, so only the entry points in ``ROOT_IMPORTERS`` may import it back (``import numcnn``,
  ``from numcnn import f`` / ``from .. import f`` where ``f`` is not a submodule). Everything else imports a name
  from its home module (``from ..autograd import cat``, not ``from .. import cat``).
- No import cycle between modules, function-level imports included (``test_no_import_cycles``).

Deviations from the issue's list, read off the code:

- ``numcnn._version`` (L0) is new: the home of ``__version__``, so that ``numcnn.onnx`` (and, once it moves,
  ``training/checkpoint.py``) can read the version without importing the package root.
- ``numcnn.data`` is in L2, not L3: it needs only ``_config``, ``_io`` and ``autograd`` (DataLoader wraps its
  batches with ``numcnn.autograd.tensor``), like ``nn``/``optim``/``serialization``, and nothing below it needs it.
  L3 keeps what is built on ``nn``: ``models``, ``onnx`` (nn, serialization) and ``utils`` (``visualize`` uses
  ``nn.functional`` and ``Conv2d``; ``gradcheck`` and ``summary`` need only autograd).
- ``numcnn.distributed.bench`` is in ``ROOT_IMPORTERS``: like ``numcnn.bench`` it is a ``python -m`` entry point
  that nothing imports, and drives the public API (``numcnn.set_num_threads`` exists only in the root).

``KNOWN`` lists the violations left in files being rewritten by the kernels issue; each entry exempts one
(importer, imported) pair from both checks, and ``test_known_violations_are_still_there`` fails once an entry is no
longer needed, so the list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "numcnn"

#: Layer -> the packages and modules in it, lowest first.
LAYERS: dict[int, tuple[str, ...]] = {
    0: ("numcnn.kernels", "numcnn._config", "numcnn._io", "numcnn._schema", "numcnn._version"),
    1: ("numcnn.autograd", "numcnn.cuda", "numcnn.backends", "numcnn.accelerator"),
    2: ("numcnn.nn", "numcnn.optim", "numcnn.serialization", "numcnn.pth", "numcnn.data"),
    3: ("numcnn.models", "numcnn.vision", "numcnn.onnx", "numcnn.utils"),
    4: ("numcnn.training",),
    5: ("numcnn.distributed", "numcnn.bench", "numcnn.explore"),
    6: ("numcnn.cli", "numcnn.__main__"),
}

#: Packages that import nothing from numcnn outside themselves.
SELF_CONTAINED = ("numcnn.kernels",)
#: The only top-level packages (besides the standard library) the self-contained packages may import.
KERNELS_MAY_IMPORT = frozenset({"__future__", "numpy", "threadpoolctl", "numba"})

#: Modules (and their submodules) that may import the package root besides the root itself: the entry points.
ROOT_IMPORTERS = ("numcnn.cli", "numcnn.bench", "numcnn.__main__", "numcnn.distributed.bench")

#: Violations inside files being rewritten by the kernels issue, to be fixed there: (importer, imported) -> why.
#: Empty this as they go; test_known_violations_are_still_there says which entries are no longer needed.
KNOWN: dict[tuple[str, str], str] = {}


# ------------------------------------------------------------------------------------------------ the parser


class Import(NamedTuple):
    importer: str
    imported: str  # "numcnn..." (a module or package that exists) or a third-party/stdlib dotted name
    line: int

    def show(self, why: str) -> str:
        return f"{self.importer} -> {self.imported} (line {self.line}): {why}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    files = sorted((SRC / ROOT).rglob("*.py"))
    assert files, f"no modules under {SRC / ROOT}"
    return {_module_name(p): p for p in files}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The deepest existing module that ``name`` starts with (numcnn names only); others unchanged."""
    if name != ROOT and not name.startswith(ROOT + "."):
        return name
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) if parts else name


def _relative_base(module: str, path: Path, level: int) -> str:
    package = module if _is_package(path) else module.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 >= len(parts):
        raise ValueError(f"{module}: relative import beyond the top-level package (level {level})")
    return ".".join(parts[: len(parts) - (level - 1)])


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def add(name: str, line: int) -> None:
        found.append(Import(module, _resolve(name, modules), line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _relative_base(module, path, node.level)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                # `from P import x`: the submodule P.x if there is one, else P itself (x is a name in P).
                add(sub if alias.name != "*" and sub in modules else target, node.lineno)
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value
                if name.startswith("."):  # import_module(".x", __name__ / __package__): relative to this package
                    level = len(name) - len(name.lstrip("."))
                    base = _relative_base(module, path, level)
                    name = f"{base}.{name.lstrip('.')}" if name.lstrip(".") else base
                add(name, node.lineno)
    return found


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def all_imports() -> tuple[dict[str, Path], list[Import]]:
    modules = discover()
    found = [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]
    return modules, found


# ------------------------------------------------------------------------------------------------ the contract


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer, package) of the longest contract entry that holds ``module``; None if none does."""
    best = None
    for layer, packages in LAYERS.items():
        for package in packages:
            if _in(module, package) and (best is None or len(package) > len(best[1])):
                best = (layer, package)
    return best


def _top_level_of(imp: Import) -> str:
    return imp.imported.split(".")[0]


def check(imp: Import) -> str | None:
    """Why ``imp`` breaks the contract, or None."""
    importer, imported = imp.importer, imp.imported
    for package in SELF_CONTAINED:
        if _in(importer, package):
            if _in(imported, ROOT) and not _in(imported, package):
                return f"{package} imports nothing from numcnn outside itself (only NumPy, threadpoolctl, Numba)"
            top = _top_level_of(imp)
            if not _in(imported, ROOT) and top not in KERNELS_MAY_IMPORT and top not in sys.stdlib_module_names:
                return f"{package} may import only NumPy, threadpoolctl, Numba and the standard library, not {top}"
    if not _in(imported, ROOT):
        return None  # third-party and stdlib: not this contract's business (except in kernels, above)
    if importer == ROOT:
        return None  # the facade imports everything
    if imported == ROOT:
        if any(_in(importer, entry) for entry in ROOT_IMPORTERS):
            return None
        return ("imports the package root, which imports every layer; import the name from its home module "
                f"(only the entry points {', '.join(ROOT_IMPORTERS)} may import the root)")
    src, dst = layer_of(importer), layer_of(imported)
    if src is None:
        return f"{importer} is in no layer: add its package to LAYERS in tests/test_imports.py"
    if dst is None:
        return f"{imported} is in no layer: add its package to LAYERS in tests/test_imports.py"
    if dst[0] > src[0]:
        return f"L{src[0]} {src[1]} may not import L{dst[0]} {dst[1]} (imports point down only)"
    return None


def violations(found: list[Import]) -> list[tuple[Import, str]]:
    out = []
    for imp in found:
        why = check(imp)
        if why is not None:
            out.append((imp, why))
    return out


# ------------------------------------------------------------------------------------------------ cycles


def import_graph(found: list[Import], skip=frozenset()) -> dict[str, dict[str, int]]:
    """importer -> {imported numcnn module: first line}, without self-edges and without the ``skip`` pairs."""
    graph: dict[str, dict[str, int]] = {}
    for imp in found:
        graph.setdefault(imp.importer, {})
        if _in(imp.imported, ROOT) and imp.imported != imp.importer and (imp.importer, imp.imported) not in skip:
            lines = graph[imp.importer]
            lines[imp.imported] = min(lines.get(imp.imported, imp.line), imp.line)
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The cycles (a, b, ..., a) among the modules: the strongly connected components of more than one module
    (Tarjan), and in each the shortest cycle through each of its modules, each cycle once."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # recursion depth <= number of modules (~120)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles, seen_cycles = [], set()
    for comp in components:
        members = set(comp)
        for start in comp:  # the shortest cycle through each module of the component, each cycle once
            cycle = _shortest_cycle(graph, start, members)
            key = frozenset(zip(cycle, cycle[1:]))
            if key not in seen_cycles:
                seen_cycles.add(key)
                cycles.append(cycle)
    return cycles


def _shortest_cycle(graph: dict[str, dict[str, int]], start: str, members: set[str]) -> list[str]:
    """start -> ... -> start, shortest, inside ``members`` (breadth first; there is one: they are a component)."""
    prev: dict[str, str] = {}
    frontier, seen = [start], {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w in members and w not in seen:
                    seen.add(w)
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - start is in a component


def _show_cycle(cycle: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    ring = " -> ".join(cycle)
    return [f"{a} -> {b} (line {graph[a][b]}): part of the import cycle {ring}" for a, b in zip(cycle, cycle[1:])]


# ------------------------------------------------------------------------------------------------ the tests


def _report(title: str, lines: list[str]) -> str:
    text = f"{title} ({len(lines)}):\n  " + "\n  ".join(lines)
    print(text)
    return text


def test_every_module_is_in_a_layer():
    modules = discover()
    missing = [m for m in modules if m != ROOT and layer_of(m) is None]
    assert not missing, _report("modules in no layer (add their package to LAYERS)", missing)


def test_imports_point_down_only():
    _, found = all_imports()
    bad = [imp.show(why) for imp, why in violations(found) if (imp.importer, imp.imported) not in KNOWN]
    assert not bad, _report("import contract violations", sorted(set(bad)))


def test_no_import_cycles():
    _, found = all_imports()
    graph = import_graph(found, skip=frozenset(KNOWN))
    cycles = find_cycles(graph)
    assert not cycles, _report("import cycles", [line for c in cycles for line in _show_cycle(c, graph)])


def test_known_violations_are_still_there():
    _, found = all_imports()
    broken = {(imp.importer, imp.imported) for imp, _ in violations(found)}
    graph = import_graph(found)
    in_cycles = {(a, b) for c in find_cycles(graph) for a, b in zip(c, c[1:])}
    edges = {(a, b) for a, targets in graph.items() for b in targets}
    # A KNOWN pair is still needed while it breaks the layers, or while it is an edge that closes a cycle once the
    # other KNOWN pairs are skipped.
    stale = []
    for pair, why in KNOWN.items():
        if pair in broken or pair in in_cycles:
            continue
        if pair in edges:
            rest = import_graph(found, skip=frozenset(KNOWN) - {pair})
            if find_cycles(rest):
                continue
        stale.append(f"{pair[0]} -> {pair[1]}: {why}")
    assert not stale, _report("KNOWN entries no longer needed: delete them from tests/test_imports.py", stale)


def test_the_version_has_one_value():
    # numcnn._version is where layers below the root read the version; the root still spells it out itself until
    # numcnn/__init__.py imports it from there (kernels issue).
    import numcnn
    from numcnn._version import __version__

    assert numcnn.__version__ == __version__


# ------------------------------------------------------------------------------------------------ the checker


def _imports(source: str, module: str = "numcnn.pkg.mod", extra=()) -> list[Import]:
    """Imports of ``source`` as if it were ``module``, in a package with the modules ``extra``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mod.py"
        if module in ("numcnn", "numcnn.pkg"):
            path = Path(tmp) / "__init__.py"
        path.write_text(source, encoding="utf-8")
        modules = dict.fromkeys(["numcnn", "numcnn.pkg", "numcnn.pkg.mod", "numcnn.other", *extra], Path("x.py"))
        modules[module] = path
        return imports_of(module, path, modules)


def test_the_parser_resolves_relative_function_level_and_submodule_imports():
    src = (
        "import numpy as np\n"
        "from . import sub\n"
        "from .. import other, thing\n"
        "from ..other import name\n"
        "def f():\n"
        "    from .. import nope\n"
        "class C:\n"
        "    def m(self):\n"
        "        import numcnn.pkg.sub.deep\n"
        "        importlib.import_module('.sub', __package__)\n"
    )
    got = _imports(src, extra=["numcnn.pkg.sub"])
    assert [(i.imported, i.line) for i in got] == [
        ("numpy", 1), ("numcnn.pkg.sub", 2), ("numcnn.other", 3), ("numcnn", 3), ("numcnn.other", 4),
        ("numcnn", 6), ("numcnn.pkg.sub", 9), ("numcnn.pkg.sub", 10),
    ]
    with pytest.raises(ValueError, match="beyond the top-level package"):
        _imports("from ... import x\n")


def test_the_checker_flags_upward_root_and_kernel_imports():
    def why(importer, imported):
        return check(Import(importer, imported, 1))

    assert why("numcnn.nn.functional.conv", "numcnn.autograd.tensor") is None
    assert why("numcnn.nn.modules.conv", "numcnn.nn.functional") is None
    assert "L1 numcnn.autograd may not import L2 numcnn.nn" in why("numcnn.autograd.tensor", "numcnn.nn.functional")
    assert "package root" in why("numcnn.models.inception", "numcnn")
    assert why("numcnn.cli.train", "numcnn") is None
    assert why("numcnn", "numcnn.cli") is None
    assert "nothing from numcnn" in why("numcnn.kernels.conv", "numcnn._config")
    assert "not scipy" in why("numcnn.kernels.conv", "scipy.signal")
    assert why("numcnn.kernels.parallel", "threadpoolctl") is None
    assert why("numcnn.kernels.parallel", "concurrent.futures") is None
    assert "in no layer" in why("numcnn.newthing", "numcnn.autograd")


def test_the_cycle_finder_reports_the_cycle():
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7, "d": 1}, "d": {}}
    (cycle,) = find_cycles(graph)
    assert cycle == ["a", "b", "c", "a"]
    assert _show_cycle(cycle, graph)[2] == "c -> a (line 7): part of the import cycle a -> b -> c -> a"
    # Two cycles sharing a module: both reported.
    graph = {"t": {"f": 1, "e": 2}, "f": {"t": 3}, "e": {"t": 4}}
    assert find_cycles(graph) == [["e", "t", "e"], ["f", "t", "f"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []
