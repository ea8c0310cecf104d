"""``list``'s topology part (cxl-cli's -B -P -E -D -T -R -X and filters) for people and scripts.

The walk and the JSON are the library's (:mod:`cxlctl.listing` over
:func:`cxlctl.topology.read_topology`); this module turns the options into
:class:`~cxlctl.listing.Params` and renders a tree or tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import render as rd
from . import App

if TYPE_CHECKING:  # imported when a topology option is used: `list --json` stays lean
    from ..listing import Params
    from ..topology import Decoder, Memdev, Port, Region, Topology

F = TypeVar("F", bound=Callable[..., Any])

#: options that switch `list` to the topology walk (everything else keeps the memdev table)
TOPOLOGY_FLAGS = (
    "buses",
    "ports",
    "endpoints",
    "decoders",
    "targets",
    "regions",
    "dax",
    "bus",
    "port",
    "endpoint",
    "decoder",
    "region",
    "single",
    "verbose",
)


#: cxl-cli's `cxl list` object flags: (short, long, parameter, help)
INCLUDE = (
    ("-M", "--memdevs", "memdevs_flag", "Include memdevs."),
    ("-B", "--buses", "buses", "Include CXL buses (cxl_acpi roots)."),
    ("-P", "--ports", "ports", "Include CXL ports (host bridges, switches)."),
    ("-E", "--endpoints", "endpoints", "Include endpoint ports."),
    ("-D", "--decoders", "decoders", "Include HDM decoders."),
    ("-T", "--targets", "targets", "Include decoder targets, port dports and region mappings."),
    ("-R", "--regions", "regions", "Include regions."),
    ("-X", "--dax", "dax", "Include the dax region of ram regions."),
)
#: its filters: (short, long, parameter, metavar, help)
FILTERS = (
    ("-b", "--bus", "bus", "BUS", "Filter by bus (root0, or 'all')."),
    ("-p", "--port", "port", "PORT",
     "Filter by port (port1, root, switch, endpoint; descendants too)."),
    ("-e", "--endpoint", "endpoint", "ENDPOINT", "Filter by endpoint."),
    ("-d", "--decoder", "decoder", "DECODER",
     "Filter by decoder name or class (root, switch, endpoint)."),
    ("-r", "--region", "region", "REGION", "Filter by region (region0, 0)."),
    ("-m", "--memdev", "memdev_filter", "MEMDEV", "Filter by memdev (mem0, 0; comma-separated)."),
    ("-s", "--serial", "serial_filter", "SERIAL", "Filter by serial number (0x1234 or decimal)."),
)  # fmt: skip


def topology_options(f: F) -> F:
    """cxl-cli's `cxl list` letters for the topology."""
    opts = [click.option(s, lg, dest, is_flag=True, help=h) for s, lg, dest, h in INCLUDE]
    opts += [click.option(s, lg, dest, metavar=m, help=h) for s, lg, dest, m, h in FILTERS]
    opts += [
        click.option("-i", "--idle", is_flag=True, help="Include disabled and idle objects."),
        click.option(
            "-S", "--single", is_flag=True, help="With -p: the port itself, not its descendants."
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="-v: the whole topology, -vv: and idle objects, -vvv: and every block.",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def wants_topology(kw: dict[str, Any]) -> bool:
    return any(kw.get(k) for k in TOPOLOGY_FLAGS)


def params_of(kw: dict[str, Any], memdevs: Sequence[str], human: bool) -> Params:
    names = [m.removeprefix("/dev/cxl/") for m in memdevs]
    mf = kw.get("memdev_filter")
    if names:
        mf = ",".join([*([mf] if mf else []), *names])
    from ..listing import Params

    return Params(
        memdevs=bool(kw.get("memdevs_flag")),
        buses=bool(kw.get("buses")),
        ports=bool(kw.get("ports")),
        endpoints=bool(kw.get("endpoints")),
        decoders=bool(kw.get("decoders")),
        regions=bool(kw.get("regions")),
        targets=bool(kw.get("targets")),
        dax=bool(kw.get("dax")),
        idle=bool(kw.get("idle")),
        human=human,
        single=bool(kw.get("single")),
        memdev_filter=mf,
        serial_filter=kw.get("serial_filter"),
        bus_filter=kw.get("bus"),
        port_filter=kw.get("port"),
        endpoint_filter=kw.get("endpoint"),
        decoder_filter=kw.get("decoder"),
        region_filter=kw.get("region"),
        verbose=int(kw.get("verbose") or 0),
    )


def topology_list(
    app: App,
    params: Params,
    fmt: str,
    memdev_json: Callable[[Memdev], dict[str, Any]] | None = None,
    *,
    cxl_compat: bool = False,
) -> None:
    if params.single and not params.port_filter:
        from ..errors import UsageError

        raise UsageError("-S/--single expects a port filter: -p/--port=PORT")
    from ..listing import cxl_list
    from ..topology import read_topology

    topo = read_topology(app.backend.sysfs_seam)
    data = cxl_list(topo, params, memdev_json)
    if cxl_compat:  # cxl-cli prints JSON only, and unwraps one object under -u
        from ..listing import cxl_cli_json

        shown = cxl_cli_json(data, params.human)
        if shown is not None:
            rd.dump_json(shown)
        return
    if fmt == "json":
        rd.dump_json(data)
        return
    p = params  # normalised by cxl_list
    only = [k for k in ("regions", "decoders") if getattr(p, k)]
    others = p.buses or p.ports or p.endpoints or p.memdevs
    if only == ["regions"] and not others:
        region_table(app, [r for r in topo.regions() if p.idle or r.enabled])
    elif only == ["decoders"] and not others:
        decoder_table(app, topo, [d for d in topo.decoders() if p.idle or d.size])
    else:
        tree(app, topo, p)


# --- for people ------------------------------------------------------------------------


def _size(n: int) -> str:
    h = rd.human_size(n)
    return h.split(" (")[0] if isinstance(h, str) else f"{n}"


def _uuid(app: App, r: Region) -> str:
    """A pmem region's uuid: its first 8 hex digits in a table, whole with -o wide
    and in JSON (the abbreviation is never the only form)."""
    if not r.uuid:
        return "-"
    wide = getattr(app.style, "mode", "table") in ("wide", "plain")
    return r.uuid if wide else r.uuid[:8]


def region_table(app: App, regions: list[Region]) -> None:
    """Regions for people: the names (region, memdevs) whole at any width; the
    columns on the right are left out first (-o wide shows them all)."""
    cols = (
        "region",
        "type",
        "size",
        "ways",
        "memdevs",
        "state",
        "uuid",
        "resource",
        "granularity",
        "decode",
        "targets",
    )
    rows = [
        (
            r.name,
            r.mode,
            _size(r.size),
            r.interleave_ways,
            " ".join(m.memdev or "?" for m in reversed(r.mappings)) or "-",
            "enabled" if r.enabled else "disabled",
            _uuid(app, r),
            f"{r.resource:#x}" if r.resource is not None else "-",
            r.interleave_granularity,
            "commit" if r.committed else "reset",
            " ".join(f"{m.position}:{m.memdev or '?'}/{m.decoder}" for m in reversed(r.mappings))
            or "-",
        )
        for r in regions
    ]
    rd.print_table(app.style, "CXL regions", cols, rows, simulated=app.backend.simulated)


def decoder_table(app: App, topo: Topology, decoders: list[Decoder]) -> None:
    """Decoders for people: decoder, region and memdev names whole at any width."""
    cols = (
        "decoder",
        "kind",
        "region",
        "memdev",
        "mode",
        "size",
        "ways",
        "resource",
        "dpa",
        "targets",
    )
    rows = []
    for d in decoders:
        mem = topo.memdev_of_decoder(d) if d.kind == "endpoint" else None
        dpa = "-"
        if d.kind == "endpoint" and d.dpa_size:
            dpa = f"{d.dpa_resource or 0:#x}+{_size(d.dpa_size)}"
        rows.append(
            (
                d.name,
                d.kind,
                d.region or "-",
                mem.name if mem else "-",
                d.mode or "-",
                _size(d.size) if d.size else "-",
                d.interleave_ways or "-",
                f"{d.resource:#x}" if d.size and d.resource is not None else "-",
                dpa,
                " ".join(t.name or str(t.id) for t in d.targets) or "-",
            )
        )
    rd.print_table(app.style, "CXL decoders", cols, rows, simulated=app.backend.simulated)


def _decoder_label(topo: Topology, d: Decoder) -> str:
    bits = [d.name]
    if d.size and d.resource is not None:
        bits.append(f"{d.resource:#x}+{_size(d.size)}")
    if d.interleave_ways and d.interleave_ways > 1:
        bits.append(f"x{d.interleave_ways}@{d.interleave_granularity}")
    if d.kind == "endpoint" and d.mode:
        bits.append(d.mode + (f" dpa {_size(d.dpa_size)}" if d.dpa_size else ""))
    if d.region:
        bits.append(f"-> {d.region}")
    if not d.size and not (d.kind == "endpoint" and d.dpa_size):
        bits.append("(idle)")
    return " ".join(bits)


def _region_label(r: Region) -> str:
    where = f"{r.resource:#x}+{_size(r.size)}" if r.resource is not None else "no HPA"
    state = ("commit" if r.committed else "reset") + (", enabled" if r.enabled else ", disabled")
    maps = ", ".join(f"{m.position}={m.memdev or '?'}" for m in reversed(r.mappings))
    return f"{r.name} {r.mode} {where} x{r.interleave_ways} [{state}]" + (
        f" {maps}" if maps else ""
    )


def tree(app: App, topo: Topology, p: Params) -> None:
    def port_node(port: Port) -> rd.TreeNode:
        if port.kind == "endpoint":
            m = port.memdev
            mem = ""
            if m is not None:
                sizes = " ".join(
                    f"{k} {_size(v)}" for k, v in (("ram", m.ram_size), ("pmem", m.pmem_size)) if v
                )
                mem = f" {m.name} serial {m.serial:#x} {sizes}"
            label = f"{port.name} via {port.parent_dport or '?'}:{mem}"
        else:
            label = f"{port.name} ({port.host}) committed {port.decoders_committed}"
        if not port.enabled and port.kind != "root":
            label += " (disabled)"
        kids: list[rd.TreeNode] = []
        if p.decoders or p.verbose:
            for d in port.decoders:
                if p.idle or d.size or (d.kind == "endpoint" and d.dpa_size):
                    regs: list[rd.TreeNode] = [
                        (_region_label(r), []) for r in topo.regions_of(d) if p.idle or r.enabled
                    ]
                    kids.append((_decoder_label(topo, d), regs))
        kids += [port_node(c) for c in port.ports]
        kids += [port_node(e) for e in port.endpoints if p.idle or e.enabled]
        return label, kids

    roots = [(f"{b.name} ({b.provider})", port_node(b.port)[1]) for b in topo.buses]
    if not p.decoders and not p.verbose:
        for b, (_label, kids) in zip(topo.buses, roots, strict=True):
            for d in b.port.decoders:
                kids.extend(
                    (_region_label(r), []) for r in topo.regions_of(d) if p.idle or r.enabled
                )
    anon = [m for m in topo.memdevs if topo.endpoint_of(m) is None]
    if anon:
        roots.append(
            (
                "memdevs without a port",
                [
                    (f"{m.name} serial {m.serial:#x}{'' if m.enabled else ' (disabled)'}", [])
                    for m in anon
                ],
            )
        )
    rd.print_tree(app.style, "CXL topology", roots, simulated=app.backend.simulated)
