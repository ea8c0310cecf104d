"""The simulated kernel's CXL bus: ports, decoders, regions, and their rules.

A model of Linux 6.12 ``drivers/cxl/core/{port,hdm,region}.c`` and ``cxl_acpi``:
the objects libcxl finds in sysfs and the state machine behind every writable
attribute, with the errno the kernel returns for each misuse
(``../shared/reference/topology.md`` sections 5, 6, 11 and 14).  :mod:`.sysfs`
renders it as a sysfs tree; nothing here knows about paths beyond naming them.

Errors are ``OSError(errno, message)``; the message is the kernel's dyndbg line
where it prints one, so a user of the simulator sees why.
"""

from __future__ import annotations

import errno
import json
import re
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from . import platform as pf

#: the topology state file in CXLCTL_SIM_STATE, and its size bound
TOPOLOGY_STATE = "topology.json"
TOPOLOGY_MAX = 4 << 20

if TYPE_CHECKING:
    from .. import SimDevice

SZ_256M = 256 << 20
BLOCK = 128 << 20  # memory block size (x86_64 default in the reference VM)
U64_MAX = (1 << 64) - 1
DECODERS_PER_PORT = 4  # QEMU gives every HDM decoder block 4 decoders

# region states (enum cxl_config_state)
IDLE, INTERLEAVE_ACTIVE, ACTIVE, RESET_PENDING, COMMIT = 0, 1, 2, 3, 4


def err(code: int, message: str) -> OSError:
    return OSError(code, message)


@dataclass
class Decoder:
    port: int
    index: int
    kind: str  # root | switch | endpoint
    start: int = 0
    size: int = 0
    iw: int = 1
    ig: int = 256
    targets: list[int] = field(default_factory=lambda: [0])
    region: str | None = None
    enabled: bool = False
    # endpoint decoders
    mode: str = "none"
    dpa_start: int | None = None
    dpa_size: int = 0
    pos: int = -1

    @property
    def name(self) -> str:
        return f"decoder{self.port}.{self.index}"


@dataclass
class Ref:
    """A region's use of one port (struct cxl_region_ref)."""

    decoder: int  # decoder index on the port
    eps: list[str] = field(default_factory=list)  # endpoint decoder names through it


@dataclass
class Region:
    id: int
    mode: str
    rd: str  # root decoder name
    uuid: str | None = None
    iw: int = 0
    ig: int = 0
    start: int | None = None
    size: int = 0
    targets: dict[int, str] = field(default_factory=dict)
    state: int = IDLE
    bound: bool = False
    refs: dict[int, Ref] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"region{self.id}"


@dataclass
class Slot:
    """Where a device sits: its PCI path, and the port/dport above it."""

    hb: int
    pci: str  # the device's PCI directory (devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0)
    port: int  # parent cxl port id (host bridge or switch port)
    dport: int  # dport id on that port
    dport_path: str


@dataclass
class StaticPort:
    id: int
    kind: str  # root | hb | switch
    path: str
    uport: str
    parent: int | None
    parent_dport: str | None
    dports: list[tuple[int, str]]
    hb: int = -1
    alias: str | None = None  # ACPI name of a host bridge


def _addr(bus: int, device: int = 0) -> str:
    """``DDDD:BB:DD.F`` for a bus counted past ``ff`` (it continues in the next PCI
    domain) and a port index past 31 (functions 1..7), so that every address of a
    large simulated platform is valid; small ones keep ``0000:0d:00.0``."""
    domain, b = divmod(bus, 0x100)
    fn, dev = divmod(device, 32)
    if fn > 7 or domain > 0xFFFF:
        raise ValueError(f"no PCI address for bus {bus:#x} device {device}")
    return f"{domain:04x}:{b:02x}:{dev:02x}.{fn}"


class Layout:
    """Names and paths fixed at boot: what ACPI and PCI enumerate."""

    def __init__(self, plat: pf.Platform, ndev: int) -> None:
        self.plat = plat
        root = "devices/platform/ACPI0017:00/root0"
        self.ports: dict[int, StaticPort] = {}
        self.slots: list[Slot] = []
        self.hb_uid: list[int] = []
        nid = 1 + len(plat.host_bridges)
        switches = {(s.host_bridge, s.root_port): s for s in plat.switches}
        root_dports = []
        bus = pf.HB_BUS0
        for h, nrp in enumerate(plat.host_bridges):
            hb_bus = bus
            hb_path = f"devices/pci{_addr(hb_bus)[:7]}"
            self.hb_uid.append(hb_bus)
            root_dports.append((hb_bus, hb_path))
            pid = 1 + h
            rps = [(r, f"{hb_path}/{_addr(hb_bus, r)}") for r in range(nrp)]
            self.ports[pid] = StaticPort(
                pid, "hb", f"{root}/port{pid}", hb_path, 0, hb_path, rps, h, f"ACPI0016:{h:02x}"
            )
            bus += 1
            for r, rp_path in rps:
                sw = switches.get((h, r))
                if sw is None:
                    self.slots.append(Slot(h, f"{rp_path}/{_addr(bus)}", pid, r, rp_path))
                    bus += 1
                    continue
                usp = f"{rp_path}/{_addr(bus)}"
                dsps = [(k, f"{usp}/{_addr(bus + 1, k)}") for k in range(sw.downstream_ports)]
                sid = nid
                nid += 1
                self.ports[sid] = StaticPort(
                    sid, "switch", f"{self.ports[pid].path}/port{sid}", usp, pid, rp_path, dsps, h
                )
                bus += 2
                for k, dsp in dsps:
                    self.slots.append(Slot(h, f"{dsp}/{_addr(bus)}", sid, k, dsp))
                    bus += 1
        self.ports[0] = StaticPort(
            0, "root", root, "devices/platform/ACPI0017:00", None, None, root_dports
        )
        self.first_dynamic = nid
        if ndev > len(self.slots):
            raise ValueError(
                f"{ndev} devices but the topology has {len(self.slots)} downstream ports"
            )
        self.windows: list[tuple[int, pf.Window]] = []
        base = pf.WINDOW_BASE
        for w in plat.windows:
            self.windows.append((base, w))
            base += -(-w.size // SZ_256M) * SZ_256M

    def path_of_port(self, pid: int) -> str:
        return self.ports[pid].path


@dataclass
class Endpoint:
    id: int
    serial: int
    parent: int
    bound: bool = True
    commit_end: int = -1
    decoders: list[Decoder] = field(default_factory=list)


def _kstrtobool(s: str) -> bool:
    s = s.strip().lower()
    if s[:1] in ("y", "1", "t") or s in ("on",):
        return True
    if s[:1] in ("n", "0", "f") or s in ("off",):
        return False
    raise err(errno.EINVAL, f"not a boolean: {s!r}")


def _kstrtoull(s: str) -> int:
    t = s[:-1] if s.endswith("\n") else s
    if not re.fullmatch(r"\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", t):
        raise err(errno.EINVAL, f"not a number: {s!r}")
    t = t.lstrip("+")
    if t.lower().startswith("0x"):
        v = int(t, 16)
    elif t.startswith("0") and len(t) > 1:
        v = int(t, 8)
    else:
        v = int(t)
    if v > U64_MAX:
        raise err(errno.ERANGE, f"{s!r} overflows u64")
    return v


def _streq(s: str) -> str:
    return s[:-1] if s.endswith("\n") else s


def ways_ok(n: int) -> bool:
    return n in (1, 2, 3, 4, 6, 8, 12, 16)


def gran_ok(n: int) -> bool:
    return n in tuple(256 << i for i in range(7))


class CxlBus:
    """The CXL objects of one simulated machine and every write rule."""

    def __init__(
        self,
        devices: Mapping[str, SimDevice],
        plat: pf.Platform,
        state_dir: str | None = None,
    ) -> None:
        self.devices = dict(devices)
        self.layout = Layout(plat, len(devices))
        self.state_dir = state_dir
        self.serial_of = {n: d.config.serial for n, d in devices.items()}
        self.name_of = {d.config.serial: n for n, d in devices.items()}
        self.slot_of = {
            d.config.serial: self.layout.slots[i] for i, d in enumerate(devices.values())
        }
        self._fresh()
        self._load()
        self.sync()

    # -- state ------------------------------------------------------------------------
    def _fresh(self) -> None:
        lay = self.layout
        self.acpi_bound = True
        self.port_bound: dict[int, bool] = {p: True for p in lay.ports if p != 0}
        self.port_commit: dict[int, int] = {p: -1 for p in lay.ports}
        self.switch_decoders: dict[int, list[Decoder]] = {
            p: self._new_decoders(p, "switch") for p in lay.ports if p != 0
        }
        self.root_decoders: list[Decoder] = []
        for i, (base, w) in enumerate(lay.windows):
            d = Decoder(0, i, "root", base, w.size, len(w.host_bridges), w.granularity)
            d.targets = [lay.hb_uid[h] for h in w.host_bridges]
            self.root_decoders.append(d)
        self.endpoints: dict[int, Endpoint] = {}  # by serial
        self.regions: dict[int, Region] = {}
        # the memregion ida and each root decoder's reserved id
        self.rd_next: list[int] = []
        used: set[int] = set()
        for _ in self.root_decoders:
            i = self._ida(used)
            used.add(i)
            self.rd_next.append(i)
        self.memblocks: dict[int, str] = {}  # block id -> online | offline
        self.leaked: list[int] = []

    def _new_decoders(self, port: int, kind: str) -> list[Decoder]:
        return [Decoder(port, i, kind) for i in range(DECODERS_PER_PORT)]

    def _ida(self, extra: set[int] | None = None) -> int:
        used = set(self.regions) | set(self.rd_next) | (extra or set())
        i = 0
        while i in used:
            i += 1
        return i

    def _load(self) -> None:
        if not self.state_dir:
            return
        from ..state import read_json

        # checked like every state file (cxlctl.sim.state): no symlink, FIFO, huge or
        # deeply nested file is followed, waited on or parsed
        data = read_json(self.state_dir, TOPOLOGY_STATE, max_bytes=TOPOLOGY_MAX)
        if not data or data.get("platform") != self._fingerprint():
            return
        try:
            self.acpi_bound = bool(data["acpi_bound"])
            self.port_bound = {int(k): bool(v) for k, v in data["port_bound"].items()}
            self.port_commit = {int(k): int(v) for k, v in data["port_commit"].items()}
            self.switch_decoders = {
                int(k): [Decoder(**d) for d in v] for k, v in data["switch_decoders"].items()
            }
            self.root_decoders = [Decoder(**d) for d in data["root_decoders"]]
            self.endpoints = {}
            for k, v in data["endpoints"].items():
                ep = Endpoint(**{**v, "decoders": [Decoder(**d) for d in v["decoders"]]})
                self.endpoints[int(k)] = ep
            self.regions = {}
            for k, v in data["regions"].items():
                refs = {int(p): Ref(**r) for p, r in v["refs"].items()}
                targets = {int(p): n for p, n in v["targets"].items()}
                self.regions[int(k)] = Region(**{**v, "refs": refs, "targets": targets})
            self.rd_next = [int(x) for x in data["rd_next"]]
            self.memblocks = {int(k): str(v) for k, v in data["memblocks"].items()}
            self.leaked = [int(x) for x in data["leaked"]]
        except (KeyError, TypeError, ValueError):
            self._fresh()

    def _fingerprint(self) -> str:
        return self.layout.plat.describe() + json.dumps(sorted(self.name_of))

    def save(self) -> None:
        if not self.state_dir:
            return
        from ..state import write_json

        data = {
            "platform": self._fingerprint(),
            "acpi_bound": self.acpi_bound,
            "port_bound": self.port_bound,
            "port_commit": self.port_commit,
            "switch_decoders": {k: [asdict(d) for d in v] for k, v in self.switch_decoders.items()},
            "root_decoders": [asdict(d) for d in self.root_decoders],
            "endpoints": {k: asdict(v) for k, v in self.endpoints.items()},
            "regions": {k: asdict(v) for k, v in self.regions.items()},
            "rd_next": self.rd_next,
            "memblocks": self.memblocks,
            "leaked": self.leaked,
        }
        write_json(self.state_dir, TOPOLOGY_STATE, data)

    # -- presence ---------------------------------------------------------------------
    def port_present(self, pid: int) -> bool:
        """A port device exists (root0 while cxl_acpi is bound; a switch port while
        its host bridge port is bound)."""
        if not self.acpi_bound:
            return False
        sp = self.layout.ports[pid]
        if sp.kind == "switch":
            return (
                sp.parent is not None
                and self.port_present(sp.parent)
                and self.port_bound[sp.parent]
            )
        return True

    def port_active(self, pid: int) -> bool:
        return self.port_present(pid) and (pid == 0 or self.port_bound[pid])

    def sync(self) -> None:
        """Endpoints follow their memdev's cxl_mem binding and the ports above it."""
        changed = False
        used: set[int] | None = None  # the port ids taken, once per sync (not per port)
        eid = self.layout.first_dynamic - 1
        for dev in self.devices.values():
            serial = dev.config.serial
            slot = self.slot_of[serial]
            want = dev.bound and self.port_active(slot.port)
            have = serial in self.endpoints
            if want and not have:
                if used is None:
                    used = self._ports_used()
                # the lowest free id: every id below the last one given is taken
                eid = self._port_ida(used, eid + 1)
                used.add(eid)
                self.endpoints[serial] = Endpoint(
                    eid, serial, slot.port, decoders=self._new_decoders(eid, "endpoint")
                )
                changed = True
            elif have and not want:
                self._kill_endpoint(serial)
                changed = True
        if changed:
            self.save()

    def _ports_used(self) -> set[int]:
        return set(self.layout.ports) | {e.id for e in self.endpoints.values()}

    def _port_ida(self, used: set[int], start: int) -> int:
        """The kernel's port ida: the lowest id from START (at least the first dynamic
        one) that is not USED."""
        i = max(start, self.layout.first_dynamic)
        while i in used:
            i += 1
        return i

    def _kill_endpoint(self, serial: int) -> None:
        """cxl_decoder_kill_region() for each decoder, then the port goes."""
        ep = self.endpoints[serial]
        for d in ep.decoders:
            if d.region is not None:
                r = self.region_by_name(d.region)
                if r is not None:
                    if r.bound:
                        self.unbind_region(r)
                    self._detach(r, d, ep)
        del self.endpoints[serial]

    # -- lookups ----------------------------------------------------------------------
    def region_by_name(self, name: str) -> Region | None:
        m = re.fullmatch(r"region(\d+)", name)
        return self.regions.get(int(m.group(1))) if m else None

    def root_decoder(self, name: str) -> Decoder | None:
        for d in self.root_decoders:
            if d.name == name:
                return d
        return None

    def endpoint_of_decoder(self, name: str) -> tuple[Endpoint, Decoder] | None:
        for ep in self.endpoints.values():
            if not ep.bound:
                continue
            for d in ep.decoders:
                if d.name == name:
                    return ep, d
        return None

    def is_decoder(self, name: str) -> bool:
        if self.root_decoder(name) is not None or self.endpoint_of_decoder(name):
            return True
        return any(
            d.name == name
            for p, ds in self.switch_decoders.items()
            if self.port_active(p)
            for d in ds
        )

    def port_decoders(self, pid: int) -> list[Decoder]:
        return self.switch_decoders[pid]

    def commit_end(self, pid: int) -> int:
        for ep in self.endpoints.values():
            if ep.id == pid:
                return ep.commit_end
        return self.port_commit[pid]

    def _set_commit_end(self, pid: int, v: int) -> None:
        for ep in self.endpoints.values():
            if ep.id == pid:
                ep.commit_end = v
                return
        self.port_commit[pid] = v

    def _port_decoder_list(self, pid: int) -> list[Decoder]:
        for ep in self.endpoints.values():
            if ep.id == pid:
                return ep.decoders
        return self.switch_decoders[pid]

    def path_up(self, ep: Endpoint) -> list[int]:
        """Port ids from the endpoint up to the host bridge (not the root)."""
        out = [ep.id]
        pid: int | None = ep.parent
        while pid is not None and pid != 0:
            out.append(pid)
            pid = self.layout.ports[pid].parent
        return out

    def dport_below(self, ep: Endpoint, pid: int) -> int:
        """The dport id of port ``pid`` that leads to ``ep``."""
        slot = self.slot_of[ep.serial]
        if slot.port == pid:
            return slot.dport
        child = slot.port
        while self.layout.ports[child].parent != pid:
            child = self.layout.ports[child].parent  # type: ignore[assignment]
        path = self.layout.ports[child].parent_dport
        for i, p in self.layout.ports[pid].dports:
            if p == path:
                return i
        raise AssertionError("dport not found")

    def hb_of(self, ep: Endpoint) -> int:
        return self.slot_of[ep.serial].hb

    # -- root decoder: region creation and deletion -----------------------------------
    def next_region(self, rd: Decoder) -> str:
        return f"region{self.rd_next[rd.index]}"

    def create_region(self, rd: Decoder, mode: str, arg: str) -> None:
        m = re.match(r"region([+-]?\d+)", arg)
        if not m:
            raise err(errno.EINVAL, f"{arg!r}: expected regionN")
        rid = int(m.group(1))
        if rid != self.rd_next[rd.index]:
            raise err(errno.EBUSY, f"region{rid}: not the next region ({self.next_region(rd)})")
        self.regions[rid] = Region(rid, mode, rd.name, None)
        self.rd_next[rd.index] = self._ida({rid})

    def delete_region(self, rd: Decoder, arg: str) -> None:
        name = _streq(arg)
        if not re.fullmatch(r"region\d+", name):
            raise err(errno.EINVAL, f"{name!r}: not a region name")
        r = self.region_by_name(name)
        if r is None or r.rd != rd.name:
            raise err(errno.ENODEV, f"{name}: no such region under {rd.name}")
        if r.bound:
            self.unbind_region(r)
        for pos in sorted(r.targets, reverse=True):
            found = self.endpoint_of_decoder(r.targets[pos])
            if found:
                self._detach(r, found[1], found[0])
        del self.regions[r.id]
        # cxl_region_release(): a lower id goes back to the root decoder
        if r.id < self.rd_next[rd.index]:
            self.rd_next[rd.index] = r.id

    def max_extent(self, rd: Decoder) -> int:
        """The largest free extent of the window (cxl-cli's max_available_extent)."""
        used = sorted(
            (r.start, r.start + r.size)
            for r in self.regions.values()
            if r.rd == rd.name and r.start is not None
        )
        best, cur = 0, rd.start
        for s, e in used:
            best = max(best, s - cur)
            cur = max(cur, e)
        return max(best, rd.start + rd.size - cur)

    # -- region attributes -------------------------------------------------------------
    def set_ways(self, r: Region, arg: str) -> None:
        rd = self.root_decoder(r.rd)
        assert rd is not None
        val = _kstrtoull(arg)
        if not ways_ok(val):
            raise err(errno.EINVAL, f"invalid interleave ways {val} (1, 2, 3, 4, 6, 8, 12, 16)")
        if val % rd.iw or (val // rd.iw) & (val // rd.iw - 1):
            raise err(errno.EINVAL, f"invalid interleave: {val}")
        if r.state >= INTERLEAVE_ACTIVE:
            raise err(errno.EBUSY, f"{r.name}: interleave ways are fixed once the size is set")
        r.iw = val

    def set_granularity(self, r: Region, arg: str) -> None:
        rd = self.root_decoder(r.rd)
        assert rd is not None
        val = _kstrtoull(arg)
        if not gran_ok(val):
            raise err(errno.EINVAL, f"invalid interleave granularity {val} (256..16384, 2^n)")
        if rd.iw > 1 and val != rd.ig:
            raise err(errno.EINVAL, f"granularity {val} != root decoder granularity {rd.ig}")
        if r.state >= INTERLEAVE_ACTIVE:
            raise err(errno.EBUSY, f"{r.name}: granularity is fixed once the size is set")
        r.ig = val

    def set_uuid(self, r: Region, raw: bytes) -> None:
        if len(raw) != 37:
            raise err(errno.EINVAL, "a uuid is 36 characters plus a newline or NUL")
        text = raw[:36].decode("ascii", errors="replace")
        try:
            u = uuidlib.UUID(text)
        except ValueError:
            raise err(errno.EINVAL, f"not a uuid: {text!r}") from None
        if u.int == 0:
            raise err(errno.EINVAL, "the null uuid")
        s = str(u)
        if r.uuid == s:
            return
        if r.state >= ACTIVE:
            raise err(errno.EBUSY, f"{r.name}: uuid is fixed once all targets are attached")
        if any(o.uuid == s for o in self.regions.values() if o is not r):
            raise err(errno.EBUSY, f"{s}: duplicate uuid")
        r.uuid = s

    def set_size(self, r: Region, arg: str) -> None:
        val = _kstrtoull(arg)
        rd = self.root_decoder(r.rd)
        assert rd is not None
        if val == 0:
            if r.start is None:
                return
            if r.state >= ACTIVE:
                raise err(errno.EBUSY, f"{r.name}: targets attached, cannot free the HPA")
            r.start, r.size, r.state = None, 0, IDLE
            return
        if r.start is not None and r.size == val:
            return
        if r.start is not None:
            raise err(errno.EBUSY, f"{r.name}: set the size to 0 before changing it")
        if r.state >= INTERLEAVE_ACTIVE:
            raise err(errno.EBUSY, f"{r.name}: size already set")
        if not r.iw or not r.ig or (r.mode == "pmem" and r.uuid is None):
            raise err(errno.ENXIO, f"{r.name}: set ways, granularity (and uuid for pmem) first")
        if val % (SZ_256M * r.iw):
            raise err(errno.EINVAL, f"size {val:#x} is not a multiple of 256 MiB x {r.iw} ways")
        start = self._alloc_hpa(rd, val)
        if start is None:
            raise err(
                errno.ERANGE,
                f"HPA allocation error (-34) for size:{val:#018x} in CXL Window {rd.index} "
                f"[mem {rd.start:#x}-{rd.start + rd.size - 1:#x} flags 0x200]",
            )
        r.start, r.size, r.state = start, val, INTERLEAVE_ACTIVE

    def _alloc_hpa(self, rd: Decoder, size: int) -> int | None:
        used = sorted(
            (r.start, r.start + r.size)
            for r in self.regions.values()
            if r.rd == rd.name and r.start is not None
        )
        cur = rd.start
        for s, e in used:
            if s - cur >= size:
                return cur
            cur = max(cur, e)
        return cur if rd.start + rd.size - cur >= size else None

    # -- targets -----------------------------------------------------------------------
    def set_target(self, r: Region, pos: int, arg: str) -> None:
        name = _streq(arg)
        if name == "":
            d = r.targets.get(pos)
            if d is None:
                return
            found = self.endpoint_of_decoder(d)
            if found is None:  # the decoder went away: just forget it
                del r.targets[pos]
                return
            self._detach(r, found[1], found[0])
            return
        found = self.endpoint_of_decoder(name)
        if found is None:
            if self.is_decoder(name):
                raise err(errno.EINVAL, f"{name}: not an endpoint decoder")
            raise err(errno.ENODEV, f"{name}: no such device")
        self._attach(r, pos, *found)

    def _attach(self, r: Region, pos: int, ep: Endpoint, d: Decoder) -> None:
        code = {"none": 0, "ram": 1, "pmem": 2}
        if d.mode != r.mode:
            raise err(
                errno.EINVAL, f"{d.name} region mode: {code[r.mode]} mismatch: {code[d.mode]}"
            )
        if r.state > INTERLEAVE_ACTIVE:
            raise err(errno.EBUSY, f"{r.name}: region already active")
        if r.state < INTERLEAVE_ACTIVE:
            raise err(errno.ENXIO, f"{r.name}: interleave config missing")
        if len(r.targets) >= r.iw:
            raise err(errno.EINVAL, f"{r.name}: region already has {len(r.targets)} endpoints")
        rd = self.root_decoder(r.rd)
        assert rd is not None
        hb_uid = self.layout.hb_uid[self.hb_of(ep)]
        mem = self.name_of[ep.serial]
        if hb_uid not in rd.targets:
            raise err(errno.ENXIO, f"{mem}:{d.name} invalid target for {r.name}")
        if rd.targets[pos % rd.iw] != hb_uid:
            raise err(errno.ENXIO, f"{mem}:{d.name} invalid target position for {r.name}")
        if d.dpa_start is None:
            raise err(errno.ENXIO, f"{mem}:{d.name}: missing DPA allocation.")
        if d.dpa_size * r.iw != r.size:
            raise err(
                errno.EINVAL,
                f"{mem}:{d.name}: decoder-size-{d.dpa_size:#x} * ways-{r.iw} != "
                f"region-size-{r.size:#x}",
            )
        if pos in r.targets:
            raise err(
                errno.EBUSY, f"{r.name}: position {pos} already filled: region already active"
            )
        if d.region is not None:
            raise err(errno.EBUSY, f"{mem}:{d.name} already attached to {d.region}")
        assert r.start is not None
        # cxl_port_attach_region() from the endpoint up
        added: list[int] = []
        for pid in self.path_up(ep):
            ref = r.refs.get(pid)
            if ref is not None:
                ref.eps.append(d.name)
                continue
            for other in self.regions.values():
                if other is r or pid not in other.refs or other.start is None:
                    continue
                if other.start >= r.start:
                    self._undo_attach(r, d, added)
                    port = self._port_name(pid)
                    raise err(
                        errno.EBUSY,
                        f"{port}: HPA order violation {other.name}:[mem {other.start:#x}-"
                        f"{other.start + other.size - 1:#x} flags 0x200] vs [mem "
                        f"{r.start:#x}-{r.start + r.size - 1:#x} flags 0x200]",
                    )
            if pid == ep.id:
                idx = d.index
            else:
                idx = -1
                for cand in self.switch_decoders[pid]:  # match_free_decoder: ordered
                    if cand.region is None:
                        idx = cand.index
                        break
                if idx < 0:
                    self._undo_attach(r, d, added)
                    raise err(errno.EBUSY, f"{self._port_name(pid)}: no free decoder")
                self.switch_decoders[pid][idx].region = r.name
            r.refs[pid] = Ref(idx, [d.name])
            added.append(pid)
        d.region = r.name
        d.pos = pos
        r.targets[pos] = d.name
        d.iw, d.ig = r.iw, r.ig
        d.start, d.size = r.start, r.size
        if len(r.targets) == r.iw:
            try:
                self._setup_targets(r)
            except OSError:
                self._detach(r, d, ep)
                raise
            r.state = ACTIVE

    def _undo_attach(self, r: Region, d: Decoder, added: list[int]) -> None:
        for pid in added:
            ref = r.refs[pid]
            ref.eps.remove(d.name)
            if not ref.eps:
                self._free_ref(r, pid)

    def _free_ref(self, r: Region, pid: int) -> None:
        ref = r.refs.pop(pid)
        dec = self._port_decoder_list(pid)[ref.decoder]
        if dec.region == r.name:
            dec.region = None

    def _port_name(self, pid: int) -> str:
        for ep in self.endpoints.values():
            if ep.id == pid:
                return f"endpoint{pid}"
        return f"port{pid}"

    def _setup_targets(self, r: Region) -> None:
        """cxl_region_setup_targets(): program each switch decoder's target list,
        ways and granularity from the endpoints' positions."""
        rd = self.root_decoder(r.rd)
        assert rd is not None
        assert r.start is not None
        eps = {pos: self.endpoint_of_decoder(n) for pos, n in r.targets.items()}
        # ports from the top: a port's parent ways are the product above it
        levels: dict[int, list[tuple[int, Endpoint]]] = {}
        for pos, found in sorted(eps.items()):
            assert found is not None
            for pid in self.path_up(found[0])[1:]:
                levels.setdefault(pid, []).append((pos, found[0]))
        depth = {pid: self._depth(pid) for pid in levels}
        acc: dict[int, tuple[int, int, int]] = {}  # port -> (ig, iw, ways at and above)
        for pid in sorted(levels, key=lambda p: depth[p]):
            sp = self.layout.ports[pid]
            if sp.parent == 0:
                pig, piw, above = r.ig, rd.iw, rd.iw
            else:
                assert sp.parent is not None
                pig, piw, above = acc[sp.parent]
            members = levels[pid]
            dports: list[int] = []
            for _pos, ep in members:
                dp = self.dport_below(ep, pid)
                if dp not in dports:
                    dports.append(dp)
            iw = len(dports)
            order: dict[int, int] = {}
            for pos, ep in members:
                dp = self.dport_below(ep, pid)
                if order.setdefault((pos // above) % iw, dp) != dp:
                    raise err(
                        errno.ENXIO,
                        f"{self._port_name(pid)}: {self.name_of[ep.serial]} at position {pos} "
                        f"does not fit the interleave below {sp.uport.rsplit('/', 1)[-1]}",
                    )
            if len(order) != iw:
                raise err(errno.ENXIO, f"{self._port_name(pid)}: inconsistent interleave")
            dec = self.switch_decoders[pid][r.refs[pid].decoder]
            dec.targets = [order[i] for i in range(iw)]
            dec.iw = iw
            # granularity: a multiple of the parent's, the multiplier its ways
            dec.ig = pig * piw
            dec.start, dec.size = r.start, r.size
            acc[pid] = (dec.ig, dec.iw, above * iw)

    def _depth(self, pid: int) -> int:
        n = 0
        p: int | None = pid
        while p is not None and p != 0:
            n += 1
            p = self.layout.ports[p].parent
        return n

    def _detach(self, r: Region, d: Decoder, ep: Endpoint) -> None:
        """cxl_region_detach()."""
        if r.state > ACTIVE:
            self._decode_reset(r)
            r.state = ACTIVE
        for pid in self.path_up(ep):
            ref = r.refs.get(pid)
            if ref is None:
                continue
            if d.name in ref.eps:
                ref.eps.remove(d.name)
            if not ref.eps:
                self._free_ref(r, pid)
        if r.state == ACTIVE:
            r.state = INTERLEAVE_ACTIVE
            for ref_pid, ref in r.refs.items():  # cxl_region_teardown_targets()
                if ref_pid in self.switch_decoders and self.layout.ports[ref_pid].kind != "root":
                    dec = self.switch_decoders[ref_pid][ref.decoder]
                    dec.start, dec.size = 0, 0
        r.targets.pop(d.pos, None)
        d.region = None
        d.pos = -1
        d.start, d.size = 0, 0
        if r.bound:
            self.unbind_region(r)

    # -- commit --------------------------------------------------------------------------
    def set_commit(self, r: Region, arg: str) -> None:
        on = _kstrtobool(_streq(arg))
        if on and r.state >= COMMIT:
            return
        if not on and r.state < COMMIT:
            return
        if on and r.state != ACTIVE:
            raise err(errno.ENXIO, f"{r.name}: not all targets attached")
        if on:
            self._decode_commit(r)
            r.state = COMMIT
        else:
            if r.bound:
                self.unbind_region(r)
            self._decode_reset(r)
            r.state = ACTIVE

    def _chain(self, r: Region, pos: int) -> list[tuple[int, Decoder]]:
        found = self.endpoint_of_decoder(r.targets[pos])
        assert found is not None
        ep, d = found
        out = [(ep.id, d)]
        for pid in self.path_up(ep)[1:]:
            out.append((pid, self.switch_decoders[pid][r.refs[pid].decoder]))
        return out

    def _decode_commit(self, r: Region) -> None:
        done: list[tuple[int, Decoder]] = []
        for pos in sorted(r.targets):
            for pid, dec in self._chain(r, pos):  # bottom up
                if dec.enabled:
                    continue
                if self.commit_end(pid) + 1 != dec.index:
                    for p2, d2 in reversed(done):
                        self._reset_decoder(p2, d2)
                    raise err(
                        errno.EBUSY,
                        f"{dec.name}: out of order commit, expected decoder{pid}."
                        f"{self.commit_end(pid) + 1}",
                    )
                dec.enabled = True
                self._set_commit_end(pid, dec.index)
                done.append((pid, dec))

    def _decode_reset(self, r: Region) -> None:
        for pos in sorted(r.targets, reverse=True):
            chain = self._chain(r, pos)
            for pid, dec in reversed(chain[1:]):  # top down
                self._reset_decoder(pid, dec)
            self._reset_decoder(*chain[0])

    def _reset_decoder(self, pid: int, dec: Decoder) -> None:
        if not dec.enabled:
            return
        if self.commit_end(pid) == dec.index:
            ce = self.commit_end(pid) - 1
            decs = self._port_decoder_list(pid)
            while ce > -1 and not decs[ce].enabled:
                ce -= 1
            self._set_commit_end(pid, ce)
        dec.enabled = False

    # -- binding -------------------------------------------------------------------------
    def bind_region(self, r: Region) -> None:
        if r.bound:
            raise err(errno.EBUSY, f"{r.name}: already bound")
        if r.state != COMMIT:
            raise err(errno.ENXIO, f"{r.name}: config state: {min(r.state, 2)}, probe: -6")
        r.bound = True
        if r.mode == "ram" and r.start is not None:
            for b in range(r.start // BLOCK, (r.start + r.size) // BLOCK):
                self.memblocks[b] = "online"  # kmem, auto_online_blocks=online
                if b in self.leaked:
                    self.leaked.remove(b)

    def unbind_region(self, r: Region) -> None:
        if not r.bound:
            raise err(errno.ENODEV, f"{r.name}: not bound")
        r.bound = False
        self._unbind_children(r)

    def _unbind_children(self, r: Region) -> None:
        if r.mode == "ram" and r.start is not None:
            for b in range(r.start // BLOCK, (r.start + r.size) // BLOCK):
                if self.memblocks.get(b) == "online":
                    # kmem cannot hot-remove online memory: it stays until a reboot
                    if b not in self.leaked:
                        self.leaked.append(b)
                else:
                    self.memblocks.pop(b, None)

    def region_memblocks(self, r: Region) -> list[int]:
        if r.mode != "ram" or r.start is None or not r.bound:
            return []
        return [
            b for b in range(r.start // BLOCK, (r.start + r.size) // BLOCK) if b in self.memblocks
        ]

    def set_memblock(self, b: int, arg: str) -> None:
        s = _streq(arg)
        if s == "offline":
            self.memblocks[b] = "offline"
            if b in self.leaked:
                self.leaked.remove(b)
                self.memblocks.pop(b)
        elif s in ("online", "online_kernel", "online_movable"):
            self.memblocks[b] = "online"
        else:
            raise err(errno.EINVAL, f"{s!r}: online, online_kernel, online_movable or offline")

    # -- endpoint decoders: DPA -----------------------------------------------------------
    def set_mode(self, ep: Endpoint, d: Decoder, arg: str) -> None:
        s = _streq(arg)
        if s not in ("ram", "pmem"):
            raise err(errno.EINVAL, f"{s!r}: mode is ram or pmem")
        if d.enabled:
            raise err(errno.EBUSY, f"{d.name}: decoder enabled")
        dev = self.devices[self.name_of[ep.serial]]
        cap = dev.config.volatile_bytes if s == "ram" else dev.config.persistent_bytes
        if not cap:
            raise err(errno.ENXIO, f"{d.name}: no available {s} capacity")
        if d.mode == s:
            return
        if d.dpa_start is not None:
            raise err(errno.EBUSY, f"{d.name}: free the DPA before changing the mode")
        d.mode = s

    def set_dpa_size(self, ep: Endpoint, d: Decoder, arg: str) -> None:
        size = _kstrtoull(arg)
        if size % SZ_256M:
            raise err(errno.EINVAL, f"{d.name}: dpa_size {size:#x} is not 256 MiB aligned")
        if d.dpa_start is not None and d.dpa_size == size:
            return
        self._dpa_free(ep, d)
        if size == 0:
            return
        self._dpa_alloc(ep, d, size)

    def _hdm_end(self, ep: Endpoint) -> int:
        end = -1
        for d in ep.decoders:
            if d.dpa_start is not None:
                end = d.index
        return end

    def _dpa_free(self, ep: Endpoint, d: Decoder) -> None:
        if d.dpa_start is None:
            return
        if d.region is not None:
            raise err(errno.EBUSY, f"{d.name}: decoder assigned to: {d.region}")
        if d.enabled:
            raise err(errno.EBUSY, f"{d.name}: decoder enabled")
        if d.index != self._hdm_end(ep):
            raise err(errno.EBUSY, f"{d.name}: expected decoder{ep.id}.{self._hdm_end(ep)}")
        d.dpa_start, d.dpa_size = None, 0

    def _dpa_alloc(self, ep: Endpoint, d: Decoder, size: int) -> None:
        if d.region is not None:
            raise err(errno.EBUSY, f"{d.name}: decoder attached to {d.region}")
        if d.enabled:
            raise err(errno.EBUSY, f"{d.name}: decoder enabled")
        cfg = self.devices[self.name_of[ep.serial]].config
        ram_end = cfg.volatile_bytes
        pmem_end = ram_end + cfg.persistent_bytes
        ram_used = [
            x.dpa_start + x.dpa_size
            for x in ep.decoders
            if x.dpa_start is not None and x.mode == "ram"
        ]
        pmem_used = [
            x.dpa_start + x.dpa_size
            for x in ep.decoders
            if x.dpa_start is not None and x.mode == "pmem"
        ]
        if d.mode == "ram":
            start = max(ram_used, default=0)
            avail = ram_end - start
        elif d.mode == "pmem":
            start = max(pmem_used, default=ram_end)
            avail = pmem_end - start
        else:
            raise err(errno.EINVAL, f"{d.name}: mode not set")
        if size > avail:
            raise err(
                errno.ENOSPC,
                f"{d.name}: {size:#018x} exceeds available {d.mode} capacity: {avail:#018x}",
            )
        if self._hdm_end(ep) + 1 != d.index:
            raise err(errno.EBUSY, f"{d.name}: expected decoder{ep.id}.{self._hdm_end(ep) + 1}")
        d.dpa_start, d.dpa_size = start, size

    # -- drivers ---------------------------------------------------------------------------
    def bind(self, driver: str, arg: str) -> None:
        name = _streq(arg)
        if driver == "cxl_region":
            r = self.region_by_name(name)
            if r is None:
                raise err(errno.ENODEV, f"{name}: no such region")
            self.bind_region(r)
        elif driver == "cxl_mem":
            dev = self.devices.get(name)
            if dev is None:
                raise err(errno.ENODEV, f"{name}: not a memdev")
            if dev.bound:
                raise err(errno.EBUSY, f"{name}: already bound")
            dev.bind()
        elif driver == "cxl_port":
            pid = self._port_id(name)
            if pid is None:
                raise err(errno.ENODEV, f"{name}: not a port")
            if name.startswith("endpoint"):
                ep = next(e for e in self.endpoints.values() if e.id == pid)
                if ep.bound:
                    raise err(errno.EBUSY, f"{name}: already bound")
                ep.bound = True
                ep.decoders = self._new_decoders(ep.id, "endpoint")
                ep.commit_end = -1
                return
            if self.port_bound[pid]:
                raise err(errno.EBUSY, f"{name}: already bound")
            self.port_bound[pid] = True
            self.switch_decoders[pid] = self._new_decoders(pid, "switch")
            self.port_commit[pid] = -1
        else:
            raise err(errno.ENODEV, f"{driver}: does not drive {name}")

    def unbind(self, driver: str, arg: str) -> None:
        name = _streq(arg)
        if driver == "cxl_region":
            r = self.region_by_name(name)
            if r is None or not r.bound:
                raise err(errno.ENODEV, f"{name}: not bound to cxl_region")
            self.unbind_region(r)
        elif driver == "cxl_mem":
            dev = self.devices.get(name)
            if dev is None or not dev.bound:
                raise err(errno.ENODEV, f"{name}: not bound to cxl_mem")
            dev.unbind()
        elif driver == "cxl_port":
            pid = self._port_id(name)
            if pid is None:
                raise err(errno.ENODEV, f"{name}: not bound to cxl_port")
            if name.startswith("endpoint"):
                ep = next(e for e in self.endpoints.values() if e.id == pid)
                if not ep.bound:
                    raise err(errno.ENODEV, f"{name}: not bound to cxl_port")
                for d in ep.decoders:
                    if d.region is not None:
                        r = self.region_by_name(d.region)
                        if r is not None:
                            self._detach(r, d, ep)
                ep.bound = False
                ep.decoders = []
                return
            if not self.port_bound[pid]:
                raise err(errno.ENODEV, f"{name}: not bound to cxl_port")
            self._port_down(pid)
        else:
            raise err(errno.ENODEV, f"{driver}: does not drive {name}")

    def _port_down(self, pid: int) -> None:
        """Unbinding a port removes everything below it; the memdevs below lose cxl_mem."""
        for serial, ep in list(self.endpoints.items()):
            if pid in self.path_up(ep):
                self._kill_endpoint(serial)
                dev = self.devices[self.name_of[serial]]
                if dev.bound:
                    dev.unbind()
        for r in self.regions.values():  # what is left of its references
            for p in [p for p in r.refs if p == pid or self._below(p, pid)]:
                r.refs.pop(p)
        self.port_bound[pid] = False
        for p, sp in self.layout.ports.items():
            if sp.kind == "switch" and self._below(p, pid):
                self.port_bound[p] = True
                self.switch_decoders[p] = self._new_decoders(p, "switch")
                self.port_commit[p] = -1
        self.switch_decoders[pid] = self._new_decoders(pid, "switch")
        self.port_commit[pid] = -1

    def _below(self, p: int, top: int) -> bool:
        q = self.layout.ports[p].parent if p in self.layout.ports else None
        while q is not None:
            if q == top:
                return True
            q = self.layout.ports[q].parent
        return False

    def _port_id(self, name: str) -> int | None:
        m = re.fullmatch(r"(port|endpoint)(\d+)", name)
        if not m:
            return None
        pid = int(m.group(2))
        if m.group(1) == "endpoint":
            return pid if any(e.id == pid for e in self.endpoints.values()) else None
        return pid if pid in self.layout.ports and pid != 0 and self.port_present(pid) else None

    def acpi(self, bind: bool, arg: str) -> None:
        if _streq(arg) != "ACPI0017:00":
            raise err(errno.ENODEV, f"{_streq(arg)}: not an ACPI0017 device")
        if bind == self.acpi_bound:
            raise err(errno.EBUSY if bind else errno.ENODEV, "ACPI0017:00: already in that state")
        if not bind:
            for serial in list(self.endpoints):
                self._kill_endpoint(serial)
            for dev in self.devices.values():
                if dev.bound:
                    dev.unbind()
            mem, leaked = dict(self.memblocks), list(self.leaked)
            self._fresh()
            self.memblocks = {b: s for b, s in mem.items() if b in leaked}
            self.leaked = leaked
            self.acpi_bound = False
        else:
            self.acpi_bound = True
            for dev in self.devices.values():  # the memdevs probe again
                if not dev.bound:
                    dev.bind()
