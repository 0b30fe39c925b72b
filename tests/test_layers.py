"""The layers of docs/ARCHITECTURE.md, read from the source: imports point down only
(app.py > studio/ui > studio > trainers) and no module of trainers/ or studio/ imports itself
back through a cycle. Imports inside functions count too: a late import is still a dependency."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trainers", "studio")


def layer(module: str) -> int:
    if module == "app":
        return 3
    if module.startswith("studio.ui") or module == "studio.demo":  # Gradio lives here
        return 2
    if module.startswith("studio"):
        return 1
    return 0  # trainers


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set:
    """The project modules `path` imports, absolute and relative, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import x` imports the module x; `from .m import f` the module m.
            found.add((target, tuple(f"{target}.{a.name}" for a in node.names)))
    return found


def project_imports(path: Path, name: str, modules) -> set:
    edges = set()
    for item in imports_of(path, name):
        if isinstance(item, tuple):
            target, submodules = item
            named = [m for m in submodules if m in modules]
            edges.update(named if len(named) == len(submodules) else [target, *named])
        else:
            edges.add(item)
    return {m for m in edges if m in modules and m != name}


def graph() -> dict:
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = project_imports(path, name, modules)
    return edges


def test_imports_point_down_the_layers():
    up = [f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert not up, "imports pointing up a layer: " + "; ".join(sorted(up))


def test_no_import_cycles():
    edges = graph()
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks above can fail: a made-up pair of modules shows both faults."""
    a = tmp_path / "a.py"
    a.write_text("from studio import jobs\nimport trainers.fit\nfrom . import b\n")
    modules = {"studio", "studio.jobs", "trainers", "trainers.fit", "trainers.a", "trainers.b"}
    assert project_imports(a, "trainers.a", modules) == {"studio.jobs", "trainers.fit", "trainers.b"}
    assert layer("studio.jobs") > layer("trainers.a")


def test_the_public_api_is_what_docs_api_md_documents(tmp_path):
    """One API policy: the built studio's public endpoints are exactly the ones docs/API.md
    lists in its tables, and every other listener is private."""
    import re

    from studio.ui import build_app
    from studio.ui.api import ENDPOINTS
    from studio.ui.context import StudioContext

    documented = set(re.findall(r"^\| `/(\w+)` \|", (ROOT / "docs" / "API.md").read_text(), re.M))
    ctx = StudioContext.open(tmp_path / "workspace")
    try:
        demo = build_app(ctx)
    finally:
        ctx.store.close()
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == documented == set(ENDPOINTS)
    assert sum(fn.api_visibility == "private" for fn in demo.fns.values()) > 20
