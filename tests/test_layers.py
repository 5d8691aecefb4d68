"""The package's layout keeps its promises: layers, no import loops, no
private names used across modules, small modules.

Static checks over the source (``ast``), plus one real import in a fresh
interpreter for the pure layer.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "fiftyone_dedup")

#: modules kept at their old paths so run records written before the layered
#: layout still load; each only re-binds its new module
SHIMS = {"fiftyone_dedup.runs"}

MAX_LINES = 600


def _modules():
    out = {}
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            if rel.endswith(".__init__"):
                rel = rel[: -len(".__init__")]
            out[rel] = path
    return out


MODULES = _modules()


def _resolve(name):
    # the module a dotted name refers to (a module, or a name in one)
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module, path):
    """(imported module, name or None, line) for every import, lazy ones too."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fiftyone_dedup"):
                    found.append((_resolve(a.name), None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if not base.startswith("fiftyone_dedup"):
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES:
                    found.append((full, None, node.lineno))
                else:
                    found.append((_resolve(base), a.name, node.lineno))
    return tree, found


def _graph():
    graph = {}
    for m, path in MODULES.items():
        if m in SHIMS:
            continue
        _, found = _imports(m, path)
        # a package's __init__ is not an edge to its modules' loops
        graph[m] = {t for t, _, _ in found if t and t != m and t != "fiftyone_dedup"}
    return graph


def test_no_import_loops():
    graph = _graph()
    loops = []
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loops.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_no_private_names_used_across_modules():
    bad = []
    for m, path in MODULES.items():
        if m in SHIMS:
            continue
        tree, found = _imports(m, path)
        for target, name, line in found:
            if name and name.startswith("_") and target != m:
                bad.append(f"{m}:{line} imports {target}.{name}")
        # alias._private where alias is an imported module of the package
        aliases = {}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("fiftyone_dedup")
            ):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in MODULES:
                        aliases[a.asname or a.name] = full
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in MODULES and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != m
            ):
                bad.append(f"{m}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(sorted(bad))


def test_no_module_over_the_size_limit():
    big = {
        m: n
        for m, path in MODULES.items()
        if (n := sum(1 for _ in open(path))) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def _layer(module):
    parts = module.split(".")
    if len(parts) >= 2 and os.path.isdir(os.path.join(PKG, parts[1])):
        return parts[1]
    return None


# which layers each layer may import (top-level modules: options, progress);
# the journal format and file locks are plain-file modules the engine reads to
# recognise duplicates folders and to lock a folder run
ALLOWED = {
    "algorithms": {"algorithms"},
    "engine": {"algorithms", "engine", "moves.locks", "moves.manifest", "moves.fileops"},
    "moves": {"algorithms", "engine", "moves"},
    "app": {"algorithms", "engine", "moves", "app"},
    "cli": {"algorithms", "engine", "moves", "cli"},
}


def test_layers_import_only_downwards():
    bad = []
    for m, path in MODULES.items():
        layer = _layer(m)
        if layer not in ALLOWED:
            continue
        _, found = _imports(m, path)
        for target, _, line in found:
            tl = _layer(target) if target else None
            sub = target.split(".", 1)[1] if target else None
            if tl and tl not in ALLOWED[layer] and sub not in ALLOWED[layer]:
                bad.append(f"{m}:{line} ({layer}) imports {target} ({tl})")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_algorithms_import_no_fiftyone():
    names = sorted(m for m in MODULES if m.startswith("fiftyone_dedup.algorithms"))
    assert len(names) > 5
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'fiftyone' or m.startswith('fiftyone.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"algorithms/ imported {out.stdout.strip()}"


@pytest.mark.parametrize("shim", sorted(SHIMS))
def test_old_paths_are_the_new_modules(shim):
    import importlib

    old = importlib.import_module(shim)
    assert old.__name__.startswith("fiftyone_dedup.") and old.__name__ != shim


def test_every_pure_and_moves_module_has_its_own_test_file():
    missing = []
    for m in MODULES:
        parts = m.split(".")
        if len(parts) < 3 or parts[1] not in ("algorithms", "moves"):
            continue
        name = parts[-1]
        if name.startswith("_") or os.path.isdir(os.path.join(PKG, *parts[1:])):
            continue  # private kernels, packages
        if not os.path.isfile(os.path.join(ROOT, "tests", f"test_{name}.py")):
            missing.append(f"{m}: tests/test_{name}.py")
    assert not missing, "modules without a test file:\n" + "\n".join(missing)
