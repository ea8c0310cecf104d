"""Region, DPA, port and bus operations: libcxl's sysfs writes, in libcxl's order.

Every operation takes the sysfs seam (:class:`cxlctl.sysfs.Sysfs`: the kernel's
``/sys`` or the simulator's tree) and writes exactly what cxl-cli 81 writes
(``../shared/reference/topology.md`` sections 5-7), in the same byte forms
(numbers ``"256\\n\\0"``, names ``"region0\\0"``, an empty target ``"\\0"``).  What
the kernel refuses comes back as a :class:`TopologyError` (or
:class:`TopologyBusy`) carrying the errno and a message that names the rule.

Differences from cxl-cli, on purpose (docs/topology.md): the request is validated
against the topology before anything is written (size multiple, free capacity,
free decoders, HPA space, target order); a failed create-region also frees the DPA
it reserved; ``destroy-region`` also works on a region whose target decoders went
away; ``reserve-dpa``/``free-dpa`` have no ``ram`` default; unknown names are
errors.  Nothing here prints.
"""

from __future__ import annotations

import contextlib
import errno
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .change import midway, stopped
from .errors import CxlError, DeviceBusy, DeviceNotFound, InvalidRequest, PermissionDenied
from .sysfs import Sysfs, text
from .topology import Decoder, Memdev, Port, Region, Topology, read_topology

if TYPE_CHECKING:
    from .change import Recorder

SZ_256M = 256 << 20
DRIVERS = "bus/cxl/drivers"


class TopologyError(InvalidRequest):
    """The kernel (or our check on its behalf) refused a topology change."""

    def __init__(self, message: str, err: int, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = err


class TopologyBusy(DeviceBusy):
    def __init__(self, message: str, err: int = errno.EBUSY, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = err


class TopologyNotFound(DeviceNotFound):
    def __init__(self, message: str, err: int = errno.ENODEV, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = err


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:#x}"


def _error(err: int, message: str, hint: str | None = None) -> CxlError:
    if err in (errno.EACCES, errno.EPERM):
        return PermissionDenied(message, hint=hint or "run as root")
    if err == errno.EBUSY:
        return TopologyBusy(message, err, hint=hint)
    if err == errno.ENODEV:
        return TopologyNotFound(message, err, hint=hint)
    return TopologyError(message, err, hint=hint)


#: Write = one write(2) of these bytes to this path; the rule names the errno's meaning.
Rule = Callable[[int], "tuple[str, str | None] | None"]


class Writer:
    """Writes to the seam, raising the rule behind a refused write."""

    def __init__(self, fs: Sysfs) -> None:
        self.fs = fs
        #: what each write that went through did, in order (for a report midway)
        self.done: list[str] = []

    def write(self, path: str, data: bytes, rule: Rule | None = None, what: str = "") -> None:
        try:
            self.fs.write(path, data)
            self.done.append(what or "/".join(path.rsplit("/", 2)[-2:]))
        except OSError as e:
            err = e.errno or errno.EIO
            explained = rule(err) if rule else None
            short = path.rsplit("/", 2)
            where = "/".join(short[-2:])
            if explained is None:
                raise _error(
                    err, f"{what or where}: {e.strerror or errno.errorcode.get(err)}"
                ) from e
            msg, hint = explained
            raise _error(
                err, f"{what or where}: {msg} ({errno.errorcode.get(err, err)})", hint
            ) from e

    def flush(self) -> None:
        """libcxl writes 1 to bus/cxl/flush before it enumerates (a barrier for
        asynchronous port removal)."""
        with contextlib.suppress(OSError):
            self.fs.write("bus/cxl/flush", b"1\n\0")


class DryRunSysfs:
    """A :class:`~cxlctl.sysfs.Sysfs` that reads through and records writes instead
    of making them (``--dry-run``); ``bus/cxl/flush`` is left out of the plan."""

    def __init__(self, fs: Sysfs, recorder: Recorder | None = None) -> None:
        self.fs = fs
        self.planned: list[tuple[str, bytes]] = []
        #: the change contract's plan (cxlctl.change): each write as /sys/PATH
        self.recorder = recorder

    def read(self, path: str) -> bytes:
        return self.fs.read(path)

    def write(self, path: str, data: bytes) -> None:
        if path != "bus/cxl/flush":
            self.planned.append((path, bytes(data)))
            if self.recorder is not None:
                self.recorder.write(f"/sys/{path}", bytes(data))

    def listdir(self, path: str) -> list[str]:
        return self.fs.listdir(path)

    def realpath(self, path: str) -> str:
        return self.fs.realpath(path)

    def islink(self, path: str) -> bool:
        return self.fs.islink(path)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def shown(self) -> list[tuple[str, str]]:
        """(path, the value as the shell would type it)."""
        return [(p, repr(d.decode("utf-8", errors="backslashreplace"))) for p, d in self.planned]


def num(n: int, hexa: bool = False) -> bytes:
    return (f"{n:#x}" if hexa and n else str(n)).encode() + b"\n\0"


def name(s: str) -> bytes:
    return s.encode() + b"\0"


# --- lookups ---------------------------------------------------------------------------


def memdev_of(topo: Topology, spec: str) -> Memdev:
    s = spec.strip().removeprefix("/dev/cxl/")
    m = topo.memdev(s) or (topo.memdev(f"mem{s}") if s.isdigit() else None)
    if m is None:
        raise TopologyNotFound(
            f"{spec}: no such memdev",
            hint=f"memdevs: {', '.join(x.name for x in topo.memdevs) or 'none'}",
        )
    return m


def endpoint_of(topo: Topology, m: Memdev) -> Port:
    ep = topo.endpoint_of(m)
    if ep is None or not ep.enabled or not m.enabled:
        raise TopologyError(
            f"{m.name}: not enabled (no endpoint port)",
            errno.ENXIO,
            hint=f"cxlctl enable-memdev {m.name}",
        )
    return ep


def free_capacity(topo: Topology, m: Memdev, mode: str) -> int:
    """Unreserved DPA of ``mode`` on the memdev (its partition minus the endpoint
    decoders' reservations)."""
    ep = topo.endpoint_of(m)
    total = m.ram_size if mode == "ram" else m.pmem_size
    if ep is None:
        return total
    used = sum(d.dpa_size or 0 for d in ep.decoders if d.mode == mode and d.dpa_size)
    return max(total - used, 0)


def pick_decoder(ep: Port) -> Decoder | None:
    """libcxl's cxl_memdev_find_decoder(): the first endpoint decoder without an HPA
    range, among those the kernel lets take DPA (it allocates in decoder order: the
    last reservation, to reuse it, or the one after it)."""
    last = max((d.index for d in ep.decoders if d.dpa_size), default=-1)
    for d in ep.decoders:
        if d.size or d.region:
            continue
        if (d.dpa_size and d.index == last) or (not d.dpa_size and d.index == last + 1):
            return d
    return None


def _free_for(topo: Topology, m: Memdev, d: Decoder, mode: str) -> int:
    """Free capacity for a region target, counting a reservation being reused."""
    reuse = d.dpa_size or 0 if d.mode == mode else 0
    return free_capacity(topo, m, mode) + reuse


# --- create-region ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What create_region will write: the checked and ordered request."""

    root_decoder: Decoder
    mode: str
    ways: int
    granularity: int
    size: int
    uuid: str | None
    targets: tuple[tuple[Memdev, Decoder], ...]  # in position order
    reordered: bool


def plan_region(
    topo: Topology,
    *,
    root_decoder: str,
    mode: str,
    targets: Sequence[str],
    ways: int | None = None,
    granularity: int | None = None,
    size: int | None = None,
    uuid: str | None = None,
) -> Plan:
    """Check a create-region request against the topology (nothing is written)."""
    rd = topo.decoder(root_decoder)
    if rd is None or rd.kind != "root":
        raise TopologyNotFound(
            f"{root_decoder}: not a root decoder",
            errno.ENXIO,
            hint="root decoders: "
            + (", ".join(d.name for d in topo.decoders() if d.kind == "root") or "none"),
        )
    if mode not in ("ram", "pmem"):
        raise TopologyError(f"region type {mode!r}: ram or pmem", errno.EINVAL)
    if mode == "ram" and not rd.volatile_capable:
        raise TopologyError(f"{rd.name} is not volatile capable (CFMWS without ram)", errno.EINVAL)
    if mode == "pmem" and not rd.pmem_capable:
        raise TopologyError(f"{rd.name} is not pmem capable (CFMWS without pmem)", errno.EINVAL)
    if mode == "ram" and uuid is not None:
        raise TopologyError("a ram region has no uuid (-U is for pmem)", errno.EINVAL)
    if not targets:
        raise TopologyError("no target memdevs or endpoint decoders given", errno.EINVAL)
    chosen: list[tuple[Memdev, Decoder]] = []
    for spec in targets:
        d = topo.decoder(spec)
        if d is not None:
            if d.kind != "endpoint":
                raise TopologyError(f"{spec}: not an endpoint decoder", errno.EINVAL)
            m = topo.memdev_of_decoder(d)
            if m is None:
                raise TopologyNotFound(f"{spec}: no memdev behind it")
            if d.size or d.region:
                raise TopologyBusy(f"{spec}: already in {d.region or 'a region'}")
        else:
            m = memdev_of(topo, spec)
            ep = endpoint_of(topo, m)
            found = pick_decoder(ep)
            if found is None:
                raise TopologyBusy(
                    f"{m.name}: no free endpoint decoder on {ep.name}",
                    hint="every decoder is in a region; destroy one first",
                )
            d = found
        if any(x[0].name == m.name for x in chosen):
            raise TopologyError(f"{m.name} given twice", errno.EINVAL)
        chosen.append((m, d))
    n = ways if ways is not None else len(chosen)
    if n != len(chosen):
        raise TopologyError(
            f"interleave ways {n} but {len(chosen)} target(s) given: give one per way",
            errno.EINVAL,
        )
    if n not in (1, 2, 3, 4, 6, 8, 12, 16):
        raise TopologyError(f"interleave ways {n}: 1, 2, 3, 4, 6, 8, 12 or 16", errno.EINVAL)
    root_iw = rd.interleave_ways or 1
    if n % root_iw or ((n // root_iw) & (n // root_iw - 1)):
        raise TopologyError(
            f"interleave ways {n} must be a power-of-2 multiple of {rd.name}'s {root_iw}",
            errno.EINVAL,
        )
    g = granularity if granularity is not None else (rd.interleave_granularity or 256)
    if g not in tuple(256 << i for i in range(7)):
        raise TopologyError(f"granularity {g}: a power of 2 from 256 to 16384", errno.EINVAL)
    if root_iw > 1 and g != rd.interleave_granularity:
        raise TopologyError(
            f"granularity {g}: {rd.name} interleaves {root_iw} host bridges, so the region "
            f"must use its granularity {rd.interleave_granularity}",
            errno.EINVAL,
        )
    ordered, reordered = _order(topo, rd, chosen)
    for m, _d in ordered:
        if not (m.ram_size if mode == "ram" else m.pmem_size):
            raise TopologyError(f"{m.name} has no {mode} capacity", errno.ENXIO)
    free = min(_free_for(topo, m, d, mode) for m, d in ordered)
    extent = rd.max_available_extent or 0
    if size is None:
        if not free:
            raise TopologyError(
                f"no free {mode} capacity on "
                + ", ".join(m.name for m, d in ordered if not _free_for(topo, m, d, mode)),
                errno.ENOSPC,
                hint="free-dpa releases a reservation",
            )
        size = (free // SZ_256M) * SZ_256M * n
        if size > extent:
            size = extent // (SZ_256M * n) * SZ_256M * n
    unit = SZ_256M * n
    if size <= 0 or size % unit:
        raise TopologyError(
            f"size {_size(size)}: a region's size is a multiple of 256 MiB x {n} ways "
            f"({_size(unit)})",
            errno.EINVAL,
        )
    if size > extent:
        raise TopologyError(
            f"size {_size(size)} exceeds the largest free HPA extent of {rd.name} "
            f"({_size(extent)})",
            errno.ENOSPC,
        )
    per = size // n
    short = [m.name for m, d in ordered if _free_for(topo, m, d, mode) < per]
    if short:
        raise TopologyError(
            f"{', '.join(short)}: less than {_size(per)} of free {mode} capacity (size / ways)",
            errno.ENOSPC,
        )
    if uuid is not None:
        try:
            uuid = str(uuidlib.UUID(uuid))
        except ValueError:
            raise TopologyError(f"{uuid!r}: not a UUID", errno.EINVAL) from None
        if uuidlib.UUID(uuid).int == 0:
            raise TopologyError("the null UUID cannot name a region", errno.EINVAL)
    return Plan(rd, mode, n, g, size, uuid, tuple(ordered), reordered)


def _order(
    topo: Topology, rd: Decoder, chosen: list[tuple[Memdev, Decoder]]
) -> tuple[list[tuple[Memdev, Decoder]], bool]:
    """Positions the kernel accepts: position p must be below host bridge
    ``rd.targets[p % root ways]`` (cxl_hb_modulo).  The given order is kept when it
    works (as cxl-cli); otherwise the first fitting target is taken per position."""
    hb_ids = [t.id for t in rd.targets]

    def hb_of(m: Memdev) -> int | None:
        ep = topo.endpoint_of(m)
        if ep is None:
            return None
        for p in topo.ancestors(ep):
            if p.depth == 1:  # a host bridge port: its uport is the host bridge
                root = topo.port(p.parent or "")
                if root is not None:
                    for dp in root.dports:
                        if dp.name == p.host:
                            return dp.id
        return None

    hbs = [hb_of(m) for m, _ in chosen]
    for (m, _), h in zip(chosen, hbs, strict=True):
        if h not in hb_ids:
            raise TopologyError(
                f"{m.name} is not below a host bridge of {rd.name} (targets "
                f"{', '.join(t.name or str(t.id) for t in rd.targets)})",
                errno.ENXIO,
            )
    iw = len(hb_ids)

    def fits(order: list[int]) -> bool:
        return all(hbs[i] == hb_ids[p % iw] for p, i in enumerate(order))

    given = list(range(len(chosen)))
    if fits(given):
        return chosen, False
    left = list(given)
    order: list[int] = []
    for p in range(len(chosen)):
        want = hb_ids[p % iw]
        pick = next((i for i in left if hbs[i] == want), None)
        if pick is None:
            raise TopologyError(
                f"no target order fits {rd.name}: position {p} needs a memdev below host "
                f"bridge id {want:#x} (position modulo {iw} ways picks the host bridge)",
                errno.ENXIO,
            )
        order.append(pick)
        left.remove(pick)
    return [chosen[i] for i in order], True


def _region_rules(plan: Plan) -> dict[str, Rule]:
    n = plan.ways

    def size_rule(e: int) -> tuple[str, str | None] | None:
        if e == errno.EINVAL:
            return (f"size must be a multiple of 256 MiB x {n} ways", None)
        if e == errno.ERANGE:
            return (f"no free HPA range of {_size(plan.size)} in {plan.root_decoder.name}", None)
        if e == errno.EBUSY:
            return ("the region already has a different size", None)
        if e == errno.ENXIO:
            return ("set ways, granularity (and uuid for pmem) before the size", None)
        return None

    def target_rule(e: int) -> tuple[str, str | None] | None:
        if e == errno.EINVAL:
            return ("decoder mode mismatch, or its DPA size x ways != region size", None)
        if e == errno.ENXIO:
            return (
                "target not usable: no DPA reserved, or the wrong host bridge for this position",
                None,
            )
        if e == errno.EBUSY:
            return (
                "target position busy, or HPA order: a host-bridge decoder above a region at "
                "a higher address cannot take a lower one",
                "destroy the regions above it first (host-bridge decoders commit in order)",
            )
        return None

    def dpa_rule(e: int) -> tuple[str, str | None] | None:
        if e == errno.ENOSPC:
            return (f"not enough free {plan.mode} capacity", None)
        if e == errno.EBUSY:
            return ("DPA is allocated in decoder order, and not while in a region", None)
        if e == errno.EINVAL:
            return ("decoder mode not set, or the size is not 256 MiB aligned", None)
        return None

    def mode_rule(e: int) -> tuple[str, str | None] | None:
        if e == errno.ENXIO:
            return (f"the device has no {plan.mode} capacity", None)
        if e == errno.EBUSY:
            return ("the decoder is committed or holds DPA", None)
        return None

    def commit_rule(e: int) -> tuple[str, str | None] | None:
        if e == errno.EBUSY:
            return (
                "decoder commit out of order: host-bridge decoders commit in index order",
                "a lower decoder is still committed from an out-of-order teardown; "
                "destroy the newer regions first",
            )
        if e == errno.ENXIO:
            return ("not all targets are attached", None)
        return None

    return {
        "size": size_rule,
        "target": target_rule,
        "dpa": dpa_rule,
        "mode": mode_rule,
        "commit": commit_rule,
        "geometry": lambda e: ("invalid interleave geometry", None) if e == errno.EINVAL else None,
        "bind": lambda e: ("the region is not committed", None) if e == errno.ENXIO else None,
    }


def next_region(fs: Sysfs, plan: Plan) -> str:
    """The name the kernel gives the next region of the plan's root decoder
    (``create_ram_region``/``create_pmem_region`` read back)."""
    create = f"{plan.root_decoder.path}/create_{plan.mode}_region"
    try:
        return text(fs.read(create)).strip()
    except OSError as e:
        raise _error(e.errno or errno.EIO, f"{create}: {e.strerror}") from e


def create_region(fs: Sysfs, plan: Plan, *, enable: bool = True) -> Region | None:
    """cxl create-region's writes (section 5.1/5.2/6), then bind (unless
    ``enable=False``).  On failure the region is deleted and the DPA it reserved
    freed."""
    w = Writer(fs)
    rules = _region_rules(plan)
    rd = plan.root_decoder
    create = f"{rd.path}/create_{plan.mode}_region"
    w.flush()
    rname = next_region(fs, plan)
    w.write(create, name(rname), what=f"{rd.name}: create {rname}")
    rpath = f"{rd.path}/{rname}"
    reserved: list[Decoder] = []
    try:
        w.write(
            f"{rpath}/interleave_granularity",
            num(plan.granularity),
            rules["geometry"],
            f"{rname}: granularity {plan.granularity}",
        )
        w.write(
            f"{rpath}/interleave_ways",
            num(plan.ways),
            rules["geometry"],
            f"{rname}: ways {plan.ways}",
        )
        if plan.mode == "pmem":
            w.write(
                f"{rpath}/uuid", name(plan.uuid or str(uuidlib.uuid4())), None, f"{rname}: uuid"
            )
        w.write(
            f"{rpath}/size",
            num(plan.size, True),
            rules["size"],
            f"{rname}: size {_size(plan.size)}",
        )
        w.flush()
        per = plan.size // plan.ways
        for pos, (m, d) in enumerate(plan.targets):
            if d.mode != plan.mode:
                w.write(f"{d.path}/dpa_size", num(0), rules["dpa"], f"{m.name}: {d.name} free")
                w.write(
                    f"{d.path}/mode",
                    name(plan.mode),
                    rules["mode"],
                    f"{m.name}: {d.name} mode {plan.mode}",
                )
            w.write(
                f"{d.path}/dpa_size",
                num(per, True),
                rules["dpa"],
                f"{m.name}: {d.name} reserve {_size(per)}",
            )
            reserved.append(d)
            w.write(
                f"{rpath}/target{pos}",
                name(d.name),
                rules["target"],
                f"{rname}: target{pos} = {m.name} ({d.name})",
            )
        w.write(f"{rpath}/commit", num(1), rules["commit"], f"{rname}: commit")
        if enable:
            w.write(f"{DRIVERS}/cxl_region/bind", name(rname), rules["bind"], f"{rname}: enable")
    except (CxlError, KeyboardInterrupt) as e:
        report = _rollback(fs, rd, rname, reserved, w.done)
        if isinstance(e, KeyboardInterrupt):
            raise stopped(e, report) from None
        raise midway(e, report) from None
    return read_topology(fs).region(rname)  # None under a dry run


def _rollback(fs: Sysfs, rd: Decoder, rname: str, reserved: list[Decoder], done: list[str]) -> str:
    """Delete the half-built region and free the DPA it reserved; say exactly what
    had been written and what was undone (or could not be)."""
    undone: list[str] = []
    failed: list[str] = []
    for path, data, what in (
        (f"{rd.path}/delete_region", name(rname), f"{rname} deleted"),
        *((f"{d.path}/dpa_size", num(0), f"{d.name} DPA freed") for d in reversed(reserved)),
    ):
        try:
            fs.write(path, data)
            undone.append(what)
        except OSError as e:
            failed.append(f"{what.rsplit(' ', 1)[0]} ({errno.errorcode.get(e.errno or 0, e)})")
    out = f"written before it: {', '.join(done)}; rolled back: {', '.join(undone) or 'nothing'}"
    if failed:
        out += (
            f"; NOT undone: {', '.join(failed)}: see `cxlctl list -R -D -i`, then "
            f"`cxlctl destroy-region -f {rname}` / `cxlctl free-dpa`"
        )
    return out


# --- enable / disable / destroy --------------------------------------------------------


def region_of(topo: Topology, spec: str) -> Region:
    s = spec.strip()
    r = topo.region(s) or (topo.region(f"region{s}") if s.isdigit() else None)
    if r is None:
        raise TopologyNotFound(
            f"{spec}: no such region",
            hint=f"regions: {', '.join(x.name for x in topo.regions()) or 'none'}",
        )
    return r


def select_regions(
    topo: Topology, specs: Sequence[str], decoder: str | None = None
) -> list[Region]:
    """REGION arguments (``all`` or none = every region; unknown names are errors,
    unlike cxl-cli), optionally limited to one root decoder."""
    regions = [r for r in topo.regions() if decoder is None or r.root_decoder == decoder]
    if not specs or "all" in specs:
        return regions
    out = []
    for s in specs:
        r = region_of(topo, s)
        if decoder is not None and r.root_decoder != decoder:
            raise TopologyNotFound(f"{r.name} is not under {decoder}")
        if r not in out:
            out.append(r)
    return out


@dataclass(frozen=True, slots=True)
class MemoryState:
    """The memory of a ram region as the memory-hotplug sysfs shows it."""

    online: tuple[int, ...]
    offline: tuple[int, ...]


def region_memory(fs: Sysfs, r: Region) -> MemoryState:
    online: list[int] = []
    offline: list[int] = []
    for b in r.memblocks:
        try:
            st = text(fs.read(f"devices/system/memory/memory{b}/state")).strip()
        except OSError:
            continue
        (online if st.startswith("online") else offline).append(b)
    return MemoryState(tuple(online), tuple(offline))


def settle_memory(fs: Sysfs, r: Region, timeout: float = 3.0) -> MemoryState:
    """The region's memory once kmem had a moment to bind and online it (the dax
    device binds asynchronously after the region); what it is after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        mem = region_memory(fs, r)
        if len(mem.online) == len(r.memblocks) or time.monotonic() >= deadline:
            return mem
        time.sleep(0.05)


def enable_region(fs: Sysfs, r: Region) -> bool:
    """Bind to cxl_region; False when it already was (nothing written)."""
    if r.enabled:
        return False
    if not r.committed:
        raise TopologyError(
            f"{r.name}: decode not committed (decode_state reset): it cannot be enabled",
            errno.ENXIO,
            hint="destroy it and create it again",
        )
    Writer(fs).write(
        f"{DRIVERS}/cxl_region/bind",
        name(r.name),
        lambda e: ("the region is not committed", None) if e == errno.ENXIO else None,
        f"{r.name}: enable",
    )
    return True


def offline_memory(fs: Sysfs, r: Region) -> list[int]:
    """cxl-cli's disable_region(): offline each online block of a ram region (the
    kernel moves its pages away or refuses with EBUSY)."""
    w = Writer(fs)
    done = []
    for b in region_memory(fs, r).online:
        w.write(
            f"devices/system/memory/memory{b}/state",
            name("offline"),
            lambda e: (
                ("the memory is in use and could not be offlined", None)
                if e == errno.EBUSY
                else None
            ),
            f"{r.name}: offline memory{b}",
        )
        done.append(b)
    return done


def disable_region(fs: Sysfs, r: Region) -> list[int]:
    """Offline the region's memory, then unbind (section 5.3).  Returns the memory
    blocks offlined.  Already disabled: nothing written."""
    if not r.enabled:
        return []
    blocks = offline_memory(fs, r)
    Writer(fs).write(f"{DRIVERS}/cxl_region/unbind", name(r.name), None, f"{r.name}: disable")
    return blocks


def destroy_region(fs: Sysfs, r: Region, *, force: bool = False) -> list[int]:
    """Section 5.5: (with ``force``) offline and unbind, then ``commit`` <- 0, each
    ``targetN`` <- "" and its endpoint decoder's ``dpa_size`` <- 0, and
    ``delete_region``.  A target whose decoder went away is skipped (cxl-cli stops
    there and leaves the region behind)."""
    if r.enabled and not force:
        raise TopologyBusy(
            f"{r.name}: active: disable it first, or use --force",
            hint=f"cxlctl disable-region {r.name}",
        )
    blocks = disable_region(fs, r) if r.enabled else []
    w = Writer(fs)
    topo = read_topology(fs)
    rd = topo.decoder(r.root_decoder)
    assert rd is not None
    w.write(f"{r.path}/commit", num(0), None, f"{r.name}: reset decode")
    w.flush()
    for pos, t in enumerate(r.targets):
        d = topo.decoder(t) if t else None
        w.write(f"{r.path}/target{pos}", b"\0", None, f"{r.name}: clear target{pos}")
        if d is not None and d.kind == "endpoint":
            w.write(
                f"{d.path}/dpa_size",
                num(0),
                lambda e: ("DPA is released in decoder order", None) if e == errno.EBUSY else None,
                f"{d.name}: free DPA",
            )
    w.write(f"{rd.path}/delete_region", name(r.name), None, f"{r.name}: delete")
    return blocks


# --- DPA ------------------------------------------------------------------------------


def reserve_dpa(
    fs: Sysfs, topo: Topology, m: Memdev, mode: str, size: int | None, decoder: str | None = None
) -> Decoder:
    """cxl reserve-dpa's writes (section 7.1) with the checks done first."""
    if mode not in ("ram", "pmem"):
        raise TopologyError(f"type {mode!r}: ram or pmem", errno.EINVAL)
    ep = endpoint_of(topo, m)
    cap = m.ram_size if mode == "ram" else m.pmem_size
    if not cap:
        raise TopologyError(f"{m.name} has no {mode} capacity", errno.ENXIO)
    free = free_capacity(topo, m, mode)
    if decoder is not None:
        d = next((x for x in ep.decoders if x.name == decoder), None)
        if d is None:
            raise TopologyNotFound(f"{decoder}: not an endpoint decoder of {m.name} ({ep.name})")
    else:
        last = max((x.index for x in ep.decoders if x.dpa_size), default=-1)
        d = next((x for x in ep.decoders if x.index == last + 1), None)
        if d is None:
            raise TopologyBusy(f"{m.name}: every endpoint decoder holds DPA")
    last = max((x.index for x in ep.decoders if x.dpa_size), default=-1)
    if d.dpa_size:
        raise TopologyBusy(f"{d.name} already holds {_size(d.dpa_size)} of DPA")
    if d.index != last + 1:
        raise TopologyBusy(
            f"{d.name} is out of sequence: DPA is reserved in decoder order "
            f"(next: decoder{ep.id}.{last + 1})"
        )
    want = free if size is None else size
    if want <= 0 or want % SZ_256M:
        raise TopologyError(f"size {_size(want)}: DPA is reserved in 256 MiB units", errno.EINVAL)
    if want > free:
        raise TopologyError(
            f"{_size(want)} exceeds the free {mode} capacity of {m.name} ({_size(free)})",
            errno.ENOSPC,
        )
    w = Writer(fs)
    dpa_rule: Rule = lambda e: (  # noqa: E731
        ("exceeds the available capacity", None) if e == errno.ENOSPC else None
    )
    w.write(f"{d.path}/dpa_size", num(0), dpa_rule, f"{d.name}: reset DPA")
    if d.mode != mode:
        w.write(
            f"{d.path}/mode",
            name(mode),
            lambda e: (f"no {mode} capacity", None) if e == errno.ENXIO else None,
            f"{d.name}: mode {mode}",
        )
    w.write(f"{d.path}/dpa_size", num(want, True), dpa_rule, f"{d.name}: reserve {_size(want)}")
    got = read_topology(fs).decoder(d.name)
    assert got is not None
    return got


def free_dpa(
    fs: Sysfs, topo: Topology, m: Memdev, mode: str | None, decoder: str | None = None
) -> Decoder | None:
    """cxl free-dpa: release the last reservation (of ``mode`` if given) that is
    not in a region; None when there is none (nothing to do).  The decoder keeps
    its mode, as in the kernel."""
    ep = endpoint_of(topo, m)
    held = [x for x in ep.decoders if x.dpa_size]
    if decoder is not None:
        d = next((x for x in ep.decoders if x.name == decoder), None)
        if d is None:
            raise TopologyNotFound(f"{decoder}: not an endpoint decoder of {m.name} ({ep.name})")
        if not d.dpa_size:
            return None
    else:
        cands = [x for x in held if mode is None or x.mode == mode]
        if not cands:
            return None
        d = cands[-1]
    if held and d.index != held[-1].index:
        raise TopologyBusy(
            f"{d.name} is out of sequence: DPA is freed from the last decoder "
            f"({held[-1].name}) down"
        )
    if d.region:
        raise TopologyBusy(f"{d.name} is in {d.region}", hint=f"cxlctl destroy-region {d.region}")
    Writer(fs).write(f"{d.path}/dpa_size", num(0), None, f"{d.name}: free DPA")
    got = read_topology(fs).decoder(d.name)
    assert got is not None
    return got


# --- ports and buses -------------------------------------------------------------------


def port_of(topo: Topology, spec: str, *, endpoint: bool = False) -> Port:
    s = spec.strip()
    if endpoint and s.isdigit():
        s = f"endpoint{s}"
    elif s.isdigit():
        s = f"port{s}"
    p = topo.port(s)
    if p is None or p.kind == "root":
        raise TopologyNotFound(
            f"{spec}: no such {'endpoint' if endpoint else 'port'}"
            + (" (root ports are disabled with disable-bus)" if p is not None else ""),
            hint="ports: "
            + (", ".join(x.name for x in topo.ports() if x.kind != "root") or "none"),
        )
    if endpoint and p.kind != "endpoint":
        raise TopologyNotFound(f"{spec}: not an endpoint port")
    return p


def active_memdevs(topo: Topology, port: Port) -> list[tuple[Memdev, list[str]]]:
    """Enabled memdevs below ``port`` with the enabled regions they are part of."""
    out = []
    for p in port.walk():
        if p.kind != "endpoint" or p.memdev is None or not p.memdev.enabled:
            continue
        regs = sorted(
            {d.region for d in p.decoders if d.region}
            & {r.name for r in topo.regions() if r.enabled}
        )
        out.append((p.memdev, regs))
    return out


def disable_port(fs: Sysfs, topo: Topology, port: Port, *, force: bool = False) -> bool:
    """Unbind from cxl_port.  Refused without ``force`` only when a memdev below is
    in an active region (cxl-cli refuses whenever a memdev is enabled)."""
    if not port.enabled:
        return False
    busy = [(m, r) for m, r in active_memdevs(topo, port) if r]
    if busy and not force:
        which = ", ".join(f"{m.name} ({', '.join(r)})" for m, r in busy)
        raise TopologyBusy(
            f"{port.name}: memdevs below it are in active regions: {which}",
            hint="disable or destroy the regions first, or use --force (their memory "
            "stays mapped but the regions break)",
        )
    Writer(fs).write(f"{DRIVERS}/cxl_port/unbind", name(port.name), None, f"{port.name}: disable")
    return True


def enable_port(fs: Sysfs, topo: Topology, port: Port, *, memdevs: bool = False) -> list[str]:
    """Bind to cxl_port; with ``memdevs`` also bind the memdevs below it (they
    stay disabled otherwise).  Returns what was enabled."""
    w = Writer(fs)
    done = []
    if not port.enabled:
        w.write(f"{DRIVERS}/cxl_port/bind", name(port.name), None, f"{port.name}: enable")
        done.append(port.name)
    if memdevs:
        topo = read_topology(fs)
        below = memdevs_below(topo, port.path, fs)
        for m in below:
            if not m.enabled:
                w.write(f"{DRIVERS}/cxl_mem/bind", name(m.name), None, f"{m.name}: enable")
                done.append(m.name)
        if not isinstance(fs, DryRunSysfs):
            _wait_bound(fs, [m.name for m in below if m.name in done])
    return done


def _wait_bound(fs: Sysfs, memdevs: Sequence[str], timeout: float = 5.0) -> None:
    """libcxl's "failed to enable" check: each memdev's driver link is there.  A
    probe can be deferred while its port's dports are set up, so allow a moment
    (bounded) before saying the bind did not take."""
    import time

    deadline = time.monotonic() + timeout
    for m in memdevs:
        while not fs.islink(f"bus/cxl/devices/{m}/driver"):
            if time.monotonic() > deadline:
                raise CxlError(
                    f"{m}: failed to enable: cxl_mem did not bind",
                    hint="see dmesg for the probe error",
                )
            time.sleep(0.05)


def memdevs_below(topo: Topology, port_path: str, fs: Sysfs | None = None) -> list[Memdev]:
    """Memdevs whose PCI path is below a dport of the port, or below its uport
    (works while the endpoints are gone, and on kernels that enumerate a port's
    dports only when an endpoint attaches, as Linux 7.3 does after enable-port)."""
    p = next((x for x in topo.ports() if x.path == port_path), None)
    if p is None:
        return []
    prefixes = [d.path + "/" for d in p.dports] or [p.path + "/"]
    if fs is not None and p.kind != "root":
        with contextlib.suppress(OSError):
            prefixes.append(fs.realpath(f"{p.path}/uport") + "/")
    return [m for m in topo.memdevs if any(m.path.startswith(x) for x in prefixes)]


def disable_bus(fs: Sysfs, topo: Topology, bus: str, *, force: bool = False) -> bool:
    """Unbind cxl_acpi from the bus's ACPI0017 device: removes everything below
    ``root0``, regions included."""
    b = next((x for x in topo.buses if x.name == bus or x.name == f"root{bus}"), None)
    if b is None:
        raise TopologyNotFound(
            f"{bus}: no such bus", hint=f"buses: {', '.join(x.name for x in topo.buses) or 'none'}"
        )
    busy = [(m, r) for m, r in active_memdevs(topo, b.port) if r]
    active_regions = [r.name for r in topo.regions() if r.enabled]
    if (busy or active_regions) and not force:
        raise TopologyBusy(
            f"{b.name}: active regions would be torn down: {', '.join(active_regions)}",
            hint="destroy them first, or use --force",
        )
    uport = fs.realpath(f"{b.port.path}/uport").rsplit("/", 1)[-1]
    Writer(fs).write(
        "bus/platform/drivers/cxl_acpi/unbind", name(uport), None, f"{b.name}: disable"
    )
    return True
