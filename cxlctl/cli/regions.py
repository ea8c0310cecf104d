"""Regions, DPA, ports and buses: create-region, enable-region, disable-region,
destroy-region, reserve-dpa, free-dpa, enable-port, disable-port, disable-bus.

cxl-cli's names and letters.  The work (checks, the sysfs write sequence, the
kernel's errnos turned into rules) is the library's :mod:`cxlctl.regions`; this
module parses options, says what happened on stderr and prints the resulting
objects (cxl-cli's JSON) with ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from .. import regions as rg
from .. import render as rd
from ..change import Outcome, Recorder, Result
from ..errors import UsageError
from ..listing import Params, Walker
from ..sysfs import Sysfs
from ..topology import Decoder, Memdev, Region, Topology, read_topology
from . import CONTEXT, App, F, app_of, memdevs_required, selected
from .change import Change, change_options
from .options import Size

Row = dict[str, Any]
#: the change contract's options (-y, --cxl-compat, --dry-run, -o) for these verbs
topology_change = change_options(destructive=True, confirms="the change to the topology")
#: what a verb does to one object, on the seam it writes to (a recorder under
#: --dry-run): (outcome, the report line, the object's JSON)
TopoAction = Callable[[str, Sysfs], tuple[Outcome, str, Row]]


def force_option(help: str) -> Callable[[F], F]:
    """-f/--force: what it overrides is the verb's."""
    return click.option("-f", "--force", is_flag=True, help=help)


def run_each(
    ctx: click.Context,
    verb: str,
    opts: dict[str, Any],
    names: Sequence[str],
    action: TopoAction,
    *,
    kind: str,
    asks: str,
    describe: Callable[[str], str] | None = None,
) -> list[Result]:
    """The change contract (cli/change.py) for a topology verb: ask on a terminal
    (naming each object, and the memdevs with their serials), refuse without one
    unless -y, run ``action`` per object on the backend's sysfs, or on a recorder
    of every sysfs write under --dry-run, and report each outcome with ``changed``."""
    app = app_of(ctx)

    def one(name: str, rec: Recorder | None, _hook: Any) -> tuple[Outcome, str, Row]:
        fs: Sysfs = app.backend.sysfs_seam
        return action(name, rg.DryRunSysfs(fs, rec) if rec is not None else fs)

    change = Change(app, verb, opts, asks=asks, kind=kind, describe=describe)
    return change.run(names, one)


def _human(ctx: click.Context) -> bool:
    return bool(ctx.find_root().obj.human)


def _topo(app: App) -> Topology:
    return read_topology(app.backend.sysfs_seam)


def _walker(app: App, human: bool) -> Walker:
    return Walker(_topo(app), Params(targets=True, human=human))


def _region_json(app: App, name: str, human: bool) -> Row:
    w = _walker(app, human)
    r = w.t.region(name)
    return w.region_json(r) if r is not None else {"region": name, "state": "deleted"}


def _mib(n: int) -> str:
    h = rd.human_size(n)
    return h.split(" (")[0] if isinstance(h, str) else f"{n} bytes"


def _serials(memdevs: Sequence[Memdev]) -> str:
    return ", ".join(f"{m.name} (serial {m.serial:#x})" for m in memdevs) or "no memdevs"


def _region_memdevs(topo: Topology, r: Region) -> list[Memdev]:
    out = []
    for t in r.targets:
        d = topo.decoder(t) if t else None
        m = topo.memdev_of_decoder(d) if d is not None else None
        if m is not None:
            out.append(m)
    return out


def _describe_region(app: App) -> Callable[[str], str]:
    def who(name: str) -> str:
        topo = _topo(app)
        r = topo.region(name)
        if r is None:
            return name
        return f"{name} ({r.mode}, {_mib(r.size)}, over {_serials(_region_memdevs(topo, r))})"

    return who


def _describe_port(app: App, bus: bool = False) -> Callable[[str], str]:
    def who(name: str) -> str:
        topo = _topo(app)
        if bus:
            b = next((x for x in topo.buses if name in (x.name, f"root{name}")), None)
            p = b.port if b is not None else None
        else:
            p = topo.port(name)
        if p is None:
            return name
        if p.kind == "endpoint" and p.memdev is not None:  # the memdev is its uport
            return f"{name} (the endpoint of {_serials([p.memdev])})"
        below = rg.memdevs_below(topo, p.path, app.backend.sysfs_seam)
        return f"{name} (memdevs below: {_serials(below)})"

    return who


def _memory_note(app: App, r: Region) -> str:
    """What happened to the region's memory, for the one report line."""
    if r.mode != "ram":
        return "the nd bus gets a pmem region (namespaces: ndctl create-namespace)"
    mem = rg.settle_memory(app.backend.sysfs_seam, r)
    blocks = mem.online + mem.offline
    where = f"memory{blocks[0]}-{blocks[-1]}" if blocks else "no memory blocks yet"
    if mem.online:
        return (
            f"{_mib(r.size)} of system RAM onlined by kmem ({where}; the kernel may "
            "place any data there now)"
        )
    return (
        f"its memory is not online ({where}): with auto_online_blocks=online kmem "
        "onlines it when it binds, otherwise daxctl online-memory does"
    )


# --- create-region ----------------------------------------------------------------------


@click.command("create-region", context_settings=CONTEXT)
@click.argument("targets", nargs=-1, metavar="TARGET...")
@click.option(
    "-m",
    "--memdevs",
    "memdevs_flag",
    is_flag=True,
    help="TARGETs are memdevs (as cxl-cli; endpoint decoder names work too).",
)
@click.option(
    "-t",
    "--type",
    "mode",
    type=click.Choice(["ram", "pmem"]),
    help="Region type [default: what every target has, pmem when both].",
)
@click.option(
    "-d",
    "--decoder",
    "root_decoder",
    metavar="DECODER",
    help="Root decoder (CFMWS window) [default: the only one that fits].",
)
@click.option(
    "-w",
    "--ways",
    type=Size(units=False, minimum=1, maximum=16),
    help="Interleave ways [default: number of targets].",
)
@click.option(
    "-g",
    "--granularity",
    type=Size(32),
    help="Interleave granularity in bytes [default: the root decoder's].",
)
@click.option(
    "-s",
    "--size",
    type=Size(),
    help="Region size (256M, 1G, 0x...) [default: the targets' free capacity x ways].",
)
@click.option("-U", "--uuid", help="UUID of a pmem region [default: random].")
@click.option("-b", "--bus", metavar="BUS", help="Only root decoders of this bus.")
@click.option(
    "-Q",
    "--enforce-qos",
    is_flag=True,
    help="Refuse memdevs whose QoS class differs from the root decoder's.",
)
@click.option("--no-enable", is_flag=True, help="Commit the decode but do not bind the region.")
@topology_change
@click.pass_context
def create_region(
    ctx: click.Context,
    /,
    targets: Sequence[str],
    memdevs_flag: bool,
    mode: str | None,
    root_decoder: str | None,
    ways: int | None,
    granularity: int | None,
    size: int | None,
    uuid: str | None,
    bus: str | None,
    enforce_qos: bool,
    no_enable: bool,
    **opts: Any,
) -> None:
    """Create, commit and enable a region over memdevs, as `cxl create-region`.

    Writes libcxl's sequence: create_ram_region/create_pmem_region, granularity,
    ways, uuid (pmem), size; per target the endpoint decoder's mode and dpa_size
    and targetN; then commit and bind to cxl_region. Everything is checked against
    the topology first (size a multiple of 256 MiB x ways, free capacity, free
    decoders, free HPA space, host-bridge positions), and a kernel refusal is
    explained by the rule it enforces. A failed create deletes the region and
    frees the DPA it reserved. Targets are kept in the order given when the
    kernel accepts it, otherwise reordered so position N sits below the host
    bridge the window interleaves there. A ram region's memory is onlined by
    kmem at once (it becomes system RAM); a pmem region appears on the nd bus.
    On a terminal it asks first, naming the memdevs and their serials; without
    one it needs -y. --dry-run prints every sysfs write.

    \b
    Examples:
      cxlctl --sim create-region -y -m -t ram -d decoder0.0 mem1
      cxlctl --sim create-region -y -m -t pmem -d decoder0.0 -w 1 mem0 --json
      cxlctl --sim create-region -t pmem -s 256M decoder4.0 --dry-run
      CXLCTL_SIM_DEVICES=pmem,pmem cxlctl --sim create-region -y -t pmem -w 2 mem0 mem1
    """
    app = app_of(ctx)
    if not targets:
        raise UsageError("create-region: give the target memdevs (or endpoint decoders)")
    topo = _topo(app)
    if mode is None:
        mode = _infer_type(topo, targets)
    rd_name = root_decoder or _default_root(topo, mode, bus)
    if bus is not None:
        rdd = topo.decoder(rd_name)
        if rdd is None or rdd.port != (bus if bus.startswith("root") else f"root{bus}"):
            raise UsageError(f"--bus {bus}: {rd_name} is not a root decoder of that bus")
    plan = rg.plan_region(
        topo,
        root_decoder=rd_name,
        mode=mode,
        targets=targets,
        ways=ways,
        granularity=granularity,
        size=size,
        uuid=uuid,
    )
    if enforce_qos:
        for m, _d in plan.targets:
            q = m.ram_qos_class if mode == "ram" else m.pmem_qos_class
            if q is not None and q != plan.root_decoder.qos_class:
                raise rg.TopologyError(
                    f"{m.name}: QoS class {q} != {plan.root_decoder.name}'s "
                    f"{plan.root_decoder.qos_class} (-Q)",
                    6,
                )
    over = ", ".join(m.name for m, _d in plan.targets)
    order = (
        "; targets reordered to fit the host-bridge interleave: "
        + ", ".join(f"{i}={m.name}" for i, (m, _d) in enumerate(plan.targets))
        if plan.reordered
        else ""
    )
    rname = rg.next_region(app.backend.sysfs_seam, plan)
    memdevs = [m for m, _d in plan.targets]

    def who(name: str) -> str:
        return (
            f"{name} (new {plan.mode} region, {_mib(plan.size)} in {plan.root_decoder.name}, "
            f"{plan.ways} way(s) over {_serials(memdevs)})"
        )

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        region = rg.create_region(fs, plan, enable=not no_enable)
        if region is None:  # --dry-run
            return (
                Outcome.CHANGED,
                f"{plan.mode} region over {over}: {_mib(plan.size)}, {plan.ways} way(s), "
                f"granularity {plan.granularity}{order}",
                {},
            )
        note = f"; {_memory_note(app, region)}" if region.enabled else " (not enabled)"
        return (
            Outcome.CHANGED,
            f"{region.name}: created {region.mode} region, {_mib(region.size)} at "
            f"{region.resource or 0:#x}, {region.interleave_ways} way(s) over {over}{note}{order}",
            _region_json(app, region.name, _human(ctx)),
        )

    run_each(
        ctx, "create-region", opts, [rname], action, kind="region", asks="create", describe=who
    )


def _infer_type(topo: Topology, targets: Sequence[str]) -> str:
    has_pmem = has_ram = True
    for t in targets:
        d = topo.decoder(t)
        m = topo.memdev_of_decoder(d) if d is not None else rg.memdev_of(topo, t)
        if m is None:
            continue
        has_pmem = has_pmem and bool(m.pmem_size)
        has_ram = has_ram and bool(m.ram_size)
    if has_pmem:
        return "pmem"
    if has_ram:
        return "ram"
    raise UsageError("create-region: the targets have no capacity type in common; give -t")


def _default_root(topo: Topology, mode: str, bus: str | None) -> str:
    cands = [
        d
        for d in topo.decoders()
        if d.kind == "root"
        and (d.volatile_capable if mode == "ram" else d.pmem_capable)
        and (bus is None or d.port in (bus, f"root{bus}"))
    ]
    if len(cands) == 1:
        return cands[0].name
    raise UsageError(
        "create-region: give the root decoder with -d ("
        + (", ".join(d.name for d in cands) or f"none takes {mode}")
        + ")"
    )


# --- enable / disable / destroy -----------------------------------------------------------


region_args = click.argument("regions", nargs=-1, required=True, metavar="REGION...")
decoder_filter = click.option(
    "-d", "--decoder", metavar="DECODER", help="Only regions of this root decoder."
)


def _each_region(
    ctx: click.Context,
    verb: str,
    opts: dict[str, Any],
    specs: Sequence[str],
    decoder: str | None,
    action: TopoAction,
    asks: str,
) -> None:
    """run_each over the REGION arguments (all: every region; -d: of that root decoder)."""
    app = app_of(ctx)
    names = [r.name for r in rg.select_regions(_topo(app), specs, decoder)]
    run_each(
        ctx, verb, opts, names, action, kind="region", asks=asks, describe=_describe_region(app)
    )


def _region_now(app: App, name: str) -> Region:
    """The region as it is now (an earlier object of the same run may have changed it)."""
    return rg.region_of(_topo(app), name)


@click.command("enable-region", context_settings=CONTEXT)
@region_args
@decoder_filter
@topology_change
@click.pass_context
def enable_region(
    ctx: click.Context, /, regions: Sequence[str], decoder: str | None, **opts: Any
) -> None:
    """Bind committed regions to cxl_region, as `cxl enable-region` (all: every region).

    A ram region's memory comes back online through kmem; a pmem region's nd region
    comes back. An unknown region is an error (cxl-cli exits 0). A region already
    enabled is left alone (unchanged).

    \b
    Examples:
      cxlctl --sim create-region -y -t ram mem1
      cxlctl --sim disable-region -y region0
      cxlctl --sim enable-region -y region0
      cxlctl --sim enable-region all --dry-run --json
    """
    app = app_of(ctx)
    human = _human(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        if not rg.enable_region(fs, _region_now(app, name)):
            return Outcome.UNCHANGED, f"{name}: already enabled", _region_json(app, name, human)
        fresh = _topo(app).region(name)
        extra = f"; {_memory_note(app, fresh)}" if fresh is not None and fresh.enabled else ""
        return Outcome.CHANGED, f"{name}: enabled{extra}", _region_json(app, name, human)

    _each_region(ctx, "enable-region", opts, regions, decoder, action, "enable")


@click.command("disable-region", context_settings=CONTEXT)
@region_args
@decoder_filter
@force_option(
    "Unbind even when the memory cannot be offlined (its address space leaks until a reboot)."
)
@topology_change
@click.pass_context
def disable_region(
    ctx: click.Context, /, regions: Sequence[str], decoder: str | None, force: bool, **opts: Any
) -> None:
    """Unbind regions from cxl_region, as `cxl disable-region`; the decode stays committed.

    A ram region's memory blocks are offlined first (the kernel migrates their
    pages; memory in use makes that fail, and the region is left enabled unless
    --force). The region then shows "state": "disabled" with -i. A region
    already disabled is left alone (unchanged).

    \b
    Examples:
      cxlctl --sim create-region -y -t ram mem1
      cxlctl --sim disable-region -y region0
      cxlctl --sim disable-region all --dry-run
    """
    app = app_of(ctx)
    human = _human(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        r = _region_now(app, name)
        if not r.enabled:
            return Outcome.UNCHANGED, f"{name}: already disabled", _region_json(app, name, human)
        forced = ""
        try:
            blocks = rg.disable_region(fs, r)
        except rg.TopologyBusy:
            if not force:
                raise
            fs.write("bus/cxl/drivers/cxl_region/unbind", r.name.encode() + b"\0")
            forced = (
                "; memory still online: its physical address space is leaked until a "
                "reboot (--force)"
            )
            blocks = []
        extra = f" (offlined memory{blocks[0]}-{blocks[-1]})" if blocks else ""
        return (
            Outcome.CHANGED,
            f"{name}: disabled{extra}{forced}",
            _region_json(app, name, human),
        )

    _each_region(
        ctx,
        "disable-region",
        opts,
        regions,
        decoder,
        action,
        "disable (a ram region's memory is offlined first)",
    )


@click.command("destroy-region", context_settings=CONTEXT)
@region_args
@decoder_filter
@force_option("Disable an active region first.")
@topology_change
@click.pass_context
def destroy_region(
    ctx: click.Context, /, regions: Sequence[str], decoder: str | None, force: bool, **opts: Any
) -> None:
    """Tear regions down and delete them, as `cxl destroy-region`.

    An active region needs --force (which offlines a ram region's memory and
    unbinds it). Then commit <- 0, each targetN <- "" with its endpoint decoder's
    DPA freed (the decoder keeps its mode), and delete_region. A pmem region's
    data is no longer addressable afterwards. Regions whose target decoders went
    away (after disable-port/disable-memdev --force) are deleted too; cxl-cli
    cannot. Each region is tried and reported on its own.

    \b
    Examples:
      cxlctl --sim create-region -y -t ram mem1
      cxlctl --sim destroy-region -y -f region0
      cxlctl --sim create-region -y -t pmem mem0
      cxlctl --sim destroy-region -f all --dry-run --json
    """
    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        r = _region_now(app, name)
        blocks = rg.destroy_region(fs, r, force=force)
        extra = f" (offlined memory{blocks[0]}-{blocks[-1]})" if blocks else ""
        what = "; its persistent data is no longer addressable" if r.mode == "pmem" else ""
        return Outcome.CHANGED, f"{name}: destroyed{extra}{what}", {"state": "destroyed"}

    _each_region(ctx, "destroy-region", opts, regions, decoder, action, "tear down and delete")


# --- reserve-dpa / free-dpa ------------------------------------------------------------------


def _memdev_json(app: App, name: str, human: bool, d: Decoder | None = None) -> Row:
    """The memdev's cxl-cli object; with the decoder a DPA verb changed under "decoder"."""
    w = _walker(app, human)
    m = w.t.memdev(name)
    out: Row = w.memdev_json(m) if m is not None else {"memdev": name}
    if d is not None:
        fresh = w.t.decoder(d.name)
        out["decoder"] = w.decoder_json(fresh if fresh is not None else d)
    return out


@click.command("reserve-dpa", context_settings=CONTEXT)
@memdevs_required
@click.option(
    "-t",
    "--type",
    "mode",
    type=click.Choice(["ram", "pmem"]),
    required=True,
    help="Partition to reserve from (required: cxl-cli's default is broken).",
)
@click.option("-s", "--size", type=Size(), help="Size [default: all free capacity].")
@click.option("-d", "--decoder", metavar="DECODER", help="Endpoint decoder [default: the next].")
@topology_change
@click.pass_context
def reserve_dpa(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    mode: str,
    size: int | None,
    decoder: str | None,
    **opts: Any,
) -> None:
    """Reserve device capacity (DPA) in an endpoint decoder, as `cxl reserve-dpa`.

    Writes dpa_size <- 0, mode (when it changes) and dpa_size <- SIZE. DPA is
    reserved in decoder order, from the start of the partition; create-region uses
    such a reservation. -t is required (cxl-cli 81 documents pmem but acts as ram).

    \b
    Examples:
      cxlctl --sim reserve-dpa -y mem0 -t pmem
      cxlctl --sim reserve-dpa mem1 -t ram -s 256M --dry-run --json
    """
    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        topo = _topo(app)
        m = rg.memdev_of(topo, name)
        d = rg.reserve_dpa(fs, topo, m, mode, size, decoder)
        return (
            Outcome.CHANGED,
            f"{m.name}: {d.name} reserves {_mib(d.dpa_size or 0)} of {mode} at DPA "
            f"{d.dpa_resource or 0:#x}",
            _memdev_json(app, m.name, _human(ctx), d),
        )

    run_each(
        ctx,
        "reserve-dpa",
        opts,
        selected(ctx, memdevs),
        action,
        kind="memdev",
        asks="reserve DPA on",
    )


@click.command("free-dpa", context_settings=CONTEXT)
@memdevs_required
@click.option(
    "-t",
    "--type",
    "mode",
    type=click.Choice(["ram", "pmem"]),
    help="Only a reservation of this partition [default: the last one].",
)
@click.option("-d", "--decoder", metavar="DECODER", help="Endpoint decoder [default: the last].")
@topology_change
@click.pass_context
def free_dpa(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    mode: str | None,
    decoder: str | None,
    **opts: Any,
) -> None:
    """Release a DPA reservation that no region uses, as `cxl free-dpa`.

    Writes dpa_size <- 0 on the last reserved decoder (DPA is freed in reverse
    decoder order); the decoder keeps its mode. No mode switch is attempted
    (cxl-cli 81 then fails on a pmem reservation). Nothing reserved: nothing to
    do (unchanged), exit 0.

    \b
    Examples:
      cxlctl --sim reserve-dpa -y mem0 -t pmem
      cxlctl --sim free-dpa -y mem0
      cxlctl --sim free-dpa mem1 -t ram --dry-run --json
    """
    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        topo = _topo(app)
        m = rg.memdev_of(topo, name)
        d = rg.free_dpa(fs, topo, m, mode, decoder)
        if d is None:
            what = f"{mode} " if mode else ""
            return (
                Outcome.UNCHANGED,
                f"{m.name}: no {what}DPA reservation to free",
                _memdev_json(app, m.name, _human(ctx)),
            )
        return (
            Outcome.CHANGED,
            f"{m.name}: {d.name} released its DPA (mode {d.mode or 'none'} kept)",
            _memdev_json(app, m.name, _human(ctx), d),
        )

    run_each(
        ctx, "free-dpa", opts, selected(ctx, memdevs), action, kind="memdev", asks="free DPA on"
    )


# --- ports and buses ---------------------------------------------------------------------------


def _each_port(
    ctx: click.Context,
    verb: str,
    opts: dict[str, Any],
    specs: Sequence[str],
    endpoint: bool,
    action: TopoAction,
    asks: str,
) -> None:
    """run_each over the PORT arguments (port1, 1; -e: endpoint ports)."""
    app = app_of(ctx)
    topo = _topo(app)
    names = [rg.port_of(topo, s, endpoint=endpoint).name for s in specs]
    run_each(ctx, verb, opts, names, action, kind="port", asks=asks, describe=_describe_port(app))


@click.command("disable-port", context_settings=CONTEXT)
@click.argument("ports", nargs=-1, required=True, metavar="PORT...")
@click.option("-e", "--endpoint", is_flag=True, help="PORTs are endpoint ports.")
@force_option("Disable even when memdevs below are in active regions (they break).")
@topology_change
@click.pass_context
def disable_port(
    ctx: click.Context, /, ports: Sequence[str], endpoint: bool, force: bool, **opts: Any
) -> None:
    """Unbind ports from cxl_port, as `cxl disable-port`: everything below goes away.

    The decoders and endpoints below are removed and the memdevs below lose
    cxl_mem. Refused without --force only when a memdev below is in an active
    region (cxl-cli 81 refuses whenever a memdev is enabled). A port already
    disabled is left alone (unchanged).

    \b
    Examples:
      cxlctl --sim disable-port -y -e endpoint3
      cxlctl --sim enable-port -y -e endpoint3
      cxlctl --sim disable-port port1 --dry-run
    """
    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        topo = _topo(app)
        p = rg.port_of(topo, name)
        if not rg.disable_port(fs, topo, p, force=force):
            return Outcome.UNCHANGED, f"{name}: already disabled", {"state": "disabled"}
        return Outcome.CHANGED, f"{name}: disabled", {"state": "disabled"}

    _each_port(
        ctx, "disable-port", opts, ports, endpoint, action, "disable (everything below goes away)"
    )


@click.command("enable-port", context_settings=CONTEXT)
@click.argument("ports", nargs=-1, required=True, metavar="PORT...")
@click.option("-e", "--endpoint", is_flag=True, help="PORTs are endpoint ports.")
@click.option("-m", "--enable-memdevs", is_flag=True, help="Also enable the memdevs below.")
@topology_change
@click.pass_context
def enable_port(
    ctx: click.Context, /, ports: Sequence[str], endpoint: bool, enable_memdevs: bool, **opts: Any
) -> None:
    """Bind ports to cxl_port, as `cxl enable-port`; -m also binds the memdevs below.

    \b
    Examples:
      cxlctl --sim disable-port -y port1
      cxlctl --sim enable-port -y -m port1
      cxlctl --sim enable-port port1 --dry-run
    """
    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        topo = _topo(app)
        p = rg.port_of(topo, name)
        done = rg.enable_port(fs, topo, p, memdevs=enable_memdevs)
        if not done:
            return Outcome.UNCHANGED, f"{name}: already enabled", {"enabled": []}
        return Outcome.CHANGED, f"{name}: enabled {', '.join(done)}", {"enabled": done}

    _each_port(ctx, "enable-port", opts, ports, endpoint, action, "enable")


@click.command("disable-bus", context_settings=CONTEXT)
@click.argument("buses", nargs=-1, required=True, metavar="BUS...")
@force_option("Disable even with active regions.")
@topology_change
@click.pass_context
def disable_bus(ctx: click.Context, /, buses: Sequence[str], force: bool, **opts: Any) -> None:
    """Unbind cxl_acpi from a CXL bus, as `cxl disable-bus`: the whole topology goes.

    Everything below root0 is removed, regions included; the memdevs stay,
    unbound. There is no enable-bus: bind ACPI0017:00 to cxl_acpi to get it back.
    Refused without --force while regions are active.

    \b
    Examples:
      cxlctl --sim disable-bus root0 --dry-run
      cxlctl --sim disable-bus -y root0
      cxlctl disable-bus -y -f root0
    """
    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        rg.disable_bus(fs, _topo(app), name, force=force)
        return Outcome.CHANGED, f"{name}: disabled", {"state": "disabled"}

    run_each(
        ctx,
        "disable-bus",
        opts,
        list(buses),
        action,
        kind="bus",
        asks="disable (the whole topology below it goes away)",
        describe=_describe_port(app, bus=True),
    )


# --- set-partition ----------------------------------------------------------------------------


@click.command("set-partition", context_settings=CONTEXT)
@memdevs_required
@click.option(
    "-t",
    "--type",
    "mode",
    type=click.Choice(["ram", "pmem"]),
    default="pmem",
    show_default=True,
    help="Partition that gets SIZE (the rest goes to the other).",
)
@click.option(
    "-s",
    "--size",
    type=Size(),
    help="Capacity for --type [default: all partitionable capacity].",
)
@click.option(
    "-a",
    "--align",
    is_flag=True,
    help="Align to the device's partition alignment (up for ram, down for pmem).",
)
@click.option(
    "--immediate",
    is_flag=True,
    help="Ask for the new split now (the immediate flag); Linux refuses it (EBUSY).",
)
@topology_change
@click.pass_context
def set_partition(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    mode: str,
    size: int | None,
    align: bool,
    immediate: bool,
    **opts: Any,
) -> None:
    """Change the ram/pmem split of memdevs with Set Partition Info, as `cxl set-partition`.

    Checked against Identify (partitionable capacity and alignment) and Get
    Partition Info before anything is sent (0x4101, the kernel's
    SET_PARTITION_INFO command id); reports the layout before and after. Linux
    refuses immediate repartitioning (--immediate: EBUSY), so the new split takes
    effect after the next cold reset; until then Get Partition Info shows it as
    "next". A split already pending is left alone (unchanged). A device with
    partition alignment 0 (QEMU 10, the simulator's pmem/ram/mixed) cannot be
    repartitioned; the simulator's "split" kind can.

    \b
    Examples:
      cxlctl --sim partition mem2
      CXLCTL_SIM_DEVICES=split cxlctl --sim set-partition -y mem0 -t ram -s 512M
      CXLCTL_SIM_DEVICES=split cxlctl --sim set-partition mem0 -t pmem --dry-run --json
    """
    from ..memdev import Memdev
    from ..partition import apply_partition, pending, plan_partition

    app = app_of(ctx)

    def action(name: str, fs: Sysfs) -> tuple[Outcome, str, Row]:
        with Memdev(app.backend, name) as md:
            plan = plan_partition(name, md.identify(), md.partition_info(), mode, size, align=align)
            b = plan.before
            was = (
                f"active ram {_mib(b['active_volatile_size'])}, pmem "
                f"{_mib(b['active_persistent_size'])}"
            )
            if not pending(plan, immediate=immediate):
                return (
                    Outcome.UNCHANGED,
                    f"{name}: already ram {_mib(plan.after['next_volatile_size'])}, pmem "
                    f"{_mib(plan.after['next_persistent_size'])} after the next cold reset "
                    f"({was})",
                    {"before": b, "after": plan.after},
                )
            md.recorder = fs.recorder if isinstance(fs, rg.DryRunSysfs) else None
            now = apply_partition(md, plan, immediate=immediate)
        if md.recorder is not None:  # --dry-run: nothing was sent
            after = plan.after
        else:
            after = {
                "active_volatile_size": now.active_volatile_size,
                "active_persistent_size": now.active_persistent_size,
                "next_volatile_size": now.next_volatile_size,
                "next_persistent_size": now.next_persistent_size,
            }
        when = "now (immediate flag)" if immediate else "on the next cold reset"
        return (
            Outcome.CHANGED,
            f"{name}: ram {_mib(after['next_volatile_size'])}, pmem "
            f"{_mib(after['next_persistent_size'])}, taking effect {when} (before: {was})",
            {"before": b, "after": after, "takes_effect": "now" if immediate else "next reset"},
        )

    run_each(
        ctx,
        "set-partition",
        opts,
        selected(ctx, memdevs),
        action,
        kind="memdev",
        asks="repartition",
    )
