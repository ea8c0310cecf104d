"""Regions, DPA, ports and buses: create-region, enable-region, disable-region,
destroy-region, reserve-dpa, free-dpa, enable-port, disable-port, disable-bus.

cxl-cli's names and letters.  The work (checks, the sysfs write sequence, the
kernel's errnos turned into rules) is the library's :mod:`cxlctl.regions`; this
module parses options, says what happened on stderr and prints the resulting
objects (cxl-cli's JSON) with ``--json``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import click

from .. import regions as rg
from .. import render as rd
from ..errors import UsageError
from ..listing import Params, Walker
from ..topology import Decoder, Region, Topology, read_topology
from . import CONTEXT, App, F, app_of, memdevs_required, selected
from .options import Size, output_option

Row = dict[str, Any]


def report_option(f: F) -> F:
    """The grammar's -o/--json/-u (options.output_option) for these verbs' reports:
    one line per object on stderr by default, the objects as JSON with -o json."""
    wants_human = "human" in inspect.signature(f).parameters

    @functools.wraps(f)
    def wrapper(*args: Any, output: str | None = None, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        kwargs["as_json"] = as_json or output in ("json", "jsonl")
        if wants_human:
            kwargs["human"] = bool(click.get_current_context().find_root().obj.human)
        return f(*args, **kwargs)

    g: Any = wrapper
    out: F = output_option(default=None)(g)
    return out


def note(message: str) -> None:
    dry = " (dry run: nothing was written)" if _dry_run() is not None else ""
    click.echo(f"cxlctl: {message}{dry}", err=True)


def _dry_run() -> rg.DryRunSysfs | None:
    ctx = click.get_current_context(silent=True)
    found = ctx.find_root().meta.get("cxlctl.dry-run") if ctx else None
    return found if isinstance(found, rg.DryRunSysfs) else None


def _seam(app: App) -> Any:
    """Where the verb writes: the backend's sysfs, or a recorder under --dry-run."""
    return _dry_run() or app.backend.sysfs_seam


def dry_run_option(f: F) -> F:
    """--dry-run: every check and read happens, each sysfs write is printed instead
    of made (``write PATH <- 'VALUE'``; with -o json an object with a ``plan``)."""

    @functools.wraps(f)
    def wrapper(*args: Any, dry_run: bool = False, **kwargs: Any) -> Any:
        if not dry_run:
            return f(*args, **kwargs)
        root = click.get_current_context().find_root()
        rec = rg.DryRunSysfs(root.obj.backend.sysfs_seam)
        root.meta["cxlctl.dry-run"] = rec
        as_json = bool(kwargs.get("as_json"))
        kwargs["as_json"] = False
        try:
            f(*args, **kwargs)
        finally:
            root.meta.pop("cxlctl.dry-run", None)
        if as_json:
            root.obj.json([{"plan": [{"kind": "sysfs", "target": p, "value": v} for p, v in
                                     rec.shown()]}])  # fmt: skip
        else:
            for p, v in rec.shown():
                click.echo(f"write {p} <- {v}")
        return None

    g: Any = wrapper
    out: F = click.option(
        "--dry-run", is_flag=True, help="Check and print each sysfs write; change nothing."
    )(g)
    return out


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
@dry_run_option
@report_option
@click.pass_context
def create_region(
    ctx: click.Context,
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
    human: bool,
    as_json: bool,
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

    \b
    Examples:
      cxlctl --sim create-region -m -t ram -d decoder0.0 mem1
      cxlctl --sim create-region -m -t pmem -d decoder0.0 -w 1 mem0 --json
      cxlctl --sim create-region -t pmem -s 256M decoder4.0
      CXLCTL_SIM_DEVICES=pmem,pmem cxlctl --sim create-region -t pmem -w 2 mem0 mem1
    """
    app = app_of(ctx)
    fs = _seam(app)
    if not targets:
        raise UsageError("create-region: give the target memdevs (or endpoint decoders)")
    topo = _topo(app)
    nbytes = size
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
        size=nbytes,
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
    if plan.reordered:
        note(
            "targets reordered to fit the host-bridge interleave: "
            + ", ".join(f"{i}={m.name}" for i, (m, _d) in enumerate(plan.targets))
        )
    region = rg.create_region(fs, plan, enable=not no_enable)
    if region is None:  # --dry-run
        note(
            f"{plan.mode} region over "
            + ", ".join(m.name for m, _d in plan.targets)
            + f": {_mib(plan.size)}, {plan.ways} way(s), granularity {plan.granularity}"
        )
        return
    note(
        f"{region.name}: created {region.mode} region, {_mib(region.size)} at "
        f"{region.resource or 0:#x}, {region.interleave_ways} way(s) over "
        + ", ".join(m.name for m, _d in plan.targets)
        + (f"; {_memory_note(app, region)}" if region.enabled else " (not enabled)")
    )
    if as_json:
        app.json([_region_json(app, region.name, human)])


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


def _regions(app: App, specs: Sequence[str], decoder: str | None) -> tuple[Topology, list[Region]]:
    topo = _topo(app)
    return topo, rg.select_regions(topo, specs, decoder)


@click.command("enable-region", context_settings=CONTEXT)
@region_args
@decoder_filter
@dry_run_option
@report_option
@click.pass_context
def enable_region(
    ctx: click.Context, regions: Sequence[str], decoder: str | None, as_json: bool
) -> None:
    """Bind committed regions to cxl_region, as `cxl enable-region` (all: every region).

    A ram region's memory comes back online through kmem; a pmem region's nd region
    comes back. An unknown region is an error (cxl-cli exits 0).

    \b
    Examples:
      cxlctl --sim create-region -t ram mem1
      cxlctl --sim disable-region region0
      cxlctl --sim enable-region region0
      cxlctl --sim enable-region all --json
    """
    app = app_of(ctx)
    _, todo = _regions(app, regions, decoder)
    rows = []
    for r in todo:
        changed = rg.enable_region(app.backend.sysfs_seam, r)
        fresh = _topo(app).region(r.name)
        extra = f"; {_memory_note(app, fresh)}" if changed and fresh is not None else ""
        note(f"{r.name}: {'enabled' if changed else 'already enabled'}{extra}")
        rows.append(_region_json(app, r.name, False))
    if as_json:
        app.json(rows)


@click.command("disable-region", context_settings=CONTEXT)
@region_args
@decoder_filter
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Unbind even when the memory cannot be offlined (its address space leaks until a reboot).",
)
@dry_run_option
@report_option
@click.pass_context
def disable_region(
    ctx: click.Context, regions: Sequence[str], decoder: str | None, force: bool, as_json: bool
) -> None:
    """Unbind regions from cxl_region, as `cxl disable-region`; the decode stays committed.

    A ram region's memory blocks are offlined first (the kernel migrates their
    pages; memory in use makes that fail, and the region is left enabled unless
    --force). The region then shows "state": "disabled" with -i.

    \b
    Examples:
      cxlctl --sim create-region -t ram mem1
      cxlctl --sim disable-region region0
      cxlctl --sim disable-region all
    """
    app = app_of(ctx)
    fs = _seam(app)
    _, todo = _regions(app, regions, decoder)
    rows = []
    for r in todo:
        if not r.enabled:
            note(f"{r.name}: already disabled")
        else:
            try:
                blocks = rg.disable_region(fs, r)
            except rg.TopologyBusy:
                if not force:
                    raise
                fs.write("bus/cxl/drivers/cxl_region/unbind", r.name.encode() + b"\0")
                note(
                    f"{r.name}: memory still online: its physical address space is leaked "
                    "until a reboot (--force)"
                )
                blocks = []
            extra = f" (offlined memory{blocks[0]}-{blocks[-1]})" if blocks else ""
            note(f"{r.name}: disabled{extra}")
        rows.append(_region_json(app, r.name, False))
    if as_json:
        app.json(rows)


@click.command("destroy-region", context_settings=CONTEXT)
@region_args
@decoder_filter
@click.option("-f", "--force", is_flag=True, help="Disable an active region first.")
@dry_run_option
@report_option
@click.pass_context
def destroy_region(
    ctx: click.Context, regions: Sequence[str], decoder: str | None, force: bool, as_json: bool
) -> None:
    """Tear regions down and delete them, as `cxl destroy-region`.

    An active region needs --force (which offlines a ram region's memory and
    unbinds it). Then commit <- 0, each targetN <- "" with its endpoint decoder's
    DPA freed (the decoder keeps its mode), and delete_region. A pmem region's
    data is no longer addressable afterwards. Regions whose target decoders went
    away (after disable-port/disable-memdev --force) are deleted too; cxl-cli
    cannot.

    \b
    Examples:
      cxlctl --sim create-region -t ram mem1
      cxlctl --sim destroy-region -f region0
      cxlctl --sim create-region -t pmem mem0
      cxlctl --sim destroy-region -f all --json
    """
    app = app_of(ctx)
    fs = _seam(app)
    _, todo = _regions(app, regions, decoder)
    for r in todo:
        if r.enabled and not force:
            raise rg.TopologyBusy(
                f"{r.name}: active: disable it first, or use --force",
                hint=f"cxlctl disable-region {r.name}",
            )
    rows = []
    for r in todo:
        blocks = rg.destroy_region(fs, r, force=force)
        extra = f" (offlined memory{blocks[0]}-{blocks[-1]})" if blocks else ""
        what = " its persistent data is no longer addressable" if r.mode == "pmem" else ""
        note(f"{r.name}: destroyed{extra}{';' if what else ''}{what}")
        rows.append({"region": r.name, "state": "destroyed"})
    if as_json:
        app.json(rows)


# --- reserve-dpa / free-dpa ------------------------------------------------------------------


def _memdev_with_decoder(app: App, w: Walker, name: str, d: Decoder) -> Row:
    m = w.t.memdev(name)
    assert m is not None
    out = w.memdev_json(m)
    dj = w.decoder_json(d)
    out["decoder"] = dj
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
@dry_run_option
@report_option
@click.pass_context
def reserve_dpa(
    ctx: click.Context,
    memdevs: Sequence[str],
    mode: str,
    size: int | None,
    decoder: str | None,
    human: bool,
    as_json: bool,
) -> None:
    """Reserve device capacity (DPA) in an endpoint decoder, as `cxl reserve-dpa`.

    Writes dpa_size <- 0, mode (when it changes) and dpa_size <- SIZE. DPA is
    reserved in decoder order, from the start of the partition; create-region uses
    such a reservation. -t is required (cxl-cli 81 documents pmem but acts as ram).

    \b
    Examples:
      cxlctl --sim reserve-dpa mem0 -t pmem
      cxlctl --sim reserve-dpa mem1 -t ram -s 256M --json
    """
    app = app_of(ctx)
    fs = _seam(app)
    nbytes = size
    rows = []
    for spec in selected(ctx, memdevs):
        topo = _topo(app)
        m = rg.memdev_of(topo, spec)
        d = rg.reserve_dpa(fs, topo, m, mode, nbytes, decoder)
        note(
            f"{m.name}: {d.name} reserves {_mib(d.dpa_size or 0)} of {mode} at DPA "
            f"{d.dpa_resource or 0:#x}"
        )
        rows.append(_memdev_with_decoder(app, _walker(app, human), m.name, d))
    if as_json:
        app.json(rows)


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
@dry_run_option
@report_option
@click.pass_context
def free_dpa(
    ctx: click.Context,
    memdevs: Sequence[str],
    mode: str | None,
    decoder: str | None,
    human: bool,
    as_json: bool,
) -> None:
    """Release a DPA reservation that no region uses, as `cxl free-dpa`.

    Writes dpa_size <- 0 on the last reserved decoder (DPA is freed in reverse
    decoder order); the decoder keeps its mode. No mode switch is attempted
    (cxl-cli 81 then fails on a pmem reservation). Nothing reserved: nothing to
    do, exit 0.

    \b
    Examples:
      cxlctl --sim reserve-dpa mem0 -t pmem
      cxlctl --sim free-dpa mem0
      cxlctl --sim reserve-dpa mem1 -t ram
      cxlctl --sim free-dpa mem1 -t ram --json
    """
    app = app_of(ctx)
    fs = _seam(app)
    rows = []
    for spec in selected(ctx, memdevs):
        topo = _topo(app)
        m = rg.memdev_of(topo, spec)
        d = rg.free_dpa(fs, topo, m, mode, decoder)
        if d is None:
            note(f"{m.name}: no {mode + ' ' if mode else ''}DPA reservation to free (unchanged)")
            w = _walker(app, human)
            mm = w.t.memdev(m.name)
            assert mm is not None
            rows.append(w.memdev_json(mm))
            continue
        note(f"{m.name}: {d.name} released its DPA (mode {d.mode or 'none'} kept)")
        rows.append(_memdev_with_decoder(app, _walker(app, human), m.name, d))
    if as_json:
        app.json(rows)


# --- ports and buses ---------------------------------------------------------------------------


@click.command("disable-port", context_settings=CONTEXT)
@click.argument("ports", nargs=-1, required=True, metavar="PORT...")
@click.option("-e", "--endpoint", is_flag=True, help="PORTs are endpoint ports.")
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Disable even when memdevs below are in active regions (they break).",
)
@dry_run_option
@report_option
@click.pass_context
def disable_port(
    ctx: click.Context, ports: Sequence[str], endpoint: bool, force: bool, as_json: bool
) -> None:
    """Unbind ports from cxl_port, as `cxl disable-port`: everything below goes away.

    The decoders and endpoints below are removed and the memdevs below lose
    cxl_mem. Refused without --force only when a memdev below is in an active
    region (cxl-cli 81 refuses whenever a memdev is enabled).

    \b
    Examples:
      cxlctl --sim disable-port -e endpoint3
      cxlctl --sim enable-port -e endpoint3
      cxlctl --sim disable-port port1
    """
    app = app_of(ctx)
    fs = _seam(app)
    rows = []
    for spec in ports:
        topo = _topo(app)
        p = rg.port_of(topo, spec, endpoint=endpoint)
        changed = rg.disable_port(fs, topo, p, force=force)
        note(f"{p.name}: {'disabled' if changed else 'already disabled'}")
        rows.append({"port": p.name, "state": "disabled", "changed": changed})
    if as_json:
        app.json(rows)


@click.command("enable-port", context_settings=CONTEXT)
@click.argument("ports", nargs=-1, required=True, metavar="PORT...")
@click.option("-e", "--endpoint", is_flag=True, help="PORTs are endpoint ports.")
@click.option("-m", "--enable-memdevs", is_flag=True, help="Also enable the memdevs below.")
@dry_run_option
@report_option
@click.pass_context
def enable_port(
    ctx: click.Context, ports: Sequence[str], endpoint: bool, enable_memdevs: bool, as_json: bool
) -> None:
    """Bind ports to cxl_port, as `cxl enable-port`; -m also binds the memdevs below.

    \b
    Examples:
      cxlctl --sim disable-port port1
      cxlctl --sim enable-port -m port1
    """
    app = app_of(ctx)
    fs = _seam(app)
    rows = []
    for spec in ports:
        topo = _topo(app)
        p = rg.port_of(topo, spec, endpoint=endpoint)
        done = rg.enable_port(fs, topo, p, memdevs=enable_memdevs)
        note(f"{p.name}: " + (f"enabled {', '.join(done)}" if done else "already enabled"))
        rows.append({"port": p.name, "enabled": done})
    if as_json:
        app.json(rows)


@click.command("disable-bus", context_settings=CONTEXT)
@click.argument("buses", nargs=-1, required=True, metavar="BUS...")
@click.option("-f", "--force", is_flag=True, help="Disable even with active regions.")
@dry_run_option
@report_option
@click.pass_context
def disable_bus(ctx: click.Context, buses: Sequence[str], force: bool, as_json: bool) -> None:
    """Unbind cxl_acpi from a CXL bus, as `cxl disable-bus`: the whole topology goes.

    Everything below root0 is removed, regions included; the memdevs stay,
    unbound. There is no enable-bus: bind ACPI0017:00 to cxl_acpi to get it back.
    Refused without --force while regions are active.

    \b
    Examples:
      cxlctl --sim disable-bus root0
      cxlctl disable-bus -f root0
    """
    app = app_of(ctx)
    fs = _seam(app)
    rows = []
    for b in buses:
        topo = _topo(app)
        rg.disable_bus(fs, topo, b, force=force)
        note(f"{b}: disabled")
        rows.append({"bus": b, "state": "disabled"})
    if as_json:
        app.json(rows)


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
@report_option
@click.pass_context
def set_partition(
    ctx: click.Context,
    memdevs: Sequence[str],
    mode: str,
    size: int | None,
    align: bool,
    as_json: bool,
) -> None:
    """Change the ram/pmem split of memdevs with Set Partition Info, as `cxl set-partition`.

    Checked against Identify (partitionable capacity and alignment) and Get
    Partition Info before anything is sent; prints the layout before and after.
    Linux refuses immediate repartitioning, so the new split takes effect after
    the next cold reset; until then Get Partition Info shows it as "next". A
    device with partition alignment 0 (QEMU 10, the simulator) cannot be
    repartitioned.

    \b
    Examples:
      cxlctl --sim partition mem2
      cxlctl set-partition mem0 -t ram -s 512M
      cxlctl set-partition mem0 -t pmem -a --json
    """
    from ..memdev import Memdev
    from ..partition import plan_partition, set_partition_payload

    app = app_of(ctx)
    nbytes = size
    rows = []
    for name in selected(ctx, memdevs):
        md = Memdev(app.backend, name)
        try:
            plan = plan_partition(
                name, md.identify(), md.partition_info(), mode, nbytes, align=align
            )
            md.run("set-partition-info", set_partition_payload(plan))
            now = md.partition_info()
        finally:
            md.close()
        b = plan.before
        note(
            f"{name}: next cold reset: ram {_mib(now.next_volatile_capacity)}, pmem "
            f"{_mib(now.next_persistent_capacity)} (now ram {_mib(b['active_volatile_size'])}, "
            f"pmem {_mib(b['active_persistent_size'])}); takes effect after the next cold reset"
        )
        rows.append(
            {
                "memdev": name,
                "before": plan.before,
                "after": {
                    **plan.before,
                    "next_volatile_size": now.next_volatile_capacity,
                    "next_persistent_size": now.next_persistent_capacity,
                },
            }
        )
    if as_json:
        app.json(rows)
