"""The CXL topology as a walkable object graph, read from the sysfs seam as libcxl does.

>>> from cxlctl.backends import open_backend
>>> topo = read_topology(open_backend("sim").sysfs_seam)
>>> [p.name for p in topo.buses[0].port.ports]
['port1']

:func:`read_topology` walks ``bus/cxl/devices`` exactly as libcxl's
``cxl_ctx`` enumeration does (``../shared/reference/topology.md`` section 14.1):
buses are the ``rootN`` devices; ports, endpoints and decoders are the ``portN``,
``endpointN`` and ``decoderN.M`` children of each port's directory; regions the
``regionN`` children of root decoders; an endpoint's memdev is its ``uport``; a
port's ``parent_dport`` and a decoder's ``target_list`` are matched against the
parent port's ``dportN`` links.  The same code runs over the real ``/sys`` and the
simulator's tree.

``memN`` and ``endpointN`` numbers follow the kernel's probe order and change
between boots: :meth:`Topology.memdev_by_serial` and :meth:`Topology.endpoint_of`
key on the serial number.  Values are frozen dataclasses with raw integers; nothing
here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .sysfs import Sysfs, number, text

T = TypeVar("T")
U64_MAX = (1 << 64) - 1
DEVICES = "bus/cxl/devices"


@dataclass(frozen=True, slots=True)
class Dport:
    """A downstream port of a CXL port (``dportN`` link): ``id`` is N."""

    name: str
    id: int
    alias: str | None
    path: str


@dataclass(frozen=True, slots=True)
class Target:
    """One entry of a decoder's ``target_list``: a dport, in interleave position."""

    position: int
    id: int
    name: str | None
    alias: str | None


@dataclass(frozen=True, slots=True)
class Decoder:
    name: str
    port: str
    kind: str  # root | switch | endpoint
    resource: int | None  # HPA start (None: unset)
    size: int
    interleave_ways: int | None
    interleave_granularity: int | None
    region: str | None
    targets: tuple[Target, ...]
    mode: str | None = None  # endpoint: ram | pmem | None
    dpa_resource: int | None = None
    dpa_size: int | None = None
    pmem_capable: bool = False
    volatile_capable: bool = False
    accelmem_capable: bool = False
    qos_class: int | None = None
    locked: bool = False
    target_type: str | None = None
    max_available_extent: int | None = None
    path: str = ""

    @property
    def port_id(self) -> int:
        return int(self.name[7:].split(".")[0])

    @property
    def index(self) -> int:
        return int(self.name.split(".")[1])


@dataclass(frozen=True, slots=True)
class Memdev:
    name: str
    serial: int
    host: str
    ram_size: int
    pmem_size: int
    firmware_version: str
    numa_node: int
    enabled: bool
    ram_qos_class: int | None
    pmem_qos_class: int | None
    path: str

    @property
    def id(self) -> int:
        return int(self.name[3:])


@dataclass(frozen=True, slots=True)
class Mapping:
    position: int
    decoder: str
    memdev: str | None


@dataclass(frozen=True, slots=True)
class DaxDevice:
    chardev: str
    size: int
    target_node: int
    align: int
    mode: str  # system-ram (kmem) | devdax
    online_memblocks: int
    total_memblocks: int
    movable: bool
    resource: int | None


@dataclass(frozen=True, slots=True)
class DaxRegion:
    id: int
    size: int
    align: int
    devices: tuple[DaxDevice, ...]


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    root_decoder: str
    resource: int | None
    size: int
    mode: str  # ram | pmem
    interleave_ways: int
    interleave_granularity: int
    committed: bool  # decode_state commit / reset
    enabled: bool  # bound to cxl_region
    uuid: str | None
    targets: tuple[str | None, ...]  # target0... (endpoint decoder names)
    mappings: tuple[Mapping, ...]  # libcxl's order: the last position first
    daxregion: DaxRegion | None
    qos_class_mismatch: bool
    path: str
    memblocks: tuple[int, ...] = ()  # online-able memory blocks of a ram region

    @property
    def id(self) -> int:
        return int(self.name[6:])

    @property
    def configured(self) -> bool:
        return bool(self.size) and self.resource is not None


@dataclass(frozen=True, slots=True)
class Port:
    """A CXL port: the root (``rootN``), a host bridge or switch (``portN``), or an
    endpoint (``endpointN``, whose ``memdev`` is its uport)."""

    name: str
    kind: str  # root | port | endpoint
    host: str
    depth: int
    parent_dport: str | None
    enabled: bool
    decoders_committed: int
    dports: tuple[Dport, ...]
    decoders: tuple[Decoder, ...]
    ports: tuple[Port, ...] = ()
    endpoints: tuple[Port, ...] = ()
    memdev: Memdev | None = None
    path: str = ""
    parent: str | None = None

    @property
    def id(self) -> int:
        return int(re.sub(r"\D", "", self.name))

    def walk(self) -> Iterator[Port]:
        """This port and every port below it (ports before endpoints)."""
        yield self
        for p in self.ports:
            yield from p.walk()
        for e in self.endpoints:
            yield from e.walk()


@dataclass(frozen=True, slots=True)
class Bus:
    name: str
    provider: str
    port: Port


@dataclass(frozen=True, slots=True)
class Topology:
    buses: tuple[Bus, ...]
    memdevs: tuple[Memdev, ...]
    block_size: int = 128 << 20
    _index: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def ports(self) -> Iterator[Port]:
        for b in self.buses:
            yield from b.port.walk()

    def decoders(self) -> Iterator[Decoder]:
        for p in self.ports():
            yield from p.decoders

    def regions(self) -> Iterator[Region]:
        for b in self.buses:
            for d in b.port.decoders:
                yield from self.regions_of(d)

    def regions_of(self, decoder: Decoder) -> tuple[Region, ...]:
        r = self._index.get(f"regions:{decoder.name}")
        return r if isinstance(r, tuple) else ()

    def decoder(self, name: str) -> Decoder | None:
        for d in self.decoders():
            if d.name == name:
                return d
        return None

    def port(self, name: str) -> Port | None:
        for p in self.ports():
            if p.name == name:
                return p
        return None

    def region(self, name: str) -> Region | None:
        for r in self.regions():
            if r.name == name:
                return r
        return None

    def memdev(self, name: str) -> Memdev | None:
        for m in self.memdevs:
            if m.name == name:
                return m
        return None

    def memdev_by_serial(self, serial: int) -> Memdev | None:
        for m in self.memdevs:
            if m.serial == serial:
                return m
        return None

    def endpoint_of(self, memdev: Memdev) -> Port | None:
        """The endpoint port whose uport is the memdev (libcxl's
        cxl_memdev_get_endpoint(); there is no memN/endpoint link)."""
        for p in self.ports():
            if p.kind == "endpoint" and p.memdev is not None and p.memdev.path == memdev.path:
                return p
        return None

    def port_of(self, decoder: Decoder) -> Port | None:
        return self.port(decoder.port)

    def ancestors(self, port: Port) -> list[Port]:
        """The ports above ``port``, nearest first."""
        out = []
        cur = port
        while cur.parent is not None:
            nxt = self.port(cur.parent)
            if nxt is None:
                break
            out.append(nxt)
            cur = nxt
        return out

    def memdev_of_decoder(self, decoder: Decoder) -> Memdev | None:
        port = self.port(decoder.port)
        return port.memdev if port is not None and port.kind == "endpoint" else None

    def region_of_decoder(self, decoder: Decoder) -> Region | None:
        return self.region(decoder.region) if decoder.region else None


# --- reading -----------------------------------------------------------------------


def _num(fs: Sysfs, path: str, default: int | None = None, *, signed: bool = False) -> int | None:
    try:
        return number(fs.read(path), lo=-(1 << 63) if signed else 0)
    except (OSError, ValueError):
        return default


def _signed(fs: Sysfs, path: str, default: int) -> int:
    v = _num(fs, path, None, signed=True)
    return default if v is None else v


def _text(fs: Sysfs, path: str) -> str | None:
    try:
        return text(fs.read(path))
    except OSError:
        return None


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _children(fs: Sysfs, path: str, pattern: str) -> list[str]:
    try:
        names = fs.listdir(path)
    except OSError:
        return []
    rx = re.compile(pattern)
    found = [n for n in names if rx.fullmatch(n)]
    return sorted(found, key=lambda n: [int(x) for x in re.findall(r"\d+", n)])


def _realpath(fs: Sysfs, path: str) -> str | None:
    try:
        if not fs.exists(path):
            return None
        return fs.realpath(path)
    except OSError:
        return None


def read_memdev(fs: Sysfs, name: str) -> Memdev:
    link = f"{DEVICES}/{name}"
    path = fs.realpath(link)
    host = _base(path.rsplit("/", 1)[0])
    return Memdev(
        name=name,
        serial=_num(fs, f"{path}/serial", U64_MAX) or 0,
        host=host,
        ram_size=_num(fs, f"{path}/ram/size", 0) or 0,
        pmem_size=_num(fs, f"{path}/pmem/size", 0) or 0,
        firmware_version=_text(fs, f"{path}/firmware_version") or "",
        numa_node=_signed(fs, f"{path}/numa_node", -1),
        enabled=fs.islink(f"{path}/driver"),
        ram_qos_class=_num(fs, f"{path}/ram/qos_class", None, signed=True),
        pmem_qos_class=_num(fs, f"{path}/pmem/qos_class", None, signed=True),
        path=path,
    )


def _dports(fs: Sysfs, path: str) -> tuple[Dport, ...]:
    out = []
    for entry in _children(fs, path, r"dport\d+"):
        real = _realpath(fs, f"{path}/{entry}")
        if real is None:
            continue
        alias = None
        for node in ("physical_node", "firmware_node"):
            p = _realpath(fs, f"{real}/{node}")
            if p is not None:
                alias = _base(p)
        out.append(Dport(_base(real), int(entry[5:]), alias, real))
    return tuple(out)


def _decoder(fs: Sysfs, path: str, port: str, dports: tuple[Dport, ...]) -> Decoder:
    devtype = _text(fs, f"{path}/devtype") or ""
    kind = {"cxl_decoder_root": "root", "cxl_decoder_switch": "switch"}.get(devtype, "endpoint")
    start = _num(fs, f"{path}/start", U64_MAX)
    targets: list[Target] = []
    tl = _text(fs, f"{path}/target_list")
    if tl and kind != "endpoint":
        for pos, tok in enumerate(t for t in tl.split(",") if t.strip()):
            try:
                tid = int(tok.strip(), 0)
            except ValueError:
                continue
            dp = next((d for d in dports if d.id == tid), None)
            targets.append(Target(pos, tid, dp.name if dp else None, dp.alias if dp else None))
    mode = _text(fs, f"{path}/mode")
    dpa_res = _num(fs, f"{path}/dpa_resource", U64_MAX) if kind == "endpoint" else None
    return Decoder(
        name=_base(path),
        port=port,
        kind=kind,
        resource=None if start in (None, U64_MAX) else start,
        size=_num(fs, f"{path}/size", 0) or 0,
        interleave_ways=_num(fs, f"{path}/interleave_ways"),
        interleave_granularity=_num(fs, f"{path}/interleave_granularity"),
        region=_text(fs, f"{path}/region") or None,
        targets=tuple(targets),
        mode=mode if mode in ("ram", "pmem", "mixed") else None,
        dpa_resource=None if dpa_res in (None, U64_MAX) else dpa_res,
        dpa_size=_num(fs, f"{path}/dpa_size") if kind == "endpoint" else None,
        pmem_capable=_num(fs, f"{path}/cap_pmem", 0) == 1,
        volatile_capable=_num(fs, f"{path}/cap_ram", 0) == 1,
        accelmem_capable=_num(fs, f"{path}/cap_type2", 0) == 1,
        qos_class=_num(fs, f"{path}/qos_class", None, signed=True),
        locked=_num(fs, f"{path}/locked", 0) == 1,
        target_type=_text(fs, f"{path}/target_type"),
        path=path,
    )


def _max_extent(rd: Decoder, regions: tuple[Region, ...]) -> int | None:
    """libcxl's cxl_decoder_calc_max_available_extent()."""
    if rd.resource is None:
        return None
    prev_end = rd.resource - 1
    best = 0
    for r in sorted((r for r in regions if r.configured), key=lambda r: r.resource or 0):
        assert r.resource is not None
        best = max(best, r.resource - prev_end - 1)
        prev_end = r.resource + r.size - 1
    return max(best, rd.resource + rd.size - 1 - prev_end)


class _Reader:
    def __init__(self, fs: Sysfs) -> None:
        self.fs = fs
        self.index: dict[str, object] = {}
        self.memdevs: dict[str, Memdev] = {}
        self.block_size = 128 << 20

    def read(self) -> Topology:
        fs = self.fs
        try:
            names = fs.listdir(DEVICES)
        except OSError:
            names = []
        bs = _text(fs, "devices/system/memory/block_size_bytes")
        if bs:
            with contextlib.suppress(ValueError):
                self.block_size = int(bs, 16)
        mems = sorted((n for n in names if re.fullmatch(r"mem\d+", n)), key=lambda n: int(n[3:]))
        for n in mems:
            try:
                self.memdevs[n] = read_memdev(fs, n)
            except OSError:
                continue
        by_path = {m.path: m for m in self.memdevs.values()}
        self.by_path = by_path
        buses = []
        roots = sorted((n for n in names if re.fullmatch(r"root\d+", n)), key=lambda n: int(n[4:]))
        pending: list[tuple[str, str]] = []
        for n in roots:
            path = fs.realpath(f"{DEVICES}/{n}")
            port = self.port(path, "root", 0, None, None, pending)
            uport = _realpath(fs, f"{path}/uport") or ""
            provider = "ACPI.CXL" if _base(uport) == "ACPI0017:00" else _base(uport)
            buses.append(Bus(n, provider, port))
        topo = Topology(tuple(buses), tuple(self.memdevs.values()), self.block_size, self.index)
        return topo

    def port(
        self,
        path: str,
        kind: str,
        depth: int,
        parent: Port | None,
        parent_dports: tuple[Dport, ...] | None,
        pending: list[tuple[str, str]],
    ) -> Port:
        fs = self.fs
        name = _base(path)
        uport = _realpath(fs, f"{path}/uport") or ""
        pd = None
        if depth > 1 and parent_dports is not None:
            real = _realpath(fs, f"{path}/parent_dport")
            if real is not None:
                pd = next((d.name for d in parent_dports if d.path == real), None)
        dports = _dports(fs, path)
        decoders = [
            _decoder(fs, f"{path}/{d}", name, dports)
            for d in _children(fs, path, r"decoder\d+\.\d+")
        ]
        if kind == "root":
            for i, rd in enumerate(decoders):
                regions = tuple(
                    self.region(f"{rd.path}/{r}", rd.name)
                    for r in _children(fs, rd.path, r"region\d+")
                )
                self.index[f"regions:{rd.name}"] = regions
                decoders[i] = _replace(rd, max_available_extent=_max_extent(rd, regions))
        stub = Port(
            name,
            kind,
            _base(uport),
            depth,
            pd,
            fs.islink(f"{path}/driver"),
            _num(fs, f"{path}/decoders_committed", 0) or 0,
            dports,
            tuple(decoders),
            path=path,
            parent=parent.name if parent else None,
        )
        ports = tuple(
            self.port(f"{path}/{p}", "port", depth + 1, stub, dports, pending)
            for p in _children(fs, path, r"port\d+")
        )
        eps = tuple(
            self.port(f"{path}/{e}", "endpoint", depth + 1, stub, dports, pending)
            for e in _children(fs, path, r"endpoint\d+")
        )
        memdev = self.by_path.get(uport) if kind == "endpoint" else None
        return _replace(stub, ports=ports, endpoints=eps, memdev=memdev)

    def region(self, path: str, rd: str) -> Region:
        fs = self.fs
        ways = _num(fs, f"{path}/interleave_ways", 0) or 0
        targets = tuple(_text(fs, f"{path}/target{i}") or None for i in range(ways))
        res = _num(fs, f"{path}/resource", U64_MAX)
        mode = _text(fs, f"{path}/mode") or "none"
        uuid = _text(fs, f"{path}/uuid") or None
        name = _base(path)
        dax = self.daxregion(f"{path}/dax_region{name[6:]}")
        return Region(
            name=name,
            root_decoder=rd,
            resource=None if res in (None, U64_MAX) else res,
            size=_num(fs, f"{path}/size", 0) or 0,
            mode=mode,
            interleave_ways=ways,
            interleave_granularity=_num(fs, f"{path}/interleave_granularity", 0) or 0,
            committed=_num(fs, f"{path}/commit", 0) == 1,
            enabled=fs.islink(f"{path}/driver"),
            uuid=uuid if uuid and uuid.strip("0-") else None,
            targets=targets,
            mappings=(),  # resolved once all endpoints are known
            daxregion=dax,
            qos_class_mismatch=False,
            path=path,
        )

    def daxregion(self, path: str) -> DaxRegion | None:
        fs = self.fs
        if not fs.exists(path):
            return None
        devs = []
        for d in _children(fs, path, r"dax\d+\.\d+"):
            dp = f"{path}/{d}"
            drv = _realpath(fs, f"{dp}/driver")
            size = _num(fs, f"{dp}/size", 0) or 0
            res = _num(fs, f"{dp}/resource")
            total = size // self.block_size if self.block_size else 0
            online = 0
            movable = True
            if res is not None and drv is not None and _base(drv) == "kmem":
                for b in range(res // self.block_size, (res + size) // self.block_size):
                    st = _text(fs, f"devices/system/memory/memory{b}/state")
                    if st and st.startswith("online"):
                        online += 1
                        zones = _text(fs, f"devices/system/memory/memory{b}/valid_zones") or ""
                        movable = movable and zones.split(" ")[0] == "Movable"
            devs.append(
                DaxDevice(
                    chardev=d,
                    size=size,
                    target_node=_signed(fs, f"{dp}/target_node", -1),
                    align=_num(fs, f"{dp}/align", 0) or 0,
                    mode="system-ram" if drv is not None and _base(drv) == "kmem" else "devdax",
                    online_memblocks=online,
                    total_memblocks=total,
                    movable=movable and online > 0,
                    resource=res,
                )
            )
        return DaxRegion(
            id=_num(fs, f"{path}/dax_region/id", 0) or 0,
            size=_num(fs, f"{path}/dax_region/size", 0) or 0,
            align=_num(fs, f"{path}/dax_region/align", 0) or 0,
            devices=tuple(devs),
        )


def _replace(obj: T, **kw: Any) -> T:
    return dataclasses.replace(obj, **kw)  # type: ignore[type-var]


def read_topology(fs: Sysfs) -> Topology:
    """The whole CXL topology from ``fs`` (see the module docstring)."""
    reader = _Reader(fs)
    topo = reader.read()
    # regions' mappings need every endpoint decoder (cxl_mappings_init)
    eps: dict[str, tuple[Decoder, Memdev | None]] = {}
    for p in topo.ports():
        if p.kind == "endpoint":
            for d in p.decoders:
                eps[d.name] = (d, p.memdev)
    for key, regions in list(reader.index.items()):
        if not key.startswith("regions:") or not isinstance(regions, tuple):
            continue
        rd = topo.decoder(key[8:])
        fixed = []
        for r in regions:
            maps = []
            mismatch = False
            for pos, t in enumerate(r.targets):
                if t is None or t not in eps:
                    continue
                d, m = eps[t]
                maps.append(Mapping(pos, d.name, m.name if m else None))
                if m is not None and rd is not None:
                    q = m.ram_qos_class if r.mode == "ram" else m.pmem_qos_class
                    if q != rd.qos_class:
                        mismatch = True
            blocks: tuple[int, ...] = ()
            if r.mode == "ram" and r.resource is not None and topo.block_size:
                blocks = tuple(
                    range(r.resource // topo.block_size, (r.resource + r.size) // topo.block_size)
                )
            fixed.append(
                _replace(
                    r, mappings=tuple(reversed(maps)), qos_class_mismatch=mismatch, memblocks=blocks
                )
            )
        reader.index[key] = tuple(fixed)
    return topo
