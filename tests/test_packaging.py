"""The package as users get it: sdist -> wheel (python -m build), installed into a
clean venv from PyPI, with completions and man pages where shells and man look."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cxlctl import __version__

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

DATA_FILES = [
    "share/bash-completion/completions/cxlctl",
    "share/zsh/site-functions/_cxlctl",
    "share/fish/vendor_completions.d/cxlctl.fish",
    "share/man/man1/cxlctl.1",
    "share/man/man1/cxlctl-identify.1",
    "share/man/man1/cxlctl-completion.1",
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run([sys.executable, "-m", "build", "--version"], capture_output=True).returncode:
        pytest.skip("the 'build' package is not installed")
    out = tmp_path_factory.mktemp("dist")
    # sdist first, then the wheel built from the unpacked sdist: proves the sdist
    # carries everything the wheel needs
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    (wheel,) = dist.glob("cxlctl-*.whl")
    env = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return env


def test_sdist_has_what_building_and_testing_need(dist: Path) -> None:
    (sdist,) = dist.glob("cxlctl-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for need in (
        "pyproject.toml",
        "cxlctl/__init__.py",
        "cxlctl/py.typed",
        "tests/conftest.py",
        "tests/test_docs.py",
        "tools/gen_docs.py",
        "completions/cxlctl.bash",
        "man/cxlctl.1",
        "typings/ioctl_opt/__init__.pyi",
        "Makefile",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
    ):
        assert need in names, need


def test_installed_cli_runs_on_the_simulator(venv: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"}
    p = subprocess.run(
        [str(venv / "bin" / "cxlctl"), "--sim", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    data = json.loads(p.stdout)
    assert [d["memdev"] for d in data] == ["mem0", "mem1", "mem2"]
    assert all(d["backend"] == "sim" for d in data)


def test_installed_version(venv: Path, tmp_path: Path) -> None:
    p = subprocess.run(
        [str(venv / "bin" / "cxlctl"), "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert re.search(rf"\b{re.escape(__version__)}\b", p.stdout)
    src = (ROOT / "cxlctl" / "__init__.py").read_text()
    assert f'__version__ = "{__version__}"' in src


@pytest.mark.parametrize("path", DATA_FILES)
def test_completions_and_man_pages_are_installed(venv: Path, path: str) -> None:
    installed = venv / path
    assert installed.is_file(), path
    src = {
        "share/bash-completion/completions/cxlctl": "completions/cxlctl.bash",
        "share/zsh/site-functions/_cxlctl": "completions/_cxlctl",
        "share/fish/vendor_completions.d/cxlctl.fish": "completions/cxlctl.fish",
    }.get(path, "man/" + Path(path).name)
    assert installed.read_bytes() == (ROOT / src).read_bytes()


def test_every_man_page_is_installed(venv: Path) -> None:
    shipped = {p.name for p in (ROOT / "man").glob("*.1")}
    installed = {p.name for p in (venv / "share" / "man" / "man1").glob("*.1")}
    assert shipped == installed
