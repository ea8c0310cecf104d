"""One fake /sys for the kernel backend's tests: a directory tree laid out as Linux 6.12
lays out the cxl bus (shared/reference/topology.md sections 2-3), on disk, so
``KernelBackend`` and ``HostSysfs`` read it exactly as they read ``/sys``.

The tree is the simulated kernel's own sysfs (``cxlctl.sim.driver.sysfs.SimSysfs``,
which the kernel tier compares attribute by attribute with the real 6.12 kernel)
written out: directories, attribute files holding what a read returns, and relative
symlinks where sysfs has links (``bus/cxl/devices/mem0`` ->
``../../../devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0``). A test that needs
something else says so with :meth:`FakeSysfs.set` and :meth:`FakeSysfs.remove`
(kept across :meth:`FakeSysfs.refresh`), and points the CLI at the tree with
:meth:`FakeSysfs.use`.

Files are plain files: writing one stores the bytes and changes nothing else (a test
that wants the kernel's reaction wraps ``KernelBackend._write_attr`` or
``HostSysfs.write`` and calls :meth:`FakeSysfs.refresh`). Every file is mode 0644,
so the tree works the same for root and for a developer's own account.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from simio import Recorder, Sent

from cxlctl.backends import KernelBackend
from cxlctl.cli import main
from cxlctl.sim import SimDevice
from cxlctl.sim.driver import platform as pf
from cxlctl.sim.driver.sysfs import File, Link, SimSysfs
from cxlctl.transport import Transport

#: KernelBackend's sysfs_root below the tree's /sys
BUS_DEVICES = "bus/cxl/devices"
#: the CLI on the kernel backend, output reproducible
KERNEL_ENV = {"CXLCTL_BACKEND": "kernel", "NO_COLOR": "1", "CXLCTL_DEBUG": ""}


def kernel_cli(
    *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None
) -> Result:
    """``cxlctl ARGS`` in process on the kernel backend (over the tree :meth:`FakeSysfs.use`
    installed)."""
    return CliRunner().invoke(main, list(args), env={**KERNEL_ENV, **(env or {})}, input=input)


class FakeSysfs:
    """``root`` is the fake ``/sys``; ``dev_root`` the fake ``/dev/cxl`` (empty: tests
    give the backend a transport instead, see :meth:`use`)."""

    def __init__(self, root: Path, devices: Sequence[SimDevice], topology: str = "") -> None:
        self.root = root
        self.dev_root = root.parent / "dev" / "cxl"
        self.devices = {d.name: d for d in devices}
        #: what the backend sent through :meth:`use`'s default transport, in order
        self.sent: list[Sent] = []
        self._platform = pf.parse(topology, len(devices))
        self.sim = SimSysfs(self.devices, self._platform)
        self._edits: dict[str, bytes | None] = {}
        self.refresh()

    # -- where things are ------------------------------------------------------------------
    @property
    def bus(self) -> Path:
        """``/sys/bus/cxl/devices``: KernelBackend's ``sysfs_root``."""
        return self.root / BUS_DEVICES

    @property
    def drivers(self) -> Path:
        return self.root / "bus" / "cxl" / "drivers"

    def real(self, name: str) -> Path:
        """The device directory a bus name (``mem0``, ``endpoint2``) links to."""
        return (self.bus / name).resolve()

    def relpath(self, path: str | Path) -> str:
        """``path`` (absolute, links resolved) relative to the tree, as the kernel
        reference writes paths (``devices/pci0000:0c/.../mem0/firmware/mem0/loading``)."""
        return os.path.relpath(os.path.realpath(path), os.path.realpath(self.root))

    # -- hooks -------------------------------------------------------------------------------
    def set(self, path: str, value: bytes | str) -> None:
        """Make the attribute ``path`` (relative to /sys, through links) read ``value``;
        a str gets the newline the kernel prints."""
        data = value if isinstance(value, bytes) else value.encode() + b"\n"
        self._edits[self._key(path)] = data
        self._apply(self._key(path), data)

    def remove(self, path: str) -> None:
        """Take the file, link or directory ``path`` out of the tree."""
        key = self._key(path)
        self._edits[key] = None
        self._apply(key, None)

    def refresh(self) -> None:
        """Render the tree again from the simulated devices (after a bind or an unbind),
        then re-apply every :meth:`set` and :meth:`remove`."""
        self.sim = SimSysfs(self.devices, self._platform)  # a fresh rendering of them
        tree = self.sim.tree()
        self.root.mkdir(parents=True, exist_ok=True)
        for top in tree:  # what a test added beside them (kernel/tracing...) stays
            if (self.root / top).exists():
                shutil.rmtree(self.root / top)
        self._dump(tree, self.root)
        for key, data in self._edits.items():
            self._apply(key, data)

    # -- the kernel backend over this tree -------------------------------------------------
    def backend(self) -> KernelBackend:
        return KernelBackend(sysfs_root=str(self.bus), dev_root=str(self.dev_root))

    def use(
        self,
        monkeypatch: pytest.MonkeyPatch,
        transport: Callable[[SimDevice], Transport] | None = None,
    ) -> None:
        """Every ``KernelBackend()`` (the CLI's ``CXLCTL_BACKEND=kernel`` included) reads
        this tree; ``open(name)`` gives ``transport(device)`` instead of ``/dev/cxl/memN``
        (default: the simulated device, every request recorded in :attr:`sent`)."""
        init = KernelBackend.__init__
        bus, dev_root = str(self.bus), str(self.dev_root)

        def init_(self_: KernelBackend, *a: object, **k: object) -> None:
            init(self_, bus, dev_root)

        def open_(self_: KernelBackend, name: str) -> Transport:
            dev = self.devices[name]
            return Recorder(dev, self.sent) if transport is None else transport(dev)

        monkeypatch.setattr(KernelBackend, "__init__", init_)
        monkeypatch.setattr(KernelBackend, "open", open_)

    # -- writing it out ----------------------------------------------------------------------
    def _key(self, path: str) -> str:
        """``path`` with its directories' links resolved (the last part kept), relative
        to the tree: an edit made through ``bus/cxl/devices/mem0`` survives a refresh."""
        parent, leaf = os.path.split(path.strip("/"))
        real = os.path.realpath(self.root / parent) if parent else os.path.realpath(self.root)
        rel = os.path.relpath(os.path.join(real, leaf), os.path.realpath(self.root))
        if rel.startswith(".."):
            raise ValueError(f"{path}: outside the fake sysfs")
        return rel

    def _apply(self, key: str, data: bytes | None) -> None:
        p = self.root / key
        if data is None:
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
            return
        if p.is_symlink():
            p.unlink()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def _dump(self, node: Mapping[str, object], here: Path) -> None:
        for name, child in node.items():
            p = here / name
            if isinstance(child, dict):
                p.mkdir(exist_ok=True)
                self._dump(child, p)
            elif isinstance(child, Link):
                target = self.root / child.target
                p.symlink_to(os.path.relpath(target, here))
            else:
                assert isinstance(child, File)
                readable = child.reader is not None and child.mode & 0o444
                p.write_bytes(child.reader().encode() if child.reader and readable else b"")
