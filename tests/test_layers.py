"""The design guide's layering rules, checked on the source (docs: shared guide/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).parent.parent / "cxlctl"


def imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


def modules() -> dict[str, set[str]]:
    return {str(p.relative_to(PKG)): imports(p) for p in PKG.rglob("*.py")}


def test_only_cli_imports_click() -> None:
    assert {m for m, i in modules().items() if "click" in i and not m.startswith("cli/")} == set()


def test_only_render_imports_rich() -> None:
    assert {m for m, i in modules().items() if "rich" in i} <= {"render.py"}


def test_only_transport_and_sim_do_ioctls() -> None:
    users = {m for m, i in modules().items() if "fcntl" in i}
    assert users <= {"transport.py"}


def test_library_never_prints() -> None:
    offenders = []
    for p in PKG.rglob("*.py"):
        rel = str(p.relative_to(PKG))
        if rel.startswith("cli/") or rel == "render.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_errors_imports_nothing_of_ours() -> None:
    tree = ast.parse((PKG / "errors.py").read_text())
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert relative == []


def test_ctypes_stays_below_the_library_api() -> None:
    users = {m for m, i in modules().items() if "ctypes" in i}
    allowed = {"uapi.py", "transport.py"}
    assert {
        m for m in users if m not in allowed and not m.startswith(("mailbox/", "sim/"))
    } == set()
