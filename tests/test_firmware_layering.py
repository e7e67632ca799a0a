"""firmware_sim's two jobs stay apart: C generation (`codegen`) and building/running on targets
(`device`) never import each other; only the modules on top (bench, firmware_run, step_session) use both."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "firmware_sim"


def imported(path: Path) -> set[str]:
    """Absolute names of everything the module imports (relative imports resolved), lazy imports included."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.update([base] + [f"{base}.{alias.name}" for alias in node.names])
    return names


def test_codegen_and_device_do_not_import_each_other_or_the_top():
    top = ("firmware_sim.bench", "firmware_sim.firmware_run", "firmware_sim.step_session")
    for job, other in (("codegen", "device"), ("device", "codegen")):
        for path in (PACKAGE / job).rglob("*.py"):
            for name in imported(path):
                assert not name.startswith(f"firmware_sim.{other}"), f"{path.name} ({job}) imports {name}"
                assert not name.startswith(top), f"{path.name} ({job}) imports {name}"


def test_the_package_root_is_only_a_docstring():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)
