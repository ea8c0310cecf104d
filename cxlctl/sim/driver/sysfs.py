"""The simulated kernel's sysfs: :class:`SimSysfs` implements :class:`cxlctl.sysfs.Sysfs`.

It renders :class:`~.cxlbus.CxlBus` as the directory tree Linux 6.12 shows under
``/sys`` (``../shared/reference/topology.md`` sections 2, 3 and 14): the nested
device directories below ``devices/platform/ACPI0017:00/root0`` and the PCI tree,
``bus/cxl/devices/*`` links to them, each object type's attribute set with the
kernel's modes and formats, the driver directories with their ``bind``/``unbind``
files, ``bus/cxl/flush``, the dax devices and the memory blocks of ram regions.

Writes go through the kernel's rules in :mod:`.cxlbus` and are accepted in every
form libcxl and ``echo`` use (a trailing NUL, a trailing newline, both).  A
read-only attribute opened for writing is ``EACCES``, a write-only one read is
``EACCES``, a missing one ``ENOENT``.  After every write that changed something,
the state is saved (``CXLCTL_SIM_STATE``), atomically.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ... import mailbox as mb
from ...sysfs import ATTR_MAX, _check
from . import cxlbus as cb
from . import platform as pf

if TYPE_CHECKING:
    from .. import SimDevice

Reader = Callable[[], str]
Writer = Callable[[bytes], None]
#: renders a directory's entries into it
Fill = Callable[[dict[str, object]], None]


class File:
    __slots__ = ("light", "mode", "reader", "writer")

    def __init__(
        self, mode: int, reader: Reader | None, writer: Writer | None = None, light: bool = False
    ) -> None:
        self.mode, self.reader, self.writer = mode, reader, writer
        #: a write changes nothing of the topology: no re-render, no topology save
        self.light = light


class Link:
    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target


class Lazy:
    """A directory not rendered yet: the first lookup through it renders it in place
    (``open``). Only the tree without the ports has them (a memdev's directory and
    its subdirectories: a command about some memdevs renders theirs only); the
    whole tree, which lists directories, is rendered at once."""

    __slots__ = ("done", "early", "fill", "name", "parent")

    def __init__(
        self,
        fill: Fill,
        parent: dict[str, object],
        name: str,
        early: dict[str, object] | None = None,
    ) -> None:
        self.fill, self.parent, self.name = fill, parent, name
        #: entries made already (the same objects FILL puts in): a lookup of one of
        #: them goes through without rendering the rest
        self.early = early
        self.done: dict[str, object] | None = None

    def open(self) -> dict[str, object]:
        """The directory, rendered in place of this placeholder (once)."""
        if self.done is None:
            d: dict[str, object] = {}
            self.parent[self.name] = self.done = d
            self.fill(d)  # renders into d (also found at its path: builder.dir())
        return self.done

    def child(self, name: str) -> object | None:
        if self.done is None and self.early is not None and name in self.early:
            return self.early[name]
        return self.open().get(name)


Node = "dict[str, object] | File | Link"


def _arg(data: bytes) -> str:
    """What the kernel's store() sees: the C string (up to a NUL), as text."""
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _const(v: str) -> Reader:
    return lambda: v + "\n"


def _call(fn: Callable[[str, str], None], first: str) -> Writer:
    return lambda d: fn(first, _arg(d))


def _hex(v: int) -> str:
    return f"{v:#x}"


def _ignore(_data: bytes) -> None:
    """A write the kernel accepts and does nothing with (``uevent`` here)."""


#: the firmware-upload files :meth:`SimSysfs._fw_upload_read` answers -> the reader of
#: the memdev's FwUpload that :meth:`_Builder.firmware` gives each File
_FW_READERS = {
    "status": "read_status",
    "remaining_size": "read_remaining",
    "error": "read_error",
    "loading": "read_loading",
}
_GET_FW_INFO_ID = mb.GET_FW_INFO.kernel_id


def _has_fw_upload(dev: SimDevice) -> bool:
    """Whether the memdev has its firmware-upload device (``memN/firmware/memN``):
    devm_cxl_setup_fw_upload() registers it only when the driver enabled Get FW Info
    (its CEL lists it). The tree and the direct reads both ask here."""
    return _GET_FW_INFO_ID in dev.driver.enabled


def _child(node: object, name: str) -> object | None:
    """The entry ``name`` of a directory node (a dict, or a Lazy one, opened), or None."""
    if isinstance(node, dict):
        return node.get(name)
    if isinstance(node, Lazy):
        return node.child(name)
    return None


class SimSysfs:
    """A sysfs tree over a simulated CXL bus (the :class:`cxlctl.sysfs.Sysfs` protocol)."""

    def __init__(
        self,
        devices: Mapping[str, SimDevice],
        platform: pf.Platform | None = None,
        state_dir: str | None = None,
    ) -> None:
        self._devices = devices
        self._platform = platform
        self._state_dir = state_dir
        self._bus: cb.CxlBus | None = None
        self.writes: list[tuple[str, bytes, int]] = []  # (path, data, 0 or errno)
        self._tree: dict[str, object] | None = None
        #: the tree without the ports, decoders and endpoints (root_port()): enough
        #: for the memdevs' own files, and a fraction of the cost with many memdevs
        self._base: dict[str, object] | None = None
        #: path -> node found, until the next write re-renders the tree
        self._found: dict[str, object] = {}

    @property
    def bus(self) -> cb.CxlBus:
        """The simulated CXL bus (ports, decoders, regions, endpoints), built when
        first needed: the firmware-upload reads of ``list -F`` do without it."""
        bus = self._bus
        if bus is None:
            devs = self._devices
            plat = self._platform or pf.Platform(host_bridges=(max(len(devs), 1),))
            bus = self._bus = cb.CxlBus(devs, plat, self._state_dir)
        return bus

    # -- the protocol -------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        if self._tree is None and path.startswith("bus/cxl/devices/mem"):
            data = self._fw_upload_read(path)
            if data is not None:
                return data
        node = self._node(path)
        if isinstance(node, dict):
            raise OSError(errno.EISDIR, f"{path}: is a directory")
        assert isinstance(node, File)
        if node.reader is None or not node.mode & 0o444:
            raise OSError(errno.EACCES, f"{path}: write-only")
        data = node.reader().encode()
        return data[:ATTR_MAX]

    def _fw_upload_read(self, path: str) -> bytes | None:
        """``bus/cxl/devices/memN/firmware/memN/{status,remaining_size,error,loading}``
        (libcxl's ``fwl->status`` and ``->remaining``, read for every memdev by
        ``list -F``): the bytes the tree's File gives (:meth:`_Builder.firmware`),
        from the memdev's firmware-upload device, without rendering the tree of
        every memdev first.  None for any other path, or a memdev without the
        upload device (:func:`_has_fw_upload`): the tree answers those."""
        parts = path.split("/")
        if len(parts) != 7 or parts[4] != "firmware" or parts[3] != parts[5]:
            return None
        reader = _FW_READERS.get(parts[6])
        dev = self._devices.get(parts[3])
        if reader is None or dev is None or not _has_fw_upload(dev):
            return None
        text: str = getattr(dev.fwupload, reader)()
        return text.encode()[:ATTR_MAX]

    def write(self, path: str, data: bytes) -> None:
        node = self._node(path)
        if isinstance(node, dict):
            raise OSError(errno.EISDIR, f"{path}: is a directory")
        assert isinstance(node, File)
        if node.writer is None or not node.mode & 0o222:
            raise OSError(errno.EACCES, f"{path}: read-only")
        if len(data) > ATTR_MAX:
            raise OSError(errno.EINVAL, f"{path}: more than a page")
        if node.light:
            try:
                node.writer(data)
            except OSError as e:
                self.writes.append((path, bytes(data), e.errno or errno.EIO))
                raise
            self.writes.append((path, bytes(data), 0))
            return
        try:
            node.writer(data)
        except OSError as e:
            self.writes.append((path, bytes(data), e.errno or errno.EIO))
            self._tree = self._base = None
            self._found.clear()
            self.bus.save()
            raise
        self.writes.append((path, bytes(data), 0))
        self._tree = self._base = None
        self._found.clear()
        self.bus.sync()
        self.bus.save()

    def listdir(self, path: str) -> list[str]:
        self.tree()  # a directory's entries: the whole tree (the ports add some)
        node = self._node(path)
        if not isinstance(node, dict):
            raise OSError(errno.ENOTDIR, f"{path}: not a directory")
        return list(node)

    def realpath(self, path: str) -> str:
        return "/".join(self._resolve(path, follow_last=True)[0])

    def islink(self, path: str) -> bool:
        try:
            parts, _ = self._resolve(path, follow_last=False)
        except OSError:
            return False
        return isinstance(self._lookup(parts), Link)

    def exists(self, path: str) -> bool:
        try:
            self._node(path)
        except OSError:
            return False
        return True

    def mode(self, path: str) -> int:
        """The ``ls -l`` permission bits of a file (0o755 for a directory, 0o777 a link)."""
        parts, _ = self._resolve(path, follow_last=False)
        node = self._lookup(parts)
        if isinstance(node, Link):
            return 0o777
        return node.mode if isinstance(node, File) else 0o755

    def link_target(self, path: str) -> str:
        parts, _ = self._resolve(path, follow_last=False)
        node = self._lookup(parts)
        if not isinstance(node, Link):
            raise OSError(errno.EINVAL, f"{path}: not a link")
        return node.target

    # -- walking --------------------------------------------------------------------------
    def tree(self) -> dict[str, object]:
        if self._tree is None:
            self.bus.sync()
            self._tree = _Builder(self.bus).build()
            self._found.clear()  # from now on every lookup is of this one rendering
        return self._tree

    def _lookup(self, parts: list[str]) -> object:
        key = "/".join(parts)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._walk(parts)
        return found

    def _root(self) -> dict[str, object]:
        """The tree lookups start from: the whole one once rendered, else the one
        without the ports (rendered now if need be)."""
        if self._tree is not None:
            return self._tree
        if self._base is None:
            self.bus.sync()
            self._base = _Builder(self.bus).build(topology=False)
        return self._base

    def _walk(self, parts: list[str]) -> object:
        if self._tree is None:
            # the ports only add nodes (never change one the base has): a path the
            # base tree has is the same node in the whole tree; only a miss needs it
            node: object = self._root()
            for p in parts:
                child = _child(node, p)
                if child is None:
                    break
                node = child
            else:
                return node  # perhaps a Lazy (_resolve opens it if it ends there)
        node = self.tree()
        for p in parts:
            if not isinstance(node, dict) or p not in node:
                raise OSError(errno.ENOENT, f"{'/'.join(parts)}: no such file or directory")
            node = node[p]
        return node

    def _resolve(self, path: str, *, follow_last: bool) -> tuple[list[str], object]:
        if not path:
            return [], self._lookup([])
        parts = _check(path).split("/")
        last = len(parts) - 1
        out: list[str] = []
        hops = 0
        node: object = self._root()  # the node at ``out``, walked one step at a time
        for i, p in enumerate(parts):
            out.append(p)
            child = _child(node, p)
            # not in this tree (the whole one may have it): a lookup, or ENOENT
            node = self._lookup(out) if child is None else child
            if type(node) is Link and (follow_last or i < last):
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, f"{path}: too many links")
                out = node.target.split("/")
                node = self._lookup(out)
        if type(node) is Lazy:  # the directory itself: rendered
            node = node.open()
        return out, node

    def _node(self, path: str) -> object:
        return self._resolve(path, follow_last=True)[1]


class _Builder:
    """One rendering of the bus as a tree of dicts, Files and Links."""

    def __init__(self, bus: cb.CxlBus) -> None:
        self.bus = bus
        self.root: dict[str, object] = {}
        #: path -> its directory: a tree of 256 memdevs makes ~30,000 lookups
        self._dirs: dict[str, dict[str, object]] = {}
        #: render directories when first looked up (:class:`Lazy`), not now
        self.deferred = False

    # -- tree helpers -------------------------------------------------------------------
    def dir(self, path: str) -> dict[str, object]:
        node = self._dirs.get(path)
        if node is None:
            parent, _, name = path.rpartition("/")
            up = self.dir(parent) if parent else self.root
            nxt = up.setdefault(name, {})
            if type(nxt) is Lazy:
                nxt = nxt.open()
            assert isinstance(nxt, dict)
            self._dirs[path] = node = nxt
        return node

    def lazy(
        self,
        path: str,
        fill: Fill,
        up: dict[str, object] | None = None,
        early: dict[str, object] | None = None,
    ) -> None:
        """The directory PATH with what FILL renders into it: now, or (``deferred``)
        on its first lookup.  UP: its parent directory, when the caller has it;
        EARLY: entries made already (deferred only; FILL puts in the same objects)."""
        name = path.rpartition("/")[2]
        if up is None:
            up = self.dir(path.rpartition("/")[0])
        if self.deferred and name not in up:
            up[name] = Lazy(fill, up, name, early)
            return
        fill(self.dir(path))  # now (or already there: rendered, or a Lazy of its own)

    def ro(self, path: str, value: str | Reader, mode: int = 0o444) -> None:
        d, _, name = path.rpartition("/")
        reader = value if callable(value) else _const(value)
        self.dir(d)[name] = File(mode, reader)

    def rw(self, path: str, value: str, writer: Writer, mode: int = 0o644) -> None:
        d, _, name = path.rpartition("/")
        self.dir(d)[name] = File(mode, _const(value), writer)

    def wo(self, path: str, writer: Writer) -> None:
        d, _, name = path.rpartition("/")
        self.dir(d)[name] = File(0o200, None, writer)

    def link(self, path: str, target: str) -> None:
        d, _, name = path.rpartition("/")
        self.dir(d)[name] = Link(target)

    def device(self, path: str, bus_link: str | None, devtype: str | None, modalias: str,
               driver: str | None = None, subsystem: str = "bus/cxl",
               extra_uevent: str = "", *, attrs: bool = True, links: bool = True,
               more: Fill | None = None, up: dict[str, object] | None = None,
               early: dict[str, object] | None = None) -> None:  # fmt: skip
        """A device directory and the links to it (its bus's ``devices/``, its driver's
        directory).  ATTRS: ``devtype`` and ``modalias`` as files too (a memdev has them
        in ``uevent`` only); MORE renders the rest of its files; UP is its parent
        directory if the caller has it.  The links are made now (LINKS=False: the
        caller makes them); the directory, when ``deferred``, on its first lookup."""

        def render(d: dict[str, object]) -> None:
            if attrs:
                if devtype is not None:
                    d["devtype"] = File(0o444, _const(devtype))
                d["modalias"] = File(0o444, _const(modalias))
            d["subsystem"] = Link(subsystem)
            ev = extra_uevent + (f"DEVTYPE={devtype}\n" if devtype else "")
            if driver:
                ev += f"DRIVER={driver}\n"
                d["driver"] = Link(f"{subsystem}/drivers/{driver}")
            ev += f"MODALIAS={modalias}"
            d["uevent"] = File(0o644, _const(ev), _ignore)
            if more is not None:
                more(d)

        self.lazy(path, render, up, early)
        if not links:
            return
        if driver:
            self.link(f"{subsystem}/drivers/{driver}/{path.rsplit('/', 1)[-1]}", path)
        if bus_link:
            self.link(f"{subsystem}/devices/{bus_link}", path)

    # -- the tree -----------------------------------------------------------------------
    def build(self, *, topology: bool = True) -> dict[str, object]:
        """The tree; ``topology=False``: without the ports, decoders and endpoints."""
        bus = self.bus
        self.deferred = not topology  # the whole tree lists directories: all of it now
        self.drivers()
        self.memory()
        for name, dev in bus.devices.items():
            self.memdev(name, dev)
        if bus.acpi_bound and topology:
            self.root_port()
        return self.root

    def drivers(self) -> None:
        b = self.bus
        self.dir("bus/cxl/devices")
        self.wo("bus/cxl/flush", lambda _d: None)
        self.ro("bus/cxl/drivers_autoprobe", "1", 0o644)
        for drv in ("cxl_port", "cxl_mem", "cxl_nvdimm", "cxl_pmem_region", "cxl_nvdimm_bridge",
                    "cxl_region"):  # fmt: skip
            self.dir(f"bus/cxl/drivers/{drv}")
            if drv in ("cxl_port", "cxl_mem", "cxl_region"):
                self.wo(f"bus/cxl/drivers/{drv}/bind", _call(b.bind, drv))
                self.wo(f"bus/cxl/drivers/{drv}/unbind", _call(b.unbind, drv))
        if any(r.bound and r.mode == "ram" for r in b.regions.values()):
            self.dir("bus/cxl/drivers/cxl_dax_region")
            self.dir("bus/dax/drivers/kmem")
            self.dir("bus/dax/drivers/device_dax")
        self.dir("bus/dax/devices")
        self.dir("bus/platform/drivers/cxl_acpi")
        self.wo("bus/platform/drivers/cxl_acpi/bind", lambda d: b.acpi(True, _arg(d)))
        self.wo("bus/platform/drivers/cxl_acpi/unbind", lambda d: b.acpi(False, _arg(d)))
        self.dir("devices/platform/ACPI0017:00")
        if b.acpi_bound:
            self.link("devices/platform/ACPI0017:00/driver", "bus/platform/drivers/cxl_acpi")

    def memory(self) -> None:
        b = self.bus
        base = "devices/system/memory"
        self.ro(f"{base}/block_size_bytes", f"{cb.BLOCK:x}")
        self.ro(f"{base}/auto_online_blocks", "online", 0o644)
        for blk, state in sorted(b.memblocks.items()):
            self.rw(f"{base}/memory{blk}/state", state, self._memblock_writer(blk))
            self.ro(f"{base}/memory{blk}/valid_zones", "Normal")
            self.ro(f"{base}/memory{blk}/phys_index", f"{blk:08x}")
            self.ro(f"{base}/memory{blk}/online", "1" if state == "online" else "0", 0o644)
            self.ro(f"{base}/memory{blk}/removable", "1")

    def _memblock_writer(self, blk: int) -> Writer:
        return lambda d: self.bus.set_memblock(blk, _arg(d))

    def _target_writer(self, r: cb.Region, pos: int) -> Writer:
        return lambda d: self.bus.set_target(r, pos, _arg(d))

    def memdev(self, name: str, dev: SimDevice) -> None:
        b = self.bus
        c = dev.config
        slot = b.slot_of[c.serial]
        path = f"{slot.pci}/{name}"
        idx = int(name[3:])
        bound = dev.bound
        fw_upload = _has_fw_upload(dev)
        nvdimm = bound and c.persistent_bytes and b.acpi_bound

        def fw_files(fd: dict[str, object]) -> None:
            self.firmware(fd, path, name, dev)

        # deferred: firmware/ at once, so that the upload's files (list -F reads them)
        # are found without rendering the memdev's own
        fw_dir: dict[str, object] | None = None
        if fw_upload and self.deferred:
            fw_dir = {}
            fw_dir[name] = Lazy(fw_files, fw_dir, name)

        def files(d: dict[str, object]) -> None:
            # a memdev has DEVTYPE and MODALIAS in uevent only, not as attributes
            d["dev"] = File(0o444, _const(f"250:{idx}"))
            d["serial"] = File(0o444, _const(f"{c.serial:#x}"))
            d["firmware_version"] = File(0o444, _const(c.fw_revision))
            d["label_storage_size"] = File(0o444, _const(str(c.lsa_size)))
            d["payload_max"] = File(0o444, _const(str(c.payload_max)))
            d["numa_node"] = File(0o444, _const(str(c.numa_node)))
            d["ram"] = {"size": File(0o444, _const(_hex(c.volatile_bytes)))}
            d["pmem"] = {"size": File(0o444, _const(_hex(c.persistent_bytes)))}
            self.lazy(f"{path}/security", lambda sd: self.security(sd, name, dev), d)
            if fw_dir is not None:
                d["firmware"] = fw_dir
            elif fw_upload:
                fw: dict[str, object] = {}
                d["firmware"] = fw
                self.lazy(f"{path}/firmware/{name}", fw_files, fw)
            if bound:
                d["trigger_poison_list"] = File(
                    0o200, None, lambda d: unsupported(d, "trigger_poison_list")
                )
            if nvdimm:
                pm = f"{path}/pmem{idx}"
                self.device(pm, None, "cxl_nvdimm", "cxl:t2", "cxl_nvdimm", links=False, up=d)

        def unsupported(_d: bytes, what: str) -> None:
            raise OSError(errno.EOPNOTSUPP, f"{name}: {what} is not simulated through sysfs")

        self.device(
            path, name, "cxl_memdev", "cxl:t5", "cxl_mem" if bound else None,
            extra_uevent=f"MAJOR=250\nMINOR={idx}\nDEVNAME=cxl/{name}\n", attrs=False, more=files,
            early=None if fw_dir is None else {"firmware": fw_dir},
        )  # fmt: skip
        if fw_upload:  # the class device's links (its directory is in the memdev's)
            self.link(f"class/firmware/{name}", f"{path}/firmware/{name}")
            self.ro("class/firmware/timeout", "60", 0o644)
        if nvdimm:
            pm = f"pmem{idx}"
            self.link(f"bus/cxl/drivers/cxl_nvdimm/{pm}", f"{path}/{pm}")
            self.link(f"bus/cxl/devices/{pm}", f"{path}/{pm}")
        self.dir(f"{slot.pci}")

    def security(self, sd: dict[str, object], name: str, dev: SimDevice) -> None:
        """``security/state``, ``sanitize``, and ``erase`` when the device lists Secure
        Erase (QEMU 10 does not: no ``erase`` file), into the directory SD."""
        from . import fwupload as fu

        ep = self.bus.endpoints.get(dev.config.serial)
        committed = 0 if ep is None else ep.commit_end + 1
        sd["state"] = File(0o444, lambda: fu.security_state(dev))
        sd["sanitize"] = File(0o200, None, lambda d: fu.sanitize(dev, _arg(d), committed))
        if mb.SECURE_ERASE.opcode in dev.device.cel:
            erase = mb.SECURE_ERASE.opcode
            sd["erase"] = File(0o200, None, lambda d: fu.sanitize(dev, _arg(d), committed, erase))

    def firmware(self, d: dict[str, object], path: str, name: str, dev: SimDevice) -> None:
        """The firmware-upload class device ``memN/firmware/memN`` (topology.md 8): its
        files, into D; :meth:`memdev` links it into ``class/firmware``."""
        up = dev.fwupload
        d["loading"] = File(0o644, up.read_loading, lambda b: up.write_loading(_arg(b)), True)
        d["data"] = File(0o644, lambda: "", up.write_data, True)
        d["status"] = File(0o444, up.read_status)
        d["remaining_size"] = File(0o444, up.read_remaining)
        d["error"] = File(0o444, up.read_error)
        d["cancel"] = File(0o200, None, lambda b: up.write_cancel(_arg(b)), True)
        d["uevent"] = File(0o644, _const(f"FIRMWARE={name}\nTIMEOUT=60\nASYNC=0"))
        d["device"] = Link(path)
        d["subsystem"] = Link("class/firmware")

    def root_port(self) -> None:
        b = self.bus
        lay = b.layout
        rp = lay.ports[0]
        root = rp.path
        self.device(root, "root0", "cxl_port", "cxl:t4")
        self.ro(f"{root}/decoders_committed", "0")
        self.link(f"{root}/uport", rp.uport)
        for h, (uid, p) in enumerate(rp.dports):
            self.link(f"{root}/dport{uid}", p)
            fw = f"devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0016:{h:02x}"
            self.dir(fw)
            self.link(f"{p}/firmware_node", fw)
        nb = f"{root}/nvdimm-bridge0"
        self.device(nb, "nvdimm-bridge0", "cxl_nvdimm_bridge", "cxl:t1", "cxl_nvdimm_bridge")
        self.nd_bus(f"{nb}/ndbus0")
        for rd in b.root_decoders:
            self.root_decoder(root, rd)
        for pid, sp in lay.ports.items():
            if pid == 0 or not b.port_present(pid):
                continue
            self.port(pid, sp)
        for ep in b.endpoints.values():
            self.endpoint(ep)

    def nd_bus(self, path: str) -> None:
        """cxl_pmem's nd bus below the nvdimm bridge, and an ``nmemN`` (nvdimm) for
        each memdev whose cxl_nvdimm ``pmemN`` is bound (topology.md 3: "nd bus",
        "nvdimm nmem"); nmem ids in memdev order.  The nd regions and namespace
        seeds of pmem regions are not simulated."""
        b = self.bus
        self.device(path, "ndbus0", None, "nd:t0", "nd_bus", subsystem="bus/nd")
        del self.dir(path)["modalias"]  # uevent only, as the kernel has it
        self.ro(f"{path}/commands", "")
        self.ro(f"{path}/provider", "CXL")
        self.ro(f"{path}/wait_probe", "1")
        self.dir(f"{path}/firmware")
        self.dir(f"{path}/nd/ndctl0")
        active = {
            name
            for r in b.regions.values()
            if r.bound and r.mode == "pmem"
            for name in r.targets.values()
        }
        n = 0
        for name, dev in b.devices.items():
            c = dev.config
            if not (dev.bound and c.persistent_bytes):
                continue
            ep = b.endpoints.get(c.serial)
            used = ep is not None and any(f"decoder{ep.id}.{i}" in active for i in range(8))
            nm = f"{path}/nmem{n}"
            self.device(nm, f"nmem{n}", "nvdimm", "nd:t1", "nvdimm", subsystem="bus/nd",
                        extra_uevent=f"MAJOR=243\nMINOR={n}\nDEVNAME=nmem{n}\n")  # fmt: skip
            self.ro(f"{nm}/dev", f"243:{n}")
            self.ro(f"{nm}/commands", "get_size get_data set_data ")
            self.ro(f"{nm}/cxl/id", str(c.serial))
            self.ro(f"{nm}/cxl/provider", f"pmem{name[3:]}")
            self.ro(f"{nm}/flags", "label ")
            self.ro(f"{nm}/frozen", "0")
            self.ro(f"{nm}/security", "disabled", 0o644)
            self.ro(f"{nm}/state", "active" if used else "idle")
            self.dir(f"{nm}/firmware")
            n += 1

    def port(self, pid: int, sp: cb.StaticPort) -> None:
        b = self.bus
        path = sp.path
        bound = b.port_bound[pid]
        self.device(path, f"port{pid}", "cxl_port", "cxl:t3", "cxl_port" if bound else None)
        self.link(f"{path}/uport", sp.uport)
        if sp.parent_dport:
            self.link(f"{path}/parent_dport", sp.parent_dport)
        for i, p in sp.dports:
            self.link(f"{path}/dport{i}", p)
        self.ro(f"{path}/decoders_committed", str(b.port_commit[pid] + 1 if bound else 0))
        if bound:
            for d in b.switch_decoders[pid]:
                self.switch_decoder(path, d)

    def _decoder_common(self, path: str, d: cb.Decoder, devtype: str) -> None:
        self.device(path, d.name, devtype, "cxl:t0")
        self.ro(f"{path}/interleave_granularity", str(d.ig))
        self.ro(f"{path}/interleave_ways", str(d.iw))
        self.ro(f"{path}/locked", "0")
        self.ro(f"{path}/start", _hex(d.start), 0o400)
        self.ro(f"{path}/size", _hex(d.size))

    def switch_decoder(self, port_path: str, d: cb.Decoder) -> None:
        path = f"{port_path}/{d.name}"
        self._decoder_common(path, d, "cxl_decoder_switch")
        self.ro(f"{path}/region", d.region or "")
        self.ro(f"{path}/target_list", ",".join(str(t) for t in d.targets))
        self.ro(f"{path}/target_type", "expander")

    def root_decoder(self, root: str, rd: cb.Decoder) -> None:
        b = self.bus
        w = b.layout.windows[rd.index][1]
        path = f"{root}/{rd.name}"
        self._decoder_common(path, rd, "cxl_decoder_root")
        self.ro(f"{path}/cap_pmem", "1" if w.pmem else "0")
        self.ro(f"{path}/cap_ram", "1" if w.ram else "0")
        self.ro(f"{path}/cap_type2", "1")
        self.ro(f"{path}/cap_type3", "1")
        self.ro(f"{path}/qos_class", "0")
        self.ro(f"{path}/target_list", ",".join(str(t) for t in rd.targets))
        nxt = b.next_region(rd)
        if w.pmem:
            self.rw(f"{path}/create_pmem_region", nxt,
                    lambda d: b.create_region(rd, "pmem", _arg(d)))  # fmt: skip
        if w.ram:
            self.rw(f"{path}/create_ram_region", nxt,
                    lambda d: b.create_region(rd, "ram", _arg(d)))  # fmt: skip
        self.wo(f"{path}/delete_region", lambda d: b.delete_region(rd, _arg(d)))
        for r in b.regions.values():
            if r.rd == rd.name:
                self.region(f"{path}/{r.name}", r)

    def region(self, path: str, r: cb.Region) -> None:
        b = self.bus
        self.device(path, r.name, "cxl_region", "cxl:t6", "cxl_region" if r.bound else None)
        self.dir(f"{path}/access0")
        self.dir(f"{path}/access1")
        self.rw(f"{path}/commit", "1" if r.state >= cb.COMMIT else "0",
                lambda d: b.set_commit(r, _arg(d)))  # fmt: skip
        self.rw(f"{path}/interleave_granularity", str(r.ig),
                lambda d: b.set_granularity(r, _arg(d)))  # fmt: skip
        self.rw(f"{path}/interleave_ways", str(r.iw), lambda d: b.set_ways(r, _arg(d)))
        self.ro(f"{path}/mode", r.mode)
        self.ro(f"{path}/resource", _hex(r.start if r.start is not None else cb.U64_MAX))
        self.rw(f"{path}/size", _hex(r.size), lambda d: b.set_size(r, _arg(d)))
        if r.mode == "pmem":
            self.rw(f"{path}/uuid", r.uuid or "00000000-0000-0000-0000-000000000000",
                    lambda d: b.set_uuid(r, d))  # fmt: skip
        else:
            self.ro(f"{path}/uuid", "")
        for pos in range(r.iw):
            self.rw(f"{path}/target{pos}", r.targets.get(pos, ""), self._target_writer(r, pos))
        if not r.bound:
            return
        if r.mode == "pmem":
            pr = f"pmem_region{r.id}"
            self.device(f"{path}/{pr}", pr, "cxl_pmem_region", "cxl:t7", "cxl_pmem_region")
            return
        assert r.start is not None
        dr = f"dax_region{r.id}"
        dpath = f"{path}/{dr}"
        self.device(dpath, dr, "cxl_dax_region", "cxl:t8", "cxl_dax_region")
        self.ro(f"{dpath}/dax_region/align", "2097152", 0o400)
        self.ro(f"{dpath}/dax_region/available_size", "0")
        self.ro(f"{dpath}/dax_region/id", str(r.id))
        self.ro(f"{dpath}/dax_region/size", str(r.size))
        self.ro(f"{dpath}/dax_region/seed", "")
        dax = f"dax{r.id}.0"
        xpath = f"{dpath}/{dax}"
        self.device(xpath, dax, None, "dax:t0", "kmem", subsystem="bus/dax",
                    extra_uevent=f"MAJOR=252\nMINOR={r.id}\nDEVNAME={dax}\n")  # fmt: skip
        self.ro(f"{xpath}/align", "2097152", 0o644)
        self.ro(f"{xpath}/dev", f"252:{r.id}")
        self.ro(f"{xpath}/size", str(r.size), 0o644)
        self.ro(f"{xpath}/resource", _hex(r.start), 0o400)
        self.ro(f"{xpath}/target_node", "1")
        self.ro(f"{xpath}/numa_node", "-1")
        self.ro(f"{xpath}/memmap_on_memory", "1", 0o644)
        self.ro(f"{xpath}/mapping0/start", _hex(r.start))
        self.ro(f"{xpath}/mapping0/end", _hex(r.start + r.size - 1))
        self.ro(f"{xpath}/mapping0/page_offset", "0x0")

    def endpoint(self, ep: cb.Endpoint) -> None:
        b = self.bus
        lay = b.layout
        name = f"endpoint{ep.id}"
        path = f"{lay.path_of_port(ep.parent)}/{name}"
        self.device(path, name, "cxl_port", "cxl:t3", "cxl_port" if ep.bound else None)
        slot = b.slot_of[ep.serial]
        mem = b.name_of[ep.serial]
        self.link(f"{path}/uport", f"{slot.pci}/{mem}")
        self.link(f"{path}/parent_dport", slot.dport_path)
        self.ro(f"{path}/CDAT", lambda: "", 0o400)
        self.ro(f"{path}/decoders_committed", str(ep.commit_end + 1))
        for d in ep.decoders:
            self.endpoint_decoder(path, ep, d)

    def endpoint_decoder(self, port_path: str, ep: cb.Endpoint, d: cb.Decoder) -> None:
        b = self.bus
        path = f"{port_path}/{d.name}"
        self._decoder_common(path, d, "cxl_decoder_endpoint")
        self.ro(
            f"{path}/dpa_resource", _hex(d.dpa_start if d.dpa_start is not None else cb.U64_MAX)
        )
        self.rw(f"{path}/dpa_size", f"{d.dpa_size:#018x}",
                lambda x: b.set_dpa_size(ep, d, _arg(x)))  # fmt: skip
        self.rw(f"{path}/mode", d.mode, lambda x: b.set_mode(ep, d, _arg(x)))
        self.ro(f"{path}/region", d.region or "")
        self.ro(f"{path}/target_type", "expander")
