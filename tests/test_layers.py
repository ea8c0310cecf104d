"""The layering rules of docs/architecture.md, checked on the source with ``ast``.

Imports are resolved to absolute module names, relative ones included
(``from ..transport import X`` in ``cxlctl/cli/send.py`` is ``cxlctl.transport``),
so no rule can be dodged by spelling an import differently.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "cxlctl"

#: The presentation layer: click commands, tables and the output layer.
PRESENTATION = ("cli/", "render.py")
#: The protocol layer below the library: kernel header, ioctls, mailbox payloads.
PROTOCOL = ("uapi.py", "transport.py", "mailbox/", "errors.py", "record.py", "units.py")


def rel(path: Path) -> str:
    return str(path.relative_to(PKG))


def _package_of(relpath: str) -> list[str]:
    parts = ["cxlctl", *relpath.removesuffix(".py").split("/")]
    return parts[:-1]  # a module's package; for __init__.py the package itself


def resolve(relpath: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names an ImportFrom brings in: the module, and ``pkg.name`` for
    each name (which may be a submodule: ``from . import complete``)."""
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = _package_of(relpath)
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, node.module] if node.module else pkg)
    return [base, *(f"{base}.{a.name}" for a in node.names)]


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(
        node.test
    )


@cache
def imports(relpath: str, *, top_level_only: bool = False) -> frozenset[str]:
    """Every module ``relpath`` imports (absolute names).  With ``top_level_only``,
    only what runs at import time (not in functions, not under TYPE_CHECKING)."""
    tree = ast.parse((PKG / relpath).read_text())
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                or (isinstance(child, ast.If) and _type_checking(child))
            ):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                out.update(resolve(relpath, child))
            visit(child)

    visit(tree)
    return frozenset(out)


def modules() -> list[str]:
    return sorted(rel(p) for p in PKG.rglob("*.py"))


def uses(relpath: str, target: str, **kw: bool) -> bool:
    return any(m == target or m.startswith(target + ".") for m in imports(relpath, **kw))


def offenders(target: str, allowed: tuple[str, ...], **kw: bool) -> list[str]:
    return [m for m in modules() if uses(m, target, **kw) and not m.startswith(allowed)]


def test_resolver_sees_relative_imports() -> None:
    """The checker itself: a relative import is seen as the module it names."""
    assert "cxlctl.errors" in imports("cli/__init__.py")
    node = ast.parse("from ..transport import X").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert resolve("cli/send.py", node)[0] == "cxlctl.transport"
    node = ast.parse("from . import output").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert "cxlctl.cli.output" in resolve("cli/__init__.py", node)


def test_only_cli_imports_click() -> None:
    assert offenders("click", ("cli/",)) == []


def test_only_render_and_the_output_layer_import_rich() -> None:
    assert offenders("rich", ("render.py", "cli/output.py")) == []


def test_only_transport_issues_ioctls() -> None:
    calls = []
    for m in modules():
        for node in ast.walk(ast.parse((PKG / m).read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "ioctl"
                and isinstance(node.value, ast.Name)
                and node.value.id == "fcntl"
            ):
                calls.append(m)
    assert set(calls) <= {"transport.py"}


def test_library_never_prints() -> None:
    bad = []
    for m in modules():
        if m.startswith(PRESENTATION):
            continue
        for node in ast.walk(ast.parse((PKG / m).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                bad.append(f"{m}:{node.lineno}")
    assert bad == []


def test_errors_imports_nothing_of_ours() -> None:
    assert not any(i.startswith("cxlctl") for i in imports("errors.py"))
    tree = ast.parse((PKG / "errors.py").read_text())
    assert [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level] == []


def test_ctypes_stays_below_the_library_api() -> None:
    assert offenders("ctypes", ("uapi.py", "transport.py", "mailbox/", "sim/")) == []


@pytest.mark.parametrize("below", ["cxlctl.uapi", "cxlctl.transport", "cxlctl.sim"])
def test_cli_talks_to_the_library_only(below: str) -> None:
    """The CLI reaches the kernel header, the ioctls and the simulator only
    through the library (backends, memdev, api, ...)."""
    assert [m for m in modules() if m.startswith("cli/") and uses(m, below)] == []


@pytest.mark.parametrize("upper", ["cxlctl.cli", "cxlctl.render"])
def test_nothing_below_presentation_imports_it(upper: str) -> None:
    # render.py shares the output layer's sanitiser and stream encoding
    allowed = ("cli/", "render.py", "__main__.py")
    assert offenders(upper, allowed) == []


@pytest.mark.parametrize(
    "upper",
    ["cxlctl.backends", "cxlctl.memdev", "cxlctl.api", "cxlctl.device", "cxlctl.topology"],
)
def test_protocol_and_simulator_never_import_the_library(upper: str) -> None:
    bad = [m for m in modules() if m.startswith((*PROTOCOL, "sim/")) and uses(m, upper)]
    assert bad == []


def test_library_imports_the_simulator_only_lazily() -> None:
    """Only SimBackend brings the simulator in, and only when it is used, so the
    kernel backend never pays for (or depends on) the simulated kernel."""
    eager = [
        m
        for m in modules()
        if not m.startswith(("sim/", *PRESENTATION)) and uses(m, "cxlctl.sim", top_level_only=True)
    ]
    assert eager == []
    assert [m for m in modules() if not m.startswith("sim/") and uses(m, "cxlctl.sim")] == [
        "backends.py"
    ]


def test_simulated_kernel_and_device_stay_apart() -> None:
    """sim/device (the type-3 device) never reaches into sim/driver (the simulated
    kernel): a device does not know which driver talks to it."""
    bad = [m for m in modules() if m.startswith("sim/device/") and uses(m, "cxlctl.sim.driver")]
    assert bad == []


def test_kernel_names_mean_the_real_system() -> None:
    """``Kernel*`` classes are the real system's; the simulator's are ``Sim*``."""
    bad = []
    for m in modules():
        if not m.startswith("sim/"):
            continue
        for node in ast.walk(ast.parse((PKG / m).read_text())):
            if isinstance(node, ast.ClassDef) and node.name.startswith("Kernel"):
                bad.append(f"{m}:{node.name}")
    assert bad == []
