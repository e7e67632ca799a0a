"""The import structure: stages on top, the CLI on the stages, no cycles, no arrow back up.

Every import in every module counts, also those inside functions (lazy imports)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgegru", "export", "firmware_sim")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in the file (a `from package import module` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_cli_imports_only_the_stage_layer():
    graph = import_graph()
    allowed = {"edgegru.errors", "edgegru.stages"}
    assert graph["edgegru.cli"], "the cli imports nothing?"
    for target in graph["edgegru.cli"]:
        assert target.startswith("edgegru.stages") or target in allowed, f"edgegru.cli imports {target}"


def test_no_arrow_back_up():
    for module, targets in import_graph().items():
        for target in targets:
            on_top = module.startswith(("edgegru.stages", "edgegru.cli", "edgegru.__main__"))
            if not on_top:
                assert not target.startswith(("edgegru.stages", "edgegru.cli")), f"{module} imports {target}"
            if module.startswith("edgegru") and not on_top:
                assert not target.startswith(("export", "firmware_sim")), f"core {module} imports {target}"
            if module.startswith("export"):
                assert not target.startswith("firmware_sim"), f"{module} imports {target}"
            if module.startswith("firmware_sim"):
                assert not target.startswith("export"), f"{module} imports {target}"


def test_the_graph_sees_lazy_imports():
    """The checker itself: an import inside a function is an arrow."""
    modules = {"a": Path("a.py"), "b": Path("b.py")}
    source = "def f():\n    import b\n"
    tree_path = ROOT / "tests" / ".lazy_import_probe.py"
    tree_path.write_text(source)
    try:
        assert imports_of("a", tree_path, modules) == {"b"}
    finally:
        tree_path.unlink()
