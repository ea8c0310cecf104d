"""Shared fixtures: a CLI runner pinned for reproducible output, simulated devices."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fakesysfs import FakeSysfs
from goldens import CLI_ENV
from hypothesis import HealthCheck, settings

from cxlctl.cli import main
from cxlctl.sim import SimDevice, make_devices

# Property tests run on a fixed budget: in CI (CI=true, as .ci/run) derandomized, so
# a run is reproducible and cannot fail by luck; locally random, with hypothesis'
# own example database (not committed) replaying what once failed.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``cxlctl ARGS`` in process on the simulator; returns click's Result."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: bytes | str | None = None
    ) -> Result:
        runner = CliRunner()
        return runner.invoke(main, list(args), env={**CLI_ENV, **(env or {})}, input=input)

    return run


@pytest.fixture
def cli_json(cli: Callable[..., Result]) -> Callable[..., Any]:
    """Run a command that must succeed and return its parsed JSON stdout."""

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        r = cli(*args, env=env)
        assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
        return json.loads(r.stdout)

    return run


@pytest.fixture
def pmem() -> SimDevice:
    """A simulated persistent device configured like the reference QEMU 10 device."""
    (dev,) = make_devices(["pmem"], profile="qemu")
    return dev


@pytest.fixture
def qemu_pv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The topology reference's p,v boot on the simulator: a persistent and a volatile
    device, the default topology, state in tmp_path, tables 200 columns wide."""
    monkeypatch.setenv("CXLCTL_SIM_DEVICES", "pmem,ram")
    monkeypatch.setenv("CXLCTL_SIM_STATE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CXLCTL_SIM_TOPOLOGY", raising=False)


@pytest.fixture
def fake_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeSysfs]:
    """Build a fake Linux 6.12 /sys (tests/fakesysfs.py) in a fresh directory and point
    every ``KernelBackend`` at it, its requests going to the simulated devices and
    recorded in ``fs.sent``: ``fs = fake_sysfs(["pmem"], profile="qemu")``."""
    made: list[FakeSysfs] = []

    def make(
        kinds: Sequence[str] = ("pmem",),
        *,
        profile: str = "full",
        topology: str = "",
        devices: Sequence[SimDevice] | None = None,
    ) -> FakeSysfs:
        root = tmp_path / f"fake{len(made)}" / "sys"
        devs = devices if devices is not None else make_devices(kinds, profile=profile)
        fs = FakeSysfs(root, devs, topology)
        fs.use(monkeypatch)
        made.append(fs)
        return fs

    return make
