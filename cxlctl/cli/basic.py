"""Read-only overview commands: list, query, identify."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from .. import mailbox as mb
from .. import render as rd
from ..errors import CxlError
from ..memdev import VARIABLE_SIZE, Memdev, kernel_command_name
from . import CONTEXT, App, app_of, complete, fmt_of, memdevs_argument, output_option, selected
from .options import MemdevArgument
from .output import message
from .topology import params_of, topology_list, topology_options, wants_topology

if TYPE_CHECKING:
    from types import ModuleType

    from ..topology import Memdev as Memdev_

# --- list -------------------------------------------------------------------------

#: cli.info and devops, imported on first use (not at start-up) and kept: a
#: function-level import runs the import machinery again for every memdev
_lazy: dict[str, ModuleType] = {}


def _module(name: str) -> ModuleType:
    mod = _lazy.get(name)
    if mod is None:
        import importlib

        mod = _lazy[name] = importlib.import_module(name, __package__)
    return mod


def memdev_json(
    app: App,
    name: str,
    *,
    partition: bool,
    firmware: bool,
    health: bool = False,
    alert_config: bool = False,
    media_errors: bool = False,
) -> dict[str, Any]:
    """One memdev as ``cxl list -M`` prints it (raw integers)."""
    info = app.backend.info(name)
    d: dict[str, Any] = {"memdev": info.memdev}
    if info.pmem_size:
        d["pmem_size"] = info.pmem_size
    if info.ram_size:
        d["ram_size"] = info.ram_size
    md = Memdev(app.backend, name, info)  # sysfs read once per memdev
    if health or alert_config:  # cxl-cli puts these before "serial"
        info_mod = _module(".info")
        if health:
            _optional(app, d, "health", lambda: info_mod.cxl_health_json(md))
        if alert_config:
            _optional(app, d, "alert_config", lambda: info_mod.cxl_alert_config_json(md))
    d["serial"] = info.serial
    if info.numa_node >= 0:
        d["numa_node"] = info.numa_node
    d["host"] = info.host
    d["firmware_version"] = info.firmware_version
    if not app.backend.enabled(name):  # cxl-cli: unbound from cxl_mem
        d["state"] = "disabled"
    try:
        if partition:
            _optional(app, d, "partition_info", lambda: _partition_json(md))
        if firmware:
            _optional(app, d, "firmware", lambda: _firmware_json(md))
        if media_errors:  # cxl-cli: trigger_poison_list + cxl_poison events; none: no key
            from .media import media_errors_json

            _optional(app, d, "media_errors", lambda: media_errors_json(app, name) or None)
            if d.get("media_errors") is None:
                d.pop("media_errors", None)
    finally:
        md.close()
    d["payload_max"] = info.payload_max
    d["label_storage_size"] = info.label_storage_size
    d["backend"] = info.backend
    return d


def _optional(app: App, d: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    """cxl-cli leaves a block out when the device cannot answer; so do we."""
    try:
        d[key] = fn()
    except CxlError as e:
        if app.debug:
            message(f"cxlctl: {key} left out: {e}")


def _partition_json(md: Memdev) -> dict[str, Any]:
    """cxl-cli's util_cxl_memdev_partition_to_json(): the IDENTIFY sizes, and the
    active/next split from Get Partition Info only when the partition alignment is
    non-zero (the device is partitionable); a failed Get Partition Info keeps the
    IDENTIFY keys, a failed IDENTIFY leaves the block out."""
    ident = md.identify()
    d: dict[str, Any] = {
        "total_size": ident.total_size,
        "volatile_only_size": ident.volatile_only_size,
        "persistent_only_size": ident.persistent_only_size,
        "partition_alignment_size": ident.partition_alignment_size,
    }
    if not ident.partition_alignment_size:
        return d
    try:
        part = md.partition_info()
    except CxlError:
        return d
    d["active_volatile_size"] = part.active_volatile_size
    d["active_persistent_size"] = part.active_persistent_size
    d["next_volatile_size"] = part.next_volatile_size
    d["next_persistent_size"] = part.next_persistent_size
    return d


def _firmware_json(md: Memdev, backend: Any = None) -> dict[str, Any]:
    fw = md.fw_info()
    d: dict[str, Any] = {
        "num_slots": fw.num_slots,
        "active_slot": fw.active_slot,
    }
    if fw.staged_slot:
        d["staged_slot"] = fw.staged_slot
    d["online_activate_capable"] = fw.online_activate_capable
    for s in fw.slots:
        if s.version:
            d[f"slot_{s.slot}_version"] = s.version
    # cxl-cli reads the firmware-upload device: status, and remaining_size while busy
    d["fw_update_in_progress"] = False
    up = _module("..devops").FirmwareUpload(backend or md.backend, md.name)
    try:  # one read, as libcxl's: no firmware-upload device (or no status) is not busy
        if up.status() == "idle":
            return d
        remaining = up.remaining_size()
    except CxlError:
        return d
    d["fw_update_in_progress"] = True
    d["remaining_size"] = remaining
    return d


@click.command("list", context_settings=CONTEXT)
@click.argument(
    "memdevs",
    cls=MemdevArgument,
    nargs=-1,
    metavar="[MEMDEV]...",
    shell_complete=complete.memdevs,
)
@click.option("-I", "--partition", is_flag=True, help="Include partition information.")
@click.option("-F", "--firmware", is_flag=True, help="Include firmware information.")
@click.option("-H", "--health", is_flag=True, help="Include health information.")
@click.option("-A", "--alert-config", is_flag=True, help="Include alert configuration.")
@click.option(
    "-L", "--media-errors", is_flag=True, help="Include media errors (the poison list; root)."
)
@topology_options
@click.option(
    "--cxl-compat",
    "cxl_compat",
    is_flag=True,
    help="Print exactly what cxl-cli 81's `cxl list` prints: JSON, its keys only, and "
    "with -u a single object unwrapped (no array).",
)
@output_option()
@click.pass_context
def list_cmd(
    ctx: click.Context,
    /,
    memdevs: Sequence[str],
    partition: bool,
    firmware: bool,
    health: bool,
    alert_config: bool,
    media_errors: bool,
    output: str,
    as_json: bool,
    cxl_compat: bool,
    **topo: Any,
) -> None:
    """List memdevs, or with -B -P -E -D -T -R -X the CXL topology, as cxl list.

    With no MEMDEV, lists every memdev. JSON is always an array of objects with
    cxl-cli's keys (memdev, pmem_size, ram_size, serial, host, firmware_version).
    The topology options walk sysfs as libcxl does and print cxl-cli's objects,
    keys and nesting (ports:root0, endpoints:port1, decoders:endpoint2,
    regions:decoder0.0, mappings...); tables show a tree, or a region or decoder
    table with -R or -D alone. Disabled memdevs (and idle objects) are hidden,
    as cxl-cli hides them; -i shows them. With no CXL memdevs at all, JSON is
    `[]` (jsonl and plain: no lines) and the exit status 0.

    --cxl-compat is for scripts written for cxl-cli: the output is cxl-cli's
    JSON, object for object (the filter walk of cxl/filter.c, cxl-cli's keys
    only: no payload_max, label_storage_size, backend), and with -u a single
    object is printed bare, not in an array, as util_display_json_array() does.
    Without --cxl-compat, JSON is always an array.

    \b
    Examples:
      cxlctl --sim list
      cxlctl --sim list -I -F -u --json
      cxlctl --sim list -H -A mem0 --json
      cxlctl --sim list -L -u mem0 --json
      cxlctl list mem0 --json | jq '.[].serial'
      cxlctl --sim list -B -P -E -D -T -R -X -M -u --json
      cxlctl --sim list -R -T
      cxlctl --sim list -D -d root -u --json
      cxlctl --sim list -v
      cxlctl --sim list -M -H -I -F -u --cxl-compat
    """
    app = app_of(ctx)
    human = app.human
    if wants_topology(topo) or cxl_compat:
        params = params_of(topo, memdevs, human)
        flags = {"partition": partition, "firmware": firmware, "health": health,
                 "alert_config": alert_config, "media_errors": media_errors}  # fmt: skip
        if params.verbose >= 3:
            flags = dict.fromkeys(flags, True)
            flags["media_errors"] = False  # needs root and tracefs; -L asks for it

        def one(m: Memdev_) -> dict[str, Any]:
            d = memdev_json(app, m.name, **flags)
            for extra in ("payload_max", "label_storage_size", "backend"):
                d.pop(extra, None)  # cxlctl's own keys; the topology JSON is cxl-cli's
            out: dict[str, Any] = rd.humanize(d) if human else d
            return out

        topology_list(app, params, fmt_of(output, as_json), one, cxl_compat=cxl_compat)
        return
    if topo.get("memdev_filter"):
        memdevs = (*memdevs, *topo["memdev_filter"].split(","))
    fmt = fmt_of(output, as_json)
    if not memdevs and not app.backend.names():  # an empty inventory is not an error
        if fmt == "json":
            app.json([])
        elif output != "plain":
            e = app.backend.no_devices()
            message(f"cxlctl: {e}" + (f" (hint: {e.hint})" if e.hint else ""))
        return
    names = app.backend.select(memdevs)
    if topo.get("serial_filter"):
        want = {int(s, 0) for s in topo["serial_filter"].split(",") if s}
        names = [n for n in names if app.backend.info(n).serial in want]
    hidden = [] if topo.get("idle") else [n for n in names if not app.backend.enabled(n)]
    names = [n for n in names if n not in hidden]  # cxl-cli: disabled memdevs need -i
    data = [
        memdev_json(
            app,
            n,
            partition=partition,
            firmware=firmware,
            health=health,
            alert_config=alert_config,
            media_errors=media_errors,
        )
        for n in names
    ]
    if fmt == "json":
        app.json(data)
        return
    if data or output == "plain":
        cols, rows = list_table(data, media_errors=media_errors)
        title = "CXL memdevs" + ("" if app.backend.simulated else f" ({app.backend.name})")
        rd.print_table(app.style, title, cols, rows, simulated=app.backend.simulated)
    if hidden and output != "plain":
        n = len(hidden)
        message(f"cxlctl: {n} disabled memdev{'s' * (n > 1)} not shown "
                       f"({', '.join(hidden)}); -i shows {'them' if n > 1 else 'it'}")  # fmt: skip


def list_table(
    data: list[dict[str, Any]], *, media_errors: bool = False
) -> tuple[list[str], list[list[Any]]]:
    """The list table: identity, state and sizes, plus the columns of the blocks
    asked for (-I partition, -F firmware, -H health, -A alert config, -L media
    errors). The backend is in the title."""
    cols = ["memdev", "serial", "state", "ram_size", "pmem_size", "host", "firmware_version"]
    extra: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
    if any("partition_info" in d for d in data):
        extra += [
            ("total_size", lambda d: d.get("partition_info", {}).get("total_size")),
            (
                "align_size",
                lambda d: d.get("partition_info", {}).get("partition_alignment_size"),
            ),
        ]
    if any("firmware" in d for d in data):
        extra += [
            ("slots", lambda d: d.get("firmware", {}).get("num_slots")),
            ("active", lambda d: d.get("firmware", {}).get("active_slot")),
            ("staged", lambda d: d.get("firmware", {}).get("staged_slot")),
        ]
    if any("health" in d for d in data):
        extra += [
            ("life_%", lambda d: d.get("health", {}).get("life_used_percent")),
            ("temp_C", lambda d: d.get("health", {}).get("temperature")),
            ("errors", lambda d: _errors(d.get("health"))),
        ]
    if any("alert_config" in d for d in data):
        extra += [
            ("life_warn_%", lambda d: _alert(d, "life_used_prog_warn_threshold")),
            ("temp_warn_C", lambda d: _alert(d, "dev_over_temperature_prog_warn_threshold")),
        ]
    if media_errors:
        extra += [("media_errors", lambda d: len(d.get("media_errors") or []))]
    cols += [c for c, _ in extra]
    rows = [
        [
            d.get("memdev"),
            d.get("serial"),
            d.get("state", "enabled"),
            d.get("ram_size", 0),
            d.get("pmem_size", 0),
            d.get("host"),
            d.get("firmware_version"),
            *(fn(d) for _, fn in extra),
        ]
        for d in data
    ]
    return cols, rows


def _errors(h: dict[str, Any] | None) -> str | None:
    if not h:
        return None
    return f"{h.get('volatile_errors', 0)}/{h.get('pmem_errors', 0)}"


def _alert(d: dict[str, Any], key: str) -> Any:
    a = d.get("alert_config") or {}
    return a.get(key)


# --- query ------------------------------------------------------------------------


def _var(n: int) -> int | None:
    return None if n == VARIABLE_SIZE else n


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def query(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Show the kernel's command table for a memdev (CXL_MEM_QUERY_COMMANDS).

    One row per entry the kernel returns, with its name, enabled/exclusive flags
    and payload sizes ("var" and JSON null mean variable length).

    \b
    Examples:
      cxlctl --sim query mem0
      cxlctl --sim query mem0 --json | jq '.[0].commands[] | select(.enabled) | .name'
    """
    app = app_of(ctx)

    def one(name: str) -> dict[str, Any]:
        with Memdev(app.backend, name) as md:
            infos = md.query()
        cmds: list[dict[str, Any]] = []
        for ci in infos:
            cat = mb.BY_KERNEL_ID.get(ci.id) if ci.id else None
            cmds.append(
                {
                    "index": ci.index,
                    "id": ci.id,
                    "name": cat.name if cat else None,
                    "kernel_name": kernel_command_name(ci.id) or f"id {ci.id}",
                    "opcode": cat.opcode if cat else None,
                    "destructive": cat.destructive if cat else None,
                    "flags": ci.flags,
                    "enabled": ci.enabled,
                    "exclusive": ci.exclusive,
                    "size_in": _var(ci.size_in),
                    "size_out": _var(ci.size_out),
                }
            )
        return {"memdev": name, "commands": cmds}

    out = app.each(selected(ctx, memdevs), one)
    if fmt_of(output, as_json) == "json":
        app.json(out)
        return
    for entry in out:
        rows = [
            (
                c["index"],
                c["id"],
                c["kernel_name"],
                f"{c['opcode']:#06x}" if c["opcode"] is not None else "-",
                " ".join(
                    f for f, on in (("ENABLED", c["enabled"]), ("EXCLUSIVE", c["exclusive"])) if on
                )
                or "-",
                "var" if c["size_in"] is None else c["size_in"],
                "var" if c["size_out"] is None else c["size_out"],
            )
            for c in entry["commands"]
        ]
        rd.print_table(
            app.style,
            f"{entry['memdev']}: kernel command table",
            ("index", "id", "name", "opcode", "flags", "size_in", "size_out"),
            rows,
            simulated=app.backend.simulated,
        )


# --- identify ---------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@memdevs_argument
@output_option()
@click.pass_context
def identify(ctx: click.Context, memdevs: Sequence[str], output: str, as_json: bool) -> None:
    """Decode Identify Memory Device (opcode 0x4000), every field.

    Capacities are in bytes (the device reports 256 MiB units).

    \b
    Examples:
      cxlctl --sim identify mem0
      cxlctl --sim identify --json | jq '.[] | {memdev, total_size}'
    """
    app = app_of(ctx)

    def one(name: str) -> dict[str, Any]:
        with Memdev(app.backend, name) as md:
            return {"memdev": name, **rd.to_data(md.identify())}

    out = app.each(selected(ctx, memdevs), one)
    if fmt_of(output, as_json) == "json":
        app.json(out)
        return
    for d in out:
        rd.print_fields(app.style, f"{d['memdev']}: Identify", d, simulated=app.backend.simulated)
